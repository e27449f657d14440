/**
 * A small typed ONNX graph builder.
 *
 * Every op method appends one node and returns a {@link Value} whose dtype and
 * shape (with symbolic dims such as `"batch"`) are inferred at build time, so a
 * shape mismatch is reported where the model is written, not when ORT runs it.
 *
 * @example
 * ```ts
 * const g = new Graph("affine");
 * const x = g.input("x", "float32", ["batch", 4]);
 * const w = g.input("w", "float32", [4, 2]);
 * g.output(g.relu(g.matmul(x, w)), "y");
 * const bytes = g.toModelBytes();
 * ```
 * @module
 */
import protoPkg from "onnx-proto";

// deno-lint-ignore no-explicit-any
const onnx = (protoPkg as any).onnx;

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

export type AttrValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: ConstTensor }
  | { kind: "graph"; value: Graph };

/** A constant tensor (initializer or attribute payload). */
export interface ConstTensor {
  dtype: DType;
  shape: number[];
  data: ArrayLike<number> | ArrayLike<bigint> | ArrayLike<boolean>;
}

/** A typed edge of the graph. */
export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  toString(): string {
    return `${this.name}: ${this.dtype}[${this.shape.join(", ")}]`;
  }
}

/**
 * A value whose nodes are built on first use: an op that consumes it (or `output`) gets the
 * value `build` returns, built once; until then nothing is in the graph. A parameter transform
 * can so offer a value that any code may use as is, and that code which knows its structure
 * may bypass (LoRA's merged weight vs. the factored product: lib/nn/lora.ts), without leaving
 * dead nodes behind.
 */
export class LazyValue extends Value {
  private built?: Value;
  constructor(graph: Graph, hint: string, dtype: DType, shape: Shape, private build: () => Value) {
    super(graph, `lazy:${hint}`, dtype, shape);
  }
  /** Whether an op has consumed it (its nodes are in the graph). */
  get materialized(): boolean {
    return this.built !== undefined;
  }
  /** The real value (built on the first call). */
  materialize(): Value {
    if (!this.built) {
      const v = this.build();
      if (v.dtype !== this.dtype || v.shape.join() !== this.shape.join()) {
        throw new GraphError(`LazyValue ${this.name}: built ${v}, declared ${this}`);
      }
      this.built = v;
    }
    return this.built;
  }
}

/** One ONNX node with its typed inputs and outputs. */
export interface Node {
  op: string;
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: Record<string, AttrValue>;
}

/** Thrown for graph-construction errors; the message names the op and the shapes. */
export class GraphError extends Error {
  override name = "GraphError";
}

const FLOATS: DType[] = ["float32", "float64"];
export const isFloat = (d: DType): boolean => FLOATS.includes(d);

