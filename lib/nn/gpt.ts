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
import { type Graph, GraphError, type Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";

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

/** Options of {@link gptForward}. */
export interface GptForwardOptions {
  /**
   * Explicit int64 position ids `[B, T]` (e.g. for incremental decoding). By default they are
   * computed in the graph from the mask: `clip(cumsum(mask, 1) - 1, 0)`.
   */
  positionIds?: Value;
}

/** Added to attention scores a query may not see. Large enough that exp() underflows to 0. */
const MASKED_SCORE = -1e9;

/**
 * Forward pass: int64 `tokens [B, T]` -> `{ logits [B, T, V], hidden [B, T, d] }`.
 *
 * `params` maps the names of {@link gptShapes} to values (graph inputs, or the params of a
 * `TrainStepSpec` loss). `attentionMask` `[B, T]` (any dtype; nonzero = real token)
 * defaults to all real. Positions must stay below `nPositions`.
 *
 * Unless `opts.positionIds` is given, position ids are computed in the graph with ONNX
 * `CumSum` (integer only, so no gradient rule is involved) rather than passed in, so callers
 * cannot get them out of step with the mask. A padding query whose keys are all padding (the head of a left-padded row) would see
 * an all-masked row: the masked scores are replaced by a finite constant (Where, not -inf),
 * so that row's softmax is uniform instead of NaN, and nothing NaN reaches a gradient.
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
): GptOutput {
  validate(cfg);
  if (tokens.dtype !== "int64" || tokens.rank !== 2) {
    throw new GraphError(`gptForward: tokens must be int64 [B, T], got ${tokens}`);
  }
  if (attentionMask && attentionMask.rank !== 2) {
    throw new GraphError(`gptForward: attentionMask must be [B, T], got ${attentionMask}`);
  }
  const shapes = gptShapes(cfg);
  for (const [n, { shape }] of Object.entries(shapes)) {
    const v = params[n];
    if (!v) throw new GraphError(`gptForward: missing parameter "${n}"`);
    if (v.rank !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
      throw new GraphError(`gptForward: parameter "${n}" is ${v}, expected [${shape}]`);
    }
  }
  const nm = gptNames(cfg);
  const d = cfg.nEmbd, H = cfg.nHead, hd = d / H, eps = cfg.layerNormEps ?? 1e-5;
  const p = (n: string) => params[n];
  const cumsum = (x: Value) =>
    g.node("CumSum", [x, g.scalar(1, "int64")], {}, undefined, [{
      dtype: x.dtype,
      shape: x.shape,
    }])[0];

  // 0, 1, ..., T-1 along time (per row): CumSum of ones, since T is only known at run time.
  const ones = g.add(g.zerosLike(tokens), 1);
  const order = g.sub(cumsum(ones), 1);
  const real = attentionMask
    ? (attentionMask.dtype === "bool" ? attentionMask : g.not(g.equal(attentionMask, 0)))
    : undefined;
  const positions = opts.positionIds ??
    (real ? g.clip(g.sub(cumsum(g.cast(real, "int64")), 1), 0) : order);

  // allowed[b, 0, i, j]: query i may attend to key j (j <= i, and j is a real token).
  let allowed = g.lessOrEqual(g.unsqueeze(order, [1]), g.unsqueeze(order, [2])); // [B, T, T]
  if (real) allowed = g.and(allowed, g.unsqueeze(real, [1]));
  allowed = g.unsqueeze(allowed, [1]); // [B, 1, T, T], broadcast over heads

  const linear = (x: Value, w: string, b: string) => g.add(g.matmul(x, p(w)), p(b));
  // [B, T, d] -> [B, H, T, hd]
  const heads = (t: Value) => g.transpose(g.reshape(t, [0, 0, H, hd]), [0, 2, 1, 3]);

  let x = g.add(g.gather(p(nm.wte), tokens, 0), g.gather(p(nm.wpe), positions, 0));
  for (const blk of nm.blocks) {
    const a = g.layerNorm(x, p(blk.ln1Weight), p(blk.ln1Bias), { epsilon: eps });
    const [q, k, v] = g.split(linear(a, blk.attnWeight, blk.attnBias), [d, d, d], -1);
    // Scale q (T·d values) rather than the scores (T·T): same result, less work. It is scaled
    // before the head split so the Mul does not feed the MatMul directly: ORT would fuse the
    // two into FusedMatMul, whose alpha is a float32 attribute (1/√8 rounded: ~1e-8 error in
    // float64 models).
    const qh = heads(g.mul(q, 1 / Math.sqrt(hd)));
    const kT = g.transpose(g.reshape(k, [0, 0, H, hd]), [0, 2, 3, 1]); // [B, H, hd, T]
    const scores = g.where(allowed, g.matmul(qh, kT), MASKED_SCORE);
    const y = g.matmul(g.softmax(scores, -1), heads(v)); // [B, H, T, hd]
    const merged = g.reshape(g.transpose(y, [0, 2, 1, 3]), [0, 0, d]);
    x = g.add(x, linear(merged, blk.attnProjWeight, blk.attnProjBias));
    const m = g.layerNorm(x, p(blk.ln2Weight), p(blk.ln2Bias), { epsilon: eps });
    const f = g.gelu(linear(m, blk.fcWeight, blk.fcBias), "tanh"); // GPT-2's "gelu_new"
    x = g.add(x, linear(f, blk.mlpProjWeight, blk.mlpProjBias));
  }
  const hidden = g.layerNorm(x, p(nm.lnfWeight), p(nm.lnfBias), { epsilon: eps });
  const logits = g.matmul(hidden, g.transpose(p(nm.wte), [1, 0]));
  return { logits, hidden };
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
  const axis = logits.rank - 1;
  const picked = g.node(
    "GatherElements",
    [g.logSoftmax(logits, axis), g.unsqueeze(targets, [axis])],
    { axis: { kind: "int", value: axis } },
    undefined,
    [{ dtype: logits.dtype, shape: [...targets.shape, 1] }],
  )[0];
  return g.squeeze(picked, [axis]);
}
