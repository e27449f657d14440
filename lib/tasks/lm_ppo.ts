/**
 * PPO on a GPT policy with token-level episodes: the same {@link trainPpo} that drives the
 * classic-control actor-critic (`lib/envs/ppo.ts`), with a language model behind
 * {@link PpoProblem}.
 *
 * One rollout = one batch of prompts from an {@link LmTask}; for each prompt the policy
 * samples a response ({@link generate}, KV cache, one seeded {@link Rng}); the task scores
 * each (prompt, response) with one scalar, placed at the response's last real token (its EOS,
 * or the last token when it was cut at `maxNewTokens`), where the episode ends. Every response
 * token is one PPO action; the Rollout is `rows = batch` × `cols = longest response`, one
 * whole row per training example (`exampleSize = cols`), padding after each row's end masked.
 *
 * Models (the four of RLHF; the reward model lives in the task's score):
 * - policy = a GPT (trainable), optionally through LoRA adapters ({@link LmProblemOptions.lora}:
 *   the base weights are frozen inputs of the train step, only the adapters and heads train);
 * - value = {@link LmProblemOptions.valueModel}: `"shared"` (default) puts a value head on the
 *   policy's trunk (`v_head.*`, TRL's `AutoModelForCausalLMWithValueHead` layout), so the value
 *   loss trains the trunk too; `"separate"` gives it its own GPT trunk (`value_model.*`,
 *   initialised as a copy of the policy's initial weights, as lm-human-preferences does) and the
 *   value loss never touches the policy. One train step updates both (one loss, one AdamW);
 * - reference = a frozen copy of the initial GPT weights, run in its own inference session
 *   once per rollout (log π_ref of the sampled tokens, `Rollout.refLogp`). It never enters the
 *   train step: with `kl.placement = "loss"` its log-probs come in as the batch input
 *   `ref_logp`, so no update can touch it.
 *
 * Positions: prompts are left-padded to the batch's widest (width W), so response token t of
 * every row sits at column W + t of the sequence, and the logits that score it (and the value
 * of the state before it) are those at column W − 1 + t. The train step and the rollout's
 * scoring pass read those T columns with one `Gather` along time (`response_pos = W−1 ..
 * W+T−2`), which has a gradient rule; a `Slice` would need constant bounds.
 *
 * Groups: with `samplesPerPrompt` = k the task is asked for batch / k prompts and each is
 * sampled k times, in consecutive rows (`Rollout.groupSize` = k): the groups the critic-free
 * estimators (`ppo.advantage` = grpo, dr_grpo, rloo) take their baselines from.
 *
 * Critic-free runs (`ppo.advantage` ≠ "gae") hold no value model at all: no value head, no
 * separate value trunk, no value parameters in the train step or its checkpoints, and no
 * value pass over the rollout.
 *
 * Exact KL (`ppo.kl.estimator = "full"`): the rollout scores the sequences with the policy and
 * the reference over the whole vocabulary (rows × cols × V log-probs each, kept for the
 * update) and takes Σ_a π(a)·(log π(a) − log π_ref(a)) per position: in the reward as
 * `Rollout.refKl`, in the loss from the train step's own log-softmax against the batch input
 * `ref_logp_all`.
 *
 * Log-probs: `Rollout.logp` is what {@link generate} measured while sampling (the log-softmax
 * of the decode step's logits in the model's dtype, unmodified policy), not a re-scoring pass, so the first
 * minibatch of a fresh run measures how well the KV-cache decoder and the full forward agree
 * (ratio 1, approx KL ≈ 0; the `logp_gap` metric reports the largest difference per rollout).
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({ gamma: 1, lambda: 0.95, kl: { beta: 0.05 } });
 * const problem = await createLmProblem({
 *   model: { vocabSize: 16, nPositions: 32, nEmbd: 32, nLayer: 1, nHead: 2 },
 *   task: {
 *     prompts: (n, _index, rng) => Array.from({ length: n }, () => [1 + rng.int(15)]),
 *     score: (_p, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
 *   },
 *   cfg, seed: 1, batch: 32, maxNewTokens: 8, eosTokenId: 0, padTokenId: 0,
 * });
 * await trainPpo(problem, { updates: 30, seed: 1, outDir: "results/lm", rng: problem.rng });
 * ```
 * @module
 */
