/**
 * TRL's training flags on every LM task, as config keys under TRL's names:
 *
 * - `eval_steps N`: every N updates the task's own evaluation (the one run before and after
 *   PPO, on the same prompts, seed and number of samples: lm `eval.samples`, sentiment
 *   `eval.samples`, jsx `eval.samples_per_prompt`) runs on the current policy, and its numbers
 *   go into that update's metrics.jsonl row as `eval/<name>` columns (`eval/reward`,
 *   `eval/kl`, …). It samples from its own seed, so training is unchanged: the other columns
 *   are the same bytes as without it.
 * - `logging_steps N`: a log line every N updates when the output is not a terminal.
 * - `save_steps N`: every N updates the policy is written as a folder transformers loads,
 *   `checkpoints/checkpoint-N/` (the task's `savePretrained`: config.json, model.safetensors,
 *   tokenizer files; with LoRA the PEFT adapter in `checkpoint-N/adapter/`), by rename, never
 *   half-written. They are results: a sweep's bundle keeps them (and its manifest hashes them).
 * - `save_total_limit K`: only the newest K `checkpoint-N/` folders are kept.
 *
 * Defaults (eval_steps 0, save_steps 0) leave every result as it was.
 * @module
 */
import { z } from "zod";
import type { MetricsRow, PpoRunOptions } from "../ppo/trainer.ts";

/** The schema fields of TRL's training flags (every LM task's config has them). */
export function trainFlagsShape() {
  return {
    eval_steps: z.number().int().min(0).default(0).describe(
      "evaluate every N updates into metrics.jsonl (eval/* columns; the task's evaluation " +
        "samples); 0: only before and after PPO",
    ),
    logging_steps: z.number().int().min(1).default(1).describe(
      "a log line every N updates when the output is not a terminal",
    ),
    save_steps: z.number().int().min(0).default(0).describe(
      "write checkpoints/checkpoint-N/ (a folder transformers loads) every N updates; 0: off",
    ),
    save_total_limit: z.number().int().min(1).nullable().default(null).describe(
      "keep only the newest K checkpoint-N/ folders (null: all)",
    ),
  };
}

/** The training flags of a parsed config. */
export interface TrainFlags {
  updates: number;
  eval_steps: number;
  save_steps: number;
  save_total_limit: number | null;
}

/** Config problems of the flags (a task that cannot write transformers folders). */
export function trainFlagProblems(
  c: TrainFlags,
  task: string,
  canSave: boolean,
): { key: string; cause: string; fix: string }[] {
  if (c.save_steps > 0 && !canSave) {
    return [{
      key: "save_steps",
      cause: `save_steps: the ${task} task does not write transformers folders`,
      fix: "set save_steps 0 (checkpoint_every keeps resumable checkpoints)",
    }];
  }
  return [];
}

/** The name of update `n`'s transformers folder under checkpoints/. */
export const checkpointName = (n: number) => `checkpoint-${n}`;

/** `checkpoint-N` folders under `root`, oldest first. */
export async function listCheckpoints(root: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      const m = /^checkpoint-(\d+)$/.exec(e.name);
      if (m && e.isDirectory) out.push(Number(m[1]));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a - b);
}

/**
 * Write `checkpoints/checkpoint-<update>/` with `save` (into a temporary folder, renamed), then
 * remove the oldest beyond `limit`. Returns the folder's path.
 */
export async function saveCheckpointFolder(
  outDir: string,
  update: number,
  save: (dir: string) => Promise<void>,
  limit: number | null,
): Promise<string> {
  const root = `${outDir}/checkpoints`;
  await Deno.mkdir(root, { recursive: true });
  const final = `${root}/${checkpointName(update)}`;
  const tmp = `${final}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await save(tmp);
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, final);
  if (limit !== null) {
    const all = await listCheckpoints(root);
    for (const n of all.slice(0, Math.max(0, all.length - limit))) {
      await Deno.remove(`${root}/${checkpointName(n)}`, { recursive: true });
    }
  }
  return final;
}

/** An evaluation's numbers as `eval/<name>` columns (nested objects by `/`, lists left out). */
export function evalColumns(e: unknown, prefix = "eval"): MetricsRow {
  const out: MetricsRow = {};
  if (e === null || typeof e !== "object" || Array.isArray(e)) return out;
  for (const [k, v] of Object.entries(e)) {
    if (typeof v === "number") out[`${prefix}/${k}`] = Number.isFinite(v) ? v : null;
    else if (v === null) out[`${prefix}/${k}`] = null;
    else if (typeof v === "object" && !Array.isArray(v)) {
      Object.assign(out, evalColumns(v, `${prefix}/${k}`));
    }
  }
  return out;
}

/** The trainer hooks of the flags (none when both are off: the run is as before). */
export function trainHooks<E>(
  c: TrainFlags,
  outDir: string,
  task: { evaluate: () => Promise<E>; save?: (dir: string) => Promise<void> },
): Pick<PpoRunOptions, "extraMetrics" | "afterUpdate"> {
  const hooks: Pick<PpoRunOptions, "extraMetrics" | "afterUpdate"> = {};
  if (c.eval_steps > 0) {
    hooks.extraMetrics = async (u) =>
      u % c.eval_steps === 0 ? evalColumns(await task.evaluate()) : null;
  }
  if (c.save_steps > 0 && task.save) {
    const save = task.save;
    hooks.afterUpdate = async (u) => {
      if (u % c.save_steps === 0) {
        await saveCheckpointFolder(outDir, u, save, c.save_total_limit);
      }
    };
  }
  return hooks;
}
