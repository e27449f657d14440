/**
 * What an LM task's finished trial folder holds, read back for its summary: the evaluation
 * (`eval.json`, in the folder or in its `checkpoints/` once the runner has moved it there) and
 * the PPO metrics rows, with the last row and the column means over the run.
 *
 * @example
 * ```ts
 * const { evaluation, last, mean } = await readLmTrial<{ after: { kl: number } }>(outDir);
 * ```
 * @module
 */
import { type MetricsRow, readMetrics } from "../ppo/trainer.ts";

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