import type * as ort from "onnxruntime-node";
import { Graph, type Value } from "../onnx/graph.ts";
import { compile, type Device, type Session, tensor } from "../onnx/session.ts";
import { gatherLogprobs, tokenLogprobs } from "../nn/gpt.ts";
import {
  type DecoderConfig,
  decoderForward,
  decoderHidden,
  decoderShapes,
  hiddenSize,
  initDecoder,
  sameFamily,
  trunkShapes,
} from "../nn/decoder.ts";
import { headNames, headShapes, initHead, VALUE_HEAD, valueHead } from "../nn/heads.ts";
import {
  type FloatArray,
  generate,
  type GenerateOptions,
  type Generation,
  GptDecoder,
  type SamplingOptions,
} from "../nn/sample.ts";
import { applyLora, initLora, type LoraConfig, loraShapes, mergeLora } from "../nn/lora.ts";
import { Rng } from "../rng.ts";
import { ADVANTAGE_ESTIMATORS, isCriticFree, type PpoConfig } from "../ppo/config.ts";
import { categoricalEntropy } from "../ppo/losses.ts";
import { createPpoTrainer } from "../ppo/train_step.ts";
import { phaseAdd, phaseClock } from "../ppo/phase_times.ts";
import type { MetricsRow, PpoProblem, PpoRunOptions, Rollout } from "../ppo/trainer.ts";

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
}

