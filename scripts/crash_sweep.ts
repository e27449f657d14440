/**
 * Crash test for the sweep runner: SIGKILL `deno task sweep` at random moments, resume each
 * time, and check that (1) no partial bundle is ever visible — a poller lists the experiment
 * folder every few ms while the sweeps run and verifies every bundle the moment it appears —
 * and (2) the final bundles are byte-identical to an uninterrupted sweep's.
 *
 *   deno run -A scripts/crash_sweep.ts [--kills 20] [--seed 1] [--jobs 2] [--keep]
 *
 * It runs experiments/kl.ts (the β sweep on `sentiment`) with a reduced budget
 * ({@link KL_QUICK_SETS} plus 6 updates, a checkpoint after each), in a temporary results root,
 * so kills land in the SFT and reward-model stages as well as in PPO.
 * tests/experiment/crash_test.ts runs the same with 5 kills.
 * @module
 */
import { parseArgs } from "node:util";
import { codeVersion, gitInfo, REPO_ROOT } from "../lib/experiment/code_version.ts";
import { listFiles, verifyBundle } from "../lib/experiment/bundle.ts";
import { Rng } from "../lib/rng.ts";

export interface CrashOptions {
  /** Experiment file (relative to the repo root). */
  experiment?: string;
  /** --set overrides for the sweep. */
  sets?: string[];
  kills: number;
  seed: number;
  jobs?: number;
  /** Work folder (results roots `ref` and `crash` go inside). */
  work: string;
  /** Environment for the sweeps (default: the code version and commit pinned to now's). */
  env?: Record<string, string>;
  /**
   * An uninterrupted sweep of the same experiment, sets and environment already made (its
   * results root, and how long it took): compared with instead of running one here.
   */
  reference?: { root: string; seconds: number };
  log?: (line: string) => void;
}

export interface CrashReport {
  kills: number;
  attempts: number;
  bundles: number;
  /** Bundles seen by the poller while sweeps ran (each verified when it appeared). */
  seen: number;
  /** Trials that resumed from a checkpoint (update > 0) in one of the sweeps. */
  resumes: number;
  refSeconds: number;
}

const dec = new TextDecoder();

/**
 * `--set` overrides that shrink experiments/kl.ts (12 `sentiment` trials) to seconds: tiny SFT
 * and reward-model stages, 2 PPO updates of 8 responses, 16 evaluation samples. The tests of
 * the sweep runner use it too.
 */
export const KL_QUICK_SETS: readonly string[] = [
  "updates=2",
  "batch=8",
  "sft.steps=30",
  "sft.corpus_size=200",
  "reward_model.steps=30",
  "reward_model.pairs=64",
  "reward_model.held_out=32",
  "eval.samples=16",
];

function sweepArgs(o: CrashOptions, root: string): string[] {
  return [
    "run",
    "-A",
    `${REPO_ROOT}/cli/sweep.ts`,
    o.experiment ?? "experiments/kl.ts",
    "--results",
    root,
    "--jobs",
    String(o.jobs ?? 2),
    ...(o.sets ?? [...KL_QUICK_SETS, "updates=6", "checkpoint_every=1"]).flatMap((
      s,
    ) => ["--set", s]),
  ];
}

async function pinnedEnv(): Promise<Record<string, string>> {
  // Both sweeps must see the same code version and commit, even if files change meanwhile.
  const git = await gitInfo();
  return {
    PROXIMA_CODE_VERSION: Deno.env.get("PROXIMA_CODE_VERSION") ?? await codeVersion(),
    PROXIMA_GIT_COMMIT: Deno.env.get("PROXIMA_GIT_COMMIT") ?? git?.commit ?? "none",
  };
}

/** Work folder -> its checkpoints/LATEST (what each unfinished trial has saved). */
async function checkpoints(expDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let names: string[] = [];
  try {
    names = (await Array.fromAsync(Deno.readDir(expDir))).map((e) => e.name);
  } catch { /* not created yet */ }
  for (const n of names.filter((n) => n.startsWith(".tmp-"))) {
    const l = await Deno.readTextFile(`${expDir}/${n}/checkpoints/LATEST`).catch(() => null);
    if (l) out.set(n, l);
  }
  return out;
}

