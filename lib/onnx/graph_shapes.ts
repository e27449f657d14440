/**
 * The value types of the graph builder (dtypes, static and symbolic shapes, constant
 * tensors, {@link GraphError}) and its shape inference: broadcasting, slices, and the output
 * shape (with the checks that name the op and the shapes) of each op whose shape is more than
 * its input's. Pure functions of shapes: the `Graph` class (graph.ts) emits the nodes.
 * @module
 */

export type DType = "float32" | "float64" | "int64" | "int32" | "bool";
/** A dimension: a known size or a symbolic name shared by every value that has it. */
export type Dim = number | string;
export type Shape = Dim[];

/** ONNX TensorProto.DataType codes. */
export const DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

/** Opset this builder targets (ai.onnx). */
export const OPSET = 21;

/** A node attribute as the helpers read it (graph.ts's `AttrValue` is one). */
export type AttrValueLike = { kind: string; value: unknown };

/** What shape inference reads of a value (a graph.ts `Value` is one). */
export interface ShapedValue {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly rank: number;
}

/** A constant tensor (initializer or attribute payload). */
export interface ConstTensor {
  dtype: DType;
  shape: number[];
  data: ArrayLike<number> | ArrayLike<bigint> | ArrayLike<boolean>;
}

/** Thrown for graph-construction errors; the message names the op and the shapes. */
export class GraphError extends Error {
  override name = "GraphError";
}

const FLOATS: DType[] = ["float32", "float64"];
export const isFloat = (d: DType): boolean => FLOATS.includes(d);

/** A shape as text, for messages: `[B, 4]`. */
export function fmt(s: Shape): string {
  return `[${s.join(", ")}]`;
}

/** Numpy-style broadcast of static/symbolic shapes; symbolic dims must match by name or be 1. */
export function broadcastShapes(op: string, ...shapes: Shape[]): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const e = s[s.length - rank + i] ?? 1;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (d !== e) {
        throw new GraphError(
          `${op}: shapes ${
            shapes.map(fmt).join(" and ")
          } do not broadcast (dim ${i}: ${d} vs ${e})`,
        );
      }
    }
    out.push(d);
  }
  return out;
}

/** `axis` made non-negative, checked against `rank`; errors name `op`. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Product of the dims, or undefined if any is symbolic. */
export function dimProduct(dims: Shape): Dim | undefined {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/** Slice ends at or beyond this mean "to the end of the axis" (INT32_MAX and up). */
export const TO_END = 2 ** 31 - 1;

/** Normalised [start, end) of a slice on a dim of static size d (ONNX clamping rules). */
export function sliceBounds(start: number, end: number, step: number, d: number): [number, number] {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = clamp(s, 0, d);
    e = clamp(e, 0, d);
  } else {
    s = clamp(s, 0, d - 1);
    e = clamp(e, -1, d - 1);
  }
  return [s, e];
}

/**
 * Output shape of `Reshape` with ONNX semantics (0 copies the input dim, -1 is inferred; a
 * symbolic -1 is named by its product, "B*3"), with the checks graph.ts's `Graph.reshape` makes.
 */
