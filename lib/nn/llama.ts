/**
 * The Llama-family decoder as a graph builder, top to bottom in one file (nanoGPT-style). One
 * code path serves `llama` (Llama 2 / 3.x, SmolLM2), `mistral`, `qwen2` and `qwen3`: they
 * differ only by flags of {@link LlamaConfig} (q/k/v biases, per-head q/k RMSNorm, tied head,
 * RoPE scaling, sliding window).
 *
 * Each layer: `x += o_proj(attention(rope(q), rope(k), v))` on `input_layernorm(x)`, then
 * `x += down(silu(gate(h)) * up(h))` on `post_attention_layernorm(x)`; a final RMSNorm and the
 * LM head (its own matrix, or the embedding when tied).
 *
 * - Parameters carry transformers' names and layouts (`model.layers.0.mlp.gate_proj.weight`,
 *   Linear `[out, in]`, applied as `x @ Wᵀ`), so a Hub folder loads without renaming or copying.
 * - Grouped-query attention without repeating keys: queries are grouped as
 *   `[B, kvHeads, groups, S, headDim]` and MatMul broadcasts each key/value head over its
 *   group, so the KV cache and the attention inputs hold `kvHeads`, not `nHead`, heads.
 * - RoPE: the angles `position · inv_freq` and their cos/sin are computed in the graph from the
 *   int64 position ids (a table for a 128k context would be a 64 MB constant); `inv_freq` is a
 *   constant computed in TS, with Llama 3's frequency scaling applied as transformers does.
 * - Padding: as in `gpt.ts`, positions are `cumsum(mask) - 1` (what `generate` feeds), padding
 *   keys are masked, and outputs at padding positions are finite but meaningless.
 *
 * @example
 * ```ts
 * const cfg: LlamaConfig = { family: "llama", modelType: "llama", vocabSize: 64, hiddenSize: 32,
 *   intermediateSize: 64, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 8, maxPositions: 128,
 *   rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: { type: "default" }, qkvBias: false,
 *   oBias: false, mlpBias: false, qkNorm: false, tieWordEmbeddings: true };
 * const g = new Graph("llama");
 * const params = Object.fromEntries(
 *   Object.entries(llamaShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
 * );
 * const { logits } = llamaForward(g, cfg, params, g.input("tokens", "int64", ["B", "T"]));
 * ```
 * @module
 */
