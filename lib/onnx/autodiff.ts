/**
 * Reverse-mode autodiff over a {@link Graph}: one table of gradient rules keyed by
 * op type, and a reverse walk that sums the contributions of every consumer.
 *
 * A rule receives the forward node and the gradients of its outputs and returns,
 * per input, a thunk that builds that input's gradient — or `undefined` for an input
 * that is not differentiable (indices, masks, shapes, axes). Thunks are only called
 * for inputs that need a gradient, so no dead nodes are added.
 *
 * @example
 * ```ts
 * const g = new Graph();
 * const x = g.input("x", "float64", [3]);
 * const loss = g.reduceSum(g.mul(x, x));
 * const [dx] = gradients(g, loss, [x]); // 2x
 * ```
 * @module
 */
import {
  type DType,
  type Graph,
  GraphError,
  isFloat,
  LazyValue,
  type Node,
  sliceBounds,
  Value,
} from "./graph.ts";

type Thunk = () => Value;
/** Builds the gradients of a node's inputs from the gradients of its outputs. */
export type GradRule = (g: Graph, n: Node, dy: (Value | undefined)[]) => (Thunk | undefined)[];

/** The integer values of a constant input (axes, starts, shapes). */
function constInts(v: Value | undefined): number[] {
  for (let gr: Graph | undefined = v?.graph; gr; gr = gr.parent) {
    const init = v && gr.initializers.get(v.name);
    if (init) return Array.from(init.tensor.data as ArrayLike<bigint | number>, Number);
  }
  throw new GraphError(`gradient: expected a constant int tensor, got ${v}`);
}

function attrInt(n: Node, key: string, dflt: number): number {
  const a = n.attrs[key];
  return a && (a.kind === "int" || a.kind === "float") ? a.value : dflt;
}

