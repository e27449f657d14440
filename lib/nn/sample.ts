/**
 * Sampling from a GPT policy with a KV cache: the model runs as one compiled ONNX decode step
 * (prefill = a step with an empty cache), and every random choice is made here in TypeScript
 * from one seeded {@link Rng}, so a seed fixes the samples byte for byte.
 *
 * {@link generate} turns a batch of prompts into a PPO rollout: N rows × T response positions,
 * left-padded prompts, padding after EOS, a response mask, and log π(a) of every sampled token
 * under the UNMODIFIED policy (see {@link Generation.logp}).
 *
 * @example
 * ```ts
 * const cfg: GptConfig = { vocabSize: 64, nPositions: 64, nEmbd: 32, nLayer: 2, nHead: 4 };
 * const params = initGpt(cfg, new Rng(1), "float32");
 * const out = await generate({ cfg, params }, [[1, 2, 3], [4]], {
 *   maxNewTokens: 16, temperature: 1, topP: 0.9, eosTokenId: 0, padTokenId: 0, rng: new Rng(7),
 * });
 * out.tokens; // Int32Array [rows * cols], padTokenId after each row's EOS
 * out.logp; // Float64Array, log π(a) of each sampled token (0 where mask is 0)
 * ```
 * @module
 */
import { Graph, type Value } from "../onnx/graph.ts";
import {
  compile,
  compileWithConstants,
  type Session,
  type SessionOptions,
  type Tensor,
  tensor,
} from "../onnx/session.ts";
import type { Rng } from "../rng.ts";
import type { KvCache } from "./attention.ts";
import { applyLora, type LoraConfig, loraShapes } from "./lora.ts";
import { checkSampling, logSumExp, samplingProbs, topKFilter, topPFilter } from "./sampling.ts";
import {
  contextLength,
  type DecoderConfig,
  decoderDecodeStep,
  decoderShapes,
  kvLayout,
} from "./decoder.ts";

export {
  argmax,
  logSoftmax,
  sampleIndex,
  type SamplingOptions,
  samplingProbs,
  topKFilter,
  topPFilter,
} from "./sampling.ts";
import { argmax, sampleIndex, type SamplingOptions } from "./sampling.ts";

// ---- decode session ----------------------------------------------------------

/** A float parameter / activation buffer. */
export type FloatArray = Float32Array | Float64Array;

/**
 * A policy to sample from: a config and its parameters by {@link gptShapes} name, as typed
 * arrays or ORT tensors (e.g. a Trainer's live `paramTensors()`: read in place, not copied).
 * Names the config does not know are ignored, so a trainer holding a value head too can be
 * passed whole.
 */
export interface GptPolicy {
  /** The model's hyperparameters (any decoder family). */
  cfg: DecoderConfig;
  /** Weights by parameter name, all float32 or all float64 (the dtype of the decode graph). */
  params: Record<string, FloatArray | Tensor>;
}

/** State of a batch being decoded by {@link GptDecoder} (owned by it; read, do not write). */
export interface DecodeState {
  /** Rows. */
  rows: number;
  /** Positions in the cache: padded prompt width + tokens fed since. */
  length: number;
  /** Most positions this state can hold. */
  capacity: number;
  /**
   * Next-token logits of the last fed position, `[rows, V]` row-major. A view of a reused
   * buffer: overwritten by the next {@link GptDecoder.step}.
   */
  logits: FloatArray;
  /** log_softmax(logits), `[rows, V]`, computed by ORT beside them (same reuse as `logits`). */
  logprobs: FloatArray;
  /**
   * softmax(logits / temperature), `[rows, V]` (the state's `temperature`; 1 for greedy), the
   * sampling distribution before top-k / top-p: computed by ORT's vectorised kernels, so no
   * pass over the vocabulary runs in JS (for a 152K vocabulary at 8 rows, three such passes
   * took 36 ms per token).
   */
  probs: FloatArray;
  /** The temperature `probs` is computed at. */
  temperature: number;
  /** Attention mask over the cached positions, per row (1 = real token, 0 = padding). */
  mask: Uint8Array[];
  /** Real tokens per row so far (= the next real token's position id). */
  realCount: Int32Array;
  /** Parameter feeds, by name. */
  params: Record<string, Tensor>;
  /** Ping-pong KV buffers per block: `[0]` holds the cache, `[1]` receives the next one. */
  kv: { key: [FloatArray, FloatArray]; value: [FloatArray, FloatArray] }[];
}

