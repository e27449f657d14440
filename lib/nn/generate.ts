/**
 * {@link generate}: sample responses from a decoder policy and lay them out as a PPO rollout
 * (N rows × T response positions, left-padded prompts, padding after EOS, a response mask,
 * and log π(a) of every sampled token under the UNMODIFIED policy). Every random choice is
 * made here from one seeded {@link Rng}, so a seed fixes the samples byte for byte. Also the
 * choice of decoder per call: shared, weights compiled in (large float32 models, long
 * responses), or one the caller keeps.
 *
 * Separate from the decoder (gpt_decoder.ts), which runs the model and draws nothing, and
 * from the sampling distributions (sampling.ts): this file is the loop and its layout.
 * @module
 */
import type { SessionOptions, Tensor } from "../onnx/session.ts";
import type { Rng } from "../rng.ts";
import {
  argmax,
  checkSampling,
  logSumExp,
  sampleIndex,
  type SamplingOptions,
  samplingProbs,
  topKFilter,
  topPFilter,
} from "./sampling.ts";
import { contextLength, type DecoderConfig, decoderShapes } from "./decoder.ts";
import { checkToken, type FloatArray, paramsDtype } from "./decode_graph.ts";
import { GptDecoder } from "./gpt_decoder.ts";

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
  /**
   * Rows with the same prompt (a group's samples) share one prefill, its cache copied to
   * each ({@link GptDecoder.start}). Default true; false prefills every row (the same numbers,
   * k times the work: for tests and benches).
   */
  sharePrefill?: boolean;
  /**
   * A row that has ended leaves the batch: later decode steps run on the rows still sampling
   * ({@link GptDecoder.keep}; only where {@link GptDecoder.rowsMovable}). Default true; false
   * keeps every row in every step, an ended one masked out (the same numbers, for tests and
   * benches).
   */
  dropFinished?: boolean;
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
 * per response position (a prefill, then one step per token but the last); rows with the same
 * prompt share its prefill, and a row that has ended leaves the batch (`sharePrefill`,
 * `dropFinished`: the same numbers either way).
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
    sharePrefill: opts.sharePrefill,
  });
  const drop = (opts.dropFinished ?? true) && dec.rowsMovable;
  const tok = new Int32Array(rows * maxNew).fill(pad);
  const logp = new Float64Array(rows * maxNew), sampleLogp = new Float64Array(rows * maxNew);
  const mask = new Uint8Array(rows * maxNew), ended = new Uint8Array(rows);
  const active = Array<boolean>(rows).fill(true);
  // live[j]: the row at slot j of the decoder's batch (all rows, or those still sampling).
  let live = Array.from({ length: rows }, (_, b) => b);
  let cols = 0;
  for (let t = 0; t < maxNew; t++) {
    const next = new Int32Array(rows).fill(pad);
    for (const [j, b] of live.entries()) {
      if (!active[b]) continue;
      const logits = st.logits.subarray(j * V, (j + 1) * V);
      const u = opts.rng.uniform();
      // Greedy: the argmax, whose sampling probability is 1. Otherwise the decoder's
      // softmax(logits / T), then top-k and top-p (HF's warper order), each renormalised.
      let probs: ArrayLike<number> | undefined;
      if (sampling.temperature > 0 && !ort) probs = samplingProbs(logits, sampling);
      else if (sampling.temperature > 0) {
        probs = st.probs.subarray(j * V, (j + 1) * V);
        if (sampling.topK > 0 && sampling.topK < V) probs = topKFilter(probs, sampling.topK);
        if (sampling.topP < 1) probs = topPFilter(probs, sampling.topP);
      }
      const a = probs ? sampleIndex(probs, u) : argmax(logits);
      const i = b * maxNew + t;
      tok[i] = next[b] = a;
      logp[i] = ort ? st.logprobs[j * V + a] : logits[a] - logSumExp(logits);
      sampleLogp[i] = probs ? Math.log(probs[a]) : 0;
      mask[i] = 1;
      if (eos.has(a)) {
        active[b] = false;
        ended[b] = 1;
      }
    }
    cols = t + 1;
    if (t === maxNew - 1 || !active.some((x) => x)) break;
    if (drop && live.some((b) => !active[b])) {
      // At least two rows stay: ORT computes a one-row batch with other kernels (MLAS's
      // single-row GEMM; other last bits than the same row among others), so the last row
      // sampling keeps an ended one beside it, masked out as before.
      const keep = live.map((b) => active[b]);
      if (live.length > 1 && keep.filter((k) => k).length < 2) keep[keep.indexOf(false)] = true;
      dec.keep(st, keep);
      live = live.filter((_, j) => keep[j]);
    }
    await dec.step(st, live.map((b) => next[b]), live.map((b) => active[b]));
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