import { type Dim, type Graph, GraphError, TO_END, type Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";
import {
  checkDecodeInputs,
  decodePattern,
  extendCache,
  forwardMasks,
  type KvCache,
  MASKED_SCORE,
  residualLayers,
} from "./attention.ts";
import { projection } from "./lora.ts";
import {
  type LlamaConfig,
  type LlamaLayerNames,
  llamaNames,
  llamaShapes,
  validateLlamaConfig,
} from "./llama_config.ts";

export * from "./llama_config.ts";

/** What {@link llamaForward} and {@link llamaDecodeStep} return. */
export interface LlamaStepOutput {
  /** Next-token logits `[B, S, vocabSize]`. */
  logits: Value;
  /** Final hidden states after the last RMSNorm, `[B, S, hiddenSize]`. */
  hidden: Value;
  /** Per layer, keys (after RoPE) and values of every position, `[B, nKvHead, P + S, headDim]`. */
  presents: KvCache[];
}

/**
 * RoPE inverse frequencies `1 / θ^(2i/headDim)`, i < headDim/2, with the config's scaling,
 * computed as transformers' `_compute_default_rope_parameters` / `_compute_llama3_parameters`
 * do (in float64 here; the graph rounds them to its dtype).
 *
 * @example
 * ```ts
 * ropeInvFreq({ ...cfg, headDim: 4, ropeTheta: 10000 }); // [1, 0.01]
 * ```
 */
export function ropeInvFreq(cfg: LlamaConfig): number[] {
  const hd = cfg.headDim;
  const base = Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(cfg.ropeTheta, (2 * i) / hd));
  const s = cfg.ropeScaling;
  if (s.type === "default") return base;
  if (s.type === "linear") return base.map((f) => f / s.factor);
  // Llama 3: wavelengths longer than original/lowFreqFactor are slowed by `factor`, shorter
  // than original/highFreqFactor kept, and the band between interpolated smoothly.
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
      (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/**
 * transformers' initialisation for a random model (`_init_weights`): Linear and embedding
 * weights N(0, 0.02²), biases 0, RMSNorm weights 1. Draws from `rng` in {@link llamaShapes}
 * order, so a seed fixes the model.
 */
export function initLlama(
  cfg: LlamaConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const out: Record<string, Float32Array | Float64Array> = {};
  for (const [name, { shape }] of Object.entries(llamaShapes(cfg))) {
    const a = new Arr(shape.reduce((x, y) => x * y, 1));
    if (/(layernorm|norm)\.weight$/.test(name)) a.fill(1);
    else if (name.endsWith(".weight")) rng.fillNormal(a, 0.02);
    out[name] = a;
  }
  return out;
}

function checkParams(
  who: string,
  cfg: LlamaConfig,
  params: Record<string, Value>,
  head = true,
): void {
  const lmHead = llamaNames(cfg).lmHead;
  for (const [n, { shape }] of Object.entries(llamaShapes(cfg))) {
    if (!head && n === lmHead) continue;
    const v = params[n];
    if (!v) throw new GraphError(`${who}: missing parameter "${n}"`);
    if (v.rank !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
      throw new GraphError(`${who}: parameter "${n}" is ${v}, expected [${shape}]`);
    }
  }
}

/** RMSNorm over the last axis: `w · x / √(mean(x²) + ε)` (transformers' LlamaRMSNorm). */
function rmsNorm(g: Graph, x: Value, weight: Value, eps: number): Value {
  const ms = g.reduceMean(g.mul(x, x), [-1], true);
  return g.mul(g.div(x, g.sqrt(g.add(ms, eps))), weight);
}

/**
 * SiLU `x · σ(x)`. In float32 ORT fuses this Mul(x, Sigmoid(x)) into its QuickGelu kernel,
 * which has no float64 version, so float64 graphs (gradient checks) spell it `x / (1 + e⁻ˣ)`.
 */
function siluOf(g: Graph, x: Value): Value {
  return x.dtype === "float32" ? g.mul(x, g.sigmoid(x)) : g.div(x, g.add(g.exp(g.neg(x)), 1));
}

/** `x @ Wᵀ (+ b)` for a torch Linear weight `[out, in]` (LoRA-factored for a `LoraWeight`). */
function linear(g: Graph, x: Value, w: Value, b?: Value): Value {
  return projection(g, x, w, b, "linear");
}

/**
 * cos and sin of the RoPE angles for int64 `positions [B, S]`, each `[B, 1, S, headDim]`
 * (broadcast over heads): angle `[.., i] = pos · inv_freq[i mod headDim/2]`, the halves
 * repeated as transformers' `cat((freqs, freqs), -1)`.
 */
function ropeAngles(g: Graph, cfg: LlamaConfig, positions: Value, dtype: "float32" | "float64") {
  const inv = ropeInvFreq(cfg);
  const data = dtype === "float32" ? Float32Array.from([...inv, ...inv]) : [...inv, ...inv];
  const freq = g.constant({ dtype, shape: [cfg.headDim], data: Array.from(data) }, "rope_inv_freq");
  const angle = g.mul(g.unsqueeze(g.cast(positions, dtype), [2]), freq); // [B, S, hd]
  return { cos: g.unsqueeze(g.cos(angle), [1]), sin: g.unsqueeze(g.sin(angle), [1]) };
}

/** `x · cos + rotate_half(x) · sin` with `rotate_half(x) = [-x₂, x₁]` on the last axis. */
function rope(g: Graph, x: Value, cos: Value, sin: Value, hd: number): Value {
  const [x1, x2] = g.split(x, [hd / 2, hd / 2], -1);
  return g.add(g.mul(x, cos), g.mul(g.concat([g.neg(x2), x1], -1), sin));
}

/**
 * One layer's attention: `a [B, S, d]` (after input_layernorm) attends to `past` and itself
 * under `bias [B, 1, 1, S, K]`. Queries are `[B, kvHeads, groups, S, hd]` so that MatMul
 * broadcasts keys/values `[B, kvHeads, 1, K, hd]` over each group (grouped-query attention).
 */
function attention(
  g: Graph,
  cfg: LlamaConfig,
  p: (n: string) => Value,
  l: LlamaLayerNames,
  a: Value,
  rot: { cos: Value; sin: Value },
  bias: Value,
  past: KvCache | undefined,
  keyLen: Dim,
): { out: Value; present: KvCache } {
  const H = cfg.nHead, KV = cfg.nKvHead, hd = cfg.headDim, groups = H / KV;
  const opt = (on: boolean, n: string) => (on ? p(n) : undefined);
  let q = g.reshape(linear(g, a, p(l.q), opt(cfg.qkvBias, l.qBias)), [0, 0, KV, groups, hd]);
  let k = g.reshape(linear(g, a, p(l.k), opt(cfg.qkvBias, l.kBias)), [0, 0, KV, hd]);
  const v = g.reshape(linear(g, a, p(l.v), opt(cfg.qkvBias, l.vBias)), [0, 0, KV, hd]);
  if (cfg.qkNorm) { // Qwen3: RMSNorm over each head's vector, before RoPE
    q = rmsNorm(g, q, p(l.qNorm), cfg.rmsNormEps);
    k = rmsNorm(g, k, p(l.kNorm), cfg.rmsNormEps);
  }
  const qh = g.transpose(q, [0, 2, 3, 1, 4]); // [B, KV, groups, S, hd]
  const kh = g.transpose(k, [0, 2, 1, 3]), vh = g.transpose(v, [0, 2, 1, 3]); // [B, KV, S, hd]
  // Scale q (S·hd values) rather than the scores (S·K), and not right before its MatMul, so
  // ORT does not fold it into FusedMatMul's float32 alpha (see gpt.ts).
  const qr = g.mul(
    rope(g, qh, g.unsqueeze(rot.cos, [1]), g.unsqueeze(rot.sin, [1]), hd),
    1 / Math.sqrt(hd),
  );
  const kr = rope(g, kh, rot.cos, rot.sin, hd);
  const key = extendCache(g, past?.key, kr, keyLen);
  const value = extendCache(g, past?.value, vh, keyLen);
  const scores = g.add(
    g.matmul(qr, g.unsqueeze(g.transpose(key, [0, 1, 3, 2]), [2])),
    bias,
  ); // [B, KV, groups, S, K]
  const y = g.matmul(g.softmax(scores, -1), g.unsqueeze(value, [2])); // [B, KV, groups, S, hd]
  const merged = g.reshape(g.transpose(y, [0, 3, 1, 2, 4]), [0, 0, H * hd]);
  return { out: linear(g, merged, p(l.o), opt(cfg.oBias, l.oBias)), present: { key, value } };
}

/** Embedding, the layers and the LM head for `tokens [B, S]` at `positions [B, S]`. */
function decoder(
  g: Graph,
  cfg: LlamaConfig,
  params: Record<string, Value>,
  tokens: Value,
  positions: Value,
  allowed: Value,
  past: KvCache[] | undefined,
  keyLen: Dim,
  lastOnly = false,
  head = true,
  at?: Value,
): LlamaStepOutput {
  const nm = llamaNames(cfg), eps = cfg.rmsNormEps;
  const p = (n: string) => params[n];
  const embedded = g.gather(p(nm.embed), tokens, 0);
  const dtype = embedded.dtype as "float32" | "float64";
  const rot = ropeAngles(g, cfg, positions, dtype);
  const bias = g.unsqueeze(g.where(allowed, g.scalar(0, dtype), MASKED_SCORE), [1]);
  const opt = (n: string) => (cfg.mlpBias ? p(n) : undefined);
  const { x: out, presents } = residualLayers(g, embedded, nm.layers, past, {
    attention: (l, x, cache) => {
      const a = rmsNorm(g, x, p(l.inputNorm), eps);
      return attention(g, cfg, p, l, a, rot, bias, cache, keyLen);
    },
    mlp: (l, x) => {
      const h = rmsNorm(g, x, p(l.postNorm), eps);
      const gate = linear(g, h, p(l.gate), opt(l.gateBias));
      const silu = siluOf(g, gate); // SwiGLU: silu(gate) * up
      const up = linear(g, h, p(l.up), opt(l.upBias));
      return linear(g, g.mul(silu, up), p(l.down), opt(l.downBias));
    },
  });
  // Sampling needs only the last position: slice before the norm and the (V x d) LM head.
  const x = lastOnly ? g.slice(out, [-1], [TO_END], [1]) : at ? g.gather(out, at, 1) : out;
  const hidden = rmsNorm(g, x, p(nm.norm), eps);
  if (!head) return { logits: hidden, hidden, presents }; // see llamaHidden
  const w = cfg.tieWordEmbeddings ? p(nm.embed) : p(nm.lmHead);
  return { logits: linear(g, hidden, w), hidden, presents };
}

/** Options of {@link llamaForward}. */
export interface LlamaForwardOptions {
  /** Explicit int64 position ids `[B, T]`; by default `clip(cumsum(mask) - 1, 0)`. */
  positionIds?: Value;
  /**
   * Only these columns (int64 `[T]`): `hidden` and `logits` are `[B, T, ...]`, gathered before
   * the final norm and the LM head, so the `[B, S, V]` logits of the other columns (and their
   * gradient) are never formed. A scorer of response tokens needs no more.
   */
  at?: Value;
}

/**
 * Forward pass: int64 `tokens [B, T]` (and an optional `attentionMask [B, T]`, nonzero = real,
 * padding on either side) -> `{ logits [B, T, V], hidden [B, T, d], presents }`. `params`
 * maps the names of {@link llamaShapes} to values (graph inputs, or a train step's params).
 *
 * @example
 * ```ts
 * const { logits, hidden } = llamaForward(g, cfg, params, tokens, mask);
 * ```
 */
export function llamaForward(
  g: Graph,
  cfg: LlamaConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
  opts: LlamaForwardOptions = {},
): LlamaStepOutput {
  validateLlamaConfig(cfg);
  if (tokens.dtype !== "int64" || tokens.rank !== 2) {
    throw new GraphError(`llamaForward: tokens must be int64 [B, T], got ${tokens}`);
  }
  if (attentionMask && attentionMask.rank !== 2) {
    throw new GraphError(`llamaForward: attentionMask must be [B, T], got ${attentionMask}`);
  }
  checkParams("llamaForward", cfg, params);
  const { positions, allowed } = forwardMasks(
    g,
    tokens,
    attentionMask,
    opts.positionIds,
    cfg.slidingWindow,
  );
  return decoder(
    g,
    cfg,
    params,
    tokens,
    positions,
    allowed,
    undefined,
    tokens.shape[1],
    false,
    true,
    opts.at,
  );
}

/**
 * The trunk only: final hidden states `[B, T, d]` after the last RMSNorm, without the LM head
 * (a reward or value model reads these; a `*ForSequenceClassification` folder has no
 * `lm_head.weight`, and `params` need not hold it).
 */
export function llamaHidden(
  g: Graph,
  cfg: LlamaConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
): Value {
  validateLlamaConfig(cfg);
  checkParams("llamaHidden", cfg, params, false);
  const { positions, allowed } = forwardMasks(
    g,
    tokens,
    attentionMask,
    undefined,
    cfg.slidingWindow,
  );
  return decoder(
    g,
    cfg,
    params,
    tokens,
    positions,
    allowed,
    undefined,
    tokens.shape[1],
    false,
    false,
  )
    .hidden;
}

/**
 * One incremental decoding step with a KV cache, as `gptDecodeStep`: new `tokens [B, S]` at
 * `positionIds [B, S]` attend to `past` (per layer `[B, nKvHead, P, headDim]`, P may be 0)
 * and to each other under `attentionMask [B, P + S]`. Same layer code as
 * {@link llamaForward}, so both give the same logits at the same positions.
 */
export function llamaDecodeStep(
  g: Graph,
  cfg: LlamaConfig,
  params: Record<string, Value>,
  tokens: Value,
  past: KvCache[],
  attentionMask: Value,
  positionIds: Value,
  opts: { lastOnly?: boolean } = {},
): LlamaStepOutput {
  const who = "llamaDecodeStep";
  validateLlamaConfig(cfg);
  checkParams(who, cfg, params);
  const layout = { nLayer: cfg.nLayer, kvHeads: cfg.nKvHead, headDim: cfg.headDim };
  checkDecodeInputs(who, tokens, positionIds, attentionMask, past, layout);
  const allowed = decodePattern(g, tokens, past[0].key, attentionMask, cfg.slidingWindow);
  return decoder(
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