function fmt(s: Shape): string {
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

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

function dimProduct(dims: Shape): Dim | undefined {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/**
 * The graph under construction. Sub-graphs (ONNX Loop bodies) are Graphs whose
 * `parent` is the enclosing graph; they may read the parent's values by name.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, { value: Value; tensor: ConstTensor }>();
  /** The node that produced each value (undefined for inputs and initializers). */
  readonly producer = new Map<Value, Node>();
  /** Values made by {@link stopGradient}: autodiff treats them as constants. */
  readonly stopped = new Set<Value>();
  private names = new Set<string>();
  private counter = 0;
  private constCache = new Map<string, Value>();

  /** `prefix` namespaces value names (used by lowering scratch graphs). */
  constructor(readonly name = "proxima", readonly parent?: Graph, readonly prefix = "") {}

  private root(): Graph {
    return this.parent ? this.parent.root() : this;
  }

  /** A fresh, graph-unique value name (unique across nested bodies too). */
  fresh(hint: string): string {
    const root = this.root();
    let name: string;
    do name = `${root.prefix}${hint}_${root.counter++}`; while (root.names.has(name));
    root.names.add(name);
    return name;
  }

  private claim(name: string): string {
    const root = this.root();
    if (root.names.has(name)) throw new GraphError(`duplicate value name "${name}"`);
    root.names.add(name);
    return name;
  }

  /** Declare a graph input. */
  input(name: string, dtype: DType, shape: Shape): Value {
    const v = new Value(this, this.claim(name), dtype, shape);
    this.inputs.push(v);
    return v;
  }

  /** Declare an input with a fresh unique name (Loop-body inputs). */
  freshInput(hint: string, dtype: DType, shape: Shape): Value {
    const v = new Value(this, this.fresh(hint), dtype, shape);
    this.inputs.push(v);
    return v;
  }

  /** Mark a value as a graph output, renaming it through an Identity if a name is given. */
  output(v: Value, name?: string): Value {
    if (v instanceof LazyValue) v = v.materialize();
    const out = name && name !== v.name ? this.node("Identity", [v], {}, name)[0] : v;
    this.outputs.push(out);
    return out;
  }

  /** A constant tensor stored as an initializer (deduplicated by content). */
  constant(tensor: ConstTensor, hint = "const"): Value {
    const key = `${tensor.dtype}|${tensor.shape}|${Array.from(tensor.data as ArrayLike<unknown>)}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const n = tensor.shape.reduce((a, b) => a * b, 1);
    if (n !== tensor.data.length) {
      throw new GraphError(`constant: ${tensor.data.length} values for shape ${fmt(tensor.shape)}`);
    }
    const v = new Value(this, this.fresh(hint), tensor.dtype, tensor.shape);
    this.initializers.set(v.name, { value: v, tensor });
    this.constCache.set(key, v);
    return v;
  }

  /** A scalar constant of the given dtype. */
  scalar(x: number, dtype: DType): Value {
    return this.constant({ dtype, shape: [], data: dtype === "int64" ? [BigInt(x)] : [x] });
  }

  /** A 1-D int64 constant (axes, shapes, pads). */
  ints(xs: number[]): Value {
    return this.constant({ dtype: "int64", shape: [xs.length], data: xs.map(BigInt) });
  }

  /**
   * Append a raw node. Prefer the typed op methods: this one infers nothing and
   * takes output dtypes/shapes from `outTypes` (defaults: same as first input).
   */
  node(
    op: string,
    inputs: (Value | undefined)[],
    attrs: Record<string, AttrValue> = {},
    outName?: string,
    outTypes?: { dtype: DType; shape: Shape }[],
  ): Value[] {
    inputs = inputs.map((v) => (v instanceof LazyValue ? v.materialize() : v));
    const types = outTypes ?? [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }];
    const outputs = types.map((t, i) =>
      new Value(
        this,
        outName && i === 0 ? this.claim(outName) : this.fresh(op.toLowerCase()),
        t.dtype,
        t.shape,
      )
    );
    const node: Node = { op, inputs, outputs, attrs };
    this.nodes.push(node);
    for (const o of outputs) this.producer.set(o, node);
    return outputs;
  }

  private one(
    op: string,
    inputs: (Value | undefined)[],
    dtype: DType,
    shape: Shape,
    attrs: Record<string, AttrValue> = {},
  ): Value {
    return this.node(op, inputs, attrs, undefined, [{ dtype, shape }])[0];
  }

  private sameDType(op: string, ...vs: Value[]): DType {
    for (const v of vs) {
      if (v.dtype !== vs[0].dtype) {
        throw new GraphError(`${op}: dtype mismatch ${vs.map((x) => x.dtype).join(" vs ")}`);
      }
    }
    return vs[0].dtype;
  }

  private requireFloat(op: string, v: Value): void {
    if (!isFloat(v.dtype)) throw new GraphError(`${op}: expects a float tensor, got ${v}`);
  }

  private lift(x: Value | number, like: Value): Value {
    return typeof x === "number" ? this.scalar(x, like.dtype) : x;
  }

  private binary(op: string, a: Value | number, b: Value | number): Value {
    const av = typeof a === "number" ? this.lift(a, b as Value) : a;
    const bv = this.lift(b, av);
    const dtype = this.sameDType(op, av, bv);
    return this.one(op, [av, bv], dtype, broadcastShapes(op, av.shape, bv.shape));
  }

  private compare(op: string, a: Value | number, b: Value | number): Value {
    const av = typeof a === "number" ? this.lift(a, b as Value) : a;
    const bv = this.lift(b, av);
    this.sameDType(op, av, bv);
    return this.one(op, [av, bv], "bool", broadcastShapes(op, av.shape, bv.shape));
  }

  private unary(op: string, x: Value, attrs: Record<string, AttrValue> = {}): Value {
    this.requireFloat(op, x);
    return this.one(op, [x], x.dtype, x.shape, attrs);
  }

  // ---- elementwise -------------------------------------------------------
  add(a: Value | number, b: Value | number): Value {
    return this.binary("Add", a, b);
  }
  sub(a: Value | number, b: Value | number): Value {
    return this.binary("Sub", a, b);
  }
  mul(a: Value | number, b: Value | number): Value {
    return this.binary("Mul", a, b);
  }
  div(a: Value | number, b: Value | number): Value {
    return this.binary("Div", a, b);
  }
  pow(a: Value, b: Value | number): Value {
    return this.binary("Pow", a, b);
  }
  /** Elementwise minimum of two tensors (broadcasting). */
  min(a: Value | number, b: Value | number): Value {
    return this.binary("Min", a, b);
  }
  /** Elementwise maximum of two tensors (broadcasting). */
  max(a: Value | number, b: Value | number): Value {
    return this.binary("Max", a, b);
  }
  neg(x: Value): Value {
    return this.one("Neg", [x], x.dtype, x.shape);
  }
  abs(x: Value): Value {
    return this.one("Abs", [x], x.dtype, x.shape);
  }
  sign(x: Value): Value {
    return this.one("Sign", [x], x.dtype, x.shape);
  }
  exp(x: Value): Value {
    return this.unary("Exp", x);
  }
  log(x: Value): Value {
    return this.unary("Log", x);
  }
  sqrt(x: Value): Value {
    return this.unary("Sqrt", x);
  }
  tanh(x: Value): Value {
    return this.unary("Tanh", x);
  }
  sigmoid(x: Value): Value {
    return this.unary("Sigmoid", x);
  }
  erf(x: Value): Value {
    return this.unary("Erf", x);
  }
  cos(x: Value): Value {
    return this.unary("Cos", x);
  }
  sin(x: Value): Value {
    return this.unary("Sin", x);
  }
  relu(x: Value): Value {
    return this.unary("Relu", x);
  }
  /** GELU; `approximate: "tanh"` is GPT-2's form, `"none"` the exact erf form. */
  gelu(x: Value, approximate: "none" | "tanh" = "none"): Value {
    return this.unary("Gelu", x, { approximate: { kind: "string", value: approximate } });
  }
  identity(x: Value): Value {
    return this.one("Identity", [x], x.dtype, x.shape);
  }
  /**
   * x, as a constant for autodiff (PyTorch's `x.detach()`): an Identity whose output
   * {@link gradients} treats as depending on nothing, so no gradient flows back through it.
   */
  stopGradient(x: Value): Value {
    const y = this.identity(x);
    this.stopped.add(y);
    return y;
  }
  /** Clip to [lo, hi]; either bound may be omitted. */
  clip(x: Value, lo?: Value | number, hi?: Value | number): Value {
    const l = lo === undefined ? undefined : this.lift(lo, x);
    const h = hi === undefined ? undefined : this.lift(hi, x);
    for (const b of [l, h]) {
      if (b && b.rank !== 0) throw new GraphError(`Clip: bounds must be scalars, got ${b}`);
    }
    return this.one("Clip", [x, l, h], x.dtype, x.shape);
  }
  where(cond: Value, a: Value | number, b: Value | number): Value {
    if (cond.dtype !== "bool") throw new GraphError(`Where: condition must be bool, got ${cond}`);
    const av = typeof a === "number" ? this.lift(a, b as Value) : a;
    const bv = this.lift(b, av);
    const dtype = this.sameDType("Where", av, bv);
    return this.one(
      "Where",
      [cond, av, bv],
      dtype,
      broadcastShapes("Where", cond.shape, av.shape, bv.shape),
    );
  }
  equal(a: Value | number, b: Value | number): Value {
    return this.compare("Equal", a, b);
  }
  less(a: Value | number, b: Value | number): Value {
    return this.compare("Less", a, b);
  }
  lessOrEqual(a: Value | number, b: Value | number): Value {
    return this.compare("LessOrEqual", a, b);
  }
  greater(a: Value | number, b: Value | number): Value {
    return this.compare("Greater", a, b);
  }
  greaterOrEqual(a: Value | number, b: Value | number): Value {
    return this.compare("GreaterOrEqual", a, b);
  }
  and(a: Value, b: Value): Value {
    return this.one("And", [a, b], "bool", broadcastShapes("And", a.shape, b.shape));
  }
  not(a: Value): Value {
    return this.one("Not", [a], "bool", a.shape);
  }
  cast(x: Value, dtype: DType): Value {
    return this.one("Cast", [x], dtype, x.shape, { to: { kind: "int", value: DTYPE_CODE[dtype] } });
  }

  // ---- linear algebra ----------------------------------------------------
  /** Batched matrix product (rank >= 2 on both sides; batch dims broadcast). */
  matmul(a: Value, b: Value): Value {
    const dtype = this.sameDType("MatMul", a, b);
    if (a.rank < 2 || b.rank < 2) {
      throw new GraphError(
        `MatMul: needs rank >= 2 operands (unsqueeze vectors), got ${a} and ${b}`,
      );
    }
    const [m, k] = a.shape.slice(-2), [k2, n] = b.shape.slice(-2);
    if (k !== k2) throw new GraphError(`MatMul: inner dims differ: ${a} @ ${b}`);
    const batch = broadcastShapes("MatMul", a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.one("MatMul", [a, b], dtype, [...batch, m, n]);
  }
  /** Y = alpha * A' @ B' + beta * C with A' = transA ? Aᵀ : A (2-D only). */
  gemm(
    a: Value,
    b: Value,
    c?: Value,
    opts: { alpha?: number; beta?: number; transA?: boolean; transB?: boolean } = {},
  ): Value {
    const dtype = this.sameDType("Gemm", a, b, ...(c ? [c] : []));
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
    const attrs: Record<string, AttrValue> = {};
    if (opts.alpha !== undefined && opts.alpha !== 1) {
      attrs.alpha = { kind: "float", value: opts.alpha };
    }
    if (opts.beta !== undefined && opts.beta !== 1) {
      attrs.beta = { kind: "float", value: opts.beta };
    }
    if (opts.transA) attrs.transA = { kind: "int", value: 1 };
    if (opts.transB) attrs.transB = { kind: "int", value: 1 };
    return this.one("Gemm", c ? [a, b, c] : [a, b], dtype, [m, n], attrs);
  }

  // ---- normalisation / activations over an axis --------------------------
  softmax(x: Value, axis = -1): Value {
    return this.unary("Softmax", x, {
      axis: { kind: "int", value: normAxis("Softmax", axis, x.rank) },
    });
  }
  logSoftmax(x: Value, axis = -1): Value {
    return this.unary("LogSoftmax", x, {
      axis: { kind: "int", value: normAxis("LogSoftmax", axis, x.rank) },
    });
  }
  /**
   * LayerNormalization over the trailing axes from `axis`. Only Y is emitted: ORT CPU has no
   * float64 kernel for the Mean/InvStdDev outputs, so the gradient rule recomputes them.
   */
  layerNorm(
    x: Value,
    scale: Value,
    bias?: Value,
    opts: { axis?: number; epsilon?: number } = {},
  ): Value {
    const dtype = this.sameDType("LayerNormalization", x, scale, ...(bias ? [bias] : []));
    const axis = normAxis("LayerNormalization", opts.axis ?? -1, x.rank);
    const normShape = x.shape.slice(axis);
    for (const p of bias ? [scale, bias] : [scale]) {
      if (broadcastShapes("LayerNormalization", normShape, p.shape).length !== normShape.length) {
        throw new GraphError(
          `LayerNormalization: ${p} has more dims than the normalised ${fmt(normShape)}`,
        );
      }
    }
    return this.one("LayerNormalization", bias ? [x, scale, bias] : [x, scale], dtype, x.shape, {
      axis: { kind: "int", value: axis },
      epsilon: { kind: "float", value: opts.epsilon ?? 1e-5 },
    });
  }

  // ---- reductions --------------------------------------------------------
  private reduce(op: string, x: Value, axes: number[] | undefined, keepdims: boolean): Value {
    // No axes (or an empty list) reduces over every axis, as ONNX does by default.
    const all = !axes || axes.length === 0;
    const ax = (all ? x.shape.map((_, i) => i) : axes).map((a) => normAxis(op, a, x.rank));
    const shape = keepdims
      ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !ax.includes(i));
    return this.one(op, [x, this.ints(ax)], x.dtype, shape, {
      keepdims: { kind: "int", value: keepdims ? 1 : 0 },
    });
  }
  /** Sum over `axes` (all axes when omitted). */
  reduceSum(x: Value, axes?: number[], keepdims = false): Value {
    return this.reduce("ReduceSum", x, axes, keepdims);
  }
  reduceMean(x: Value, axes?: number[], keepdims = false): Value {
    return this.reduce("ReduceMean", x, axes, keepdims);
  }
  reduceMax(x: Value, axes?: number[], keepdims = false): Value {
    return this.reduce("ReduceMax", x, axes, keepdims);
  }

  // ---- shape ops ---------------------------------------------------------
  /** Runtime shape of x as a 1-D int64 tensor. */
  shapeOf(x: Value): Value {
    return this.one("Shape", [x], "int64", [x.rank]);
  }
  /** Number of elements of x as an int64 scalar. */
  size(x: Value): Value {
    return this.one("Size", [x], "int64", []);
  }
  /**
   * Reshape with ONNX semantics (0 copies the input dim, -1 is inferred).
   * `shape` may be a runtime int64 tensor, then `outShape` gives the static shape.
   */
  reshape(x: Value, shape: Dim[] | Value, outShape?: Shape): Value {
    if (shape instanceof Value) {
      if (!outShape) throw new GraphError(`Reshape: a runtime shape needs outShape`);
      return this.one("Reshape", [x, shape], x.dtype, outShape);
    }
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
    const spec = this.ints(shape.map((d) => (typeof d === "number" ? d : 0)));
    return this.one("Reshape", [x, spec], x.dtype, out);
  }
  transpose(x: Value, perm?: number[]): Value {
    const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
    if (p.length !== x.rank || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
      throw new GraphError(`Transpose: perm [${p}] is not a permutation of rank ${x.rank}`);
    }
    return this.one("Transpose", [x], x.dtype, p.map((i) => x.shape[i]), {
      perm: { kind: "ints", value: p },
    });
  }
  unsqueeze(x: Value, axes: number[]): Value {
    const rank = x.rank + axes.length;
    const ax = axes.map((a) => normAxis("Unsqueeze", a, rank));
    const shape: Shape = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]);
    return this.one("Unsqueeze", [x, this.ints(ax)], x.dtype, shape);
  }
  squeeze(x: Value, axes: number[]): Value {
    const ax = axes.map((a) => normAxis("Squeeze", a, x.rank));
    for (const a of ax) {
      if (x.shape[a] !== 1) throw new GraphError(`Squeeze: dim ${a} of ${x} is not 1`);
    }
    return this.one(
      "Squeeze",
      [x, this.ints(ax)],
      x.dtype,
      x.shape.filter((_, i) => !ax.includes(i)),
    );
  }
  /** Broadcast x to `shape` (a static shape; symbolic dims are taken from `like` at run time). */
  expand(x: Value, shape: Shape, like?: Value): Value {
    const out = broadcastShapes("Expand", x.shape, shape);
    let spec: Value;
    if (shape.every((d) => typeof d === "number")) spec = this.ints(shape as number[]);
    else if (
      like && like.shape.length === shape.length && like.shape.every((d, i) => d === shape[i])
    ) {
      spec = this.shapeOf(like);
    } else {throw new GraphError(
        `Expand: symbolic target ${fmt(shape)} needs a value of that shape`,
      );}
    return this.one("Expand", [x, spec], x.dtype, out);
  }
  /** Gather along `axis` (embeddings: gather(table, ids, 0)). */
  gather(data: Value, indices: Value, axis = 0): Value {
    if (indices.dtype !== "int64" && indices.dtype !== "int32") {
      throw new GraphError(`Gather: indices must be int64/int32, got ${indices}`);
    }
    const a = normAxis("Gather", axis, data.rank);
    const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
    return this.one("Gather", [data, indices], data.dtype, shape, {
      axis: { kind: "int", value: a },
    });
  }
  /** Slice with ONNX semantics (negative starts/ends count from the end; ends clamp). */
  slice(x: Value, starts: number[], ends: number[], axes?: number[], steps?: number[]): Value {
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
    const inputs = [x, this.ints(starts), this.ints(ends), this.ints(ax)];
    if (steps) inputs.push(this.ints(st));
    return this.one("Slice", inputs, x.dtype, shape);
  }
  concat(xs: Value[], axis: number): Value {
    const dtype = this.sameDType("Concat", ...xs);
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
    return this.one("Concat", xs, dtype, shape, { axis: { kind: "int", value: a } });
  }
  /** Split along `axis` into pieces of the given static sizes. */
  split(x: Value, sizes: number[], axis: number): Value[] {
    const a = normAxis("Split", axis, x.rank);
    const d = x.shape[a];
    if (typeof d === "number" && sizes.reduce((s, v) => s + v, 0) !== d) {
      throw new GraphError(`Split: sizes [${sizes}] do not add up to dim ${a} of ${x}`);
    }
    const types = sizes.map((s) => ({
      dtype: x.dtype,
      shape: x.shape.map((e, i) => (i === a ? s : e)),
    }));
    return this.node(
      "Split",
      [x, this.ints(sizes)],
      { axis: { kind: "int", value: a } },
      undefined,
      types,
    );
  }
  /** Zeros shaped like x (at run time). */
  zerosLike(x: Value): Value {
    return this.one("ConstantOfShape", [this.shapeOf(x)], x.dtype, x.shape, {
      value: {
        kind: "tensor",
        value: { dtype: x.dtype, shape: [1], data: x.dtype === "int64" ? [0n] : [0] },
      },
    });
  }

  // ---- serialisation -----------------------------------------------------
  /**
   * The GraphProto object (plain JS, for onnx-proto). Inputs named in `external` are declared
   * as initializers whose data is external (static shapes only): a session supplies their
   * memory at creation (ort_ffi.ts, `initializers`), so they are constants to ORT without
   * being copied into the model.
   */
  toGraphProto(external?: ReadonlySet<string>): unknown {
    const valueInfo = (v: Value) => ({
      name: v.name,
      type: {
        tensorType: {
          elemType: DTYPE_CODE[v.dtype],
          shape: {
            dim: v.shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
          },
        },
      },
    });
    // deno-lint-ignore no-explicit-any
    const nodes: any[] = [], extraInit: unknown[] = [];
    this.nodes.forEach((n, i) => {
      const lower = lowerings[n.op]?.(n);
      if (!lower) {
        nodes.push({
          opType: n.op,
          name: `${this.prefix}${n.op}_${i}`,
          input: n.inputs.map((v) => v?.name ?? ""),
          output: n.outputs.map((v) => v.name),
          attribute: Object.entries(n.attrs).map(([name, a]) => attrProto(name, a)),
        });
        return;
      }
      // Expand into a scratch graph namespaced by the output's name, then alias its result.
      const scratch = new Graph("lowered", undefined, `${n.outputs[0].name}/`);
      const result = lower(scratch);
      // deno-lint-ignore no-explicit-any
      const sub = scratch.toGraphProto() as any;
      nodes.push(...sub.node, {
        opType: "Identity",
        name: `${n.op}_${i}`,
        input: [result.name],
        output: [n.outputs[0].name],
      });
      extraInit.push(...sub.initializer);
    });
    const externalInit = this.inputs.filter((v) => external?.has(v.name)).map((v) => {
      if (!v.shape.every((d) => typeof d === "number")) {
        throw new GraphError(`external initializer ${v}: its shape must be static`);
      }
      return {
        name: v.name,
        dims: v.shape,
        dataType: DTYPE_CODE[v.dtype],
        dataLocation: 1, // EXTERNAL: the data comes with the session, not the model
        externalData: [{ key: "location", value: "proxima-session-memory" }],
      };
    });
    if (external && externalInit.length !== external.size) {
      const missing = [...external].filter((n) => !this.inputs.some((v) => v.name === n));
      throw new GraphError(`external initializers [${missing}] are not inputs of the graph`);
    }
    return {
      name: this.name,
      node: nodes,
      input: this.inputs.filter((v) => !external?.has(v.name)).map(valueInfo),
      output: this.outputs.map(valueInfo),
      initializer: [...this.initializers.values()].map(({ value, tensor }) =>
        tensorProto(value.name, tensor)
      ).concat(extraInit, externalInit),
    };
  }

  /** Serialise to ONNX ModelProto bytes (`external`: see {@link toGraphProto}). */
  toModelBytes(external?: ReadonlySet<string>): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 10,
      producerName: "proxima",
      opsetImport: [{ domain: "", version: OPSET }],
      graph: this.toGraphProto(external),
    });
    return onnx.ModelProto.encode(model).finish();
  }
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

function tensorProto(name: string, t: ConstTensor): unknown {
  const n = t.data.length;
  let raw: Uint8Array;
  switch (t.dtype) {
    case "float32":
      raw = new Uint8Array(Float32Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "float64":
      raw = new Uint8Array(Float64Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "int64":
      raw = new Uint8Array(BigInt64Array.from(t.data as ArrayLike<bigint>).buffer);
      break;
    case "int32":
      raw = new Uint8Array(Int32Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "bool":
      raw = Uint8Array.from({ length: n }, (_, i) => ((t.data as ArrayLike<unknown>)[i] ? 1 : 0));
      break;
  }
  return { name, dims: t.shape, dataType: DTYPE_CODE[t.dtype], rawData: raw };
}

function attrProto(name: string, a: AttrValue): unknown {
  switch (a.kind) {
    case "int":
      return { name, type: 2, i: a.value };
    case "float":
      return { name, type: 1, f: a.value };
    case "ints":
      return { name, type: 7, ints: a.value };
    case "string":
      return { name, type: 3, s: new TextEncoder().encode(a.value) };
    case "tensor":
      return { name, type: 4, t: tensorProto(name, a.value) };
    case "graph":
      return { name, type: 5, g: a.value.toGraphProto() };
  }
}

/**
 * Serialisation-time expansions for ops ORT CPU cannot run (accurately) in float64: it has
 * no double Erf kernel, and expands erf-GELU into Erf; its double tanh-GELU kernel is only
 * good to ~6e-9 relative (ORT 1.30), which would dominate float64 reference checks, while
 * its double Tanh is exact to rounding. The graph keeps the single op, so autodiff still
 * sees one node with one rule.
 */
const lowerings: Record<string, (n: Node) => ((g: Graph) => Value) | undefined> = {
  Erf: (n) => (n.inputs[0]!.dtype === "float64" ? (g) => erf64(g, n.inputs[0]!) : undefined),
  Gelu: (n) => {
    const x = n.inputs[0]!, a = n.attrs.approximate;
    if (x.dtype !== "float64") return undefined;
    if (a?.kind === "string" && a.value === "tanh") {
      // x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))
      return (g) => {
        const u = g.mul(g.add(x, g.mul(g.mul(g.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
        return g.mul(g.mul(x, 0.5), g.add(g.tanh(u), 1));
      };
    }
    return (g) => g.mul(g.mul(x, 0.5), g.add(erf64(g, g.mul(x, Math.SQRT1_2)), 1));
  },
};

/**
 * erf in float64 to ~1e-14: Maclaurin series (Horner in x²/9, 50 terms) for |x| < 3,
 * and the continued fraction of erfc (60 levels) beyond.
 */
function erf64(g: Graph, x: Value): Value {
  const N = 50, K = 60;
  let fact = 1;
  // Coefficients of the series in u = x²/9: all stay far above float32's smallest
  // normal, because ORT's constant sharing would otherwise merge ones that underflow it.
  const c = Array.from({ length: N }, (_, n) => {
    if (n > 0) fact *= n;
    return ((n % 2 ? -1 : 1) * 9 ** n) / (fact * (2 * n + 1));
  });
  const x2 = g.div(g.mul(x, x), 9);
  let p = g.scalar(c[N - 1], x.dtype);
  for (let n = N - 2; n >= 0; n--) p = g.add(g.mul(p, x2), c[n]);
  const series = g.mul(g.mul(x, p), 2 / Math.sqrt(Math.PI));
  const ax = g.max(g.abs(x), 3);
  let t = ax;
  for (let k = K; k >= 1; k--) t = g.add(ax, g.div(k / 2, t));
  const erfc = g.div(g.exp(g.neg(g.mul(ax, ax))), g.mul(t, Math.sqrt(Math.PI)));
  const tail = g.mul(g.sign(x), g.sub(1, erfc));
  return g.where(g.less(g.abs(x), 3), series, tail);
}