/** Shared decode steps (no weights: fed per call; immutable): a memo, see `compile`'s cache. */
const decoders = new Map<string, Promise<GptDecoder>>();

/**
 * One compiled KV-cache decode step for a config and dtype, compiled once per process (cached
 * by config, dtype and session options). Parameters are graph inputs, so the same session
 * serves any weights: a trainer's current params are passed at every call.
 *
 * The cache lives in two preallocated buffers per block tensor, sized for the batch's
 * capacity: a step reads the past from one (a `[B, H, P, hd]` prefix view, no copy in) and ORT
 * writes the presents into the other, so decoding allocates no cache memory per token.
 *
 * @example
 * ```ts
 * const dec = await GptDecoder.get(cfg, "float32");
 * const st = await dec.start(params, [[5, 6, 7], [8]], { padTokenId: 0, capacity: 12 });
 * st.logits; // next-token logits after each prompt, [2, V]
 * await dec.step(st, [3, 4]); // one token per row; st.logits now follows them
 * ```
 */
export class GptDecoder {
  private constructor(
    readonly cfg: DecoderConfig,
    readonly dtype: "float32" | "float64",
    readonly session: Session,
    private readonly presents: { key: string; value: string }[],
    /** The weights compiled into the session ({@link withWeights}); none for a shared one. */
    readonly weights?: Record<string, Tensor>,
    /** LoRA adapters fed at each call over the compiled-in base ({@link withWeights}). */
    readonly lora?: LoraConfig,
  ) {}

  /**
   * A decoder with `params` compiled in as constants (compileWithConstants): ORT pre-packs
   * every weight matrix once, where the shared decoder of {@link get} repacks each one at
   * every token (an input may change between runs). Measured on GPT-2 small's LM head
   * (768 × 50257, 8 rows): 11 ms per product packed against 27 ms as an input. Its own
   * session, built per call (a second or so at 124M parameters): the params' memory must not
   * change until {@link release}. `start` is then given no params. float32 gains; float64
   * runs the same kernels either way.
   *
   * With `lora`, `params` are the frozen base and the session takes the adapters as inputs,
   * applied as PEFT does (`x W + s (x A) B`, lora.ts `factored`): `start` is given the current
   * adapters (other names are ignored), so one decoder serves a whole LoRA run.
   */
  static async withWeights(
    cfg: DecoderConfig,
    params: Record<string, FloatArray | Tensor>,
    opts: SessionOptions = {},
    lora?: LoraConfig,
  ): Promise<GptDecoder> {
    const dtype = paramsDtype(Object.fromEntries(
      Object.keys(decoderShapes(cfg)).map((n) => [n, params[n]]).filter(([, p]) => p),
    ));
    const weights = paramFeeds(decoderShapes(cfg), dtype, params);
    const { graph, presents } = buildDecodeGraph(cfg, dtype, lora);
    // Without constant folding: it would materialise every Linear-layout `Transpose(W)` as a
    // new initializer before packing it (the 0.5B: 1.4 GB more peak, 4.4 s instead of 3.1 to
    // build); left in the graph, ORT fuses each into its MatMul (transB), packed from W itself.
    const session = await compileWithConstants(graph, weights, opts, {
      "optimization.disable_specified_optimizers": "ConstantFolding",
    });
    return new GptDecoder(cfg, dtype, session, presents, weights, lora);
  }

  /** Free the session of a {@link withWeights} decoder (the shared ones live on). */
  release(): void {
    if (this.weights) this.session.release();
  }

  /** The decoder for `cfg` and `dtype` (compiled on first use). */
  static get(
    cfg: DecoderConfig,
    dtype: "float32" | "float64",
    opts: SessionOptions = {},
  ): Promise<GptDecoder> {
    const key = JSON.stringify([cfg, dtype, opts]);
    let d = decoders.get(key);
    if (!d) {
      const { graph, presents } = buildDecodeGraph(cfg, dtype);
      d = compile(graph, opts).then((s) => new GptDecoder(cfg, dtype, s, presents));
      d.catch(() => decoders.delete(key));
      decoders.set(key, d);
    }
    return d;
  }

