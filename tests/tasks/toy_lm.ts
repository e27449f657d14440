/**
 * The toy LM task the policy-gradient tests share (critic_free_test.ts, loss_types_test.ts): a
 * tiny GPT over 16 tokens (0 = pad, 1 = EOS), prompts of 1–4 random tokens, score = the share
 * of response tokens equal to 3 (optimum 1), and a helper that trains a problem for a few
 * updates in a temp dir and hands back the metric rows and the final checkpoint's names.
 */
import { createLmProblem, type LmProblem, type LmTask } from "../../lib/tasks/mod.ts";
import type { PpoConfig } from "../../lib/ppo/config.ts";
import { type MetricsRow, type Rollout, trainPpo } from "../../lib/ppo/trainer.ts";
import { loadSafetensors } from "../../lib/onnx/safetensors.ts";
import type { GptConfig } from "../../lib/nn/gpt.ts";

/** d = 32, one block, two heads, 16 positions. */
export const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
export const PAD = 0, EOS = 1, TARGET = 3, MAX_NEW = 8;

/** `n` prompts of 1–4 tokens drawn from 2..15. */
export const toyPrompts: LmTask["prompts"] = (n, _index, rng) =>
  Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(4) }, () => 2 + rng.int(14)));

/** The share of a response's tokens equal to TARGET. */
export const share = (r: number[]): number => r.filter((t) => t === TARGET).length / r.length;

/** Prompts from `toyPrompts`, each response scored by `share`. */
export const toyTask: LmTask = { prompts: toyPrompts, score: (_p, rs) => rs.map(share) };

/** The problem's options besides the config: seed 1, batch 16, 4 samples per prompt. */
export type ToyOptions = Partial<Parameters<typeof createLmProblem>[0]>;

/** The LM problem on MODEL for `cfg`; `extra` overrides any option (task, batch, ...). */
export const toyProblem = (cfg: PpoConfig, extra: ToyOptions = {}): Promise<LmProblem> =>
  createLmProblem({
    model: MODEL,
    task: toyTask,
    cfg,
    seed: 1,
    batch: 16,
    samplesPerPrompt: 4,
    maxNewTokens: MAX_NEW,
    eosTokenId: EOS,
    padTokenId: PAD,
    ...extra,
  });

/**
 * Trains `problem` for `updates` updates (seed 1) in a temp dir removed afterwards; `onRoll`
 * sees every rollout. Returns the metric rows and the tensor names of final.safetensors.
 */
export async function trainToy(
  problem: LmProblem,
  updates: number,
  onRoll?: (r: Rollout) => void,
): Promise<{ rows: MetricsRow[]; checkpoint: string[] }> {
  const out = await Deno.makeTempDir({ prefix: "proxima-toy-lm-" });
  const rows: MetricsRow[] = [];
  if (onRoll) {
    const rollout = problem.rollout.bind(problem);
    problem.rollout = async (rng) => {
      const r = await rollout(rng);
      onRoll(r);
      return r;
    };
  }
  try {
    await trainPpo(problem, {
      updates,
      seed: 1,
      outDir: out,
      rng: problem.rng,
      onUpdate: (r) => rows.push(r),
    });
    const { tensors } = await loadSafetensors(`${out}/final.safetensors`);
    return { rows, checkpoint: Object.keys(tensors) };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}
