/**
 * A peak-memory estimate of an LM PPO trial, made before it starts, so a trial that cannot fit
 * is refused at planning with the estimate and the key to lower — instead of running for
 * minutes until V8 or the allocator dies.
 *
 * Counted (bytes = 4 × floats, float32):
 * - activations: the train step's peak of live intermediates, counted from its own graph
 *   (lib/tasks/memory_train.ts, lib/onnx/graph_memory.ts) at the trial's rows, sequence,
 *   response columns, LoRA or full, head chunks and loss, and the growth of ORT's one shared
 *   arena past it over a run ({@link ARENA_GROWTH}, measured). It stands for what that arena
 *   grows to: the arena reuses its free chunks for the scoring passes and the sampler, which
 *   need less (a scoring pass adds only what exceeds it);
 * - optimizer: per trainable parameter P (all N, or the adapters and heads), the trainer's
 *   buffers ({@link TRAINER_BUFFERS}); checkpoints are streamed from them (no copy);
 * - weights: {@link WEIGHT_COPIES} copies of the model's N weights, plus a separate value trunk;
 * - rollout: the KV cache (2 buffers · 2 · L · B · kvHeads · T · headDim), the exact KL's
 *   full distributions kept for the update (2·B·R·V), a scoring pass beyond the train step's
 *   arena (2 `[B, c, V]` buffers of one chunk of c = 8 response columns; 6 `[B, T, V]`
 *   without the chunked head).
 * Assumed: {@link RUNTIME_BYTES} for V8, ORT's library and sessions, the tokenizer and the
 * garbage V8 has not collected yet.
 *
 * How the count relates to ORT: it does not model ORT's common-subexpression pass (autodiff
 * ties what it makes again to the backward, so that pass cannot merge it into the forward:
 * lib/onnx/autodiff.ts) nor ORT reusing a dying input's buffer in place (an upper bound). On the
 * `deno task bench rl` shapes (critic-free GRPO, β in the loss, 2 threads, PROXIMA_MEM_TRACE=1)
 * the 43M shape (full fine-tuning, 32 × 43 positions) counts 1.37 GB and its arena grew
 * 1.47 GB (scoring 0.25, training 1.22); the 0.5B shape (LoRA r = 16, 16 × 43) counts 2.20 GB
 * and grew 2.28 GB (scoring 0.15, training 2.13). Against the whole trial, in one
 * `deno task bench rl` run (2 updates after a warm-up, load 1-2): 43M peaked at 3.26 GB
 * (estimated 3.39 GB, 1.04×), 0.5B at 7.11 GB (estimated 7.46 GB, 1.05×); the Proxima side
 * alone (3 updates): 3.12-3.17 GB (1.07-1.09×) and 7.03-7.06 GB (1.06×). With
 * `ppo.micro_batches` 4 (the step counted at one piece's rows) the 0.5B trial peaked at
 * 5.26 GB (estimated 5.60 GB, 1.06×). No factor is fitted but the two named constants below.
 *
 * @example
 * ```ts
 * const est = estimateLmMemory({ model: cfg, batch: 8, minibatches: 4, seqLen: 96 });
 * est.bytes; // e.g. 1.2e9
 * ```
 * @module
 */
import { type DecoderConfig, decoderDims, decoderShapes, trunkShapes } from "../nn/decoder.ts";
import { type LoraConfig, loraShapes } from "../nn/lora.ts";
import { SPLIT_MIN } from "../onnx/train_split.ts";
import { isCriticFree, parsePpoConfig, type PpoConfig } from "../ppo/config.ts";
import { HEAD_CHUNK_POSITIONS } from "../ppo/lm_head_chunks.ts";
import { VALUE_MODEL_PREFIX } from "../ppo/lm_scoring.ts";
import { countLmTrainStep } from "./memory_train.ts";

/** What {@link estimateLmMemory} needs to know of a trial. */
export interface LmMemoryInput {
  model: DecoderConfig;
  /** Responses per update (rollout rows). */
  batch: number;
  /** PPO minibatches per epoch (activations are held for one). */
  minibatches: number;
  /**
   * Micro-batches per minibatch (`ppo.micro_batches`, gradient accumulation): the train step's
   * activations are held for one piece, ceil(batch / minibatches) / micro rows (default 1).
   */
  microBatches?: number;
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
  /**
   * The PPO config the train step is built from (its loss, KL placement, critic); absent: the
   * defaults, critic-free (GRPO) when `criticFree`, the exact KL when `exactKl`.
   */
  ppo?: PpoConfig;
  /** A separate value trunk's config (its size is `valueParams`), for the train step's count. */
  valueModel?: DecoderConfig;
}

/** The estimate, in bytes, with its parts (for the message). */
export interface LmMemoryEstimate {
  bytes: number;
  parts: { weights: number; optimizer: number; activations: number; rollout: number };
}

