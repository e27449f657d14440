/**
 * The types of the LM policy-gradient problem (lib/ppo/lm_problem.ts): what a task hands it
 * ({@link LmTask}: prompts and a score), its options, the problem itself and its sequences.
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { Device } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import type { PhaseTimer } from "./phase_times.ts";
import type { DecoderConfig } from "../nn/decoder.ts";
import type { FloatArray, GenerateOptions, Generation, SamplingOptions } from "../nn/sample.ts";
import type { LoraConfig } from "../nn/lora.ts";
import type { Rng } from "../rng.ts";
import type { PpoConfig } from "./config.ts";
import type { PpoProblem } from "./trainer.ts";

/**
 * Where prompts come from and how responses are judged.
 *
 * @example
 * ```ts
 * const task: LmTask = {
 *   prompts: (n, index) => Array.from({ length: n }, (_, k) => dataset[(index + k) % dataset.length]),
 *   score: (_prompts, responses) => responses.map((r) => (r.includes(3) ? 1 : 0)),
 * };
 * ```
 */
export interface LmTask {
  /**
   * The next `n` prompts (token arrays, each ≥ 1 token). `index` counts the prompts handed
   * out before this call (a cursor into a fixed dataset; it is checkpointed), `rng` is the
   * trial's one generator (for synthetic prompts; its state is checkpointed too).
   */
  prompts(n: number, index: number, rng: Rng): number[][];
  /**
   * One scalar per response (a rule, a reward model, ...). `responses[i]` holds the sampled
   * tokens of row i up to and including EOS (no padding). May also return per-update metrics
   * (e.g. each reward component's mean), which go into the rollout's metrics row.
   */
  score(
    prompts: number[][],
    responses: number[][],
  ): number[] | LmScores | Promise<number[] | LmScores>;
}

/** A score with per-update metrics (merged into `Rollout.metrics`, after the problem's own). */
export interface LmScores {
  scores: number[];
  metrics?: Record<string, number>;
  /** The scores' weighted components (`scores` = Σ weight · value), by component. */
  components?: { values: ArrayLike<number>[]; weights: number[] };
}

/** Options of {@link createLmProblem}. */
export interface LmProblemOptions {
  /** The policy's config, any decoder family (also the reference's). */
  model: DecoderConfig;
  /** Prompts and the scoring rule. */
  task: LmTask;
  /** PPO settings (kl.placement, estimator, β, epochs, ... ; see `PpoSchema`). */
  cfg: PpoConfig;
  /** Trial seed: the init (when `init` is absent), the value head, and every later draw. */
  seed: number;
  /** Responses (= rollout rows) per update: batch / samplesPerPrompt prompts. */
  batch: number;
  /**
   * Responses sampled per prompt (default 1): the task is asked for batch / k prompts and each
   * is sampled k times in consecutive rows — a group for the critic-free estimators. `batch`
   * must be a multiple of it.
   */
  samplesPerPrompt?: number;
  /**
   * The LM head only at the response's columns (the scoring passes and the train step): the
   * same maths without the `[B, S, V]` logits of the prompt positions and their gradient (for a
   * 152K vocabulary the largest tensors of a pass). The weight gradient's sums then run over
   * fewer rows, so the last bits differ from the default (the head over every column, then
   * gathered), which existing tasks keep for byte-identical results.
   */
  logitsAtResponse?: boolean;
  /** Most tokens per response (the rollout's cols are the longest response actually sampled). */
  maxNewTokens: number;
  /** Ends a response (kept, mask 1, where the score lands). Omitted: responses never end early. */
  eosTokenId?: number | readonly number[];
  /** Left padding of prompts and filler after a response ends (masked everywhere). */
  padTokenId: number;
  /**
   * Sampling settings (default plain sampling, temperature 1). Anything but temperature 1
   * without top-k/top-p makes the rollout off-policy: PPO's old log-probs are those of the
   * unmodified policy (see {@link generate}).
   */
  sampling?: SamplingOptions;
  /** Initial policy weights (e.g. an SFT model); default `initDecoder(model, rng)`. Copied. */
  init?: Record<string, FloatArray>;
  /**
   * `init` is handed over (not copied when of the problem's dtype): the caller no longer
   * changes it. For a 0.5B model that is 2 GB fewer (lm/task.ts: the loaded folder's weights).
   */
  adoptInit?: boolean;
  /**
   * Std of the value head's initial weight (default 0: V ≡ 0 at the start, so the first
   * advantages are the raw returns and no random value signal enters the trunk).
   */
  valueHeadStd?: number;
  /**
   * The value model (GAE only; a critic-free `cfg.advantage` has none and refuses anything but
   * "shared"): "shared" (default) = a value head on the policy's trunk; "separate" = its
   * own trunk (`value_model.*`, a copy of the policy's initial weights) + value head; or a
   * trunk of another model (`cfg` + `init` by that model's parameter names, e.g. a reward
   * model's, as TRL builds its value model from the reward model) with an optional initial
   * value head `head` (`v_head.weight` `[d, 1]`, `v_head.bias` `[1]`; default drawn).
   */
  valueModel?:
    | "shared"
    | "separate"
    | {
      cfg: DecoderConfig;
      init: Record<string, FloatArray>;
      head?: Record<string, FloatArray>;
    };
  /**
   * LoRA adapters on the policy (and on a separate value model's trunk): the base GPT weights
   * are frozen, the adapters (drawn after the value head) and the heads train. `r: 0` = off.
   */
  lora?: LoraConfig;
  /** Parameter dtype (default float32). */
  dtype?: "float32" | "float64";
  /** Execution provider of every session (default cpu). */
  device?: Device;
  /** Intra-op threads per session (default 2, pinned for reproducibility). */
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
  /** Wall time of generation and scoring, for benchmarks (phase_times.ts); absent: not timed. */
  phases?: PhaseTimer;
}