  /**
   * Prefill: left-pad the prompts to the longest (pad id `padTokenId`, mask 0), run them
   * through the model with an empty cache, and return the state with the next-token logits
   * after each prompt. `capacity` is the most positions the state will hold (padded prompt
   * width + tokens to be fed). `params` are held (not copied) for the state's life: typed
   * arrays or ORT tensors such as a Trainer's `paramTensors()`, which stay valid until its
   * next step.
   */
  async start(
    params: Record<string, FloatArray | Tensor> | undefined,
    prompts: number[][],
    opts: { padTokenId: number; capacity: number; temperature?: number },
  ): Promise<DecodeState> {
    const { cfg, dtype } = this;
    const rows = prompts.length;
    if (rows === 0) throw new RangeError("GptDecoder.start: no prompts");
    const width = Math.max(...prompts.map((p) => p.length));
    for (const [i, p] of prompts.entries()) {
      if (p.length === 0) throw new RangeError(`GptDecoder.start: prompt ${i} is empty`);
      for (const t of p) checkToken(cfg, t, `prompt ${i}`);
    }
    checkToken(cfg, opts.padTokenId, "padTokenId");
    if (!(opts.capacity >= width)) {
      throw new RangeError(`GptDecoder.start: capacity ${opts.capacity} < prompt width ${width}`);
    }
    const { kvHeads: H, headDim: hd } = kvLayout(cfg);
    const Arr = dtype === "float32" ? Float32Array : Float64Array;
    const n = rows * H * opts.capacity * hd;
    const state: DecodeState = {
      rows,
      length: 0,
      capacity: opts.capacity,
      logits: new Arr(rows * cfg.vocabSize),
      logprobs: new Arr(rows * cfg.vocabSize),
      probs: new Arr(rows * cfg.vocabSize),
      temperature: opts.temperature || 1,
      mask: prompts.map(() => new Uint8Array(opts.capacity)),
      realCount: new Int32Array(rows),
      params: !this.weights
        ? paramFeeds(decoderShapes(cfg), dtype, params ?? {})
        : this.lora
        ? paramFeeds(loraShapes(decoderShapes(cfg), this.lora), dtype, params ?? {})
        : {},
      kv: Array.from({ length: cfg.nLayer }, () => ({
        key: [new Arr(n), new Arr(n)],
        value: [new Arr(n), new Arr(n)],
      })),
    };
    const tokens: number[] = [], real: boolean[] = [];
    for (const p of prompts) {
      for (let s = 0; s < width; s++) {
        const pad = s < width - p.length;
        tokens.push(pad ? opts.padTokenId : p[s - (width - p.length)]);
        real.push(!pad);
      }
    }
    await this.run(state, tokens, real, width);
    return state;
  }

  /**
   * Feed one token per row and update `state.logits` and the cache. `real[b] = false` marks a
   * row that has finished: its token is then padding, masked out like a prompt pad.
   */
  async step(
    state: DecodeState,
    tokens: ArrayLike<number>,
    real?: ArrayLike<boolean>,
  ): Promise<void> {
    if (tokens.length !== state.rows) {
      throw new RangeError(`GptDecoder.step: ${tokens.length} tokens for ${state.rows} rows`);
    }
    const t = Array.from(tokens),
      r = Array.from({ length: state.rows }, (_, b) => !real || real[b]);
    t.forEach((x, b) => r[b] && checkToken(this.cfg, x, `row ${b}`));
    await this.run(state, t, r, 1);
  }

  /** Run S new positions per row (`tokens`, `real`: [rows, S] row-major). */
  private async run(
    state: DecodeState,
    tokens: number[],
    real: boolean[],
    S: number,
  ): Promise<void> {
    const { cfg, dtype } = this;
    const { kvHeads: H, headDim: hd } = kvLayout(cfg);
    const B = state.rows, V = cfg.vocabSize;
    const P = state.length, K = P + S;
    if (K > state.capacity) {
      throw new RangeError(`GptDecoder: ${K} positions exceed the capacity ${state.capacity}`);
    }
    // Position ids as HF's generate computes them: cumsum(mask) - 1, clipped at 0.
    const positions = new BigInt64Array(B * S);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) {
        const r = real[b * S + s];
        state.mask[b][P + s] = r ? 1 : 0;
        if (r) state.realCount[b]++;
        positions[b * S + s] = BigInt(Math.max(state.realCount[b] - 1, 0));
      }
    }
    const mask = new BigInt64Array(B * K);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < K; j++) mask[b * K + j] = BigInt(state.mask[b][j]);
    }
    const feeds: Record<string, Tensor> = {
      ...state.params,
      tokens: tensor("int64", [B, S], BigInt64Array.from(tokens, BigInt)),
      attention_mask: tensor("int64", [B, K], mask),
      position_ids: tensor("int64", [B, S], positions),
      temperature: tensor(dtype, [1], [state.temperature]),
    };
    const fetches: Record<string, Tensor> = {
      logits: tensor(dtype, [B, 1, V], state.logits),
      logprobs: tensor(dtype, [B, 1, V], state.logprobs),
      probs: tensor(dtype, [B, 1, V], state.probs),
    };
    state.kv.forEach((c, i) => {
      for (const kind of ["key", "value"] as const) {
        feeds[`past.${i}.${kind}`] = tensor(
          dtype,
          [B, H, P, hd],
          c[kind][0].subarray(0, B * H * P * hd),
        );
        fetches[this.presents[i][kind]] = tensor(
          dtype,
          [B, H, K, hd],
          c[kind][1].subarray(0, B * H * K * hd),
        );
      }
    });
    await this.session.run(feeds, fetches);
    for (const c of state.kv) {
      c.key.reverse();
      c.value.reverse();
    }
    state.length = K;
  }
}