/**
 * Copies of the model's N weights (PROXIMA_MEM_TRACE=1 shows each). Full fine-tuning: the
 * loaded weights (the task keeps its inputs) and the reference's own copy; the sampler takes
 * the live weights as inputs (its session holds no initializers) and the trainer's are its own
 * buffers ({@link TRAINER_BUFFERS}). LoRA: the frozen base (also the reference and the train
 * step's frozen input, fed as is) and the sampler's pre-packed matmul weights (the base
 * compiled in: ORT uses our arrays as shared initializers and packs each matrix once, ≈ N: the
 * 0.5B trial's RSS rose 1.97 GB building it). An evaluation's merged weights (the adapted
 * matrices only, ≈ 0.73 N at 0.5B) are freed as soon as it ends, below the train step's peak.
 */
export const WEIGHT_COPIES = { full: 2, lora: 2 } as const;
/**
 * The trainer's buffers per trainable parameter (lib/onnx/trainer.ts): "split" mode (from
 * SPLIT_MIN trainable values) params, gradients, AdamW m and v held once; "graph" mode params,
 * m and v twice each (ping-pong; its gradients are the step's intermediates, counted there).
 * Measured: creating the 43M shape's split trainer raised RSS by 0.83 GB, 4P = 0.67 GB and its
 * session.
 */
export const TRAINER_BUFFERS = { split: 4, graph: 6 } as const;
/**
 * How much the trial grows past the train step's counted peak over a run: ORT's one shared BFC
 * arena (freed chunks split among the other sessions', so a later step may find no hole big
 * enough and extend; extensions are the size requested: lib/onnx/ort_ffi_api.ts), the
 * scoring passes' share, and the evaluations' transient merged weights on top of it. Measured
 * with PROXIMA_MEM_TRACE=1 (2 threads, 3 updates): at the 0.5B shape the arena grew 2.28 GB in
 * update 1, 0.13 GB more by update 3, and the final evaluation took the peak 0.17 GB higher
 * (0.30 GB past update 1: 13% of the 2.20 GB count); at 43M 0.06 GB past update 1 (the
 * scoring passes' 0.25 GB share counted in: 7% of 1.37 GB). The larger is used. A checkpoint
 * adds nothing: it is written a tensor at a time from the live buffers (safetensors_write.ts).
 */
export const ARENA_GROWTH = 0.15;
/** `[rows, c, V]` buffers a scoring pass holds at once (one chunk's logits and log-softmax). */
export const SCORE_CHUNK_BUFFERS = 2;

/**
 * What the runtime holds besides the model: V8, ORT's library and sessions, a tokenizer of a
 * 150K vocabulary, garbage not yet collected (assumed; what the 43M trial's peak held besides
 * the counted parts: 0.64 GB; the 0.5B trial's: under 0.5 GB).
 */
export const RUNTIME_BYTES = 0.8e9;

const count = (shapes: Record<string, { shape: number[] }>) =>
  Object.values(shapes).reduce((a, { shape }) => a + shape.reduce((x, y) => x * y, 1), 0);

/** The PPO config the train step is counted with: the trial's, or the defaults it implies. */
function trainPpo(t: LmMemoryInput): PpoConfig {
  const ppo = t.ppo ?? parsePpoConfig(t.exactKl ? { kl: { estimator: "full" } } : {});
  // Critic-free (a group estimator, or an offline method with no value model): GRPO's step.
  return t.criticFree && !isCriticFree(ppo) ? { ...ppo, advantage: "grpo" } : ppo;
}

/** Peak memory of an LM PPO trial (see the module doc). */
export function estimateLmMemory(t: LmMemoryInput): LmMemoryEstimate {
  const shapes = decoderShapes(t.model);
  const N = count(shapes), V = t.model.vocabSize, T = t.seqLen, B = t.batch;
  const { layers: L, kvHeads, headDim } = decoderDims(t.model);
  const value = t.valueParams ?? 0;
  const lora = t.lora !== undefined && t.lora.r > 0;
  // LoRA trains adapters on the policy's trunk and a separate value trunk's (createLmProblem).
  const valueTrunk = t.valueModel
    ? trunkShapes({ ...t.valueModel, prefix: VALUE_MODEL_PREFIX } as DecoderConfig)
    : {};
  const P = lora ? count(loraShapes({ ...shapes, ...valueTrunk }, t.lora!)) : N + value;
  const micro = t.microBatches ?? 1;
  const b = Math.ceil(Math.ceil(B / t.minibatches) / micro);
  // The train step, counted from its graph at this shape (memory_train.ts): one micro-batch.
  const step = countLmTrainStep({
    model: t.model,
    rows: b,
    seqLen: T,
    responseLen: t.responseLen,
    lora: lora ? t.lora : undefined,
    valueModel: t.valueModel,
    ppo: trainPpo(t),
  });
  const activations = step.peak * (1 + ARENA_GROWTH);
  // A scoring pass (one at a time, in the same arena): one chunk of c response columns
  // (lib/ppo/lm_head_chunks.ts), or without the chunked head 6 [B, T, V] buffers; it adds only
  // what exceeds the train step's share of the arena.
  const R = t.responseLen;
  const c = Math.min(HEAD_CHUNK_POSITIONS, R ?? 0);
  const score = 4 * (R === undefined ? 6 * B * T * V : SCORE_CHUNK_BUFFERS * B * c * V);
  // Micro-batches force the split trainer and add its scratch gradient buffer.
  const trainer = micro > 1
    ? TRAINER_BUFFERS.split + 1
    : P >= SPLIT_MIN
    ? TRAINER_BUFFERS.split
    : TRAINER_BUFFERS.graph;
  const parts = {
    weights: 4 * ((lora ? WEIGHT_COPIES.lora : WEIGHT_COPIES.full) * N + value),
    optimizer: 4 * trainer * P,
    activations,
    // The exact KL's full distributions kept for the update (2·B·R·V), the KV cache (2 buffers
    // · 2 · L · B · kvHeads · T · headDim).
    rollout: Math.max(0, score - activations) +
      4 * ((t.exactKl ? 2 * B * (R ?? T) * V : 0) + 2 * 2 * L * B * kvHeads * T * headDim),
  };
  const bytes = Object.values(parts).reduce((a, x) => a + x, 0) + RUNTIME_BYTES;
  return { bytes, parts };
}

