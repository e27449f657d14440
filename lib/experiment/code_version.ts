/**
 * The code version that goes into every trial id: a sha256 over the source files under
 * `lib/` and `cli/` (path, size and bytes of each, in sorted order) and `deno.lock`.
 *
 * Why not the git commit: a commit does not describe a working tree with uncommitted edits
 * (two different programs would share an id), it is missing in a copy without `.git`, and it
 * changes for edits that cannot change a result (README, tests, experiment files, notebooks),
 * which would make every finished trial look new. Hashing the sources the trials run, plus
 * the lockfile that pins every npm dependency, is exact in all three cases. The commit is
 * still recorded, for information, in each bundle's `env.json`.
 *
 * Code that only reads finished bundles or writes beside them ({@link READ_ONLY_SOURCES}: the
 * report layer, the report / reproduce / notebook / verify / dashboard / export commands, the TensorBoard
 * writer) is left out, so improving a plot does not make every finished trial and cached SFT /
 * reward-model stage look new.
 *
 * `PROXIMA_CODE_VERSION` overrides the hash (tests pin it so that concurrent edits elsewhere
 * in the tree cannot change trial ids between two runs they compare).
 *
 * @module
 */
export { shortHash } from "../hash.ts";
import { createHash } from "node:crypto";

/** The repository root (the folder holding deno.json). */
export const REPO_ROOT: string = decodeURIComponent(new URL("../../", import.meta.url).pathname)
  .replace(/\/$/, "");

async function walk(dir: string, rel: string, out: string[]): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const e of entries) {
    if (e.name.startsWith(".") || e.name.includes(".tmp-")) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) await walk(`${dir}/${e.name}`, r, out);
    else if (e.isFile) out.push(r);
  }
}

/** Sources under lib/ and cli/ that cannot change a trial's result (prefixes). */
export const READ_ONLY_SOURCES: readonly string[] = [
  "lib/report/",
  "cli/report.ts",
  "cli/reproduce.ts",
  "cli/notebooks.ts",
  "cli/jupyter.ts",
  "cli/verify.ts",
  "cli/dashboard.ts",
  // TensorBoard event files and exports are written beside the bundles, never into them.
  "lib/tensorboard/",
  "cli/report_to.ts",
  "cli/export.ts",
];

/** Source files that make up the code version, relative to `root`, sorted. */
export async function codeFiles(root = REPO_ROOT): Promise<string[]> {
  const files: string[] = [];
  await walk(`${root}/lib`, "lib", files);
  await walk(`${root}/cli`, "cli", files);
  files.push("deno.lock");
  return files.filter((f) => !READ_ONLY_SOURCES.some((p) => f.startsWith(p))).sort();
}

/** 16 hex digits of the sha256 over {@link codeFiles} (or `PROXIMA_CODE_VERSION`). */
export async function codeVersion(root = REPO_ROOT): Promise<string> {
  const pinned = Deno.env.get("PROXIMA_CODE_VERSION");
  if (pinned) return pinned;
  const h = createHash("sha256");
  for (const f of await codeFiles(root)) {
    const bytes = await Deno.readFile(`${root}/${f}`).catch(() => new Uint8Array());
    h.update(`${f}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest("hex").slice(0, 16);
}

/** Git commit of `root` and whether tracked files have uncommitted edits; null without git. */
export async function gitInfo(
  root = REPO_ROOT,
): Promise<{ commit: string; dirty: boolean } | null> {
  const pinned = Deno.env.get("PROXIMA_GIT_COMMIT");
  if (pinned !== undefined) {
    return pinned === "" || pinned === "none" ? null : { commit: pinned, dirty: false };
  }
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", {
      args: ["-C", root, ...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  };
  try {
    const commit = await git("rev-parse", "HEAD");
    if (!commit) return null;
    const status = await git("status", "--porcelain", "--untracked-files=no");
    return { commit, dirty: Boolean(status) };
  } catch {
    return null; // git not installed
  }
}