/** Poll an experiment folder: every visible entry must be a complete, verifying bundle. */
function startPoller(expDir: string, seen: Set<string>) {
  let stop = false, error: Error | null = null;
  const loop = (async () => {
    while (!stop && !error) {
      let names: string[] = [];
      try {
        names = (await Array.fromAsync(Deno.readDir(expDir))).map((e) => e.name);
      } catch { /* not created yet */ }
      for (const n of names) {
        if (n.startsWith(".") || seen.has(n)) continue;
        const v = await verifyBundle(`${expDir}/${n}`);
        if (!v.ok) {
          error = new Error(
            `partial or corrupt bundle visible: ${expDir}/${n}: ` +
              v.problems.map((p) => `${p.file}: ${p.problem}`).join("; "),
          );
        }
        seen.add(n);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    if (error) throw error;
  };
}

async function runToEnd(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  if (!out.success) throw new Error(`sweep failed (${out.code}):\n${text}`);
  return text;
}

/** Compare two results roots' bundles byte for byte. */
async function compareRoots(a: string, b: string): Promise<number> {
  const names = async (d: string) =>
    (await Array.fromAsync(Deno.readDir(d))).map((e) => e.name).filter((n) => !n.startsWith("."))
      .sort();
  const na = await names(a), nb = await names(b);
  if (na.join() !== nb.join()) {
    throw new Error(`bundles differ: ${na.join(",")} vs ${nb.join(",")}`);
  }
  const left = (await Array.fromAsync(Deno.readDir(b))).map((e) => e.name)
    .filter((n) => n.startsWith(".tmp-") || n.startsWith(".copy-"));
  if (left.length) throw new Error(`temporaries left after a complete sweep: ${left.join(", ")}`);
  for (const n of na) {
    const fa = await listFiles(`${a}/${n}`), fb = await listFiles(`${b}/${n}`);
    if (fa.join() !== fb.join()) throw new Error(`${n}: file lists differ: ${fa} vs ${fb}`);
    for (const f of [...fa, "manifest.json"]) {
      const x = await Deno.readFile(`${a}/${n}/${f}`), y = await Deno.readFile(`${b}/${n}/${f}`);
      if (x.length !== y.length || !x.every((v, i) => v === y[i])) {
        throw new Error(`${n}/${f} differs between the uninterrupted and the killed+resumed sweep`);
      }
    }
  }
  return na.length;
}

/** Reference sweep, then `kills` SIGKILLed + resumed sweeps, then compare. */
export async function crashSweep(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => {});
  const env = o.env ?? await pinnedEnv();
  const ref = o.reference?.root ?? `${o.work}/ref`, crash = `${o.work}/crash`;
  const name = "kl"; // experiment folder name (of experiments/kl.ts)
  const expName = o.experiment ? (o.experiment.split("/").at(-1)!.replace(/\.ts$/, "")) : name;
  let refSeconds = o.reference?.seconds ?? 0;
  if (!o.reference) {
    const t0 = performance.now();
    await runToEnd(sweepArgs(o, ref), env);
    refSeconds = (performance.now() - t0) / 1e3;
  }
  log(`reference sweep: ${refSeconds.toFixed(1)} s`);

  const rng = new Rng(o.seed);
  const seen = new Set<string>();
  const stopPoller = startPoller(`${crash}/${expName}`, seen);
  let kills = 0, attempts = 0, resumes = 0;
  try {
    while (kills < o.kills && attempts < o.kills * 4) {
      attempts++;
      // Every other kill lands at a random time (start-up included); the others a random
      // 0-250 ms after some trial wrote a new checkpoint, so killed trials do resume.
      const byProgress = attempts % 2 === 0;
      const delay = byProgress
        ? rng.uniform() * 250
        : 100 + rng.uniform() * (refSeconds * 1000 * 2.2 / o.kills);
      const before = await checkpoints(`${crash}/${expName}`);
      const child = new Deno.Command(Deno.execPath(), {
        args: sweepArgs(o, crash),
        cwd: REPO_ROOT,
        env,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      let exited = false;
      const status = child.status.then((s) => (exited = true, s));
      if (byProgress) {
        const deadline = Date.now() + 120_000;
        while (!exited && Date.now() < deadline) {
          const now = await checkpoints(`${crash}/${expName}`);
          if ([...now].some(([k, v]) => before.get(k) !== v)) break;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      await Promise.race([status, new Promise((r) => setTimeout(r, delay))]);
      const killed = !exited;
      if (killed) {
        child.kill("SIGKILL");
        kills++;
        log(
          `kill ${kills}: ${Math.round(delay)} ms after ${
            byProgress ? "a new checkpoint" : "the start"
          }`,
        );
      }
      const s = await status;
      const err = await stderr;
      resumes += (err.match(/: resuming at \d+\//g) ?? []).length;
      if (!killed && !s.success) throw new Error(`sweep failed (${s.code}): ${err}`);
      if (!killed) {
        // It finished before the kill: start over from an empty root so kills keep landing.
        log(
          `attempt ${attempts}: finished before the kill (${
            Math.round(delay)
          } ms); restarting empty`,
        );
        await Deno.remove(crash, { recursive: true });
      }
    }
    if (kills < o.kills) throw new Error(`only ${kills} of ${o.kills} kills landed mid-sweep`);
    const last = await runToEnd(sweepArgs(o, crash), env);
    resumes += (last.match(/: resuming at \d+\//g) ?? []).length;
  } finally {
    await stopPoller();
  }
  const bundles = await compareRoots(`${ref}/${expName}`, `${crash}/${expName}`);
  log(
    `${kills} kills, ${resumes} resumes from a checkpoint; ${bundles} bundles byte-identical ` +
      `to the uninterrupted sweep`,
  );
  return { kills, attempts, bundles, seen: seen.size, resumes, refSeconds };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kills: { type: "string", default: "20" },
      seed: { type: "string", default: "1" },
      jobs: { type: "string", default: "2" },
      keep: { type: "boolean" },
    },
  });
  const work = await Deno.makeTempDir({ prefix: "proxima-crash-" });
  try {
    const r = await crashSweep({
      kills: Number(values.kills),
      seed: Number(values.seed),
      jobs: Number(values.jobs),
      work,
      log: (l) => console.log(l),
    });
    console.log(
      `ok: ${r.kills} SIGKILLs (${r.attempts} attempts), ${r.resumes} resumes, ` +
        `${r.bundles} bundles identical, ` +
        `${r.seen} bundles checked as they appeared`,
    );
  } finally {
    if (values.keep) console.log(`kept ${work}`);
    else await Deno.remove(work, { recursive: true });
  }
}
