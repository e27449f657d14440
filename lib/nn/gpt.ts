/**
 * A GPT-2 transformer as a graph builder, top to bottom in one file (nanoGPT-style):
 * token + position embeddings, `nLayer` pre-LayerNorm blocks (causal multi-head
 * self-attention, then a tanh-GELU MLP), a final LayerNorm and an LM head tied to the
 * token embedding.
 *
 * Parameters use the Hugging Face GPT-2 names and layouts (`transformer.h.0.attn.c_attn.weight`
 * is `[d, 3d]`, applied as `x @ W + b` like HF's Conv1D), so a later step can read and write
 * a Hugging Face folder without transposing anything.
 *
 * Batch and time are symbolic (`"B"`, `"T"` in the caller's inputs), so one graph serves any
 * batch size and sequence length up to `nPositions`.
 *
 * Padding: `attentionMask` is `[B, T]`, nonzero = real token, 0 = padding, and may pad on
 * either side. Padding keys are masked out of every attention row; position ids count only
 * real tokens (`cumsum(mask) - 1`, clipped at 0 — what HF's `generate` feeds GPT-2), so a
 * left-padded prompt gives the same logits at its real positions as the unpadded prompt.
 * Outputs at padding positions are finite but meaningless: mask them out of any loss.
 *
 * Decoding: {@link gptDecodeStep} runs new tokens against a KV cache (per block, keys and
 * values `[B, nHead, P, headDim]`; P may be 0 for the prefill) through the same block code as
 * {@link gptForward}, and returns the extended cache. `sample.ts` drives it token by token.
 *
 * @example
 * ```ts
 * const cfg: GptConfig = { vocabSize: 64, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 4 };
 * const init = initGpt(cfg, new Rng(1), "float32");
 * const g = new Graph("gpt");
 * const params = Object.fromEntries(
 *   Object.entries(gptShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
 * );
 * const tokens = g.input("tokens", "int64", ["B", "T"]);
 * const mask = g.input("mask", "int64", ["B", "T"]);
 * const { logits } = gptForward(g, cfg, params, tokens, mask);
 * g.output(logits, "logits"); // [B, T, vocabSize]
 * ```
 * @module
 */
import { type Dim, type Graph, GraphError, TO_END, type Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";
import { projection } from "./lora.ts";
import {
  checkDecodeInputs,
  decodePattern,
  extendCache,
  forwardMasks,
  type KvCache,
  MASKED_SCORE,
  residualLayers,
} from "./attention.ts";

export type { KvCache } from "./attention.ts";

/** GPT-2 hyperparameters (HF `GPT2Config` field in brackets). */
export interface GptConfig {
  /** Vocabulary size V [vocab_size]. */
  vocabSize: number;
  /** Context length P: the number of learned positions [n_positions]. */
  nPositions: number;
  /** Model width d [n_embd]; must be divisible by `nHead`. */
  nEmbd: number;
  /** Number of transformer blocks [n_layer]. */
  nLayer: number;
  /** Attention heads per block [n_head]. */
  nHead: number;
  /** LayerNorm epsilon (default 1e-5) [layer_norm_epsilon]. */
  layerNormEps?: number;
  /** Parameter-name prefix (default "transformer", as in HF `GPT2LMHeadModel`; "" for none). */
  prefix?: string;
}

/** Names of one block's parameters. */
export interface GptBlockNames {
  ln1Weight: string;
  ln1Bias: string;
  attnWeight: string;
  attnBias: string;
  attnProjWeight: string;
  attnProjBias: string;
  ln2Weight: string;
  ln2Bias: string;
  fcWeight: string;
  fcBias: string;
  mlpProjWeight: string;
  mlpProjBias: string;
}

/** Every parameter name of the model, in HF GPT-2 naming. */
export function gptNames(cfg: GptConfig): {
  wte: string;
  wpe: string;
  blocks: GptBlockNames[];
  lnfWeight: string;
  lnfBias: string;
} {
  const p = cfg.prefix ?? "transformer";
  const n = (s: string) => (p === "" ? s : `${p}.${s}`);
  return {
    wte: n("wte.weight"),
    wpe: n("wpe.weight"),
    blocks: Array.from({ length: cfg.nLayer }, (_, i) => {
      const b = (s: string) => n(`h.${i}.${s}`);
      return {
        ln1Weight: b("ln_1.weight"),
        ln1Bias: b("ln_1.bias"),
        attnWeight: b("attn.c_attn.weight"),
        attnBias: b("attn.c_attn.bias"),
        attnProjWeight: b("attn.c_proj.weight"),
        attnProjBias: b("attn.c_proj.bias"),
        ln2Weight: b("ln_2.weight"),
        ln2Bias: b("ln_2.bias"),
        fcWeight: b("mlp.c_fc.weight"),
        fcBias: b("mlp.c_fc.bias"),
        mlpProjWeight: b("mlp.c_proj.weight"),
        mlpProjBias: b("mlp.c_proj.bias"),
      };
    }),
    lnfWeight: n("ln_f.weight"),
    lnfBias: n("ln_f.bias"),
  };
}

function validate(cfg: GptConfig): void {
  for (const k of ["vocabSize", "nPositions", "nEmbd", "nLayer", "nHead"] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) {
      throw new RangeError(`GptConfig.${k} must be a positive integer, got ${cfg[k]}`);
    }
  }
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw new RangeError(`GptConfig: nEmbd ${cfg.nEmbd} is not divisible by nHead ${cfg.nHead}`);
  }
}

