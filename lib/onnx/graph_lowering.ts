/**
 * Serialisation-time lowerings: ops that ORT CPU cannot run (accurately) in float64, expanded
 * into ops it can when the graph is serialised (graph.ts's `toGraphProto` builds each into a
 * scratch graph). Written against the few `Graph` ops they use ({@link LoweringOps}), so this
 * module does not import graph.ts.
 * @module
 */
import type { AttrValueLike, DType } from "./graph_shapes.ts";

/** A value as a lowering sees it (graph.ts's `Value`). */
export interface LValue {
  readonly name: string;
  readonly dtype: DType;
}

/** The node being lowered (graph.ts's `Node`). */
export interface LoweredNode {
  readonly op: string;
  readonly inputs: readonly (LValue | undefined)[];
  readonly attrs: Readonly<Record<string, AttrValueLike>>;
}

/** The `Graph` ops the lowerings build with (graph.ts's `Graph` has them all). */
export interface LoweringOps {
  scalar(x: number, dtype: DType): LValue;
  add(a: LValue | number, b: LValue | number): LValue;
  sub(a: LValue | number, b: LValue | number): LValue;
  mul(a: LValue | number, b: LValue | number): LValue;
  div(a: LValue | number, b: LValue | number): LValue;
  max(a: LValue | number, b: LValue | number): LValue;
  less(a: LValue | number, b: LValue | number): LValue;
  where(cond: LValue, a: LValue | number, b: LValue | number): LValue;
  abs(x: LValue): LValue;
  exp(x: LValue): LValue;
  neg(x: LValue): LValue;
  sign(x: LValue): LValue;
  tanh(x: LValue): LValue;
}

/**
 * How to build node `n` from other ops when serialising (a function of a scratch graph that
 * returns the result), or undefined to emit it as is.
 */
export function lowering(n: LoweredNode): ((g: LoweringOps) => LValue) | undefined {
  return lowerings[n.op]?.(n);
}

/**
 * Serialisation-time expansions for ops ORT CPU cannot run (accurately) in float64: it has
 * no double Erf kernel, and expands erf-GELU into Erf; its double tanh-GELU kernel is only
 * good to ~6e-9 relative (ORT 1.30), which would dominate float64 reference checks, while
 * its double Tanh is exact to rounding. The graph keeps the single op, so autodiff still
 * sees one node with one rule.
 */
const lowerings: Record<string, (n: LoweredNode) => ((g: LoweringOps) => LValue) | undefined> = {
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
function erf64(g: LoweringOps, x: LValue): LValue {
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