function checkToken(cfg: DecoderConfig, t: number, where: string): void {
  if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) {
    throw new RangeError(`GptDecoder: ${where}: token ${t} is not in [0, ${cfg.vocabSize})`);
  }
}

/**
 * Feeds for the parameters of `shapes`: tensors as given, typed arrays wrapped (no copy if
 * the dtype fits).
 */
function paramFeeds(
  shapes: Record<string, { shape: number[] }>,
  dtype: "float32" | "float64",
  params: Record<string, FloatArray | Tensor>,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [n, { shape }] of Object.entries(shapes)) {
    const p = params[n];
    if (!p) throw new Error(`GptDecoder: missing parameter "${n}"`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (ArrayBuffer.isView(p)) {
      if (p.length !== size) {
        throw new Error(`GptDecoder: parameter "${n}" has ${p.length} values, expected ${size}`);
      }
      out[n] = tensor(dtype, shape, p);
    } else {
      if (p.type !== dtype || p.dims.join() !== shape.join()) {
        throw new Error(
          `GptDecoder: parameter "${n}" is ${p.type}[${p.dims}], expected ${dtype}[${shape}]`,
        );
      }
      out[n] = p;
    }
  }
  return out;
}

/**
 * The decode-step graph: params, past caches, new tokens, mask, positions -> logits, presents.
 * The presents are outputs under their own value names (`presents`), not renamed through an
 * Identity: each is also read by its layer's attention, so a renaming Identity would copy the
 * whole cache every step.
 */
function buildDecodeGraph(
  cfg: DecoderConfig,
  dtype: "float32" | "float64",
  lora?: LoraConfig,
): { graph: Graph; presents: { key: string; value: string }[] } {
  const g = new Graph("gpt_decode");
  const inputs = (shapes: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    );
  const base = inputs(decoderShapes(cfg));
  const params = lora
    ? applyLora(g, lora, base, inputs(loraShapes(decoderShapes(cfg), lora)), { factored: true })
    : base;
  const { kvHeads: H, headDim: hd } = kvLayout(cfg);
  const past: KvCache[] = Array.from({ length: cfg.nLayer }, (_, i) => ({
    key: g.input(`past.${i}.key`, dtype, ["B", H, "P", hd]),
    value: g.input(`past.${i}.value`, dtype, ["B", H, "P", hd]),
  }));
  const tokens = g.input("tokens", "int64", ["B", "S"]);
  const mask = g.input("attention_mask", "int64", ["B", "K"]);
  const positions = g.input("position_ids", "int64", ["B", "S"]);
  const out = decoderDecodeStep(g, cfg, params, tokens, past, mask, positions, {
    lastOnly: true,
  });
  g.output(out.logits, "logits");
  // The per-token passes over the vocabulary, as ORT kernels: log-probs (PPO's logp) and the
  // tempered distribution (sampling).
  g.output(g.logSoftmax(out.logits, -1), "logprobs");
  g.output(g.softmax(g.div(out.logits, g.input("temperature", dtype, [1])), -1), "probs");
  const own = (v: Value) =>
    g.output(g.producer.has(v) && !g.outputs.includes(v) ? v : g.identity(v));
  const presents = out.presents.map((c) => ({ key: own(c.key).name, value: own(c.value).name }));
  return { graph: g, presents };
}

