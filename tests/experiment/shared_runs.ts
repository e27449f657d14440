/**
 * Runs that several test files make with the same inputs, made once and shared: the suite runs
 * its files two at a time (in one process), and the quick β sweep of experiments/kl.ts (26
 * CPU-s), its 6-update variant or a quick reproduce table was made over again by each file
 * that needed one.
 *
 * A shared run lives in a folder under the OS temp dir named by a hash of everything its bytes
 * can depend on: every file under lib/ and cli/, deno.lock and deno.json (all of them, the
 * report code too: a table is made by it), the run's extra input files (an experiment file),
 * its own arguments, the checkout's path and the Deno version. It is built in a temporary
 * folder and renamed into place, under a lock (lib/lock.ts), so a second caller waits for the
 * first and then reads the same bytes, and a later suite run of the same code finds it made.
 * Callers copy from it (or only read it), never write into it. The runs stay independent
 * computations: a test that compares its own run with a shared one still compares two runs,
 * made in different processes.
 * @module
 */
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { copyTree, publishDir } from "../../lib/bundle.ts";
import { lockWait } from "../../lib/lock.ts";
import { CODE_VERSION, deno, REPO_ROOT, sweep } from "./helpers.ts";
import { KL_QUICK_SETS } from "../../scripts/crash_sweep.ts";

async function hashTree(h: ReturnType<typeof createHash>, rel: string): Promise<void> {
  const entries = await Array.fromAsync(Deno.readDir(`${REPO_ROOT}/${rel}`));
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory) await hashTree(h, r);
    else if (e.isFile) hashFile(h, r, await Deno.readFile(`${REPO_ROOT}/${r}`));
  }
}

function hashFile(h: ReturnType<typeof createHash>, rel: string, bytes: Uint8Array): void {
  h.update(`${rel}\0${bytes.length}\0`);
  h.update(bytes);
}

/** The folder's name: what a shared run's bytes can depend on, hashed. */
async function runKey(name: string, args: string[], files: string[]): Promise<string> {
  const h = createHash("sha256");
  // The checkout too: a bundle may hold a path under it.
  h.update(
    JSON.stringify({ name, args, root: REPO_ROOT, deno: Deno.version.deno, code: CODE_VERSION }),
  );
  await hashTree(h, "lib");
  await hashTree(h, "cli");
  for (const f of ["deno.lock", "deno.json", ...files]) {
    hashFile(h, f, await Deno.readFile(`${REPO_ROOT}/${f}`));
  }
  return h.digest("hex").slice(0, 16);
}

/**
 * The folder of shared run `name`, built by `build(dir)` (which must fill `dir` or throw) if no
 * caller made it yet; `args` and `files` (repo-relative) are its inputs besides the code.
 */
export async function sharedRun(
  name: string,
  args: string[],
  files: string[],
  build: (dir: string) => Promise<void>,
): Promise<string> {
  const base = `${tmpdir()}/proxima-shared-runs`;
  await Deno.mkdir(base, { recursive: true });
  const dir = `${base}/${name}-${await runKey(name, args, files)}`;
  using _lock = await lockWait(`${dir}.lock`);
  if (await Deno.stat(dir).then(() => true, () => false)) return dir;
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  try {
    await build(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  await publishDir(tmp, dir);
  return dir;
}

/** The sweep tests' budget (KL_QUICK_SETS) as `--set` flags: 12 trials of 2 updates. */
export const KL_QUICK = KL_QUICK_SETS.flatMap((s) => ["--set", s]);

/**
 * A results root holding `kl/`: `deno task sweep experiments/kl.ts` at the quick budget
 * ({@link KL_QUICK}, then `sets` as more `--set`s; pinned code version), finished with exit
 * code 0, made once; `build-seconds.txt` in it holds how long the sweep took. With no `sets` it
 * runs one trial at a time (`--jobs 1`: sweep_test.ts compares its own `--jobs 2` sweep with
 * it), with `sets` 2 at a time (the kill-and-resume tests time their kills by it).
 */
export function sharedKlQuick(sets: string[] = []): Promise<string> {
  const args = ["experiments/kl.ts", ...KL_QUICK, ...sets.flatMap((s) => ["--set", s])];
  args.push("--jobs", sets.length ? "2" : "1");
  return sharedRun("kl-quick", args, ["experiments/kl.ts"], async (dir) => {
    const t0 = performance.now();
    const r = await sweep([...args, "--results", dir]);
    if (r.code !== 0) throw new Error(`shared kl sweep exited ${r.code}:\n${r.stdout}${r.stderr}`);
    await Deno.writeTextFile(`${dir}/build-seconds.txt`, `${(performance.now() - t0) / 1e3}\n`);
  });
}

/** {@link sharedKlQuick} at 6 updates with a checkpoint after each: the kill-and-resume tests' reference. */
export const KL_QUICK_6 = ["updates=6", "checkpoint_every=1"];

/**
 * A results root holding `reproduce/cleanrl-classic-control-quick/` (and its trials):
 * `deno task reproduce cleanrl-classic-control --quick --jobs 2` in a fresh root, made once.
 */
export function sharedCleanrlQuick(): Promise<string> {
  const args = ["cleanrl-classic-control", "--quick", "--quiet", "--jobs", "2"];
  const files = [
    "experiments/reproduce/cleanrl-cartpole.ts",
    "experiments/reproduce/cleanrl-acrobot.ts",
    "experiments/reproduce/settings.ts",
  ];
  return sharedRun("cleanrl-quick", args, files, async (dir) => {
    const r = await deno(["run", "-A", "cli/reproduce.ts", ...args, "--results", dir]);
    if (r.code !== 0) {
      throw new Error(`shared reproduce cleanrl exited ${r.code}:\n${r.stdout}${r.stderr}`);
    }
  });
}

/** Copy shared run `dir` (or its subfolder `sub`) into `to`, for a test that writes there. */
export async function copyShared(dir: string, to: string, sub = ""): Promise<void> {
  await copyTree(sub ? `${dir}/${sub}` : dir, sub ? `${to}/${sub}` : to);
}