/**
 * Parameter shapes by name, in a fixed order (embeddings, blocks, final LayerNorm).
 *
 * @example
 * ```ts
 * gptShapes({ vocabSize: 11, nPositions: 8, nEmbd: 8, nLayer: 1, nHead: 2 })["transformer.wte.weight"];
 * // { shape: [11, 8] }
 * ```
 */
export function gptShapes(cfg: GptConfig): Record<string, { shape: number[] }> {
  validate(cfg);
  const d = cfg.nEmbd, nm = gptNames(cfg);
  const out: Record<string, { shape: number[] }> = {
    [nm.wte]: { shape: [cfg.vocabSize, d] },
    [nm.wpe]: { shape: [cfg.nPositions, d] },
  };
  for (const b of nm.blocks) {
    out[b.ln1Weight] = { shape: [d] };
    out[b.ln1Bias] = { shape: [d] };
    out[b.attnWeight] = { shape: [d, 3 * d] };
    out[b.attnBias] = { shape: [3 * d] };
    out[b.attnProjWeight] = { shape: [d, d] };
    out[b.attnProjBias] = { shape: [d] };
    out[b.ln2Weight] = { shape: [d] };
    out[b.ln2Bias] = { shape: [d] };
    out[b.fcWeight] = { shape: [d, 4 * d] };
    out[b.fcBias] = { shape: [4 * d] };
    out[b.mlpProjWeight] = { shape: [4 * d, d] };
    out[b.mlpProjBias] = { shape: [d] };
  }
  out[nm.lnfWeight] = { shape: [d] };
  out[nm.lnfBias] = { shape: [d] };
  return out;
}

/**
 * GPT-2's initialisation (HF `GPT2PreTrainedModel._init_weights`): embeddings and weight
 * matrices N(0, 0.02²), the two residual projections (`*.c_proj.weight`) N(0, (0.02/√(2L))²)
 * so the residual stream's variance does not grow with depth, biases 0, LayerNorm weight 1 and
 * bias 0. Every draw comes from `rng`, in {@link gptShapes} order, so a seed fixes the model.
 *
 * @example
 * ```ts
 * const params = initGpt(cfg, new Rng(42), "float32"); // name -> Float32Array
 * ```
 */
export function initGpt(
  cfg: GptConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const residualStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
  const out: Record<string, Float32Array | Float64Array> = {};
  for (const [name, { shape }] of Object.entries(gptShapes(cfg))) {
    const a = new Arr(shape.reduce((x, y) => x * y, 1));
    if (/\.ln_(1|2|f)\.weight$/.test(name)) a.fill(1);
    else if (name.endsWith(".weight")) {
      rng.fillNormal(a, name.endsWith("c_proj.weight") ? residualStd : 0.02);
    }
    // Biases (and LayerNorm biases) stay 0.
    out[name] = a;
  }
  return out;
}

/** What {@link gptForward} returns. */
export interface GptOutput {
  /** Next-token logits `[B, T, vocabSize]` (LM head tied to `wte`). */
  logits: Value;
  /** Final hidden states after `ln_f`, `[B, T, nEmbd]` (input to value / reward heads). */
  hidden: Value;
}

