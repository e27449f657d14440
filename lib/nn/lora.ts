/**
 * LoRA adapters (Hu et al. 2021) as a parameter transform: each targeted weight `W [in, out]`
 * is replaced in the graph by `W + (alpha / r) · (A @ B)` with `A [in, r]`, `B [r, out]`, and
 * the model is built from the result as usual (`gptForward(g, cfg, applyLora(...), tokens)`),
 * so no model code knows about LoRA. `B` starts at zero, so the adapted model starts equal to
 * the base, bit for bit.
 *
 * Training: the base weights go into `TrainStepSpec.frozen` (fed, never updated, no optimizer
 * state) and the adapters into `params`. Forming `A @ B` costs in·r·out per step, independent
 * of batch size, which is small next to the trunk's B·T·in·out matmuls.
 *
 * Names: the adapters of `transformer.h.0.attn.c_attn.weight` are
 * `transformer.h.0.attn.c_attn.lora_A` `[in, r]` and `.lora_B` `[r, out]`, in the Conv1D
 * (`x @ W`) layout of the base weights. (PEFT stores the transposes, as
 * `...c_attn.lora_A.weight [r, in]` / `lora_B.weight [out, r]`; transpose to export.)
 *
 * @example
 * ```ts
 * const lora: LoraConfig = { r: 4, alpha: 8, targets: ["attn.c_attn", "mlp.c_fc"] };
 * const trainer = await Trainer.create({
 *   dtype: "float32",
 *   params: loraShapes(gptShapes(cfg), lora),
 *   frozen: gptShapes(cfg),
 *   batch: { tokens: { dtype: "int64", shape: ["B", "T"] } },
 *   loss: (g, p, b) => {
 *     const { logits } = gptForward(g, cfg, applyLora(g, lora, p, p), b.tokens);
 *     return { loss: g.neg(g.reduceMean(tokenLogprobs(g, logits, b.tokens))) };
 *   },
 *   optimizer: adamw,
 * }, { ...base, ...initLora(gptShapes(cfg), lora, new Rng(1), "float32") });
 * const merged = mergeLora(base, trainer.params(), lora); // plain GPT weights again
 * ```
 * @module
 */
import { type Graph, GraphError, LazyValue, type Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";

/** LoRA hyperparameters. */
export interface LoraConfig {
  /** Rank r of the update. */
  r: number;
  /** Scale numerator: the update is `(alpha / r) · A @ B` (PEFT's `lora_alpha`). */
  alpha: number;
  /**
   * Which 2-D weights get adapters: a string `s` matches the weight `<anything>.s.weight`
   * (or `s.weight`), a RegExp is tested against full weight names (those ending in `.weight`). Default
   * {@link DEFAULT_LORA_TARGETS}. Every target must match at least one weight.
   */
  targets?: (string | RegExp)[];
  /**
   * Initialisation of A: "kaiming" (default; PEFT's `kaiming_uniform_(a=√5)`, i.e.
   * U(−1/√in, 1/√in)) or "gaussian" (N(0, 1/r²), PEFT's `init_lora_weights="gaussian"`).
   */
  init?: "kaiming" | "gaussian";
  /**
   * Layout of the target weights, PEFT's `fan_in_fan_out`: true (default) for GPT-2's Conv1D
   * weights `[in, out]` (A `[in, r]`, B `[r, out]`, `W += s·A@B`); false for torch Linear
   * weights `[out, in]` (Llama family), where the adapters are PEFT's own `lora_A` `[r, in]` and
   * `lora_B` `[out, r]` and `W += s·B@A`, so they save to a PEFT folder without transposing.
   */
  fanInFanOut?: boolean;
}

/** All seven projections of each Llama-family layer (attention q/k/v/o and the SwiGLU MLP). */
export const LLAMA_LORA_TARGETS: readonly string[] = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];

/** All four matrices of each GPT-2 block: attention in/out projections and the MLP. */
export const DEFAULT_LORA_TARGETS: readonly string[] = [
  "attn.c_attn",
  "attn.c_proj",
  "mlp.c_fc",
  "mlp.c_proj",
];

