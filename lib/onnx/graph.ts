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
 *
 * The value types and shape inference live in graph_shapes.ts, the protobuf objects in
 * graph_proto.ts and the float64 lowerings in graph_lowering.ts; this module re-exports their
 * public names, so `import { ... } from "./graph.ts"` sees the whole builder.
 * @module
 */
import {
  broadcastShapes,
  checkLayerNormParams,
  concatShape,
  type ConstTensor,
  type Dim,
  type DType,
  DTYPE_CODE,
  fmt,
  gemmShape,
  GraphError,
  matmulShape,
  normAxis,
  reduceShape,
  requireFloat,
  reshapeShape,
  sameDType,
  type Shape,
  sliceShape,
  squeezeShape,
  unsqueezeShape,
} from "./graph_shapes.ts";
import { type ExternalInputs, graphProto, modelBytes } from "./graph_proto.ts";
import { lowering } from "./graph_lowering.ts";
export {
  broadcastShapes,
  type ConstTensor,
  type Dim,
  type DType,
  DTYPE_CODE,
  GraphError,
  isFloat,
  OPSET,
  type Shape,
  sliceBounds,
  TO_END,
} from "./graph_shapes.ts";

/** A node attribute. */
export type AttrValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: ConstTensor }
  | { kind: "graph"; value: Graph };

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

  private lift(x: Value | number, like: Value): Value {
    return typeof x === "number" ? this.scalar(x, like.dtype) : x;
  }

  private binary(op: string, a: Value | number, b: Value | number): Value {
    const av = typeof a === "number" ? this.lift(a, b as Value) : a;
    const bv = this.lift(b, av);
    const dtype = sameDType(op, av, bv);
    return this.one(op, [av, bv], dtype, broadcastShapes(op, av.shape, bv.shape));
  }

  private compare(op: string, a: Value | number, b: Value | number): Value {
    const av = typeof a === "number" ? this.lift(a, b as Value) : a;
    const bv = this.lift(b, av);
    sameDType(op, av, bv);
    return this.one(op, [av, bv], "bool", broadcastShapes(op, av.shape, bv.shape));
  }

  private unary(op: string, x: Value, attrs: Record<string, AttrValue> = {}): Value {
    requireFloat(op, x);
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
    const dtype = sameDType("Where", av, bv);
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
    const dtype = sameDType("MatMul", a, b);
    const { batch, m, n } = matmulShape(a, b);
    return this.one("MatMul", [a, b], dtype, [...batch, m, n]);
  }
  /** Y = alpha * A' @ B' + beta * C with A' = transA ? Aᵀ : A (2-D only). */
  gemm(
    a: Value,
    b: Value,
    c?: Value,
    opts: { alpha?: number; beta?: number; transA?: boolean; transB?: boolean } = {},
  ): Value {
    const dtype = sameDType("Gemm", a, b, ...(c ? [c] : []));
    const [m, n] = gemmShape(a, b, c, opts);
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
    const dtype = sameDType("LayerNormalization", x, scale, ...(bias ? [bias] : []));
    const axis = normAxis("LayerNormalization", opts.axis ?? -1, x.rank);
    checkLayerNormParams(x, axis, scale, bias);
    return this.one("LayerNormalization", bias ? [x, scale, bias] : [x, scale], dtype, x.shape, {
      axis: { kind: "int", value: axis },
      epsilon: { kind: "float", value: opts.epsilon ?? 1e-5 },
    });
  }

  // ---- reductions --------------------------------------------------------
  private reduce(op: string, x: Value, axes: number[] | undefined, keepdims: boolean): Value {
    const { ax, shape } = reduceShape(op, x, axes, keepdims);
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
    const out = reshapeShape(x, shape);
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
    const { ax, shape } = unsqueezeShape(x, axes);
    return this.one("Unsqueeze", [x, this.ints(ax)], x.dtype, shape);
  }
  squeeze(x: Value, axes: number[]): Value {
    const { ax, shape } = squeezeShape(x, axes);
    return this.one("Squeeze", [x, this.ints(ax)], x.dtype, shape);
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
    const { ax, st, shape } = sliceShape(x, starts, ends, axes, steps);
    const inputs = [x, this.ints(starts), this.ints(ends), this.ints(ax)];
    if (steps) inputs.push(this.ints(st));
    return this.one("Slice", inputs, x.dtype, shape);
  }
  concat(xs: Value[], axis: number): Value {
    const dtype = sameDType("Concat", ...xs);
    const { a, shape } = concatShape(xs, axis);
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
  toGraphProto(external?: ExternalInputs): unknown {
    return graphProto(this, external, (n) => {
      const lower = lowering(n);
      if (!lower) return undefined;
      // Expand into a scratch graph namespaced by the output's name, then alias its result.
      const scratch = new Graph("lowered", undefined, `${n.outputs[0].name}/`);
      return { result: lower(scratch).name, proto: scratch.toGraphProto() };
    });
  }

  /** Serialise to ONNX ModelProto bytes (`external`: see {@link toGraphProto}). */
  toModelBytes(external?: ExternalInputs): Uint8Array {
    return modelBytes(this.toGraphProto(external));
  }
}