/** What {@link gptForward} and {@link gptDecodeStep} return: outputs plus the KV cache. */
export interface GptStepOutput extends GptOutput {
  /**
   * Per block, the keys and values of every position seen so far (past + new),
   * `[B, nHead, P + S, headDim]`: feed them back as `past` of the next {@link gptDecodeStep}.
   */
  presents: KvCache[];
}

/** Options of {@link gptForward}. */
export interface GptForwardOptions {
  /**
   * Explicit int64 position ids `[B, T]` (e.g. for incremental decoding). By default they are
   * computed in the graph from the mask: `clip(cumsum(mask, 1) - 1, 0)`.
   */
  positionIds?: Value;
  /**
   * Only these columns (int64 `[T]`): `hidden` and `logits` are `[B, T, ...]`, gathered before
   * ln_f and the LM head, so the `[B, S, V]` logits of the other columns (and their gradient)
   * are never formed. A scorer of response tokens needs no more.
   */
  at?: Value;
}

/** Validates the config and that `params` holds every parameter with its shape. */
function checkParams(who: string, cfg: GptConfig, params: Record<string, Value>): void {
  validate(cfg);
  for (const [n, { shape }] of Object.entries(gptShapes(cfg))) {
    const v = params[n];
    if (!v) throw new GraphError(`${who}: missing parameter "${n}"`);
    if (v.rank !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
      throw new GraphError(`${who}: parameter "${n}" is ${v}, expected [${shape}]`);
    }
  }
}

/**
 * Causal multi-head self-attention of one block, shared by the full forward pass and the
 * KV-cache decode step: `a [B, S, d]` (after ln_1) attends to `past` keys/values (if any) and
 * its own; `bias [B, 1, S, K]` (0 where the query may see the key, {@link MASKED_SCORE} where
 * not) is added to the scores, with `K = P + S` (named `keyLen`).
 *
 * The mask is an Add rather than a `Where(allowed, scores, -1e9)` per block: the same values
 * at every visible key, but the Add's backward is the identity, so the backward pass runs no
 * mask node at all (measured on the d=128 bench: about 0.5 ms of a 16 ms train step).
 */
function attention(
  g: Graph,
  cfg: GptConfig,
  p: (n: string) => Value,
  blk: GptBlockNames,
  a: Value,
  bias: Value,
  past: KvCache | undefined,
  keyLen: Dim,
): { out: Value; present: KvCache } {
  const d = cfg.nEmbd, H = cfg.nHead, hd = d / H;
  const linear = (x: Value, w: string, b: string) => projection(g, x, p(w), p(b), "conv1d");
  // [B, S, d] -> [B, H, S, hd]
  const heads = (t: Value) => g.transpose(g.reshape(t, [0, 0, H, hd]), [0, 2, 1, 3]);
  const [q, k, v] = g.split(linear(a, blk.attnWeight, blk.attnBias), [d, d, d], -1);
  // Scale q (S·d values) rather than the scores (S·K): same result, less work. It is scaled
  // before the head split so the Mul does not feed the MatMul directly: ORT would fuse the
  // two into FusedMatMul, whose alpha is a float32 attribute (1/√8 rounded: ~1e-8 error in
  // float64 models).
  const qh = heads(g.mul(q, 1 / Math.sqrt(hd)));
  const key = extendCache(g, past?.key, heads(k), keyLen);
  const value = extendCache(g, past?.value, heads(v), keyLen);
  const scores = g.add(g.matmul(qh, g.transpose(key, [0, 1, 3, 2])), bias);
  const y = g.matmul(g.softmax(scores, -1), value); // [B, H, S, hd]
  const merged = g.reshape(g.transpose(y, [0, 2, 1, 3]), [0, 0, d]);
  return { out: linear(merged, blk.attnProjWeight, blk.attnProjBias), present: { key, value } };
}

/**
 * Embeddings, the blocks and the LM head for `tokens [B, S]` at `positions [B, S]`, attending
 * under `allowed [B, 1, S, K]` to `past` (one cache per block, or none).
 */