const gb = (x: number) => `${(x / 1e9).toFixed(1)} GB`;

/**
 * The smallest `ppo.micro_batches` above the input's (a count that splits every minibatch of
 * `batch` rows evenly: a divisor of their sizes' gcd) whose estimate fits under `limit`, with
 * that estimate; null when none does. The estimate falls as the count grows, so a binary search
 * over the divisors counts the train step a few times only.
 */
export function fittingMicroBatches(
  t: LmMemoryInput,
  limit: number,
): { micro: number; est: LmMemoryEstimate } | null {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let common = 0;
  for (let m = 0; m < t.minibatches; m++) {
    common = gcd(
      common,
      Math.floor((m + 1) * t.batch / t.minibatches) - Math.floor(m * t.batch / t.minibatches),
    );
  }
  const divisors: number[] = [];
  for (let d = 1; d * d <= common; d++) {
    if (common % d === 0) divisors.push(d, common / d);
  }
  const counts = [...new Set(divisors)].sort((a, b) => a - b)
    .filter((d) => d > (t.microBatches ?? 1));
  const at = (micro: number) => estimateLmMemory({ ...t, microBatches: micro });
  let lo = 0, hi = counts.length; // the first index that fits lies in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (at(counts[mid]).bytes <= limit) hi = mid;
    else lo = mid + 1;
  }
  return lo < counts.length ? { micro: counts[lo], est: at(counts[lo]) } : null;
}

/**
 * The problem (for planning's list) when the estimate exceeds this machine's memory (90% of
 * `Deno.systemMemoryInfo().total`, or `limit`), naming the estimate, its largest part and the
 * keys to lower; null when it fits. With the trial's `input`, the fix names the smallest
 * `ppo.micro_batches` that fits when one does ({@link fittingMicroBatches}: "chosen from the
 * memory estimate"), and otherwise lists raising it among the fixes for activations.
 */
export function memoryProblem(
  est: LmMemoryEstimate,
  keys: { batch: string; minibatches: string; seqLen: string; microBatches?: string },
  limit = 0.9 * Deno.systemMemoryInfo().total,
  input?: LmMemoryInput,
): { key: string; cause: string; fix: string } | null {
  if (est.bytes <= limit) return null;
  const p = est.parts;
  const biggest = (Object.entries(p) as [keyof typeof p, number][])
    .sort((a, b) => b[1] - a[1])[0][0];
  const microKey = keys.microBatches ?? "ppo.micro_batches";
  let fix = {
    weights: "use a smaller model, or LoRA (lora.r) to train adapters only",
    optimizer: "train LoRA adapters (lora.r > 0) instead of every weight",
    activations: `lower ${keys.batch} or ${keys.seqLen}, or raise ${keys.minibatches} or ` +
      microKey,
    rollout: `lower ${keys.batch} or ${keys.seqLen}`,
  }[biggest];
  let key = biggest === "activations" || biggest === "rollout" ? keys.batch : "lora.r";
  const fits = input ? fittingMicroBatches(input, limit) : null;
  if (fits) {
    key = microKey;
    fix = `set ${microKey} to ${fits.micro} (the smallest that fits: estimated ` +
      `${gb(fits.est.bytes)}; the same update, its train step in ${fits.micro} pieces), or ` +
      fix;
  }
  return {
    key,
    cause: `estimated peak memory ${gb(est.bytes)} (weights ${gb(p.weights)}, optimizer ` +
      `${gb(p.optimizer)}, activations ${gb(p.activations)}, rollout ${gb(p.rollout)}) ` +
      `exceeds the ${gb(limit)} this machine can give a trial`,
    fix,
  };
}
