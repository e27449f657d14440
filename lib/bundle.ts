/**
 * Result bundles: a folder whose `manifest.json` lists the sha256 and size of every other
 * file in it, plus a bundle hash (sha256 of the canonical file list), and helpers to write
 * folders durably (fsync every file and folder, then rename into place).
 *
 * Trial bundles (`results/<experiment>/<trial-id>/`) and stage outputs
 * (`results/.stages/<stage>/<hash>/`) are both bundles; in both, `config.json` is the
 * identity object whose canonical-JSON sha256 begins with the folder name, which
 * {@link verifyBundle} also checks.
 *
 * Below every layer (the stage cache under lib/tasks writes bundles, lib/experiment writes and
 * verifies trial bundles, lib/report reads them); `lib/experiment/bundle.ts` re-exports it.
 *
 * @example
 * ```ts
 * await writeManifest("results/kl/.tmp-0123456789abcdef");
 * const r = await verifyBundle("results/kl/0123456789abcdef");
 * if (!r.ok) console.log(r.problems); // [{ file: "metrics.jsonl", problem: "differs ..." }]
 * ```
 * @module
 */
import { canonicalJson, stableJson } from "./json.ts";
import { sha256File, sha256Hex } from "./hash.ts";
import { exists, writeFileSynced } from "./fs.ts";
export { exists, writeFileSynced };

export const MANIFEST = "manifest.json";

/** manifest.json. */
export interface Manifest {
  version: 1;
  /** Relative path (posix) -> sha256 and size, for every file but manifest.json. */
  files: Record<string, { sha256: string; bytes: number }>;
  /** sha256 of the canonical JSON of `files`. */
  bundle_hash: string;
}

/** Every regular file under `dir` (relative, sorted), manifest.json excluded. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(`${d}/${e.name}`, r);
      else if (r !== MANIFEST) out.push(r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

/** The manifest of `dir` as it is now. */
export async function buildManifest(dir: string): Promise<Manifest> {
  const files: Manifest["files"] = {};
  for (const f of await listFiles(dir)) files[f] = await sha256File(`${dir}/${f}`);
  return { version: 1, files, bundle_hash: sha256Hex(canonicalJson(files)) };
}

/** Compute and write `dir/manifest.json` (fsynced); returns it. */
export async function writeManifest(dir: string): Promise<Manifest> {
  const m = await buildManifest(dir);
  await writeFileSynced(`${dir}/${MANIFEST}`, stableJson(m));
  return m;
}

/** One file that does not match. */
export interface BundleProblem {
  file: string;
  problem: string;
}

export interface VerifyResult {
  dir: string;
  ok: boolean;
  /** The bundle hash manifest.json states (null when unreadable). */
  bundleHash: string | null;
  problems: BundleProblem[];
}