/** The dtype of a policy's parameters (all must agree). */
function paramsDtype(params: Record<string, FloatArray | Tensor>): "float32" | "float64" {
  const kinds = new Set(
    Object.values(params).map((p) =>
      ArrayBuffer.isView(p) ? (p instanceof Float64Array ? "float64" : "float32") : p.type
    ),
  );
  if (kinds.size !== 1 || !(kinds.has("float32") || kinds.has("float64"))) {
    throw new Error(`generate: parameters must be all float32 or all float64, got ${[...kinds]}`);
  }
  return [...kinds][0] as "float32" | "float64";
}

// ---- generate ------------------------------------------------------------------

/** Options of {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens sampled per row (≥ 1). Prompt length + this must fit in `nPositions`. */
  maxNewTokens: number;
  /**
   * Ends a row; the EOS token is part of the response (mask 1). A list for models with several
   * end tokens (Llama 3: `<|end_of_text|>`, `<|eot_id|>`). Omitted: no row ends early.
   */
  eosTokenId?: number | readonly number[];
  /** Fills prompts' left padding and the response positions after a row has ended. */
  padTokenId: number;
  /** The one generator: exactly one `uniform()` per sampled token (see {@link generate}). */
  rng: Rng;
  /** Options of the decode session (device, threads). */
  session?: SessionOptions;
  /**
   * Compile the weights into the decode session ({@link GptDecoder.withWeights}): pre-packed
   * once per call instead of repacked at every token. Default "auto": for float32 models of
   * at least {@link PACK_MIN_PARAMS} parameters on the CPU sampling at least
   * {@link PACK_MIN_TOKENS} tokens, where the packing saves more than building the session
   * costs. The tokens are the same; logits may differ in the last bits (another kernel path).
   */
  packWeights?: boolean | "auto";
  /**
   * A decoder to run on, kept by the caller (not released here): e.g. one
   * {@link GptDecoder.withWeights} over frozen weights, reused by every call. Its config must
   * be the model's; `packWeights` is then ignored.
   */
  decoder?: GptDecoder;
  /**
   * Where the per-token passes over the vocabulary run (the log-softmax behind `logp`, the
   * tempered softmax behind the draw): "ort", the decode step's own outputs (vectorised, in
   * the model's dtype), or "js", float64 over the logits here. Default: "ort" from
   * {@link ORT_VOCAB_MIN} tokens (for a 152K vocabulary at 8 rows the JS passes took 12 ms per
   * greedy token, 36 per sampled one), "js" below it, where they cost nothing and keep the
   * results of runs made before the ORT passes existed byte for byte.
   */
  vocabPasses?: "ort" | "js";
}

/** Smallest vocabulary whose per-token passes run in ORT by default (see `vocabPasses`). */
export const ORT_VOCAB_MIN = 16384;

/**
 * Smallest float32 model (parameters) whose generate compiles its weights in by default.
 * Measured (2 threads): building the packed session costs 6-7 ms per million parameters
 * (GPT-2 small 0.75 s, Qwen2.5-0.5B 3.1 s) and saves 0.17-0.2 ms per million per decode step
 * (GPT-2 small 54 -> 28 ms per token at 8 rows, the 0.5B 206 -> 118 ms): it pays from 30-40
 * tokens on.
 */
export const PACK_MIN_PARAMS = 20_000_000;
/** Fewest new tokens for which generate compiles the weights in by default. */
export const PACK_MIN_TOKENS = 64;

/**
 * A batch of sampled responses laid out as a PPO rollout: `rows` × `cols` response positions,
 * row-major, padded after each row's end. Response token t of every row sits at column
 * `promptWidth + t` of `sequences`, so logits at column `promptWidth + t - 1` of a forward pass
 * over `sequences` score it.
 */
