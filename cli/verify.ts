/**
 * `deno task verify <path>` — recompute every hash of a result bundle, or of every bundle
 * under an experiment folder or the results root, and name each file that differs.
 *
 * Exit status: 0 every bundle verifies, 1 some file differs (or is missing / added),
 * 2 no bundle at the path.
 * @module
 */
import { findBundles, verifyBundle } from "../lib/experiment/bundle.ts";
import { runCommand } from "./boundary.ts";

const HELP = `Usage: deno task verify <path> [<path> ...]

<path> is a bundle (results/<experiment>/<trial-id>), an experiment folder (results/<experiment>)
or the results root. Every file's sha256 is recomputed and compared with manifest.json, the
bundle hash with the file list, and config.json with the trial id; each mismatch names the file.`;

async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return args.length === 0 ? 2 : 0;
  }
  let bad = 0, good = 0, missing = 0;
  for (const path of args) {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(path);
    } catch {
      console.error(`${path}: no such file or folder`);
      missing++;
      continue;
    }
    if (!st.isDirectory) {
      console.error(`${path}: not a folder (give a bundle or an experiment folder)`);
      missing++;
      continue;
    }
    const bundles = await findBundles(path);
    if (bundles.length === 0) {
      console.error(`${path}: no bundles (no folder with a manifest.json) under it`);
      missing++;
      continue;
    }
    for (const dir of bundles) {
      const r = await verifyBundle(dir);
      if (r.ok) {
        good++;
        console.log(`ok    ${dir}  ${r.bundleHash}`);
      } else {
        bad++;
        console.log(`FAIL  ${dir}`);
        for (const p of r.problems) console.log(`      ${p.file}: ${p.problem}`);
      }
    }
  }
  console.log(`${good} bundle${good === 1 ? "" : "s"} ok, ${bad} failed`);
  return bad ? 1 : missing ? 2 : 0;
}

if (import.meta.main) await runCommand(() => main(Deno.args));