export function reshapeShape(x: ShapedValue, shape: Dim[]): Shape {
  const out: Shape = shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const inN = dimProduct(x.shape), known = dimProduct(out.filter((d) => d !== -1));
  const minus = out.indexOf(-1);
  if (minus >= 0) {
    if (typeof inN === "number" && typeof known === "number") {
      if (inN % known !== 0) {
        throw new GraphError(`Reshape: cannot reshape ${x} to ${fmt(shape)}`);
      }
      out[minus] = inN / known;
    } else {
      // Symbolic: name the inferred dim by its product ("B*3"), so two reshapes of
      // equal-sized tensors agree on it.
      const syms = x.shape.filter((d): d is string => typeof d === "string");
      let num = x.shape.reduce<number>((a, d) => (typeof d === "number" ? a * d : a), 1);
      for (const d of out) {
        if (d === -1) continue;
        if (typeof d === "number") num /= d;
        else if (syms.includes(d)) syms.splice(syms.indexOf(d), 1);
      }
      if (!Number.isInteger(num)) {
        throw new GraphError(
          `Reshape: cannot infer -1 for ${x} -> ${fmt(shape)} (${num} is fractional)`,
        );
      }
      const parts = [...(num !== 1 ? [String(num)] : []), ...syms.sort()];
      out[minus] = syms.length === 0 ? num : parts.join("*");
    }
  } else if (typeof inN === "number" && typeof known === "number" && inN !== known) {
    throw new GraphError(`Reshape: cannot reshape ${x} (${inN} elements) to ${fmt(shape)}`);
  }
  // A symbolic target dim must sit where it is in the input: it is then sent as 0 (copy).
  shape.forEach((d, i) => {
    if (typeof d === "string" && x.shape[i] !== d) {
      throw new GraphError(
        `Reshape: symbolic dim "${d}" must keep its position ${i} in ${x}; use 0 or -1`,
      );
    }
  });
  return out;
}

/** Axes, steps and output shape of `Slice` (ONNX semantics; unknown lengths named by the slice). */
export function sliceShape(
  x: ShapedValue,
  starts: number[],
  ends: number[],
  axes?: number[],
  steps?: number[],
): { ax: number[]; st: number[]; shape: Shape } {
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis("Slice", a, x.rank));
  const st = steps ?? ax.map(() => 1);
  if (starts.length !== ax.length || ends.length !== ax.length || st.length !== ax.length) {
    throw new GraphError(`Slice: starts/ends/axes/steps lengths differ`);
  }
  if (st.some((s) => s === 0)) throw new GraphError(`Slice: step 0`);
  const shape = [...x.shape];
  ax.forEach((a, i) => {
    const d = x.shape[a];
    if (typeof d === "number") {
      const [s, e] = sliceBounds(starts[i], ends[i], st[i], d);
      shape[a] = st[i] > 0
        ? Math.max(0, Math.ceil((e - s) / st[i]))
        : Math.max(0, Math.ceil((s - e) / -st[i]));
    } else if (st[i] === 1 && starts[i] === 0 && ends[i] >= TO_END) {
      shape[a] = d;
    } else if (st[i] === 1 && starts[i] < 0 && ends[i] >= TO_END) {
      shape[a] = -starts[i]; // the last |start| entries (assumes the dim has that many)
    } else {
      // Unknown until run time: a name made from the slice itself, so equal slices agree.
      shape[a] = `${d}[${starts[i]}:${ends[i] >= TO_END ? "" : ends[i]}:${st[i]}]`;
    }
  });
  return { ax, st, shape };
}

/** Normalised axis and output shape of `Concat` (symbolic lengths add as "P+S"). */
export function concatShape(xs: ShapedValue[], axis: number): { a: number; shape: Shape } {
  const a = normAxis("Concat", axis, xs[0].rank);
  const shape = [...xs[0].shape];
  let total: Dim = 0;
  for (const x of xs) {
    if (x.rank !== shape.length) throw new GraphError(`Concat: rank mismatch ${xs.join(", ")}`);
    x.shape.forEach((d, i) => {
      if (i !== a && d !== shape[i]) {
        throw new GraphError(`Concat: dim ${i} differs in ${xs.join(", ")}`);
      }
    });
    const d = x.shape[a];
    total = typeof total === "number" && typeof d === "number" ? total + d : `${total}+${d}`;
  }
  shape[a] = total;
  return { a, shape };
}