export interface Generation {
  /** Rows: one per prompt. */
  rows: number;
  /** Response positions: the decode steps run (≤ maxNewTokens; fewer if every row ended). */
  cols: number;
  /** The prompts as given. */
  prompts: number[][];
  /** Per row: the sampled tokens, up to and including EOS, without padding. */
  responses: number[][];
  /** `[rows, cols]`: sampled tokens, `padTokenId` after a row's end. */
  tokens: Int32Array;
  /**
   * `[rows, cols]`: log π(a_t | prompt, a_<t) of each sampled token under the UNMODIFIED policy,
   * i.e. log_softmax of the raw logits (no temperature, top-k or top-p); 0 where `mask` is 0.
   * This is what PPO's ratio π_θ(a)/π_old(a), its KL terms and a re-scoring forward pass
   * compute, so the ratio is exactly 1 before the first update. Tokens are drawn from the
   * sampling distribution q (temperature/top-k/top-p); when q ≠ π the rollout is slightly
   * off-policy — `sampleLogp` gives log q(a) for callers that want to correct for it.
   */
  logp: Float64Array;
  /** `[rows, cols]`: log q(a) of each token under the sampling distribution (0 for greedy). */
  sampleLogp: Float64Array;
  /** `[rows, cols]`: 1 = a sampled token (EOS included), 0 = padding after the end. */
  mask: Uint8Array;
  /** Per row: 1 if it ended with EOS, 0 if it was cut at `maxNewTokens`. */
  ended: Uint8Array;
  /** Width of the left-padded prompts (the longest prompt's length). */
  promptWidth: number;
  /** `[rows, promptWidth + cols]`: left-padded prompt, then the response and its padding. */
  sequences: Int32Array;
  /** `[rows, promptWidth + cols]`: 1 on prompt and response tokens, 0 on padding. */
  sequenceMask: Uint8Array;
}

/**
 * Sample responses to `prompts` (token arrays of any lengths ≥ 1) from a GPT policy with a KV
 * cache. Prompts are left-padded and position ids are `cumsum(mask) - 1` (as HF's `generate`),
 * so a prompt gets the same logits whatever the batch around it.
 *
 * Randomness: exactly one `opts.rng.uniform()` per sampled token — rows in order within a
 * step, steps in order, finished rows none, greedy decoding included (so the generator's
 * position depends only on how many tokens were sampled, not on the sampling settings). The
 * token is the inverse-CDF pick of that draw over {@link samplingProbs}, so one seed gives the
 * same samples byte for byte.
 *
 * A row stops at `eosTokenId` (kept, mask 1); its later positions hold `padTokenId` with mask
 * 0. Decoding stops when every row has stopped or after `maxNewTokens`. The model runs once
 * per response position (a prefill, then one step per token but the last).
 *
 * @example
 * ```ts
 * const roll = await generate({ cfg, params: trainer.paramTensors() }, prompts, {
 *   maxNewTokens: 32, temperature: 1, eosTokenId: 2, padTokenId: 0, rng,
 * });
 * // roll.tokens / roll.logp / roll.mask: rows × cols, ready for GAE and the PPO batch
 * ```
 */
export async function generate(
  model: GptPolicy,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<Generation> {
  const sampling = checkSampling(opts);
  const { cfg } = model;
  const maxNew = opts.maxNewTokens;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new RangeError(`generate: maxNewTokens must be an integer >= 1, got ${maxNew}`);
  }
  const eos = new Set(
    opts.eosTokenId === undefined
      ? []
      : typeof opts.eosTokenId === "number"
      ? [opts.eosTokenId]
      : opts.eosTokenId,
  );
  for (const e of eos) checkToken(cfg, e, "eosTokenId");
  for (const [i, p] of prompts.entries()) {
    if (p.length + maxNew > contextLength(cfg)) {
      throw new RangeError(
        `generate: prompt ${i} (${p.length} tokens) + maxNewTokens ${maxNew} exceeds ` +
          `context length ${contextLength(cfg)}`,
      );
    }
  }
  if (opts.decoder) {
    if (JSON.stringify(opts.decoder.cfg) !== JSON.stringify(cfg)) {
      throw new Error("generate: opts.decoder was built for another model config");
    }
    return await decode(opts.decoder, model, prompts, opts, sampling, eos);
  }
  const dtype = paramsDtype(model.params);
  const pack = opts.packWeights ?? "auto";
  const packed = pack === "auto"
    ? dtype === "float32" && (opts.session?.device ?? "cpu") === "cpu" &&
      paramCount(cfg) >= PACK_MIN_PARAMS && maxNew >= PACK_MIN_TOKENS
    : pack;
  const dec = packed
    ? await GptDecoder.withWeights(cfg, model.params, opts.session)
    : await GptDecoder.get(cfg, dtype, opts.session);
  try {
    return await decode(dec, model, prompts, opts, sampling, eos);
  } finally {
    dec.release();
  }
}