function transformer(
  g: Graph,
  cfg: GptConfig,
  params: Record<string, Value>,
  tokens: Value,
  positions: Value,
  allowed: Value,
  past: KvCache[] | undefined,
  keyLen: Dim,
  lastOnly = false,
  at?: Value,
): GptStepOutput {
  const nm = gptNames(cfg);
  const eps = cfg.layerNormEps ?? 1e-5;
  const p = (n: string) => params[n];
  const linear = (x: Value, w: string, b: string) => projection(g, x, p(w), p(b), "conv1d");
  const embedded = g.add(g.gather(p(nm.wte), tokens, 0), g.gather(p(nm.wpe), positions, 0));
  const bias = g.where(allowed, g.scalar(0, embedded.dtype), MASKED_SCORE);
  const { x: out, presents } = residualLayers(g, embedded, nm.blocks, past, {
    attention: (blk, x, cache) => {
      const a = g.layerNorm(x, p(blk.ln1Weight), p(blk.ln1Bias), { epsilon: eps });
      return attention(g, cfg, p, blk, a, bias, cache, keyLen);
    },
    mlp: (blk, x) => {
      const m = g.layerNorm(x, p(blk.ln2Weight), p(blk.ln2Bias), { epsilon: eps });
      const f = g.gelu(linear(m, blk.fcWeight, blk.fcBias), "tanh"); // GPT-2's "gelu_new"
      return linear(f, blk.mlpProjWeight, blk.mlpProjBias);
    },
  });
  // Sampling needs only the last position's logits: slicing before ln_f and the LM head saves
  // S·V·d multiply-adds of a prefill (the largest matmul for a real vocabulary).
  const x = lastOnly ? g.slice(out, [-1], [TO_END], [1]) : at ? g.gather(out, at, 1) : out;
  const hidden = g.layerNorm(x, p(nm.lnfWeight), p(nm.lnfBias), { epsilon: eps });
  const logits = g.matmul(hidden, g.transpose(p(nm.wte), [1, 0]));
  return { logits, hidden, presents };
}

/**
 * Forward pass: int64 `tokens [B, T]` -> `{ logits [B, T, V], hidden [B, T, d], presents }`.
 *
 * `params` maps the names of {@link gptShapes} to values (graph inputs, or the params of a
 * `TrainStepSpec` loss). `attentionMask` `[B, T]` (any dtype; nonzero = real token)
 * defaults to all real. Positions must stay below `nPositions`.
 *
 * Unless `opts.positionIds` is given, position ids are computed in the graph with ONNX
 * `CumSum` (integer only, so no gradient rule is involved) rather than passed in, so callers
 * cannot get them out of step with the mask. A padding query whose keys are all padding (the
 * head of a left-padded row) would see an all-masked row: masked scores get a finite -1e9
 * added (not -inf), so that row's softmax stays finite (uniform in float32, where every score
 * rounds to -1e9) instead of NaN, and nothing NaN reaches a gradient.
 *
 * `presents` (the keys and values of every position, per block) cost no extra nodes: a caller
 * may output them to prefill a KV cache for {@link gptDecodeStep}.
 *
 * @example
 * ```ts
 * const { logits, hidden } = gptForward(g, cfg, params, tokens, mask);
 * const logp = tokenLogprobs(g, logits, targets); // [B, T]
 * ```
 */
export function gptForward(
  g: Graph,
  cfg: GptConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
  opts: GptForwardOptions = {},
): GptStepOutput {
  if (tokens.dtype !== "int64" || tokens.rank !== 2) {
    throw new GraphError(`gptForward: tokens must be int64 [B, T], got ${tokens}`);
  }
  if (attentionMask && attentionMask.rank !== 2) {
    throw new GraphError(`gptForward: attentionMask must be [B, T], got ${attentionMask}`);
  }
  checkParams("gptForward", cfg, params);
  const { positions, allowed } = forwardMasks(g, tokens, attentionMask, opts.positionIds);
  return transformer(
    g,
    cfg,
    params,
    tokens,
    positions,
    allowed,
    undefined,
    tokens.shape[1],
    false,
    opts.at,
  );
}

/** Options of {@link gptDecodeStep}. */
export interface GptDecodeOptions {
  /**
   * Compute `hidden` and `logits` for the last new position only (`[B, 1, ...]`): all that
   * sampling needs, and it keeps the LM head off the prompt positions of a prefill.
   */
  lastOnly?: boolean;
}

