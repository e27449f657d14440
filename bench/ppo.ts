/**
 * `deno task bench ppo`: whole PPO runs on a classic-control env (CleanRL ppo.py settings:
 * 4 envs × 128 steps, 4 epochs × 4 minibatches, 64-64 tanh MLPs), Proxima against the same
 * algorithm in PyTorch 1.13 + Gymnasium (scripts/reference/cleanrl_ppo.py; their PPO updates
 * agree to float32 rounding, tests/ppo/cleanrl_update_test.ts), in ONE run on the
 * same machine and thread count. Environment steps per second, end to end: acting, env
 * steps, GAE and the 16 train steps per update. The two sides alternate in rounds (the
 * machine may be shared and noisy), each at 1 thread and at `--threads` (a 64-wide MLP is
 * too small for threads to pay off in PyTorch: CleanRL's benchmark sets OMP_NUM_THREADS=1);
 * the best run of each side is compared.
 *
 * The reference needs Gymnasium importable by /usr/bin/python3 (it is not a Debian package):
 *   /usr/bin/python3 -m pip install --no-deps --target /tmp/gymref \
 *     gymnasium==1.3.0 farama-notifications cloudpickle
 *   PYTHONPATH=/tmp/gymref deno task bench ppo
 * Without it the Proxima side still runs and the reference is reported as skipped.
 * @module
 */
import { parseEnvRunConfig, readEpisodes, recentReturn, runEnvTraining } from "../lib/envs/run.ts";
import { TORCH_PYTHON } from "./torch_ref.ts";

export interface PpoBenchOptions {
  threads: number;
  /** Environment steps per run. */
  envSteps: number;
  env: string;
  rounds: number;
}

const REF = new URL("../scripts/reference/cleanrl_ppo.py", import.meta.url).pathname;

interface Side {
  threads: number;
  sps: number;
  seconds: number;
  last100: number | null;
}

async function runProxima(o: PpoBenchOptions, threads: number): Promise<Side> {
  const out = await Deno.makeTempDir({ prefix: "proxima-bench-ppo-" });
  try {
    const cfg = parseEnvRunConfig({ env: o.env, seed: 1, total_steps: o.envSteps });
    const t0 = performance.now();
    const { last } = await runEnvTraining(cfg, { outDir: out, threads });
    const seconds = (performance.now() - t0) / 1e3;
    const last100 = recentReturn(await readEpisodes(out), 100);
    return { threads, sps: Number(last.step) / seconds, seconds, last100 };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

async function runTorch(o: PpoBenchOptions, threads: number): Promise<Side | string> {
  const json = await Deno.makeTempFile({ prefix: "proxima-bench-ppo-ref-", suffix: ".json" });
  const t = String(threads);
  try {
    const r = await new Deno.Command(TORCH_PYTHON, {
      args: [
        REF,
        "--env",
        o.env,
        "--seed",
        "1",
        "--total-steps",
        String(o.envSteps),
        "--out",
        json,
      ],
      env: { OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t },
      stdout: "piped",
      stderr: "piped",
    }).output().catch((e) => e as Error);
    if (r instanceof Error) return `${TORCH_PYTHON} could not start (${r.message})`;
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr);
      if (/No module named 'gymnasium'/.test(err)) {
        return "Gymnasium is not importable by " + TORCH_PYTHON + " (see this file's header " +
          "for the one-line install, then run with PYTHONPATH set)";
      }
      if (/No module named 'torch'/.test(err)) return "python3-torch is not installed";
      return `the reference failed:\n${err.slice(-1500)}`;
    }
    const d = JSON.parse(await Deno.readTextFile(json));
    return { threads, sps: d.steps / d.wall_s, seconds: d.wall_s, last100: d.last100 };
  } finally {
    await Deno.remove(json).catch(() => {});
  }
}

export async function benchPpo(o: PpoBenchOptions): Promise<void> {
  console.log(
    `\nPPO end to end: ${o.env}, ${o.envSteps} env steps per run, CleanRL ppo.py settings, ` +
      `1 and ${o.threads} thread(s), ${o.rounds} alternating round(s)`,
  );
  const ours: Side[] = [], ref: Side[] = [];
  let skipped: string | null = null;
  const threadCounts = [...new Set([1, o.threads])];
  for (let r = 0; r < o.rounds; r++) {
    for (const threads of threadCounts) {
      ours.push(await runProxima(o, threads));
      if (skipped === null) {
        const t = await runTorch(o, threads);
        if (typeof t === "string") skipped = t;
        else ref.push(t);
      }
    }
  }
  const best = (s: Side[]) => s.reduce((a, b) => (b.sps > a.sps ? b : a));
  const fmt = (s: Side) =>
    `${Math.round(s.sps).toLocaleString("en-US")} steps/s at ${s.threads} thread(s) ` +
    `(${s.seconds.toFixed(1)} s; ` +
    `last-100 return ${s.last100?.toFixed(1) ?? "-"})`;
  const p = best(ours);
  console.log(`  Proxima (ONNX Runtime):         ${fmt(p)}`);
  if (skipped !== null) {
    console.log(`  PyTorch reference: skipped — ${skipped}`);
    return;
  }
  const t = best(ref);
  console.log(`  PyTorch + Gymnasium reference:  ${fmt(t)}`);
  console.log(
    `  speed ratio, best Proxima / best PyTorch: ${(p.sps / t.sps).toFixed(2)}x ` +
      `(higher is better; returns differ by sampling, not by the update rule)`,
  );
}