/** Adapter names of a base weight: `x.weight` -> `x.lora_A`, `x.lora_B`. */
export function loraNames(weight: string): { a: string; b: string } {
  const stem = weight.endsWith(".weight") ? weight.slice(0, -".weight".length) : weight;
  return { a: `${stem}.lora_A`, b: `${stem}.lora_B` };
}

function validate(lora: LoraConfig): void {
  if (!Number.isInteger(lora.r) || lora.r < 1) {
    throw new RangeError(`LoraConfig.r must be a positive integer, got ${lora.r}`);
  }
  if (!Number.isFinite(lora.alpha)) {
    throw new RangeError(`LoraConfig.alpha must be finite, got ${lora.alpha}`);
  }
}

/**
 * Whether weight `name` is targeted by `t`. Only names ending in `.weight` qualify, so a RegExp
 * target never selects biases or the adapters themselves (`...lora_A`), which matters when one
 * record holds base and adapter values together.
 */
function isTarget(t: string | RegExp, name: string): boolean {
  if (!name.endsWith(".weight")) return false;
  return typeof t === "string"
    ? name === `${t}.weight` || name.endsWith(`.${t}.weight`)
    : name.search(t) >= 0; // search(), unlike test(), ignores a /g lastIndex
}

/**
 * The base weights `lora` targets, in the order of `baseShapes`, with their `[in, out]`.
 * Throws when a target matches nothing (a typo would otherwise train no adapter at all) or
 * matches a weight that is not 2-D.
 *
 * @example
 * ```ts
 * loraTargets(gptShapes(cfg), { r: 4, alpha: 8, targets: ["attn.c_attn"] });
 * // [["transformer.h.0.attn.c_attn.weight", 32, 96], ...]
 * ```
 */
export function loraTargets(
  baseShapes: Record<string, { shape: readonly number[] }>,
  lora: LoraConfig,
): [name: string, inDim: number, outDim: number][] {
  validate(lora);
  const targets = lora.targets ?? DEFAULT_LORA_TARGETS;
  const out: [string, number, number][] = [];
  for (const t of targets) {
    if (!Object.keys(baseShapes).some((n) => isTarget(t, n))) {
      throw new Error(`LoRA: target ${String(t)} matches no weight (e.g. "attn.c_attn")`);
    }
  }
  for (const [n, { shape }] of Object.entries(baseShapes)) {
    if (!targets.some((t) => isTarget(t, n))) continue;
    if (shape.length !== 2) {
      throw new Error(`LoRA: target weight "${n}" is [${shape}], expected a 2-D matrix`);
    }
    // [name, in, out] whatever the storage layout.
    out.push(lora.fanInFanOut === false ? [n, shape[1], shape[0]] : [n, shape[0], shape[1]]);
  }
  return out;
}

/**
 * Shapes of the adapters: `lora_A [in, r]` and `lora_B [r, out]` per targeted weight.
 *
 * @example
 * ```ts
 * const shapes = loraShapes(gptShapes(cfg), { r: 4, alpha: 8 });
 * shapes["transformer.h.0.attn.c_attn.lora_A"]; // { shape: [d, 4] }
 * ```
 */
export function loraShapes(
  baseShapes: Record<string, { shape: readonly number[] }>,
  lora: LoraConfig,
): Record<string, { shape: number[] }> {
  const out: Record<string, { shape: number[] }> = {};
  for (const [n, inDim, outDim] of loraTargets(baseShapes, lora)) {
    const { a, b } = loraNames(n);
    const linear = lora.fanInFanOut === false;
    out[a] = { shape: linear ? [lora.r, inDim] : [inDim, lora.r] };
    out[b] = { shape: linear ? [outDim, lora.r] : [lora.r, outDim] };
  }
  return out;
}

/**
 * Initial adapters: A random ({@link LoraConfig.init}), B zero, so `A @ B = 0` and the adapted
 * model equals the base. Draws come from `rng` in {@link loraShapes} order.
 *
 * @example
 * ```ts
 * const adapters = initLora(gptShapes(cfg), { r: 4, alpha: 8 }, new Rng(1), "float32");
 * ```
 */
