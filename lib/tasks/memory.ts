/**
 * A peak-memory estimate of an LM PPO trial, made before it starts, so a trial that cannot fit
 * is refused at planning with the estimate and the key to lower — instead of running for
 * minutes until V8 or the allocator dies.
 *
 * The model (float32, bytes = 4 × floats):
 * - weights: the policy's parameters N, the frozen reference (N again; with LoRA the frozen base
 *   is the reference, held once), the sampler's pre-packed copy of the weights (N: sample.ts
 *   compiles them into its decode step), a separate value trunk;
 * - optimizer: trainable parameters P (all of N, or the adapters + heads) held as params, AdamW
 *   m and v, each twice (the trainer's ping-pong buffers), plus one gradient: 7P;
 * - activations of one minibatch (b = batch / minibatches rows of length T, width d, MLP width
 *   f, L layers, H heads): ≈ b·T·L·(32·d + 10·f + 8·H·T) floats kept for the backward pass
 *   (calibrated on `deno task bench rl`'s 0.5B LoRA trial, b 16, T 43: 2.5× the count of one
 *   tensor per block input, which had it 3.1 GB under its 12.65 GB peak),
 *   plus the logits and their log-softmax and gradient, 3·b·T·V;
 * - rollout: what the scoring passes' sessions keep at their peak (ORT's arena per session):
 *   logits, log-softmax, softmax and the terms read from them, 6·B·T·V for each pass (the
 *   reference's, and the policy's with values unless the advantage is critic-free), the exact
 *   KL's full distributions (a third pass, and 2·B·T·V kept for the update), and the KV cache
 *   (2 buffers · 2 · L · B · kvHeads · T · headDim);
 * - the runtime (V8, ORT, a tokenizer of a 150K vocabulary): 1 GB.
 * With the head at the response only (`responseLen`: the `lm` task) the vocabulary terms count
 * max_new_tokens columns R, and the head's passes run over chunks of c = 8 of them
 * (lib/ppo/lm_head_chunks.ts): the train step keeps 2 `[b, R, V]` buffers for its backward
 * (each chunk's log-softmax and its exp, which the gradient rules read) and 3 of one chunk
 * `[b, c, V]` (the chunk's logits, the entropy's product, the gradient); a scoring pass holds 2
 * of one chunk `[B, c, V]` (logits, log-softmax).
 * Measured against it (`deno task bench rl`'s Proxima side alone, 2 updates, critic-free GRPO,
 * β in the loss): the 43M Qwen2 shape, full fine-tuning, 32 × 43 positions, peaked at 4.52 GB
 * with the chunks and one shared ORT arena (7.09 GB before; 4.49 in the side-by-side run),
 * estimated 5.10 GB (1.13×); the 0.5B shape, LoRA r=16,
 * 16 × 43 positions, 11.51 GB (12.65 before), estimated 11.67 GB (1.01×). The per-layer
 * activation term was calibrated before the chunks on that 0.5B run (estimated 12.8 GB then);
 * the vocabulary terms above are counted, not fitted.
 * Constant factors are rounded up; the estimate is meant to be the right order of magnitude
 * and above the truth, not exact.
 *
 * @example
 * ```ts
 * const est = estimateLmMemory({ model: cfg, batch: 8, minibatches: 4, seqLen: 96 });
 * est.bytes; // e.g. 1.2e9
 * ```
 * @module
 */
import { type DecoderConfig, decoderDims, decoderShapes } from "../nn/decoder.ts";
import { type LoraConfig, loraShapes } from "../nn/lora.ts";
import { HEAD_CHUNK_POSITIONS } from "../ppo/lm_head_chunks.ts";

/** What {@link estimateLmMemory} needs to know of a trial. */
export interface LmMemoryInput {
  model: DecoderConfig;
  /** Responses per update (rollout rows). */
  batch: number;
  /** PPO minibatches per epoch (activations are held for one). */
  minibatches: number;
  /** Longest sequence: prompt + max_new_tokens. */
  seqLen: number;
  lora?: LoraConfig;
  /** A separate value trunk of this size (parameters), if any. */
  valueParams?: number;
  /** No value model at all (a critic-free `ppo.advantage`): one scoring pass per rollout. */
  criticFree?: boolean;
  /**
   * The exact KL (`ppo.kl.estimator: "full"`): a third scoring pass, and the policy's and the
   * reference's log-probs over the whole vocabulary at every response position kept for the
   * update (2·B·T·V floats; 12 GB for 64 × 64 tokens of a 150K vocabulary).
   */
  exactKl?: boolean;
  /**
   * The LM head runs at the response's columns only (`createLmProblem`'s logitsAtResponse, the
   * `lm` task): the vocabulary terms count this many columns (max_new_tokens) instead of
   * seqLen, with the buffers that code holds (see {@link estimateLmMemory}).
   */
  responseLen?: number;
}

