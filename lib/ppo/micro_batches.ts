/**
 * Micro-batches with gradient accumulation (`ppo.micro_batches`): each minibatch's rows are
 * split into `micro_batches` equal pieces, each piece runs the train step's forward + backward
 * alone (so the step's activations are held for rows / micro_batches), their gradients are
 * summed, and the minibatch gets ONE global-norm clip and ONE AdamW step, as TRL's
 * gradient_accumulation_steps does (lib/onnx/train_accumulate.ts).
 *
 * The same update as one piece, up to float rounding: the micro-batch step takes the whole
 * minibatch's normalisers as scalar inputs (`norm_tokens` = max(Σ mask, 1), `norm_rows` = its
 * rows; lib/ppo/losses.ts `PpoBatchValues.tokens`), so every masked mean, per-response mean and
 * Dr. GRPO constant divides a piece's sum by the minibatch's count: each piece's loss (and
 * metric) is its share, and the shares sum to the minibatch's. Advantages are whitened over the
 * whole minibatch before it is split. `top_entropy_quantile` < 1 (a quantile over the whole
 * minibatch's tokens) cannot be split and is refused.
 *
 * With `micro_batches` 1 nothing here runs: the train step is {@link createPpoTrainer}'s, the
 * graphs today's.
 * @module
 */
import type * as ort from "onnxruntime-node";
import { tensor, type TypedArray } from "../onnx/session.ts";
import { type StepResult, Trainer, type TrainStepSpec } from "../onnx/train.ts";
import { ConfigError, type ConfigProblem, type PpoConfig } from "./config.ts";
import { createPpoTrainer, type PpoTrainStepOptions } from "./train_step.ts";

/** The micro-batch step's extra scalar inputs: the whole minibatch's normalisers. */
export const MICRO_NORMALISERS = ["norm_tokens", "norm_rows"] as const;

/** `spec` with the minibatch normalisers as scalar batch inputs (see the module doc). */
export function microBatchSpec(spec: TrainStepSpec): TrainStepSpec {
  const scalars = Object.fromEntries(
    MICRO_NORMALISERS.map((n) => [n, { dtype: spec.dtype, shape: [] }]),
  );
  return { ...spec, batch: { ...spec.batch, ...scalars } };
}

/**
 * The PPO train step for `opts.cfg`: {@link createPpoTrainer}'s with `ppo.micro_batches` 1,
 * else the accumulating one (split optimizer mode, the normalisers as inputs).
 */
export async function createPpoTrainerFor(opts: PpoTrainStepOptions): Promise<Trainer> {
  const { cfg } = opts;
  if ((cfg.micro_batches ?? 1) === 1) return await createPpoTrainer(opts);
  if ((cfg.top_entropy_quantile ?? 1) < 1) {
    throw new ConfigError(
      `ppo.micro_batches: ${cfg.micro_batches} micro-batches cannot keep ` +
        `ppo.top_entropy_quantile ${cfg.top_entropy_quantile} (a quantile over the whole ` +
        "minibatch's tokens); fix: set ppo.micro_batches to 1, or top_entropy_quantile to 1",
    );
  }
  return await createPpoTrainer(opts, { spec: microBatchSpec, accumulate: true });
}

/** Rows `lo`..`hi` of a tensor along its first axis (a view, no copy). */
function sliceRows(t: ort.Tensor, lo: number, hi: number): ort.Tensor {
  const rows = t.dims[0], stride = t.dims.slice(1).reduce((a, b) => a * b, 1);
  if (rows === undefined) throw new Error("micro-batches: a scalar batch input cannot be split");
  const data = (t.data as TypedArray).subarray(lo * stride, hi * stride);
  return tensor(t.type as "float32", [hi - lo, ...t.dims.slice(1)], data as Float32Array);
}

/** The refusal when `rows` do not split into `micro` equal pieces. */
export function microBatchError(rows: number, micro: number): ConfigError {
  const divisors = Array.from({ length: rows }, (_, i) => i + 1).filter((d) => rows % d === 0);
  return new ConfigError(
    `ppo.micro_batches: a minibatch of ${rows} rows does not split into ${micro} equal ` +
      `micro-batches; fix: set ppo.micro_batches to a divisor of ${rows} ` +
      `(${divisors.join(", ")}), or the batch / ppo.minibatches so that every minibatch's ` +
      `rows are a multiple of ${micro}`,
  );
}

/**
 * Planning's check: every minibatch of a rollout of `rows` examples (split as trainPpo does,
 * floor(m·rows / minibatches)) divides into `ppo.micro_batches` pieces.
 */
export function microBatchProblems(
  ppo: Pick<PpoConfig, "minibatches" | "micro_batches">,
  rows: number,
): ConfigProblem[] {
  const micro = ppo.micro_batches ?? 1;
  if (micro === 1) return [];
  for (let m = 0; m < ppo.minibatches; m++) {
    const size = Math.floor((m + 1) * rows / ppo.minibatches) -
      Math.floor(m * rows / ppo.minibatches);
    if (size > 0 && size % micro !== 0) {
      // The message names the key itself; the problem names it once, as its key.
      const [cause, fix] = microBatchError(size, micro).message
        .replace(/^ppo\.micro_batches: /, "").split("; fix: ");
      return [{ key: "ppo.micro_batches", cause, fix }];
    }
  }
  return [];
}

/**
 * One minibatch's optimizer step: `trainer.step` on the whole minibatch with `micro` 1 (the
 * batch built exactly as before), else `micro` pieces of its rows, each with the model inputs
 * `inputs` gives for its examples and the minibatch's normalisers, accumulated into one step.
 * `ppo` is the minibatch's PPO inputs (gatherPpoBatch: whitened over the whole minibatch).
 */
export async function minibatchStep(
  trainer: Trainer,
  examples: number[],
  ppo: Record<string, ort.Tensor>,
  inputs: (examples: number[]) => Record<string, ort.Tensor>,
  micro: number,
  hparams: Record<string, number>,
): Promise<StepResult> {
  if (micro === 1) return await trainer.step({ ...ppo, ...inputs(examples) }, hparams);
  const rows = examples.length;
  if (rows % micro !== 0) throw microBatchError(rows, micro);
  const mask = ppo.mask.data as Float32Array | Float64Array;
  let tokens = 0;
  for (let i = 0; i < mask.length; i++) tokens += mask[i];
  const dtype = trainer.spec.dtype;
  const norms = {
    norm_tokens: tensor(dtype, [], [Math.max(tokens, 1)]),
    norm_rows: tensor(dtype, [], [rows]),
  };
  const piece = rows / micro;
  const batches = Array.from({ length: micro }, (_, p) => {
    const lo = p * piece, hi = lo + piece;
    const part = Object.fromEntries(
      Object.entries(ppo).map(([n, t]) => [n, sliceRows(t, lo, hi)]),
    );
    return { ...part, ...inputs(examples.slice(lo, hi)), ...norms };
  });
  return await trainer.stepAccumulated(batches, hparams);
}