export function initLora(
  baseShapes: Record<string, { shape: readonly number[] }>,
  lora: LoraConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const out: Record<string, Float32Array | Float64Array> = {};
  for (const [n, inDim, outDim] of loraTargets(baseShapes, lora)) {
    const { a, b } = loraNames(n);
    const A = new Arr(inDim * lora.r);
    if (lora.init === "gaussian") rng.fillNormal(A, 1 / lora.r);
    else {
      const bound = 1 / Math.sqrt(inDim);
      for (let i = 0; i < A.length; i++) A[i] = (2 * rng.uniform() - 1) * bound;
    }
    out[a] = A;
    out[b] = new Arr(lora.r * outDim);
  }
  return out;
}

/**
 * `x · s` for `x [in, out]`. ORT fuses a MatMul followed by a Mul by a scalar constant into
 * FusedMatMul, whose `alpha` is a float32 attribute: with s = 5/3 a float64 model would be off
 * by ~1e-8. When s is not exactly a float32 the factor is therefore a `[1, out]` constant,
 * which the fusion does not match; otherwise the scalar is kept (fused, and still exact).
 */
function scaled(g: Graph, x: Value, s: number, outDim: number): Value {
  if (s === 1) return x;
  if (Math.fround(s) === s || outDim === 1) return g.mul(x, s);
  const data = new Array<number>(outDim).fill(s);
  return g.mul(x, g.constant({ dtype: x.dtype, shape: [1, outDim], data }, "lora_scale"));
}

/**
 * A LoRA-adapted weight that model code may use two ways: as the merged weight
 * `W + s · (A @ B)` (any op that consumes it builds the merge, once), or, through
 * {@link projection}, as PEFT computes it: `x W (+ b) + s · (x A) B`, which never forms the
 * merged matrix nor its gradient (what `factored: true` is for).
 */
export class LoraWeight extends LazyValue {
  constructor(
    g: Graph,
    /** The frozen base weight. */
    readonly base: Value,
    /** `lora_A`: `[in, r]` (Conv1D layout) or `[r, in]` (Linear). */
    readonly a: Value,
    /** `lora_B`: `[r, out]` (Conv1D layout) or `[out, r]` (Linear). */
    readonly b: Value,
    readonly scale: number,
    /** Linear layout (`fanInFanOut: false`). */
    readonly linear: boolean,
    merged: () => Value,
  ) {
    super(g, base.name, base.dtype, base.shape, merged);
  }
}

/**
 * `x @ W (+ b)` for a Conv1D weight `[in, out]` (`layout` "conv1d", GPT-2) or `x @ Wᵀ (+ b)`
 * for a Linear weight `[out, in]` ("linear", Llama family): the projection every model file
 * uses for its weights. For a {@link LoraWeight} that nothing has merged yet it is PEFT's
 * factored form, `(x W (+ b)) + s · ((x A) B)` (transposes in the Linear layout): the base
 * weight is read as it is, and its gradient (a full-size matrix) is never formed.
 */
export function projection(
  g: Graph,
  x: Value,
  w: Value,
  b: Value | undefined,
  layout: "conv1d" | "linear",
): Value {
  const mm = (v: Value, m: Value) => g.matmul(v, layout === "linear" ? g.transpose(m, [1, 0]) : m);
  if (w instanceof LoraWeight && !w.materialized) {
    const base = b ? g.add(mm(x, w.base), b) : mm(x, w.base);
    const outDim = w.base.shape[layout === "linear" ? 0 : 1] as number;
    return g.add(base, scaled(g, mm(mm(x, w.a), w.b), w.scale, outDim));
  }
  const y = mm(x, w);
  return b ? g.add(y, b) : y;
}

