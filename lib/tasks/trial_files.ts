/**
 * An LM task's trial folder: the PPO run between two evaluations that every LM task's trial
 * is ({@link runLmPpo}), eval.json written atomically ({@link writeEvalJson}), and the
 * folder read back for the summary ({@link readLmTrial}): the evaluation (`eval.json`, in the
 * folder or in its `checkpoints/` once the runner has moved it there) and the PPO metrics
 * rows, with the last row and the column means over the run.
 *
 * @example
 * ```ts
 * const { evaluation, last, mean } = await readLmTrial<{ after: { kl: number } }>(outDir);
 * ```
 * @module
 */
import { type MetricsRow, type PpoRunOptions, readMetrics, trainPpo } from "../ppo/trainer.ts";
import type { LmProblem } from "../ppo/lm_problem.ts";
import { isOffline, type OfflineLmProblem } from "../ppo/offline/problem.ts";
import { RewardError } from "./rewards.ts";
import { startMeasure, writeResources } from "./resources.ts";

/** A finished trial's evaluation, last metrics row and column means (numbers only). */
export interface LmTrialFiles<E> {
  evaluation: E;
  last?: MetricsRow;
  mean: Record<string, number | null>;
}

/** Read `outDir`'s eval.json and metrics.jsonl (a missing metrics file reads as no rows). */
export async function readLmTrial<E>(outDir: string): Promise<LmTrialFiles<E>> {
  let text: string | null = null;
  for (const p of [`${outDir}/eval.json`, `${outDir}/checkpoints/eval.json`]) {
    text = await Deno.readTextFile(p).catch(() => null);
    if (text !== null) break;
  }
  if (text === null) throw new Error(`${outDir}: no eval.json (the trial has not finished)`);
  const rows = await readMetrics(outDir).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return [] as MetricsRow[];
    throw err;
  });
  const mean: Record<string, number | null> = {};
  for (const k of new Set(rows.flatMap((r) => Object.keys(r)))) {
    const vs = rows.map((r) => r[k]).filter((v): v is number => typeof v === "number");
    mean[k] = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  }
  return { evaluation: JSON.parse(text) as E, ...(rows.length ? { last: rows.at(-1) } : {}), mean };
}

/** Files an LM trial writes in outDir (all removed again when a reward function fails). */
export const LM_TRIAL_OUTPUTS: readonly string[] = [
  "metrics.jsonl",
  "checkpoints",
  "final.safetensors",
  "eval.json",
  "resources.json",
];

/**
 * The part every LM task's trial shares: evaluate the starting (SFT) policy, run PPO on
 * `problem` (with the PPO config it carries; an offline problem's own `train`, DPO) for the
 * trial config's `updates`, `seed` and `checkpoint_every` into `outDir` (resuming if asked),
 * evaluate the result. With `measure_resources` in the config, the training's wall time, peak
 * RSS and models go to `resources.json` (lib/tasks/resources.ts). A reward function
 * that throws or returns a non-finite value (a {@link RewardError}) removes the trial's
 * outputs from outDir before the error goes on, so nothing partial is left.
 */
export async function runLmPpo<E>(
  problem: LmProblem | OfflineLmProblem,
  c: { updates: number; seed: number; checkpoint_every: number; measure_resources?: boolean },
  outDir: string,
  opts: Pick<
    PpoRunOptions,
    "resume" | "onUpdate" | "onStart" | "extraMetrics" | "afterUpdate" | "stop" | "phases"
  >,
  evaluate: () => Promise<E>,
): Promise<{ before: E; after: E; last: MetricsRow }> {
  try {
    const before = await evaluate();
    const measure = c.measure_resources ? await startMeasure() : null;
    const runOpts: PpoRunOptions = {
      updates: c.updates,
      seed: c.seed,
      rng: problem.rng,
      outDir,
      checkpointEvery: c.checkpoint_every,
      resume: opts.resume,
      stop: opts.stop,
      phases: opts.phases,
      extraMetrics: opts.extraMetrics,
      afterUpdate: opts.afterUpdate,
      onUpdate: (row, u) => {
        measure?.sample();
        opts.onUpdate?.(row, u);
      },
      onStart: (u) => {
        measure?.started(u);
        opts.onStart?.(u);
      },
    };
    const offline = isOffline(problem);
    const last = offline ? await problem.train(runOpts) : await trainPpo(problem, runOpts);
    if (measure) {
      const r = await measure.stop({ online: !offline, models: problem.models ?? {} });
      // A run found finished (killed before its evaluation) keeps the measurement it made.
      const kept = r.started_at_update === c.updates &&
        await Deno.stat(`${outDir}/resources.json`).then(() => true, () => false);
      if (!kept) await writeResources(outDir, r);
    }
    return { before, after: await evaluate(), last };
  } catch (e) {
    if (e instanceof RewardError) {
      for (const f of LM_TRIAL_OUTPUTS) {
        await Deno.remove(`${outDir}/${f}`, { recursive: true }).catch(() => {});
      }
    }
    throw e;
  }
}

/** Write `<outDir>/eval.json` (pretty JSON) by rename, so it is never seen half-written. */
export async function writeEvalJson(outDir: string, evaluation: unknown): Promise<void> {
  const tmp = `${outDir}/eval.json.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(evaluation, null, 2) + "\n");
  await Deno.rename(tmp, `${outDir}/eval.json`);
}