/** Recompute every hash of a bundle; each problem names the file. */
export async function verifyBundle(dir: string): Promise<VerifyResult> {
  const problems: BundleProblem[] = [];
  const res = (bundleHash: string | null): VerifyResult => ({
    dir,
    ok: problems.length === 0,
    bundleHash,
    problems,
  });
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${MANIFEST}`);
  } catch (e) {
    problems.push({
      file: MANIFEST,
      problem: e instanceof Deno.errors.NotFound
        ? "missing"
        : `unreadable: ${(e as Error).message}`,
    });
    return res(null);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text);
    if (
      m?.version !== 1 || typeof m.files !== "object" || m.files === null ||
      typeof m.bundle_hash !== "string" ||
      !Object.values(m.files).every((f) =>
        typeof f?.sha256 === "string" && typeof f?.bytes === "number"
      )
    ) throw new Error("not a version-1 manifest (version, files, bundle_hash)");
  } catch (e) {
    problems.push({ file: MANIFEST, problem: `corrupt: ${(e as Error).message}` });
    return res(null);
  }
  let actual: string[] = [];
  try {
    actual = await listFiles(dir);
  } catch (e) {
    problems.push({ file: ".", problem: `unreadable: ${(e as Error).message}` });
  }
  for (const [f, want] of Object.entries(m.files).sort(([a], [b]) => a < b ? -1 : 1)) {
    let got;
    try {
      got = await sha256File(`${dir}/${f}`);
    } catch (e) {
      problems.push({
        file: f,
        problem: e instanceof Deno.errors.NotFound ? "missing" : (e as Error).message,
      });
      continue;
    }
    if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
      problems.push({
        file: f,
        problem:
          `differs: manifest has sha256 ${want.sha256.slice(0, 16)}… (${want.bytes} bytes), ` +
          `file has ${got.sha256.slice(0, 16)}… (${got.bytes} bytes)`,
      });
    }
  }
  for (const f of actual) {
    if (!(f in m.files)) problems.push({ file: f, problem: "not listed in manifest.json (added)" });
  }
  const expect = sha256Hex(canonicalJson(m.files));
  if (expect !== m.bundle_hash) {
    problems.push({
      file: MANIFEST,
      problem: `bundle_hash ${m.bundle_hash.slice(0, 16)}… does not match its file list ` +
        `(${expect.slice(0, 16)}…): manifest.json was edited`,
    });
  } else if (stableJson(m) !== text) {
    problems.push({ file: MANIFEST, problem: "differs from its canonical form (edited)" });
  }
  // config.json is the identity: its hash must begin with the folder name.
  const name = dir.replace(/\/+$/, "").split("/").at(-1)!;
  if (/^[0-9a-f]{16}$/.test(name) && "config.json" in m.files) {
    try {
      const id = sha256Hex(canonicalJson(JSON.parse(await Deno.readTextFile(`${dir}/config.json`))))
        .slice(0, 16);
      if (id !== name) {
        problems.push({
          file: "config.json",
          problem:
            `hashes to ${id}, but the bundle is named ${name} (config edited or folder renamed)`,
        });
      }
    } catch (e) {
      if (!problems.some((p) => p.file === "config.json")) {
        problems.push({ file: "config.json", problem: `not valid JSON: ${(e as Error).message}` });
      }
    }
  }
  return res(m.bundle_hash);
}

/**
 * Bundle folders at or under `path` (a bundle, an experiment folder, or the results root):
 * every folder holding a manifest.json, skipping temporaries (`.tmp-*`, `.copy-*`).
 */
export async function findBundles(path: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    if (await exists(`${d}/${MANIFEST}`)) {
      out.push(d);
      return;
    }
    const subs: string[] = [];
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory && !/^\.(tmp|copy)-/.test(e.name)) subs.push(e.name);
    }
    for (const s of subs.sort()) await walk(`${d}/${s}`);
  };
  await walk(path.replace(/\/+$/, "") || "/");
  return out;
}

/** fsync a folder (its entries), where the platform allows it. */
export async function fsyncDir(path: string): Promise<void> {
  try {
    using d = await Deno.open(path, { read: true });
    await d.sync();
  } catch {
    // Not every platform can open or fsync a folder (Windows); rename is still atomic there.
  }
}

/** fsync every file and folder under `dir` (and `dir`). */
export async function fsyncTree(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) await fsyncTree(p);
    else if (e.isFile) {
      using f = await Deno.open(p, { read: true, write: true });
      await f.sync();
    }
  }
  await fsyncDir(dir);
}

/** fsync `tmp`'s tree, rename it to `final` and fsync the parent: the folder appears whole. */
export async function publishDir(tmp: string, final: string): Promise<void> {
  await fsyncTree(tmp);
  await Deno.rename(tmp, final);
  await fsyncDir(final.replace(/\/[^/]*\/?$/, "") || ".");
}

/** Copy a folder tree (for reusing a bundle); files are fsynced. */
export async function copyTree(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isDirectory) await copyTree(`${src}/${e.name}`, `${dst}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
}