/**
 * The adapted parameters, in the graph: `base` with every targeted weight replaced by
 * `W + (alpha / r) · (A @ B)`; other entries pass through unchanged. `adapters` holds the
 * `lora_A` / `lora_B` values (it may be the same record as `base`, e.g. a TrainStepSpec's
 * params, which merges frozen and trainable values).
 *
 * `factored: true` returns {@link LoraWeight}s instead, which the model files' projections
 * apply as PEFT does, `x W + s · (x A) B`: no merged matrix per step, no full-size gradient
 * (for a 0.5B model, 1.4 GB of merged weights and as much of gradients fewer, and a third of
 * the matmul work). Same function, different rounding than the merged form.
 *
 * @example
 * ```ts
 * const { logits } = gptForward(g, cfg, applyLora(g, lora, baseParams, adapterParams), tokens);
 * ```
 */
export function applyLora(
  g: Graph,
  lora: LoraConfig,
  base: Record<string, Value>,
  adapters: Record<string, Value>,
  opts: { factored?: boolean } = {},
): Record<string, Value> {
  const shapes = Object.fromEntries(
    Object.entries(base).map(([n, v]) => [n, { shape: v.shape as number[] }]),
  );
  const out = { ...base };
  const scale = lora.alpha / lora.r;
  for (const [n, inDim, outDim] of loraTargets(shapes, lora)) {
    const { a, b } = loraNames(n);
    const A = adapters[a], B = adapters[b];
    if (!A || !B) throw new GraphError(`applyLora: missing adapter "${!A ? a : b}"`);
    const want = (v: Value, s: number[]) => v.rank === 2 && v.shape.every((d, i) => d === s[i]);
    const linear = lora.fanInFanOut === false;
    const aShape = linear ? [lora.r, inDim] : [inDim, lora.r];
    const bShape = linear ? [outDim, lora.r] : [lora.r, outDim];
    if (!want(A, aShape)) {
      throw new GraphError(`applyLora: "${a}" is ${A}, expected [${aShape}]`);
    }
    if (!want(B, bShape)) {
      throw new GraphError(`applyLora: "${b}" is ${B}, expected [${bShape}]`);
    }
    const merged = () =>
      linear
        ? g.add(base[n], scaled(g, g.matmul(B, A), scale, inDim))
        : g.add(base[n], scaled(g, g.matmul(A, B), scale, outDim));
    out[n] = opts.factored ? new LoraWeight(g, base[n], A, B, scale, linear, merged) : merged();
  }
  return out;
}

/** Options of {@link mergeLora}. */
export interface MergeLoraOptions {
  /**
   * Return a base array itself (no copy) wherever the merge leaves its bits unchanged: weights
   * no adapter targets, and targets whose B is all zero (adapters as initialised) and whose W
   * holds no -0. For a caller that only reads the result, as it reads a trainer's live params:
   * at the 0.5B shape the copy alone is 2 GB of fresh pages (11-14 s on a loaded 2-core VM).
   * The targets the merge does change are views of one new buffer, which the caller may detach
   * to free them at once (lm_problem.ts `releasePolicyParams`).
   */
  share?: boolean;
}

/**
 * Whether `w` holds a -0: its bit pattern searched by the engine's native indexOf over an
 * integer view (-0 is the only value with those bits). The element-wise
 * `some((v) => Object.is(v, -0))` it replaces took ~2.5 s over the 0.5B model's 1.4 GB of LoRA
 * targets at every merge (the evaluation before training among them).
 */
export function hasNegativeZero(w: Float32Array | Float64Array): boolean {
  return w instanceof Float32Array
    ? new Uint32Array(w.buffer, w.byteOffset, w.length).indexOf(0x80000000) >= 0
    : new BigUint64Array(w.buffer, w.byteOffset, w.length).indexOf(0x8000000000000000n) >= 0;
}

/**
 * Fold adapters into the base weights in TS: returns new arrays (same dtype as `base`; but see
 * `opts.share`) with `W + (alpha / r) · A @ B` for each target and the other weights copied,
 * i.e. a plain model that needs no LoRA graph (for sampling, export or a new LoRA round). Sums
 * run in float64.
 *
 * @example
 * ```ts
 * const merged = mergeLora(baseParams, trainer.params(), lora);
 * await saveHfFolder("out/policy", cfg, merged);
 * ```
 */