/** Broadcast batch dims and the m, n of a batched `MatMul`. */
export function matmulShape(a: ShapedValue, b: ShapedValue): { batch: Shape; m: Dim; n: Dim } {
  if (a.rank < 2 || b.rank < 2) {
    throw new GraphError(
      `MatMul: needs rank >= 2 operands (unsqueeze vectors), got ${a} and ${b}`,
    );
  }
  const [m, k] = a.shape.slice(-2), [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new GraphError(`MatMul: inner dims differ: ${a} @ ${b}`);
  const batch = broadcastShapes("MatMul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  return { batch, m, n };
}

/** [M, N] of a `Gemm`, checking the inner dims and that C broadcasts to [M, N] one way only. */
export function gemmShape(
  a: ShapedValue,
  b: ShapedValue,
  c: ShapedValue | undefined,
  opts: { transA?: boolean; transB?: boolean },
): [Dim, Dim] {
  if (a.rank !== 2 || b.rank !== 2) {
    throw new GraphError(`Gemm: needs 2-D operands, got ${a} and ${b}`);
  }
  const [m, k] = opts.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = opts.transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== k2) {
    throw new GraphError(
      `Gemm: inner dims differ: ${a} x ${b} (transA=${!!opts.transA}, transB=${!!opts.transB})`,
    );
  }
  // C broadcasts one way only: up to [M, N].
  if (
    c &&
    (c.rank > 2 || broadcastShapes("Gemm (C)", [m, n], c.shape).some((d, i) => d !== [m, n][i]))
  ) {
    throw new GraphError(`Gemm: C ${c} does not broadcast to the output [${m}, ${n}]`);
  }
  return [m, n];
}

/** Checks that LayerNormalization's scale and bias broadcast within the normalised axes. */
export function checkLayerNormParams(
  x: ShapedValue,
  axis: number,
  scale: ShapedValue,
  bias?: ShapedValue,
): void {
  const normShape = x.shape.slice(axis);
  for (const p of bias ? [scale, bias] : [scale]) {
    if (broadcastShapes("LayerNormalization", normShape, p.shape).length !== normShape.length) {
      throw new GraphError(
        `LayerNormalization: ${p} has more dims than the normalised ${fmt(normShape)}`,
      );
    }
  }
}

/** The common dtype of `vs`; throws naming `op` if they differ. */
export function sameDType(op: string, ...vs: ShapedValue[]): DType {
  for (const v of vs) {
    if (v.dtype !== vs[0].dtype) {
      throw new GraphError(`${op}: dtype mismatch ${vs.map((x) => x.dtype).join(" vs ")}`);
    }
  }
  return vs[0].dtype;
}

/** Throws naming `op` unless `v` is float32 or float64. */
export function requireFloat(op: string, v: ShapedValue): void {
  if (!isFloat(v.dtype)) throw new GraphError(`${op}: expects a float tensor, got ${v}`);
}

/** Normalised axes and output shape of a Reduce* op (no axes: every axis, as ONNX does). */
export function reduceShape(
  op: string,
  x: ShapedValue,
  axes: number[] | undefined,
  keepdims: boolean,
): { ax: number[]; shape: Shape } {
  // No axes (or an empty list) reduces over every axis, as ONNX does by default.
  const all = !axes || axes.length === 0;
  const ax = (all ? x.shape.map((_, i) => i) : axes).map((a) => normAxis(op, a, x.rank));
  const shape = keepdims
    ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !ax.includes(i));
  return { ax, shape };
}

/** Normalised axes and output shape of `Unsqueeze`. */
export function unsqueezeShape(x: ShapedValue, axes: number[]): { ax: number[]; shape: Shape } {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis("Unsqueeze", a, rank));
  const shape: Shape = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]);
  return { ax, shape };
}

/** Normalised axes and output shape of `Squeeze` (each squeezed dim must be 1). */
export function squeezeShape(x: ShapedValue, axes: number[]): { ax: number[]; shape: Shape } {
  const ax = axes.map((a) => normAxis("Squeeze", a, x.rank));
  for (const a of ax) {
    if (x.shape[a] !== 1) throw new GraphError(`Squeeze: dim ${a} of ${x} is not 1`);
  }
  return { ax, shape: x.shape.filter((_, i) => !ax.includes(i)) };
}