/** The estimate, in bytes, with its parts (for the message). */
export interface LmMemoryEstimate {
  bytes: number;
  parts: { weights: number; optimizer: number; activations: number; rollout: number };
}

/**
 * `[rows, R, V]` buffers the train step keeps for its backward, with the head at the response
 * only: each chunk's log-softmax and its exp.
 */
export const TRAIN_VOCAB_BUFFERS = 2;
/** `[rows, c, V]` buffers of one chunk of positions at the train step's peak. */
export const TRAIN_CHUNK_BUFFERS = 3;
/** `[rows, c, V]` buffers a scoring pass holds at once (one chunk's logits and log-softmax). */
export const SCORE_CHUNK_BUFFERS = 2;

/** What the runtime holds besides the model (V8, ORT, a tokenizer). */
export const RUNTIME_BYTES = 1e9;

const count = (shapes: Record<string, { shape: number[] }>) =>
  Object.values(shapes).reduce((a, { shape }) => a + shape.reduce((x, y) => x * y, 1), 0);

/** Peak memory of an LM PPO trial (see the module doc). */
export function estimateLmMemory(t: LmMemoryInput): LmMemoryEstimate {
  const shapes = decoderShapes(t.model);
  const N = count(shapes), V = t.model.vocabSize, T = t.seqLen, B = t.batch;
  // The family's sizes: widths d and f, layers, query heads H (GPT-2: as many as the KV heads).
  const { hidden: d, mlp: f, layers: L, heads: H, kvHeads, headDim } = decoderDims(t.model);
  const value = t.valueParams ?? 0;
  const P = t.lora && t.lora.r > 0 ? count(loraShapes(shapes, t.lora)) : N + value;
  const b = Math.ceil(B / t.minibatches);
  const lora = t.lora !== undefined && t.lora.r > 0;
  const passes = (t.criticFree ? 1 : 2) + (t.exactKl ? 1 : 0);
  // The [rows, columns, V] terms: with the head at the response only (R columns, in chunks of
  // c), the train step keeps TRAIN_VOCAB_BUFFERS over all R for its backward and
  // TRAIN_CHUNK_BUFFERS of one chunk, a scoring pass SCORE_CHUNK_BUFFERS of one chunk;
  // otherwise 3 and 6 over all T columns.
  const R = t.responseLen;
  const c = Math.min(HEAD_CHUNK_POSITIONS, R ?? 0);
  const vocab = R === undefined ? { train: 3 * b * T * V, score: 6 * B * T * V } : {
    train: b * V * (TRAIN_VOCAB_BUFFERS * R + TRAIN_CHUNK_BUFFERS * c),
    score: SCORE_CHUNK_BUFFERS * B * c * V,
  };
  const floats = {
    weights: (lora ? 2 : 3) * N + value,
    optimizer: 7 * P,
    activations: b * T * L * (32 * d + 10 * f + 8 * H * T) + vocab.train,
    rollout: passes * vocab.score + (t.exactKl ? 2 * B * (R ?? T) * V : 0) +
      2 * 2 * L * B * kvHeads * T * headDim,
  };
  const parts = Object.fromEntries(
    Object.entries(floats).map(([k, v]) => [k, 4 * v]),
  ) as LmMemoryEstimate["parts"];
  // The runtime itself (V8, ORT, the tokenizer).
  const bytes = Object.values(parts).reduce((a, x) => a + x, 0) + RUNTIME_BYTES;
  return { bytes, parts };
}

const gb = (x: number) => `${(x / 1e9).toFixed(1)} GB`;

/**
 * The problem (for planning's list) when the estimate exceeds this machine's memory (90% of
 * `Deno.systemMemoryInfo().total`, or `limit`), naming the estimate, its largest part and the
 * keys to lower; null when it fits.
 */
export function memoryProblem(
  est: LmMemoryEstimate,
  keys: { batch: string; minibatches: string; seqLen: string },
  limit = 0.9 * Deno.systemMemoryInfo().total,
): { key: string; cause: string; fix: string } | null {
  if (est.bytes <= limit) return null;
  const p = est.parts;
  const biggest = (Object.entries(p) as [keyof typeof p, number][])
    .sort((a, b) => b[1] - a[1])[0][0];
  const fix = {
    weights: "use a smaller model, or LoRA (lora.r) to train adapters only",
    optimizer: "train LoRA adapters (lora.r > 0) instead of every weight",
    activations: `lower ${keys.batch} or ${keys.seqLen}, or raise ${keys.minibatches}`,
    rollout: `lower ${keys.batch} or ${keys.seqLen}`,
  }[biggest];
  return {
    key: biggest === "activations" || biggest === "rollout" ? keys.batch : "lora.r",
    cause: `estimated peak memory ${gb(est.bytes)} (weights ${gb(p.weights)}, optimizer ` +
      `${gb(p.optimizer)}, activations ${gb(p.activations)}, rollout ${gb(p.rollout)}) ` +
      `exceeds the ${gb(limit)} this machine can give a trial`,
    fix,
  };
}