export function mergeLora<T extends Float32Array | Float64Array>(
  base: Record<string, T>,
  adapters: Record<string, Float32Array | Float64Array>,
  lora: LoraConfig,
  opts: MergeLoraOptions = {},
): Record<string, T> {
  validate(lora);
  const targets = lora.targets ?? DEFAULT_LORA_TARGETS;
  const isTargeted = (n: string) => targets.some((t) => isTarget(t, n));
  const out: Record<string, T> = {};
  // In the base's order (a saved file's tensor order); targets are copied (or shared) below.
  for (const [n, w] of Object.entries(base)) {
    out[n] = opts.share || isTargeted(n) ? w : w.slice() as T;
  }
  // With B = 0 the merge gives W + (+0): W itself unless W holds a -0 (made +0).
  const unchanged = (n: string) => {
    const { a, b } = loraNames(n);
    const A = adapters[a], B = adapters[b];
    return !!A && !!B && B.every((v) => v === 0) && A.every(Number.isFinite) &&
      !hasNegativeZero(base[n]);
  };
  // Shared: the targets the merge changes are views of ONE buffer, one large allocation that
  // the allocator maps and unmaps whole, so detaching it (lm_problem.ts releasePolicyParams)
  // gives the memory back at once; separate arrays' memory stayed in the process's heap.
  const copies = new Map<string, T>();
  if (opts.share) {
    const names = Object.keys(base).filter((n) => isTargeted(n) && !unchanged(n));
    const size = names.reduce((a, n) => a + base[n].length, 0);
    const all = names.length
      ? new (base[names[0]].constructor as new (n: number) => T)(size)
      : undefined;
    let at = 0;
    for (const n of names) {
      const view = all!.subarray(at, at + base[n].length) as T;
      view.set(base[n]);
      copies.set(n, view);
      at += base[n].length;
    }
  }
  const scale = lora.alpha / lora.r, r = lora.r;
  let merged = 0;
  for (const n of Object.keys(base)) {
    if (!isTargeted(n)) continue;
    const { a, b } = loraNames(n);
    const A = adapters[a], B = adapters[b];
    if (!A || !B) throw new Error(`mergeLora: missing adapter "${!A ? a : b}" for "${n}"`);
    const W = out[n] = opts.share ? copies.get(n) ?? base[n] : base[n].slice() as T;
    // Base arrays are flat; the adapters give the matrix shape.
    const linear = lora.fanInFanOut === false;
    const inDim = A.length / r, outDim = B.length / r;
    if (!Number.isInteger(inDim) || !Number.isInteger(outDim) || inDim * outDim !== W.length) {
      throw new Error(
        `mergeLora: "${n}" has ${W.length} values; "${a}" (${A.length}) and "${b}" ` +
          `(${B.length}) do not fit rank ${r}`,
      );
    }
    if (W === base[n]) {
      // shared (see above): nothing to add
    } else if (B.every((v) => v === 0) && A.every(Number.isFinite)) {
      // Every product is ±0, so each sum below is +0 and W + s·0 is W with -0 turned +0: the
      // same bits without the r multiply-adds per weight (adapters as initialised, B = 0: the
      // pre-training evaluation's merge, 6 G multiply-adds in JS at the 0.5B shape).
      for (let j = 0; j < W.length; j++) W[j] += 0;
    } else if (linear) { // W [out, in] += s · B [out, r] @ A [r, in]
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * inDim + i];
          W[o * inDim + i] += scale * s;
        }
      }
    } else { // W [in, out] += s · A [in, r] @ B [r, out]
      for (let i = 0; i < inDim; i++) {
        for (let j = 0; j < outDim; j++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += A[i * r + k] * B[k * outDim + j];
          W[i * outDim + j] += scale * s;
        }
      }
    }
    merged++;
  }
  if (merged === 0) throw new Error(`mergeLora: no base weight matches the LoRA targets`);
  return out;
}