/** Sum a broadcast gradient back down to the shape of `x` (static reduction axes). */
export function unbroadcast(g: Graph, dy: Value, x: Value): Value {
  const lead = dy.rank - x.rank;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead || (x.shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return dy;
  // A bias's gradient sums over the leading axes only. ORT's ReduceSum is slow there
  // (measured: 738 µs for [8, 64, 512] float32, 45 µs as a MatMul with a row of ones), so
  // when the kept trailing dims are static, sum as onesᵀ · dy over the flattened leading axes.
  const rest = dy.shape.slice(axes.length);
  if (
    axes.every((a, i) => a === i) && rest.length > 0 && rest.every((d) => typeof d === "number") &&
    (dy.dtype === "float32" || dy.dtype === "float64")
  ) {
    const flat = g.reshape(dy, [-1, (rest as number[]).reduce((a, b) => a * b, 1)]);
    const ones = g.add(g.zerosLike(g.slice(flat, [0], [1], [1])), 1); // [N, 1]
    return g.reshape(g.gemm(ones, flat, undefined, { transA: true }), x.shape as number[]);
  }
  const summed = g.reduceSum(dy, axes, true);
  return lead > 0 ? g.squeeze(summed, [...Array(lead).keys()]) : summed;
}

/** Swap the last two axes. */
function mT(g: Graph, x: Value): Value {
  const p = [...x.shape.keys()];
  [p[x.rank - 2], p[x.rank - 1]] = [p[x.rank - 1], p[x.rank - 2]];
  return g.transpose(x, p);
}

/** dy of a reduction (keepdims or not) broadcast back to the input's shape. */
function unreduce(g: Graph, n: Node, dy: Value): Value {
  const x = n.inputs[0]!;
  const axes = constInts(n.inputs[1]);
  const kept = attrInt(n, "keepdims", 1) ? dy : g.unsqueeze(dy, axes);
  // With the reduced dims static, expand to them alone (1 elsewhere: dy's own dims): reading
  // x's Shape would keep x, a forward tensor, alive until the backward only for its shape (an
  // entropy's [B, T, V] product, an RMSNorm's square). The same values either way.
  const reduced = axes.map((a) => (a < 0 ? a + x.rank : a));
  const sizes = x.shape.map((d, i) => (reduced.includes(i) ? d : 1));
  if (sizes.every((d) => typeof d === "number")) return g.expand(kept, sizes);
  return g.expand(kept, x.shape, x);
}

/** Number of elements reduced by a reduction node, as a scalar of dtype. */
function reducedCount(g: Graph, n: Node, dtype: DType): Value {
  const x = n.inputs[0]!;
  const dims = constInts(n.inputs[1]).map((a) => x.shape[a]);
  if (dims.every((d) => typeof d === "number")) {
    return g.scalar(dims.reduce((a, b) => a * b, 1), dtype);
  }
  return g.div(g.cast(g.size(x), dtype), g.cast(g.size(n.outputs[0]), dtype));
}

/** int64 scalar of dim `axis` of x: a constant when static, a Shape lookup otherwise. */
function dimOf(g: Graph, x: Value, axis: number): Value {
  const d = x.shape[axis];
  return typeof d === "number"
    ? g.scalar(d, "int64")
    : g.gather(g.shapeOf(x), g.scalar(axis, "int64"));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** One entry per op: how the gradients of its inputs follow from the gradient of its output. */
export const gradientRules: Record<string, GradRule> = {
  Identity: (_g, _n, [dy]) => [() => dy!],
  Add: (
    g,
    { inputs: [a, b] },
    [dy],
  ) => [() => unbroadcast(g, dy!, a!), () => unbroadcast(g, dy!, b!)],
  Sub: (
    g,
    { inputs: [a, b] },
    [dy],
  ) => [() => unbroadcast(g, dy!, a!), () => unbroadcast(g, g.neg(dy!), b!)],
  Mul: (g, { inputs: [a, b] }, [dy]) => [
    () => unbroadcast(g, g.mul(dy!, b!), a!),
    () => unbroadcast(g, g.mul(dy!, a!), b!),
  ],
  Div: (g, { inputs: [a, b], outputs: [y] }, [dy]) => [
    () => unbroadcast(g, g.div(dy!, b!), a!),
    () => unbroadcast(g, g.neg(g.div(g.mul(dy!, y), b!)), b!),
  ],
  Neg: (g, _n, [dy]) => [() => g.neg(dy!)],
  Exp: (g, { outputs: [y] }, [dy]) => [() => g.mul(dy!, y)],
  Log: (g, { inputs: [x] }, [dy]) => [() => g.div(dy!, x!)],
  Sqrt: (g, { outputs: [y] }, [dy]) => [() => g.div(g.mul(dy!, 0.5), y)],
  Pow: (g, { inputs: [a, b], outputs: [y] }, [dy]) => [
    () => unbroadcast(g, g.mul(dy!, g.mul(b!, g.pow(a!, g.sub(b!, 1)))), a!),
    () => unbroadcast(g, g.mul(dy!, g.mul(y, g.log(a!))), b!),
  ],
  Tanh: (g, { outputs: [y] }, [dy]) => [() => g.mul(dy!, g.sub(1, g.mul(y, y)))],
  Sigmoid: (g, { outputs: [y] }, [dy]) => [() => g.mul(dy!, g.mul(y, g.sub(1, y)))],
  Relu: (g, { inputs: [x] }, [dy]) => [() => g.where(g.greater(x!, 0), dy!, 0)],
  Abs: (g, { inputs: [x] }, [dy]) => [() => g.mul(dy!, g.sign(x!))],
  Cos: (g, { inputs: [x] }, [dy]) => [() => g.neg(g.mul(dy!, g.sin(x!)))],
  Sin: (g, { inputs: [x] }, [dy]) => [() => g.mul(dy!, g.cos(x!))],
  Erf: (
    g,
    { inputs: [x] },
    [dy],
  ) => [() => g.mul(dy!, g.mul(g.exp(g.neg(g.mul(x!, x!))), 2 / Math.sqrt(Math.PI)))],
  Gelu: (g, n, [dy]) => [() => {
    const x = n.inputs[0]!;
    const a = n.attrs.approximate;
    if (a?.kind === "string" && a.value === "tanh") {
      // y = x/2 (1 + tanh(u)), u = c (x + 0.044715 x^3)
      const x2 = g.mul(x, x);
      const t = g.tanh(g.mul(g.mul(x, g.add(g.mul(x2, GELU_C), 1)), SQRT_2_OVER_PI));
      const du = g.mul(g.add(g.mul(x2, 3 * GELU_C), 1), SQRT_2_OVER_PI);
      const d = g.add(
        g.mul(g.add(t, 1), 0.5),
        g.mul(g.mul(g.mul(x, 0.5), g.sub(1, g.mul(t, t))), du),
      );
      return g.mul(dy!, d);
    }
    // y = x Φ(x): dy/dx = Φ(x) + x φ(x)
    const cdf = g.mul(g.add(g.erf(g.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = g.mul(g.exp(g.mul(g.mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return g.mul(dy!, g.add(cdf, g.mul(x, pdf)));
  }],
  Softmax: (g, n, [dy]) => [() => {
    const y = n.outputs[0], axis = attrInt(n, "axis", -1);
    return g.mul(y, g.sub(dy!, g.reduceSum(g.mul(dy!, y), [axis], true)));
  }],
  LogSoftmax: (g, n, [dy]) => [() => {
    const y = n.outputs[0], axis = attrInt(n, "axis", -1);
    // exp(y) made in the backward (tied): one made from y alone would be merged by ORT's
    // common-subexpression pass with a forward exp(y) (an entropy's), keeping that one alive.
    return g.sub(dy!, g.mul(g.exp(tied(g, y, dy!)), g.reduceSum(dy!, [axis], true)));
  }],
  ReduceSum: (g, n, [dy]) => [() => unreduce(g, n, dy!), undefined],
  ReduceMean: (
    g,
    n,
    [dy],
  ) => [() => g.div(unreduce(g, n, dy!), reducedCount(g, n, dy!.dtype)), undefined],
  ReduceMax: (g, n, [dy]) => [() => {
    // Ties share the gradient equally (as torch.amax does).
    const x = n.inputs[0]!, axes = constInts(n.inputs[1]);
    const yk = attrInt(n, "keepdims", 1) ? n.outputs[0] : g.unsqueeze(n.outputs[0], axes);
    const hit = g.cast(g.equal(x, yk), x.dtype);
    return g.div(g.mul(hit, unreduce(g, n, dy!)), g.reduceSum(hit, axes, true));
  }, undefined],
  MatMul: (g, { inputs: [a, b] }, [dy]) => {
    if (a!.rank === 2 && b!.rank === 2) {
      return [
        () => g.gemm(dy!, b!, undefined, { transB: true }),
        () => g.gemm(a!, dy!, undefined, { transA: true }),
      ];
    }
    const [k, n] = b!.shape;
    // x @ W with batched x and a 2-D weight: dW is one GEMM over the flattened batch.
    const flatB = b!.rank === 2 && typeof k === "number" && typeof n === "number" && a!.rank > 2;
    return [
      () => unbroadcast(g, g.matmul(dy!, mT(g, b!)), a!),
      () =>
        flatB
          ? g.gemm(g.reshape(a!, [-1, k as number]), g.reshape(dy!, [-1, n as number]), undefined, {
            transA: true,
          })
          : unbroadcast(g, g.matmul(mT(g, a!), dy!), b!),
    ];
  },
  Gemm: (g, n, [dy]) => {
    const [a, b, c] = n.inputs as Value[];
    const alpha = attrInt(n, "alpha", 1), beta = attrInt(n, "beta", 1);
    const tA = attrInt(n, "transA", 0) === 1, tB = attrInt(n, "transB", 0) === 1;
    return [
      () =>
        tA
          ? g.gemm(b, dy!, undefined, { alpha, transA: tB, transB: true })
          : g.gemm(dy!, b, undefined, { alpha, transB: !tB }),
      () =>
        tB
          ? g.gemm(dy!, a, undefined, { alpha, transA: true, transB: tA })
          : g.gemm(a, dy!, undefined, { alpha, transA: !tA }),
      () => unbroadcast(g, beta === 1 ? dy! : g.mul(dy!, beta), c),
    ];
  },
  Reshape: (g, { inputs: [x] }, [dy]) => [() => g.reshape(dy!, g.shapeOf(x!), x!.shape), undefined],
  Transpose: (g, n, [dy]) => [() => {
    const perm = n.attrs.perm.value as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return g.transpose(dy!, inv);
  }],
  Unsqueeze: (g, n, [dy]) => [() => g.squeeze(dy!, constInts(n.inputs[1])), undefined],
  Squeeze: (g, n, [dy]) => [() => g.unsqueeze(dy!, constInts(n.inputs[1])), undefined],
  Expand: (g, { inputs: [x] }, [dy]) => [() => unbroadcast(g, dy!, x!), undefined],
  Cast: (g, { inputs: [x] }, [dy]) => [isFloat(x!.dtype) ? () => g.cast(dy!, x!.dtype) : undefined],
  Gather: (g, n, [dy]) => [() => {
    // Scatter-add the rows back (repeated ids accumulate): the embedding gradient. As
    // ScatterElements over [ids, row] (each index repeated along the row), not ScatterND: ORT's
    // ScatterND with reduction "add" splits the ids across threads, which races on repeated ids
    // (measured: GPT-2 small's embedding gradient, hence its losses, differed run to run);
    // ScatterElements accumulates each column in id order, so repeated ids add up in a fixed
    // order. Same order as a sequential ScatterND, hence the same bits where that was race-free.
    const [data, idx] = n.inputs as Value[];
    const axis = attrInt(n, "axis", 0), ri = idx.rank, r = data.rank;
    const pre = [...Array(axis).keys()],
      post = [...Array(r - axis - 1).keys()].map((i) => axis + ri + i);
    const idxDims = [...Array(ri).keys()].map((i) => axis + i);
    const dyT = axis === 0 ? dy! : g.transpose(dy!, [...idxDims, ...pre, ...post]);
    const permData = [axis, ...pre, ...[...Array(r - axis - 1).keys()].map((i) => axis + 1 + i)];
    const table = axis === 0 ? data : g.transpose(data, permData); // [V, ...rest]
    const rest = table.shape.slice(1);
    let out: Value;
    if (rest.every((d) => typeof d === "number")) {
      const R = (rest as number[]).reduce((a, b) => a * b, 1);
      const rows = g.reshape(dyT, [-1, R]); // [N, R]
      const ids = g.expand(g.unsqueeze(g.reshape(idx, [-1]), [1]), rows.shape, rows);
      const zeros = g.zerosLike(g.reshape(table, [table.shape[0], R]));
      const summed = g.node("ScatterElements", [zeros, ids, rows], {
        axis: { kind: "int", value: 0 },
        reduction: { kind: "string", value: "add" },
      })[0];
      out = g.reshape(summed, table.shape.map((d, i) => (i === 0 ? 0 : d)));
    } else {
      // Symbolic row shape: ScatterND (race-free only when ORT runs it on one thread).
      out = g.node("ScatterND", [g.zerosLike(table), g.unsqueeze(idx, [-1]), dyT], {
        reduction: { kind: "string", value: "add" },
      })[0];
    }
    return axis === 0 ? out : g.transpose(out, permData.map((_, i) => permData.indexOf(i)));
  }, undefined],
  GatherElements: (g, n, [dy]) => [() => {
    const [data, idx] = n.inputs as Value[];
    return g.node(
      "ScatterElements",
      [g.zerosLike(data), idx, dy!],
      {
        axis: { kind: "int", value: attrInt(n, "axis", 0) },
        reduction: { kind: "string", value: "add" },
      },
      undefined,
      [{ dtype: data.dtype, shape: data.shape }],
    )[0];
  }, undefined],
  Slice: (g, n, [dy]) => [() => sliceGrad(g, n, dy!), undefined, undefined, undefined, undefined],
  Concat: (g, n, [dy]) => {
    const axis = attrInt(n, "axis", 0);
    let parts: Value[] | undefined;
    const split = () => {
      if (parts) return parts;
      const xs = n.inputs as Value[];
      if (xs.every((x) => typeof x.shape[axis] === "number")) {
        return (parts = g.split(dy!, xs.map((x) => x.shape[axis] as number), axis));
      }
      const sizes = g.concat(xs.map((x) => g.unsqueeze(dimOf(g, x, axis), [0])), 0);
      return (parts = g.node(
        "Split",
        [dy!, sizes],
        { axis: { kind: "int", value: axis } },
        undefined,
        xs,
      ));
    };
    return n.inputs.map((_, i) => () => split()[i]);
  },
  Split: (g, n, dys) => [
    () => g.concat(dys.map((d, i) => d ?? g.zerosLike(n.outputs[i])), attrInt(n, "axis", 0)),
    undefined,
  ],
  Where: (g, { inputs: [c, a, b] }, [dy]) => [
    undefined,
    () => unbroadcast(g, g.where(c!, dy!, 0), a!),
    () => unbroadcast(g, g.where(c!, 0, dy!), b!),
  ],
  // Min/Max: ties send the whole gradient to the first operand.
  Min: (g, { inputs: [a, b] }, [dy]) => [
    () => unbroadcast(g, g.where(g.lessOrEqual(a!, b!), dy!, 0), a!),
    () => unbroadcast(g, g.where(g.lessOrEqual(a!, b!), 0, dy!), b!),
  ],
  Max: (g, { inputs: [a, b] }, [dy]) => [
    () => unbroadcast(g, g.where(g.greaterOrEqual(a!, b!), dy!, 0), a!),
    () => unbroadcast(g, g.where(g.greaterOrEqual(a!, b!), 0, dy!), b!),
  ],
  // Clip passes the gradient inside [lo, hi] (bounds included, as torch.clamp does).
  Clip: (g, { inputs: [x, lo, hi] }, [dy]) => [
    () => {
      let inside: Value | undefined;
      if (lo) inside = g.greaterOrEqual(x!, lo);
      if (hi) inside = inside ? g.and(inside, g.lessOrEqual(x!, hi)) : g.lessOrEqual(x!, hi);
      return inside ? g.where(inside, dy!, 0) : dy!;
    },
    undefined,
    undefined,
  ],
  LayerNormalization: (g, n, [dy]) => {
    const [x, scale, bias] = n.inputs as Value[];
    const axes = [...Array(x.rank - attrInt(n, "axis", -1)).keys()].map((i) =>
      attrInt(n, "axis", -1) + i
    );
    const eps = attrInt(n, "epsilon", 1e-5);
    let xhat: Value | undefined, rstd: Value | undefined;
    const normalised = () => {
      if (!xhat) {
        const xc = g.sub(x, g.reduceMean(x, axes, true));
        rstd = g.div(1, g.sqrt(g.add(g.reduceMean(g.mul(xc, xc), axes, true), eps)));
        xhat = g.mul(xc, rstd);
      }
      return [xhat, rstd!];
    };
    return [
      () => {
        const [xh, rs] = normalised();
        const dxh = g.mul(dy!, scale);
        const m1 = g.reduceMean(dxh, axes, true), m2 = g.reduceMean(g.mul(dxh, xh), axes, true);
        return g.mul(rs, g.sub(g.sub(dxh, m1), g.mul(xh, m2)));
      },
      () => unbroadcast(g, g.mul(dy!, normalised()[0]), scale),
      bias ? () => unbroadcast(g, dy!, bias) : undefined,
    ];
  },
};

/** Gradient of Slice: zero-pad dy back to the input's extent. */
function sliceGrad(g: Graph, n: Node, dy: Value): Value {
  const x = n.inputs[0]!;
  const starts = constInts(n.inputs[1]), ends = constInts(n.inputs[2]);
  const axes = constInts(n.inputs[3]),
    steps = n.inputs[4] ? constInts(n.inputs[4]) : axes.map(() => 1);
  if (steps.every((s) => s === 1)) {
    // pads = [begin_0..begin_r, end_0..end_r]; static where the dim is known, computed otherwise.
    const before: (Value | number)[] = x.shape.map(() => 0),
      after: (Value | number)[] = x.shape.map(() => 0);
    axes.forEach((a, i) => {
      const d = x.shape[a];
      if (typeof d === "number") {
        const [s, e] = sliceBounds(starts[i], ends[i], 1, d);
        before[a] = s;
        after[a] = d - Math.max(e, s);
        return;
      }
      const dim = dimOf(g, x, a);
      const norm = (
        v: number,
      ) => (v < 0 ? g.max(g.add(dim, v), 0) : g.min(dim, Math.min(v, 2 ** 62)));
      const s = norm(starts[i]), e = g.max(norm(ends[i]), s);
      before[a] = s;
      after[a] = g.sub(dim, e);
    });
    const all = [...before, ...after];
    const pads = all.every((p) => typeof p === "number") ? g.ints(all as number[]) : g.concat(
      all.map((p) => g.unsqueeze(typeof p === "number" ? g.scalar(p, "int64") : p, [0])),
      0,
    );
    return g.node("Pad", [dy, pads], {}, undefined, [{ dtype: dy.dtype, shape: x.shape }])[0];
  }
  // Strided slices: per axis, gather each input position from dy or from a zero slab.
  let out = dy;
  axes.forEach((a, i) => {
    const d = x.shape[a];
    if (typeof d !== "number") {
      throw new GraphError(`Slice gradient: step ${steps[i]} on symbolic dim ${d} of ${x}`);
    }
    const [s, e] = sliceBounds(starts[i], ends[i], steps[i], d);
    const k = out.shape[a] as number;
    const pos = new Array(d).fill(k);
    for (let j = 0, p = s; j < k && (steps[i] > 0 ? p < e : p > e); j++, p += steps[i]) pos[p] = j;
    const zeros = g.zerosLike(g.slice(out, [0], [1], [a]));
    out = g.gather(g.concat([out, zeros], a), g.ints(pos), a);
  });
  return out;
}

/**
 * Ops whose output a gradient rule does not keep from the forward but makes again from the
 * op's input: elementwise and cheap, and their input is usually kept anyway (a SiLU's gate, an
 * entropy's log-softmax), so the backward holds one tensor where it held two (at the 0.5B bench
 * shape a SwiGLU's σ(gate), 13 MB a layer, and the entropy's exp(log π), 311 MB).
 */
const RECOMPUTED = new Set(["Exp", "Sigmoid"]);

/** Whether two values have the same shape, dim for dim (symbolic dims by name). */
const sameShape = (a: Value, b: Value) =>
  a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);

/**
 * x when node `p` is a SiLU `x · σ(x)` (a Mul of a value and its Sigmoid, either order, the
 * same shape): cheap to make again from x, which its gradient keeps anyway (a SwiGLU's
 * silu(gate), 13 MB a layer at the 0.5B bench, is then not kept).
 */
function siluInput(g: Graph, p: Node): Value | undefined {
  if (p.op !== "Mul") return undefined;
  const [a, b] = p.inputs;
  if (!a || !b || !sameShape(a, b)) return undefined;
  const isSigmoidOf = (s: Value, x: Value) => {
    const q = g.producer.get(s);
    return q?.op === "Sigmoid" && q.inputs[0] === x;
  };
  return isSigmoidOf(b, a) ? a : isSigmoidOf(a, b) ? b : undefined;
}

/**
 * `x` as a value of the backward: an aliasing reshape to the runtime shape of `like` (a
 * gradient of x's shape). The same bits; an op on it depends on the backward, so ORT runs it
 * there and its common-subexpression pass cannot merge it with the same op on `x` in the forward.
 */
function tied(g: Graph, x: Value, like: Value): Value {
  return g.reshape(x, g.shapeOf(like), x.shape);
}

/**
 * A backward's view of forward node `n`: each {@link RECOMPUTED} output it reads is made again
 * (once per value) from its input reshaped to the runtime shape of an output gradient of `n` of
 * the same shape. The reshape is an alias (same bits in, same op, so the same bits out); it makes
 * the recomputation depend on the backward, so ORT runs it there and its common-subexpression
 * pass cannot merge it back into the forward's. Values without such a gradient are read as they
 * are.
 */
function recomputedView(
  g: Graph,
  n: Node,
  dys: (Value | undefined)[],
  forward: Set<Node>,
  made: Map<Value, Value>,
): Node {
  const view = (v: Value | undefined): Value | undefined => {
    const p = v && g.producer.get(v);
    if (!v || !p || !forward.has(p) || !p.inputs[0]) return v;
    const silu = siluInput(g, p);
    if (!RECOMPUTED.has(p.op) && !silu) return v;
    // Only float32's σ: the forward's x·σ(x), its σ then read by the Mul alone, becomes ORT's
    // QuickGelu, which has no float64 kernel.
    if ((silu || p.op === "Sigmoid") && v.dtype !== "float32") return v;
    const like = dys.find((d) => d && sameShape(d, v));
    if (!like) return v;
    let again = made.get(v);
    if (!again) {
      // Lazy: built only if the rule reads it (a rule reads few of its node's values).
      again = new LazyValue(g, `again:${v.name}`, v.dtype, v.shape, () => {
        const x = tied(g, silu ?? p.inputs[0]!, like);
        // A SiLU x·σ(x) again as the same Mul of the same operands (ORT fuses either alike).
        if (silu) return p.inputs[0] === silu ? g.mul(x, g.sigmoid(x)) : g.mul(g.sigmoid(x), x);
        return g.node(p.op, [x], p.attrs, undefined, [{ dtype: v.dtype, shape: v.shape }])[0];
      });
      made.set(v, again);
    }
    return again;
  };
  return { ...n, inputs: n.inputs.map(view), outputs: n.outputs.map((o) => view(o)!) };
}

/**
 * Gradients of scalar `loss` with respect to `wrt`, appended to `g` as new nodes.
 * `seed` replaces the implicit d(loss)/d(loss) = 1 (then `loss` may be any shape).
 */
export function gradients(g: Graph, loss: Value, wrt: Value[], seed?: Value): Value[] {
  if (!seed && loss.rank !== 0) {
    throw new GraphError(`gradients: loss must be a scalar, got ${loss}`);
  }
  const forward = [...g.nodes];
  // Forward pass: which values depend on wrt. Backward pass: which values reach the loss.
  const varies = new Set<Value>(wrt);
  for (const n of forward) {
    if (n.outputs.some((o) => g.stopped.has(o))) continue; // stopGradient: a constant
    if (n.inputs.some((v) => v && varies.has(v))) n.outputs.forEach((o) => varies.add(o));
  }
  const reaches = new Set<Value>([loss]);
  for (const n of [...forward].reverse()) {
    if (n.outputs.some((o) => reaches.has(o))) n.inputs.forEach((v) => v && reaches.add(v));
  }
  const grads = new Map<Value, Value>([[loss, seed ?? g.scalar(1, loss.dtype)]]);
  const forwardNodes = new Set(forward), recomputed = new Map<Value, Value>();
  for (const n of forward.reverse()) {
    const dys = n.outputs.map((o) => grads.get(o));
    if (dys.every((d) => !d)) continue;
    const want = n.inputs.map((v) => !!v && isFloat(v.dtype) && varies.has(v) && reaches.has(v));
    if (!want.some(Boolean)) continue;
    const rule = gradientRules[n.op];
    if (!rule) {
      throw new GraphError(`gradients: no gradient rule for ${n.op} (needed for ${n.inputs[0]})`);
    }
    const thunks = rule(g, recomputedView(g, n, dys, forwardNodes, recomputed), dys);
    n.inputs.forEach((v, i) => {
      if (!want[i] || !v) return;
      const thunk = thunks[i];
      if (!thunk) {
        throw new GraphError(`gradients: input ${i} of ${n.op} (${v}) is not differentiable`);
      }
      const dv = thunk();
      if (
        dv.rank !== v.rank ||
        dv.shape.some((d, j) =>
          typeof d === "number" && typeof v.shape[j] === "number" && d !== v.shape[j]
        )
      ) {
        throw new GraphError(`gradients: rule for ${n.op} gave ${dv} for input ${v}`);
      }
      const prev = grads.get(v);
      grads.set(v, prev ? g.add(prev, dv) : dv);
    });
  }
  return wrt.map((w) => grads.get(w) ?? g.zerosLike(w));
}