/** The PPO problem for a GPT policy, plus what tests and reports want to look at. */
export interface LmProblem extends PpoProblem {
  /** The generator the init was drawn from: pass it to trainPpo so one stream serves all. */
  rng: Rng;
  /** The policy's (and reference's) config. */
  model: DecoderConfig;
  /** The reference weights (a private copy of the initial GPT; written only by ppo.sync_ref_model). */
  reference: Record<string, FloatArray>;
  /**
   * Parameters of each network the training holds in memory, by role: `policy` (trainable, or
   * LoRA adapters + frozen base), `value` (a separate value trunk + head, or the head on the
   * policy's trunk; absent when critic-free), `reference` (frozen). A task adds what it holds
   * itself (e.g. `reward_model`).
   */
  models?: Record<string, number>;
  /**
   * The policy's current GPT weights under the reference's names, for sampling and scoring:
   * the trainer's live tensors, or (with LoRA) the base with the adapters merged in (computed
   * on each call: the base's own arrays where the merge leaves them unchanged, fresh ones, views
   * of one buffer, for the adapted weights it changes). Read only.
   */
  policyParams(): Record<string, ort.Tensor | FloatArray>;
  /**
   * Free now the arrays a {@link policyParams} call made (LoRA's merged weights: 1.4 GB at
   * 0.5B), instead of whenever the garbage collector gets to them; `params` must not be used
   * after. The trainer's live tensors and the base's arrays are left alone.
   */
  releasePolicyParams?(params: Record<string, ort.Tensor | FloatArray>): void;
  /**
   * Sample from the current policy ({@link generate} on the problem's device and threads).
   * With LoRA the sampler is one decoder for the whole run: the frozen base compiled in
   * (ORT pre-packs it once), the live adapters fed at each call and applied as PEFT does; no
   * merged copy of the model per rollout.
   *
   * @example
   * ```ts
   * const gen = await problem.sample(prompts, { maxNewTokens: 16, padTokenId: 0, rng });
   * ```
   */
  sample(prompts: number[][], opts: Omit<GenerateOptions, "session">): Promise<Generation>;
  /** Free what the problem holds outside the JS heap (the LoRA sampler's session). */
  release(): void;
  /**
   * Log-probs of the response tokens (and values, when `params` holds a value head) under
   * `params` for sequences laid out as {@link generate} does; `[rows, cols]` row-major, junk
   * at padding. The same graph code as the train step's, run as inference.
   *
   * @example
   * ```ts
   * const gen = await generate({ cfg: problem.model, params }, prompts, opts);
   * const { logp } = await problem.rescore(problem.reference, gen); // log π_ref(a_t)
   * ```
   */
  rescore(
    params: Record<string, ort.Tensor | FloatArray>,
    seqs: LmSequences,
  ): Promise<{ logp: Float64Array; value?: Float64Array }>;
}

/** Prompt + response sequences and where the responses are (the layout of {@link generate}). */
export interface LmSequences {
  /** Sequences (one per prompt). */
  rows: number;
  /** Response positions per row. */
  cols: number;
  /** Left-padded prompt width W. */
  promptWidth: number;
  /** `[rows, W + cols]` token ids. */
  sequences: Int32Array;
  /** `[rows, W + cols]` 1 = real token. */
  sequenceMask: Uint8Array;
  /** `[rows, cols]` the response tokens (what each position's log-prob is of). */
  tokens: Int32Array;
}