/** Parameters of a decoder config. */
function paramCount(cfg: DecoderConfig): number {
  return Object.values(decoderShapes(cfg)).reduce(
    (n, { shape }) => n + shape.reduce((a, b) => a * b, 1),
    0,
  );
}

/** generate's loop on a decoder. */
async function decode(
  dec: GptDecoder,
  model: GptPolicy,
  prompts: number[][],
  opts: GenerateOptions,
  sampling: ReturnType<typeof checkSampling>,
  eos: Set<number>,
): Promise<Generation> {
  const { cfg } = model;
  const maxNew = opts.maxNewTokens;
  const rows = prompts.length, V = cfg.vocabSize, pad = opts.padTokenId;
  const ort = (opts.vocabPasses ?? (V >= ORT_VOCAB_MIN ? "ort" : "js")) === "ort";
  const width = Math.max(0, ...prompts.map((p) => p.length));
  // The last sampled token is never fed back, so the cache needs maxNew - 1 positions.
  const st = await dec.start(model.params, prompts, {
    padTokenId: pad,
    capacity: width + maxNew - 1,
    temperature: sampling.temperature,
  });
  const tok = new Int32Array(rows * maxNew).fill(pad);
  const logp = new Float64Array(rows * maxNew), sampleLogp = new Float64Array(rows * maxNew);
  const mask = new Uint8Array(rows * maxNew), ended = new Uint8Array(rows);
  const active = Array<boolean>(rows).fill(true);
  let cols = 0;
  for (let t = 0; t < maxNew; t++) {
    const next = new Int32Array(rows).fill(pad);
    for (let b = 0; b < rows; b++) {
      if (!active[b]) continue;
      const logits = st.logits.subarray(b * V, (b + 1) * V);
      const u = opts.rng.uniform();
      // Greedy: the argmax, whose sampling probability is 1. Otherwise the decoder's
      // softmax(logits / T), then top-k and top-p (HF's warper order), each renormalised.
      let probs: ArrayLike<number> | undefined;
      if (sampling.temperature > 0 && !ort) probs = samplingProbs(logits, sampling);
      else if (sampling.temperature > 0) {
        probs = st.probs.subarray(b * V, (b + 1) * V);
        if (sampling.topK > 0 && sampling.topK < V) probs = topKFilter(probs, sampling.topK);
        if (sampling.topP < 1) probs = topPFilter(probs, sampling.topP);
      }
      const a = probs ? sampleIndex(probs, u) : argmax(logits);
      const i = b * maxNew + t;
      tok[i] = next[b] = a;
      logp[i] = ort ? st.logprobs[b * V + a] : logits[a] - logSumExp(logits);
      sampleLogp[i] = probs ? Math.log(probs[a]) : 0;
      mask[i] = 1;
      if (eos.has(a)) {
        active[b] = false;
        ended[b] = 1;
      }
    }
    cols = t + 1;
    if (t === maxNew - 1 || !active.some((x) => x)) break;
    await dec.step(st, next, active);
  }

  // Compact to the columns actually used and lay out the full sequences.
  const pick = <T extends Int32Array | Float64Array | Uint8Array>(a: T): T => {
    const out = new (a.constructor as new (n: number) => T)(rows * cols);
    for (let b = 0; b < rows; b++) {
      out.set(a.subarray(b * maxNew, b * maxNew + cols) as ArrayLike<number> & T, b * cols);
    }
    return out;
  };
  const W = width + cols;
  const sequences = new Int32Array(rows * W).fill(pad), sequenceMask = new Uint8Array(rows * W);
  const responses: number[][] = [];
  for (let b = 0; b < rows; b++) {
    const p = prompts[b], off = width - p.length;
    for (let s = 0; s < p.length; s++) {
      sequences[b * W + off + s] = p[s];
      sequenceMask[b * W + off + s] = 1;
    }
    const r: number[] = [];
    for (let t = 0; t < cols && mask[b * maxNew + t]; t++) {
      r.push(tok[b * maxNew + t]);
      sequences[b * W + width + t] = tok[b * maxNew + t];
      sequenceMask[b * W + width + t] = 1;
    }
    responses.push(r);
  }
  return {
    rows,
    cols,
    prompts: prompts.map((p) => [...p]),
    responses,
    tokens: pick(tok),
    logp: pick(logp),
    sampleLogp: pick(sampleLogp),
    mask: pick(mask),
    ended,
    promptWidth: width,
    sequences,
    sequenceMask,
  };
}