/**
 * One incremental decoding step with a KV cache: the new int64 `tokens [B, S]` attend to the
 * cached keys/values of the `P` earlier positions (`past`, one {@link KvCache} per block,
 * `[B, nHead, P, headDim]`) and to each other, causally.
 *
 * - `attentionMask [B, P + S]` covers past and new positions (nonzero = real token), as in HF;
 *   its length dim names the presents' length dim.
 * - `positionIds [B, S]` are the new tokens' int64 position ids (for left-padded prompts:
 *   `cumsum(mask) - 1` over all P + S positions, last S columns — what {@link gptForward}
 *   computes by default).
 * - P may be 0 (empty past tensors): the prefill is then a step like any other.
 *
 * Returns `logits [B, S, V]`, `hidden [B, S, d]` and `presents` (`[B, nHead, P + S, headDim]`
 * per block). The blocks are the same code as {@link gptForward}'s, so both give the same
 * logits at the same positions (up to summation order).
 *
 * @example
 * ```ts
 * const hd = cfg.nEmbd / cfg.nHead;
 * const past = Array.from({ length: cfg.nLayer }, (_, i) => ({
 *   key: g.input(`past.${i}.key`, "float32", ["B", cfg.nHead, "P", hd]),
 *   value: g.input(`past.${i}.value`, "float32", ["B", cfg.nHead, "P", hd]),
 * }));
 * const tokens = g.input("tokens", "int64", ["B", "S"]);
 * const mask = g.input("mask", "int64", ["B", "K"]); // K = P + S
 * const pos = g.input("position_ids", "int64", ["B", "S"]);
 * const { logits, presents } = gptDecodeStep(g, cfg, params, tokens, past, mask, pos);
 * ```
 */
export function gptDecodeStep(
  g: Graph,
  cfg: GptConfig,
  params: Record<string, Value>,
  tokens: Value,
  past: KvCache[],
  attentionMask: Value,
  positionIds: Value,
  opts: GptDecodeOptions = {},
): GptStepOutput {
  const who = "gptDecodeStep";
  checkParams(who, cfg, params);
  const layout = { nLayer: cfg.nLayer, kvHeads: cfg.nHead, headDim: cfg.nEmbd / cfg.nHead };
  checkDecodeInputs(who, tokens, positionIds, attentionMask, past, layout);
  // Absolute index of each new query in the P + S keys: P + (0..S-1), P read at run time.
  const allowed = decodePattern(g, tokens, past[0].key, attentionMask);
  return transformer(
    g,
    cfg,
    params,
    tokens,
    positionIds,
    allowed,
    past,
    attentionMask.shape[1],
    opts.lastOnly,
  );
}

/**
 * Log-probabilities of given tokens: `log_softmax(logits)[..., targets]`.
 * `logits [..., V]`, int64 `targets [...]` -> `[...]`. For next-token log-probs pass
 * targets = the input tokens shifted left by one (built in TS), and mask the last position.
 *
 * @example
 * ```ts
 * const nll = g.neg(g.reduceMean(tokenLogprobs(g, logits, targets)));
 * ```
 */
export function tokenLogprobs(g: Graph, logits: Value, targets: Value): Value {
  if (targets.dtype !== "int64" || targets.rank !== logits.rank - 1) {
    throw new GraphError(
      `tokenLogprobs: targets must be int64 with the leading dims of ${logits}, got ${targets}`,
    );
  }
  targets.shape.forEach((t, i) => {
    const l = logits.shape[i];
    if (typeof t === "number" && typeof l === "number" && t !== l) {
      throw new GraphError(`tokenLogprobs: ${targets} does not match ${logits} (dim ${i})`);
    }
  });
  return gatherLogprobs(g, g.logSoftmax(logits, logits.rank - 1), targets);
}

/**
 * `logp[..., targets]`: the log-probabilities of int64 `targets` `[...]` from log-softmax
 * values `[..., V]` (what {@link tokenLogprobs} computes from logits), so a graph that also
 * needs the whole distribution (an entropy) forms the `[..., V]` log-softmax once.
 */
export function gatherLogprobs(g: Graph, logp: Value, targets: Value): Value {
  const axis = logp.rank - 1;
  const picked = g.node(
    "GatherElements",
    [logp, g.unsqueeze(targets, [axis])],
    { axis: { kind: "int", value: axis } },
    undefined,
    [{ dtype: logp.dtype, shape: [...targets.shape, 1] }],
  )[0];
  return g.squeeze(picked, [axis]);
}
