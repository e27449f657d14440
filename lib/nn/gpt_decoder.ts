/**
 * {@link GptDecoder}: the compiled KV-cache decode step of one model (any decoder family) and
 * the state of a batch being decoded ({@link DecodeState}): prefill, one token per row per
 * step, the cache in two preallocated ping-pong buffers per block. Two variants: shared (the
 * weights fed at every call, one session per config and dtype per process) and with the
 * weights compiled in ({@link GptDecoder.withWeights}: pre-packed once; LoRA adapters fed
 * over a frozen base).
 *
 * Separate from the graph (decode_graph.ts) and from the sampling loop (generate.ts): this
 * file owns the sessions and the buffers; it draws nothing.
 * @module
 */
import {
  compile,
  compileWithConstants,
  type Session,
  type SessionOptions,
  type Tensor,
  tensor,
} from "../onnx/session.ts";
import { processSessions } from "../onnx/session_cache.ts";
import { type LoraConfig, loraShapes } from "./lora.ts";
import { traced } from "../setup_trace.ts";
import { type DecoderConfig, decoderShapes, kvLayout } from "./decoder.ts";
import {
  buildDecodeGraph,
  checkToken,
  type FloatArray,
  paramFeeds,
  paramsDtype,
} from "./decode_graph.ts";

/** State of a batch being decoded by {@link GptDecoder} (owned by it; read, do not write). */
export interface DecodeState {
  /** Rows in the batch: one per prompt, fewer after {@link GptDecoder.keep}. */
  rows: number;
  /** Positions in the cache: padded prompt width + tokens fed since. */
  length: number;
  /** Most positions this state can hold. */
  capacity: number;
  /**
   * Next-token logits of the last fed position, `[rows, V]` row-major (the first `rows` rows;
   * the buffer keeps its first size). Reused: overwritten by the next {@link GptDecoder.step}.
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

/**
 * One compiled KV-cache decode step for a config and dtype, compiled once per session cache
 * (by config, dtype and session options). Parameters are graph inputs, so the same session
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
    const { graph, presents } = traced("graph: decode", () => buildDecodeGraph(cfg, dtype, lora));
    // Without constant folding: it would materialise every Linear-layout `Transpose(W)` as a
    // new initializer before packing it (the 0.5B: 1.4 GB more peak, 4.4 s instead of 3.1 to
    // build); left in the graph, ORT fuses each into its MatMul (transB), packed from W itself.
    const session = await compileWithConstants(graph, weights, opts, {
      "optimization.disable_specified_optimizers": "ConstantFolding",
    });
    return new GptDecoder(cfg, dtype, session, presents, weights, lora);
  }

  /**
   * Whether a row's numbers are the same wherever it sits in the batch, so rows may be shared
   * ({@link start}) and dropped ({@link keep}) without changing a bit. ORT's Cos and Sin (the
   * RoPE angles, `headDim` values per row and token) compute a tensor's last 1-3 values with
   * scalar code and the rest in SIMD lanes (other last bits): measured, a row's values depend
   * on its place unless every row's width is a multiple of 4. The matmuls' results depend only
   * on the batch having one row or more (see {@link keep}); every other op of the step is per
   * row or exact. Real models' head sizes (64, 128) qualify; a tiny test model's 6 does not.
   */
  get rowsMovable(): boolean {
    return kvLayout(this.cfg).headDim % 4 === 0;
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
    // Shared decode steps (no weights: fed per call; immutable), memoised in the options'
    // session cache (the trial's own, or the process's outside a trial).
    return (opts.sessions ?? processSessions).memo(
      `decoder|${JSON.stringify([cfg, dtype, opts])}`,
      () => {
        const { graph, presents } = traced("graph: decode", () => buildDecodeGraph(cfg, dtype));
        return compile(graph, opts).then((s) => new GptDecoder(cfg, dtype, s, presents));
      },
    );
  }