/** The PPO problem for a GPT policy, plus what tests and reports want to look at. */
export interface LmProblem extends PpoProblem {
  /** The generator the init was drawn from: pass it to trainPpo so one stream serves all. */
  rng: Rng;
  /** The policy's (and reference's) config. */
  model: DecoderConfig;
  /** The frozen reference weights (a private copy of the initial GPT; never written). */
  reference: Record<string, FloatArray>;
  /**
   * Parameters of each network the training holds in memory, by role: `policy` (trainable, or
   * LoRA adapters + frozen base), `value` (a separate value trunk + head, or the head on the
   * policy's trunk; absent when critic-free), `reference` (frozen). A task adds what it holds
   * itself (e.g. `reward_model`).
   */
  models?: Record<string, number>;
  /**
   * An offline problem (DPO: lib/tasks/dpo.ts) trains with its own loop instead of `trainPpo`
   * (same options, same files: metrics.jsonl, checkpoints/, final.safetensors); its `rollout`
   * and `inputs` are never called.
   */
  train?(opts: PpoRunOptions): Promise<MetricsRow>;
  /**
   * The policy's current GPT weights under the reference's names, for sampling and scoring:
   * the trainer's live tensors, or (with LoRA) the base with the adapters merged in (fresh
   * arrays, computed on each call).
   */
  policyParams(): Record<string, ort.Tensor | FloatArray>;
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

/** Per-rollout data the PPO inputs need beyond the Rollout itself. */
interface Extra {
  seqs: LmSequences;
  /** `[rows, cols, V]` log π_ref over the vocabulary (the exact KL in the loss). */
  refAll?: Float32Array;
}

/** Parameter-name prefix of a separate value model's trunk. */
export const VALUE_MODEL_PREFIX = "value_model";

/** How the train step and the policy's scoring pass read the models (see createLmProblem). */
interface ModelLayout {
  model: DecoderConfig;
  /** The separate value model's config (prefix {@link VALUE_MODEL_PREFIX}), if any. */
  valueCfg?: DecoderConfig;
  lora?: LoraConfig;
  /** The LM head only at the response's columns ({@link LmProblemOptions.logitsAtResponse}). */
  logitsAt?: boolean;
}

/**
 * Policy log-probs, entropy and values per response position from the full parameter record
 * (trainable and frozen): LoRA applied where configured, the value from the policy's trunk or
 * from the separate value model.
 */
function modelOutputs(
  g: Graph,
  m: ModelLayout,
  p: Record<string, Value>,
  tokens: Value,
  mask: Value,
  pos: Value,
  actions: Value,
): { logp: Value; entropy: Value; logpAll: Value; value: Value } {
  // LoRA as PEFT computes it (x W + s·(x A) B): the frozen base is read as it is, and neither
  // a merged copy of every adapted matrix nor its full-size gradient is formed (for a 0.5B
  // model each is 2 GB per step).
  const adapted = m.lora ? applyLora(g, m.lora, withoutAdapters(p), p, { factored: true }) : p;
  const pi = responseOutputs(
    g,
    m.model,
    adapted,
    tokens,
    mask,
    pos,
    actions,
    !m.valueCfg,
    m.logitsAt,
  );
  if (!m.valueCfg) return pi as typeof pi & { value: Value };
  const hidden = decoderHidden(g, m.valueCfg, adapted, tokens, mask);
  return { ...pi, value: valueHead(g, g.gather(hidden, pos, 1), p) };
}

/** The record without LoRA adapters (what applyLora reads as the base). */
function withoutAdapters<T>(p: Record<string, T>): Record<string, T> {
  return Object.fromEntries(
    Object.entries(p).filter(([n]) => !n.endsWith(".lora_A") && !n.endsWith(".lora_B")),
  );
}

/**
 * Per response position: log π(a_t), entropy, and (with a value head) V, for int64
 * `tokens`/`mask` `[B, S]`, the response's columns `pos [T]` (those whose logits score each
 * response token) and the response tokens `actions [B, T]`. Shared by the train step and the
 * rollout's scoring passes, so both compute the same numbers.
 */
function responseOutputs(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  mask: Value,
  pos: Value,
  actions: Value,
  withValue: boolean,
  at = false,
): { logp: Value; entropy: Value; logpAll: Value; value?: Value } {
  // `at`: the LM head only at the response's columns (TRL's logits_to_keep), so the [B, S, V]
  // logits of every prompt position, and their gradient, are never formed. Otherwise the head
  // runs over all S columns and the logits are gathered (the results existing tasks keep).
  const out = decoderForward(g, cfg, params, tokens, mask, at ? { at: pos } : {});
  if (at) {
    // One [B, T, V] log-softmax for the log-probs and the entropy, and the entropy (two more
    // [B, T, V] tensors: ORT runs nodes nobody reads) only where it is read: the train step.
    const logpAll = g.logSoftmax(out.logits, -1);
    let entropy: Value | undefined;
    return {
      logp: gatherLogprobs(g, logpAll, actions),
      get entropy() {
        return entropy ??= categoricalEntropy(g, logpAll);
      },
      logpAll,
      value: withValue ? valueHead(g, out.hidden, params) : undefined,
    };
  }
  const lt = g.gather(out.logits, pos, 1); // [B, T, V]
  const logpAll = g.logSoftmax(lt, -1);
  return {
    logp: tokenLogprobs(g, lt, actions),
    entropy: categoricalEntropy(g, logpAll),
    logpAll,
    value: withValue
      ? valueHead(g, at ? out.hidden : g.gather(out.hidden, pos, 1), params)
      : undefined,
  };
}

/**
 * Compile the PPO train step, the scoring sessions and the reference for a decoder policy.
 *
 * Init order from `new Rng(opts.seed)`: the policy (unless `opts.init`), then the value head;
 * the returned `rng` carries on from there. The reference is not checkpointed: it is the
 * initial GPT again, so a resumed run must be created with the same `seed`/`init` (trainPpo
 * then restores the policy, optimizer, rng and the prompt cursor from the checkpoint).
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({ gamma: 1, kl: { beta: 0.05, placement: "reward" } });
 * const problem = await createLmProblem({
 *   model, task, cfg, seed: 1, batch: 32, maxNewTokens: 8, eosTokenId: 1, padTokenId: 0,
 * });
 * const roll = await problem.rollout(problem.rng); // rows = 32 responses, cols ≤ 8
 * roll.metrics; // { score_mean, response_length, eos_rate, logp_gap }
 * ```
 */
export async function createLmProblem(opts: LmProblemOptions): Promise<LmProblem> {
  const { model, cfg, task } = opts;
  const dtype = opts.dtype ?? "float32";
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  if (!Number.isInteger(opts.batch) || opts.batch < 1) {
    throw new RangeError(`createLmProblem: batch must be an integer >= 1, got ${opts.batch}`);
  }
  // The exact KL needs full reference (and old) distributions per position, rows × cols × V
  // numbers per rollout: not kept. The sampled-token estimators need only log-probs.
  const klInLoss = cfg.kl.placement === "loss";
  const exactKl = cfg.kl.estimator === "full";
  const critic = !isCriticFree(cfg);
  const k = opts.samplesPerPrompt ?? 1;
  if (!Number.isInteger(k) || k < 1 || opts.batch % k !== 0) {
    throw new RangeError(
      `createLmProblem: batch ${opts.batch} must be a multiple of samplesPerPrompt ${k} (≥ 1)`,
    );
  }
  if (cfg.advantage !== undefined && !ADVANTAGE_ESTIMATORS.includes(cfg.advantage)) {
    throw new Error(
      `createLmProblem: unknown advantage estimator "${cfg.advantage}" (one of ` +
        `${ADVANTAGE_ESTIMATORS.join(", ")})`,
    );
  }
  if (!critic && opts.valueModel !== undefined && opts.valueModel !== "shared") {
    throw new Error(
      `createLmProblem: ppo.advantage "${cfg.advantage}" is critic-free and holds no value ` +
        'model; leave valueModel at "shared" (or unset) or use ppo.advantage "gae"',
    );
  }
  if (cfg.loss === "kl-penalty" && cfg.penalty.estimator === "full") {
    throw new Error(
      'createLmProblem: penalty.estimator "full" is not supported for language models (it ' +
        "would keep rows × cols × vocab log-probs of π_old); use k1, k2 or k3",
    );
  }
  const rng = new Rng(opts.seed);
  const modelShape = decoderShapes(model);
  const policyNames = Object.keys(modelShape);
  const init: Record<string, FloatArray> = {};
  const drawn = opts.init ? undefined : initDecoder(model, rng, dtype);
  for (const n of Object.keys(modelShape)) {
    const src = opts.init?.[n] ?? drawn?.[n];
    if (!src) throw new Error(`createLmProblem: init lacks policy parameter "${n}"`);
    init[n] = opts.adoptInit && src instanceof Arr ? src : Arr.from(src);
  }
  // A separate value model starts as a copy of the policy's initial weights, or of another
  // model's trunk, under its own names (the trunk only: a value model needs no LM head).
  const vm = opts.valueModel ?? "shared";
  const valueSource = !critic
    ? undefined
    : typeof vm === "object"
    ? { cfg: vm.cfg, init: vm.init }
    : vm === "separate"
    ? { cfg: model, init }
    : undefined;
  const layout: ModelLayout = {
    model,
    valueCfg: valueSource && { ...valueSource.cfg, prefix: VALUE_MODEL_PREFIX },
    lora: opts.lora && opts.lora.r > 0 ? opts.lora : undefined,
    logitsAt: opts.logitsAtResponse === true,
  };
  if (layout.lora && layout.valueCfg && !sameFamily(layout.valueCfg, model)) {
    throw new Error(
      "createLmProblem: LoRA needs the value model's trunk in the policy's family (one adapter " +
        "layout); use a value model of the same family, or no LoRA",
    );
  }
  const valueShape = layout.valueCfg ? trunkShapes(layout.valueCfg) : {};
  if (valueSource) {
    const srcNames = Object.keys(trunkShapes(valueSource.cfg));
    Object.keys(valueShape).forEach((n, i) => {
      const src = valueSource.init[srcNames[i]];
      if (!src) throw new Error(`createLmProblem: value model init lacks "${srcNames[i]}"`);
      init[n] = Arr.from(src);
    });
  }
  const d = hiddenSize(layout.valueCfg ?? model);
  if (critic) {
    const head = initHead(d, rng, dtype, { std: opts.valueHeadStd ?? 0 });
    const given = typeof vm === "object" ? vm.head : undefined;
    for (const [n, a] of Object.entries(head)) init[n] = given?.[n] ? Arr.from(given[n]) : a;
  }
  const valueHeadShape = critic ? headShapes(d) : {};
  // The trunks' weights: trained as they are, or frozen under LoRA adapters (drawn last, so
  // a run without LoRA draws exactly what it always did).
  const trunkShape = { ...modelShape, ...valueShape };
  const adapterShape = layout.lora ? loraShapes(trunkShape, layout.lora) : {};
  if (layout.lora) Object.assign(init, initLora(trunkShape, layout.lora, rng, dtype));
  // The reference: its own copy, so nothing that owns the policy's buffers can reach it. With
  // LoRA the base is frozen (only ever fed to sessions, never written): it is the reference.
  const reference: Record<string, FloatArray> = Object.fromEntries(
    Object.keys(modelShape).map((n) => [n, layout.lora ? init[n] : Arr.from(init[n])]),
  );

  const i64 = (shape: (string | number)[]) => ({ dtype: "int64" as const, shape });
  const params = layout.lora
    ? { ...adapterShape, ...valueHeadShape }
    : { ...trunkShape, ...valueHeadShape };
  const frozen = layout.lora ? trunkShape : undefined;
  const sessionOpts = { device: opts.device, threads: opts.threads };
  const trainer = await createPpoTrainer({
    cfg,
    dtype,
    params,
    frozen,
    init,
    inputs: {
      tokens: i64(["B", "S"]),
      attention_mask: i64(["B", "S"]),
      response_pos: i64(["T"]),
      actions: i64(["B", "T"]),
    },
    positions: ["B", "T"],
    reference: true,
    numActions: model.vocabSize,
    maxTokens: opts.maxNewTokens,
    policy: (g, p, b) =>
      !critic
        ? responseOutputs(
          g,
          model,
          layout.lora ? applyLora(g, layout.lora, withoutAdapters(p), p, { factored: true }) : p,
          b.tokens,
          b.attention_mask,
          b.response_pos,
          b.actions,
          false,
          layout.logitsAt,
        )
        : modelOutputs(g, layout, p, b.tokens, b.attention_mask, b.response_pos, b.actions),
    ...sessionOpts,
  });
  const count = (shapes: Record<string, { shape: number[] }>) =>
    Object.values(shapes).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const models: Record<string, number> = {
    policy: count(modelShape) + (layout.lora ? count(loraShapes(modelShape, layout.lora)) : 0),
    ...(critic
      ? {
        value: count(valueShape) + count(valueHeadShape) +
          (layout.lora && layout.valueCfg ? count(loraShapes(valueShape, layout.lora)) : 0),
      }
      : {}),
    reference: count(modelShape),
  };

  // Scoring graphs (inference): the policy's with values (every trainable and frozen
  // parameter, the train step's model code; GAE only), a plain GPT's log-probs (the
  // reference), and for the exact KL a plain GPT's log-probs over the whole vocabulary.
  const policyShape = { ...params, ...(frozen ?? {}) };
  const scoreGraph = (withValue: boolean, all = false) => {
    const g = new Graph(withValue ? "lm_score_value" : all ? "lm_score_all" : "lm_score");
    const shapes = withValue ? policyShape : modelShape;
    const params = Object.fromEntries(
      Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
    );
    const io = sequenceInputs(g);
    const out = withValue
      ? modelOutputs(g, layout, params, ...io)
      : responseOutputs(g, model, params, ...io, false, layout.logitsAt);
    g.output(out.logp, "logp");
    if (out.value) g.output(out.value, "value");
    if (all) g.output(out.logpAll, "logp_all");
    return compile(g, sessionOpts);
  };
  const [policySession, refSession, fullSession] = await Promise.all([
    critic ? scoreGraph(true) : null,
    scoreGraph(false),
    exactKl ? scoreGraph(false, true) : null,
  ]);
  // Frozen trunk weights (LoRA) as tensors, fed with the trainer's live params.
  const frozenTensors: Record<string, ort.Tensor> = Object.fromEntries(
    Object.entries(frozen ?? {}).map(([n, s]) => [n, tensor(dtype, s.shape, init[n])]),
  );
  /** The policy's frozen base under LoRA (the reference's arrays: never written). */
  const base = Object.fromEntries(policyNames.map((n) => [n, init[n]])) as Record<
    string,
    Float32Array | Float64Array
  >;
  const policyParams = (): Record<string, ort.Tensor | FloatArray> => {
    if (!layout.lora) return trainer.paramTensors();
    return mergeLora(
      base,
      trainer.params() as Record<string, Float32Array | Float64Array>,
      layout.lora,
    );
  };

  const runScore = async (
    params: Record<string, ort.Tensor | FloatArray>,
    seqs: LmSequences,
    all: boolean,
  ) => {
    const withValue = headNames(VALUE_HEAD).weight in params;
    if (withValue && !policySession) {
      throw new Error("LmProblem.rescore: a value head given to a critic-free problem");
    }
    const session: Session = all ? fullSession! : withValue ? policySession! : refSession;
    const shapes = withValue && !all ? policyShape : modelShape;
    if (withValue) params = { ...frozenTensors, ...params };
    const feeds: Record<string, ort.Tensor> = {};
    for (const [n, s] of Object.entries(shapes)) {
      const p = params[n];
      if (!p) throw new Error(`LmProblem.rescore: missing parameter "${n}"`);
      feeds[n] = ArrayBuffer.isView(p) ? tensor(dtype, s.shape, p) : p;
    }
    return await session.run({ ...feeds, ...sequenceFeeds(seqs) });
  };
  const rescore = async (
    params: Record<string, ort.Tensor | FloatArray>,
    seqs: LmSequences,
  ): Promise<{ logp: Float64Array; value?: Float64Array }> => {
    const out = await runScore(params, seqs, false);
    return {
      logp: Float64Array.from(out.logp.data as FloatArray),
      value: out.value ? Float64Array.from(out.value.data as FloatArray) : undefined,
    };
  };
  /** Log-probs of the sampled tokens and over the vocabulary (`[rows, cols, V]`, float32). */
  const rescoreAll = async (params: Record<string, ort.Tensor | FloatArray>, seqs: LmSequences) => {
    const out = await runScore(params, seqs, true);
    return {
      logp: Float64Array.from(out.logp.data as FloatArray),
      all: Float32Array.from(out.logp_all.data as FloatArray),
    };
  };
  const V = model.vocabSize;

  // The LoRA sampler: built at the first sample (after a resume has loaded the adapters; the
  // base never changes), fed the trainer's live adapters.
  let sampler: Promise<GptDecoder> | undefined;
  const sample = async (prompts: number[][], o: Omit<GenerateOptions, "session">) => {
    const session = sessionOpts;
    if (!layout.lora) {
      return generate({ cfg: model, params: trainer.paramTensors() }, prompts, { ...o, session });
    }
    sampler ??= GptDecoder.withWeights(model, base, session, layout.lora);
    const decoder = await sampler;
    return generate({ cfg: model, params: trainer.paramTensors() }, prompts, { ...o, decoder });
  };

  const extras = new WeakMap<Rollout, Extra>();
  let cursor = 0; // prompts handed out so far

  const problem: LmProblem = {
    cfg,
    trainer,
    rng,
    model,
    reference,
    policyParams,
    sample,
    release() {
      sampler?.then((d) => d.release());
      sampler = undefined;
    },
    rescore,
    models,
    async rollout(rng: Rng): Promise<Rollout> {
      const asked = opts.batch / k;
      const distinct = task.prompts(asked, cursor, rng);
      if (distinct.length !== asked) {
        throw new Error(
          `LmTask.prompts: ${distinct.length} prompts for a batch of ${opts.batch}` +
            (k > 1 ? ` (${asked} prompts × ${k} samples each)` : ""),
        );
      }
      cursor += distinct.length;
      const prompts = k === 1
        ? distinct
        : distinct.flatMap((p) => Array.from({ length: k }, () => p));
      const genAt = phaseClock();
      const gen = await sample(prompts, {
        ...opts.sampling,
        maxNewTokens: opts.maxNewTokens,
        eosTokenId: opts.eosTokenId,
        padTokenId: opts.padTokenId,
        rng,
      });
      phaseAdd("generation", genAt);
      const scoreAt = phaseClock();
      const { rows, cols, mask } = gen;
      const seqs: LmSequences = gen;
      // Values of the state before each response token (current params; GAE only), and the
      // reference's log-probs of the sampled tokens: one full forward each over prompt +
      // response. The exact KL scores both policies over the whole vocabulary instead.
      const [pol, ref, full] = await Promise.all([
        critic ? rescore(trainer.paramTensors(), seqs) : null,
        exactKl ? null : rescore(reference, seqs),
        exactKl
          ? Promise.all([rescoreAll(policyParams(), seqs), rescoreAll(reference, seqs)])
          : null,
      ]);
      const refLogp = full ? full[1].logp : ref!.logp;
      // The sampler's log-probs against a full forward: the values pass (GAE) or the exact-KL
      // pass measures it; a critic-free run without the exact KL makes no policy pass.
      const polLogp = pol?.logp ?? full?.[0].logp ?? null;
      const scored = await task.score(gen.prompts, gen.responses);
      const { scores, metrics: taskMetrics } = Array.isArray(scored) ? { scores: scored } : scored;
      if (scores.length !== rows || scores.some((s) => !Number.isFinite(s))) {
        throw new Error(`LmTask.score: expected ${rows} finite scores, got [${scores}]`);
      }
      phaseAdd("scoring", scoreAt);
      const n = rows * cols;
      const roll: Rollout = {
        rows,
        cols,
        rewards: new Float64Array(n),
        values: new Float64Array(n),
        actions: Int32Array.from(gen.tokens),
        logp: Float64Array.from(gen.logp),
        dones: new Uint8Array(n),
        mask: Uint8Array.from(mask),
        lastValues: new Float64Array(rows), // every response ends its episode: no bootstrap
        refLogp: new Float64Array(n),
        ...(exactKl ? { refKl: new Float64Array(n) } : {}),
        groupSize: k,
        exampleSize: cols,
        samples: rows,
        steps: 0,
        episodes: [],
      };
      let gap = 0;
      for (let i = 0; i < n; i++) {
        if (!mask[i]) continue; // padding keeps 0 everywhere
        if (pol) roll.values[i] = pol.value![i];
        roll.refLogp![i] = refLogp[i];
        if (polLogp) gap = Math.max(gap, Math.abs(polLogp[i] - gen.logp[i]));
        if (full) roll.refKl![i] = exactKlAt(full[0].all, full[1].all, i, V);
        roll.steps++;
      }
      for (let r = 0; r < rows; r++) {
        const len = gen.responses[r].length, last = r * cols + len - 1;
        roll.rewards[last] = scores[r];
        roll.dones[last] = 1;
        roll.episodes.push({ return: scores[r], length: len });
      }
      const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / rows;
      roll.metrics = {
        score_mean: mean(scores),
        response_length: roll.steps / rows,
        eos_rate: mean(gen.ended),
        // Largest |log π| difference between the sampler's KV-cache decode and a full forward
        // with the same params: the two must agree for the first PPO ratio to be 1.
        ...(polLogp ? { logp_gap: gap } : {}),
        ...taskMetrics,
      };
      extras.set(roll, { seqs, ...(full && klInLoss ? { refAll: full[1].all } : {}) });
      return roll;
    },
    inputs(roll: Rollout, examples: number[]): Record<string, ort.Tensor> {
      const extra = extras.get(roll);
      if (!extra) throw new Error("LmProblem.inputs: not a rollout of this problem");
      const out = sequenceFeeds(extra.seqs, examples);
      if (klInLoss) {
        const T = roll.cols, ref = new Arr(examples.length * T);
        examples.forEach((r, j) => ref.set(roll.refLogp!.subarray(r * T, (r + 1) * T), j * T));
        out.ref_logp = tensor(dtype, [examples.length, T], ref);
        if (exactKl) {
          const all = new Arr(examples.length * T * V), src = extra.refAll!;
          examples.forEach((r, j) => all.set(src.subarray(r * T * V, (r + 1) * T * V), j * T * V));
          out.ref_logp_all = tensor(dtype, [examples.length, T, V], all);
        }
      }
      return out;
    },
    // Sampling state lives in trainPpo's rng; only the dataset cursor is ours.
    state: () => ({ cursor }),
    load(s: unknown) {
      cursor = (s as { cursor: number }).cursor;
    },
  };
  return problem;
}

/** The scoring graphs' sequence inputs (the layout of {@link sequenceFeeds}). */
function sequenceInputs(g: Graph): [tokens: Value, mask: Value, pos: Value, actions: Value] {
  return [
    g.input("tokens", "int64", ["B", "S"]),
    g.input("attention_mask", "int64", ["B", "S"]),
    g.input("response_pos", "int64", ["T"]),
    g.input("actions", "int64", ["B", "T"]),
  ];
}

/**
 * Feeds of {@link sequenceInputs} for rows `rows` (default all) of `seqs`: tokens and mask
 * `[B, W + T]`, the columns whose logits score each response token `[T]`, the response tokens
 * `[B, T]`.
 */
function sequenceFeeds(seqs: LmSequences, rows?: number[]): Record<string, ort.Tensor> {
  const W = seqs.promptWidth, T = seqs.cols, S = W + T;
  const pick = rows ?? Array.from({ length: seqs.rows }, (_, r) => r), B = pick.length;
  const tok = new BigInt64Array(B * S), msk = new BigInt64Array(B * S);
  const act = new BigInt64Array(B * T);
  pick.forEach((r, j) => {
    for (let s = 0; s < S; s++) {
      tok[j * S + s] = BigInt(seqs.sequences[r * S + s]);
      msk[j * S + s] = BigInt(seqs.sequenceMask[r * S + s]);
    }
    for (let t = 0; t < T; t++) act[j * T + t] = BigInt(seqs.tokens[r * T + t]);
  });
  const pos = BigInt64Array.from({ length: T }, (_, t) => BigInt(W - 1 + t));
  return {
    tokens: tensor("int64", [B, S], tok),
    attention_mask: tensor("int64", [B, S], msk),
    response_pos: tensor("int64", [T], pos),
    actions: tensor("int64", [B, T], act),
  };
}

/** Σ_a p(a)·(log p(a) − log q(a)) at position `i` of `[positions, V]` log-prob arrays. */
function exactKlAt(logp: Float32Array, logq: Float32Array, i: number, V: number): number {
  let kl = 0;
  for (let a = i * V; a < (i + 1) * V; a++) kl += Math.exp(logp[a]) * (logp[a] - logq[a]);
  return kl;
}

/**
 * Log-probs of the response tokens under any params of a plain decoder `model`, for sequences
 * laid out as {@link generate} does (`[rows, cols]`, junk at padding): {@link LmProblem.rescore}
 * without a value head, for problems that build no PPO train step (DPO).
 */
export async function compileLmScorer(
  model: DecoderConfig,
  opts: { dtype?: "float32" | "float64"; device?: Device; threads?: number } = {},
): Promise<LmProblem["rescore"]> {
  const dtype = opts.dtype ?? "float32";
  const shapes = decoderShapes(model);
  const g = new Graph("lm_score");
  const params = Object.fromEntries(
    Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
  );
  const io = sequenceInputs(g);
  g.output(responseOutputs(g, model, params, ...io, false).logp, "logp");
  const session = await compile(g, { device: opts.device, threads: opts.threads });
  return async (p, seqs) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [n, s] of Object.entries(shapes)) {
      const v = p[n];
      if (!v) throw new Error(`LmProblem.rescore: missing parameter "${n}"`);
      feeds[n] = ArrayBuffer.isView(v) ? tensor(dtype, s.shape, v) : v;
    }
    const out = await session.run({ ...feeds, ...sequenceFeeds(seqs) });
    return { logp: Float64Array.from(out.logp.data as FloatArray) };
  };
}