  /**
   * Prefill: left-pad the prompts to the longest (pad id `padTokenId`, mask 0), run them
   * through the model with an empty cache, and return the state with the next-token logits
   * after each prompt. `capacity` is the most positions the state will hold (padded prompt
   * width + tokens to be fed). `params` are held (not copied) for the state's life: typed
   * arrays or ORT tensors such as a Trainer's `paramTensors()`, which stay valid until its
   * next step.
   *
   * Rows with the same prompt (a GRPO group's k samples) share one prefill (`sharePrefill`,
   * default true; only where {@link rowsMovable}): each distinct prompt runs once and its
   * cache, logits and mask are copied to the rows that repeat it. The model's rows never mix, so the copies hold the very numbers k
   * prefills would have computed (tests compare the bytes) at 1/k of the prefill's work.
   */
  async start(
    params: Record<string, FloatArray | Tensor> | undefined,
    prompts: number[][],
    opts: { padTokenId: number; capacity: number; temperature?: number; sharePrefill?: boolean },
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
    // src[b]: the distinct prompt row b repeats, numbered in order of first appearance.
    const first = new Map<string, number>(), src = new Int32Array(rows), distinct: number[][] = [];
    for (const [b, p] of prompts.entries()) {
      const key = opts.sharePrefill === false || !this.rowsMovable ? String(b) : p.join(",");
      let u = first.get(key);
      if (u === undefined) first.set(key, u = distinct.push(p) - 1);
      src[b] = u;
    }
    // One row runs other kernels than several (MLAS's single-row GEMM sums in another order:
    // other last bits), so a batch of rows is never prefilled as one: a second copy rides along.
    if (distinct.length === 1 && rows > 1) distinct.push(distinct[0]);
    const tokens: number[] = [], real: boolean[] = [];
    for (const p of distinct) {
      for (let s = 0; s < width; s++) {
        const pad = s < width - p.length;
        tokens.push(pad ? opts.padTokenId : p[s - (width - p.length)]);
        real.push(!pad);
      }
    }
    state.rows = distinct.length;
    await this.run(state, tokens, real, width);
    if (distinct.length < rows) broadcastRows(state, src, H * width * hd, cfg.vocabSize);
    return state;
  }

  /**
   * Drop the rows whose `keep[b]` is false (rows that have finished) from the batch: the cache,
   * mask and outputs of the kept rows move up, in order, so later steps run on the kept rows
   * alone (`state.rows` of them; row j of the next step's tokens and outputs is the j-th kept
   * row). Each row's numbers are its own (no row reads another's), so the kept rows decode
   * exactly as they would beside the finished ones, as long as at least two rows are kept:
   * ORT runs a one-row product with other kernels (other last bits), so a caller keeps a
   * finished row beside the last one sampling ({@link generate} does).
   */
  keep(state: DecodeState, keep: ArrayLike<boolean>): void {
    if (!this.rowsMovable) {
      throw new Error("GptDecoder.keep: this model's rows are not movable (see rowsMovable)");
    }
    if (keep.length !== state.rows) {
      throw new RangeError(`GptDecoder.keep: ${keep.length} flags for ${state.rows} rows`);
    }
    const { kvHeads: H, headDim: hd } = kvLayout(this.cfg);
    const blk = H * state.length * hd, V = this.cfg.vocabSize;
    let j = 0;
    for (let b = 0; b < state.rows; b++) {
      if (!keep[b]) continue;
      if (j !== b) {
        for (const c of state.kv) {
          c.key[0].copyWithin(j * blk, b * blk, (b + 1) * blk);
          c.value[0].copyWithin(j * blk, b * blk, (b + 1) * blk);
        }
        for (const a of [state.logits, state.logprobs, state.probs]) {
          a.copyWithin(j * V, b * V, (b + 1) * V);
        }
        state.mask[j] = state.mask[b];
        state.realCount[j] = state.realCount[b];
      }
      j++;
    }
    state.mask.length = j;
    state.rows = j;
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
      // Prefixes: a shared prefill or dropped rows run fewer rows than the buffers hold.
      logits: tensor(dtype, [B, 1, V], state.logits.subarray(0, B * V)),
      logprobs: tensor(dtype, [B, 1, V], state.logprobs.subarray(0, B * V)),
      probs: tensor(dtype, [B, 1, V], state.probs.subarray(0, B * V)),
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

/**
 * Spread a prefill run on the distinct prompts to every row: row b takes distinct row
 * `src[b]`'s cache block (`blk` values per layer tensor: `[H, width, hd]`), outputs and mask.
 * In place, from the last row down: src[b] ≤ b, and a block is overwritten only after every
 * row that reads it (rows ≥ their source) has been filled.
 */
function broadcastRows(state: DecodeState, src: Int32Array, blk: number, V: number): void {
  const rows = src.length;
  const mask = state.mask.slice(), count = state.realCount.slice();
  for (let b = rows - 1; b >= 0; b--) {
    const u = src[b];
    for (const c of state.kv) {
      c.key[0].copyWithin(b * blk, u * blk, (u + 1) * blk);
      c.value[0].copyWithin(b * blk, u * blk, (u + 1) * blk);
    }
    for (const a of [state.logits, state.logprobs, state.probs]) {
      a.copyWithin(b * V, u * V, (u + 1) * V);
    }
    state.mask[b] = u === b ? mask[u] : mask[u].slice();
    state.realCount[b] = count[u];
  }
  state.rows = rows;
}
