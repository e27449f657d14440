/**
 * What a built graph holds in memory when it runs, counted from the graph itself: each
 * intermediate tensor lives from the node that makes it to the last node that reads it, the
 * nodes run one at a time in the order the graph lists them, and the peak is the most bytes
 * alive at once. The planning estimate of an LM trial (lib/tasks/memory.ts) counts its train
 * step this way instead of fitting a per-layer constant.
 *
 * The model, and why:
 * - order: {@link Graph.nodes} as emitted, which is a topological order (a node's inputs exist
 *   before it is appended) and the one ORT keeps for a sequential CPU run of a graph it does
 *   not rewrite; the backward nodes autodiff appends run after the whole forward;
 * - a node's outputs are allocated while it runs, beside its inputs (no in-place reuse: an
 *   upper bound where ORT reuses a dying input's buffer for an elementwise output);
 * - Reshape, Squeeze, Unsqueeze, Flatten and Identity share their input's buffer (ORT's CPU
 *   kernels declare that alias), so the buffer lives until the last read of any of its names
 *   and is counted once; so does a Transpose of the last two axes read only by MatMul or Gemm
 *   or by its inverse (ORT's optimizer folds it into them: a decoder's `x · Wᵀ` and its
 *   gradient's `dy · W` never copy W);
 * - graph outputs live to the end (or, `fedOutputs`, are the caller's buffers: not counted); a
 *   value nobody reads lives only while its node runs;
 * - graph inputs and initializers are not intermediates: their bytes are returned apart;
 * - a node with a sub-graph (Loop, If) counts its outputs only, not its body's temporaries.
 *
 * `kept` is what the backward reads of the forward: the bytes of the intermediates made before
 * `backwardFrom` and read by a node at or after it (the activations a train step holds between
 * its forward and its backward).
 *
 * @example
 * ```ts
 * const g = new Graph();
 * const x = g.input("x", "float32", [4]);
 * g.output(g.neg(g.exp(x)), "y");
 * graphMemory(g).peak; // 32: exp's and neg's [4] float32 alive while neg runs
 * ```
 * @module
 */
import {
  type Dim,
  type DType,
  type Graph,
  GraphError,
  type Node,
  sliceBounds,
  TO_END,
  type Value,
} from "./graph.ts";

/** Bytes of one element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  bool: 1,
};

/** Ops whose output is their first input's buffer under another shape (ORT's aliasing kernels). */
const ALIASES = new Set(["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"]);

/**
 * A Transpose of the last two axes that only MatMul / Gemm nodes read, or such Transposes back
 * (the inverse: the two cancel): ORT's optimizer folds it into them (its transpose optimizer
 * cancels the pair, MatMulTransposeFusion sets FusedMatMul's transA/transB; Gemm has its own),
 * so its output is never made and its readers read its input.
 */
function foldedTranspose(node: Node, readers: Map<Value, Node[]>): boolean {
  if (node.op !== "Transpose") return false;
  const perm = node.attrs.perm, r = node.outputs[0].rank;
  const swap = perm?.kind === "ints" && r >= 2 &&
    perm.value.every((p, i) => p === (i < r - 2 ? i : i === r - 2 ? r - 1 : r - 2));
  const by = readers.get(node.outputs[0]) ?? [];
  return swap && by.length > 0 &&
    by.every((n) => n.op === "MatMul" || n.op === "Gemm" || foldedTranspose(n, readers));
}

/** What {@link graphMemory} counts, in bytes. */
export interface GraphMemory {
  /** Most intermediate bytes alive at once. */
  peak: number;
  /** The node (index into `Graph.nodes`) while which the peak is alive. */
  peakNode: number;
  /** Intermediates made before `backwardFrom` and read at or after it. */
  kept: number;
  /** The graph's inputs. */
  inputs: number;
  /** The graph's initializers (constants). */
  initializers: number;
}

/** Options of {@link graphMemory}. */
export interface GraphMemoryOptions {
  /** Sizes of symbolic dims (a shape's names); a dim left unbound is an error. */
  dims?: Record<string, number>;
  /** Index of the first backward node (default: the end: nothing kept). */
  backwardFrom?: number;
  /**
   * The caller gives every graph output its buffer (ORT writes into it: a trainer's gradient
   * buffer): outputs, and the buffers they alias, are not intermediates.
   */
  fedOutputs?: boolean;
}

/** Split `s` at `sep` outside brackets. */
function splitTop(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0, from = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "[") depth++;
    else if (s[i] === "]") depth--;
    else if (s[i] === sep && depth === 0) parts.push(s.slice(from, i)), from = i + 1;
  }
  return [...parts, s.slice(from)];
}

/**
 * The size of a dim, its names bound by `dims`. Shape inference (graph_shapes.ts) names the
 * dims it derives: a slice of a dim `T[0:8:1]`, a reshape's product `B*T`, a concat's sum
 * `0+T[0:8:1]+T[8::1]`; each is evaluated from the names it is made of.
 */
export function dimSize(d: Dim, dims: Record<string, number>): number {
  if (typeof d === "number") return d;
  if (dims[d] !== undefined) return dims[d];
  if (/^\d+$/.test(d)) return Number(d);
  const sum = splitTop(d, "+"), product = splitTop(d, "*");
  if (sum.length > 1 && product.length > 1) {
    throw new GraphError(`graphMemory: dim "${d}" mixes a sum and a product; bind it in dims`);
  }
  if (sum.length > 1) return sum.reduce((a, x) => a + dimSize(x, dims), 0);
  if (product.length > 1) return product.reduce((a, x) => a * dimSize(x, dims), 1);
  const slice = d.match(/^(.+)\[(-?\d+):(-?\d*):(-?\d+)\]$/);
  if (slice) {
    const n = dimSize(slice[1], dims), step = Number(slice[4]);
    const [s, e] = sliceBounds(
      Number(slice[2]),
      slice[3] === "" ? TO_END : Number(slice[3]),
      step,
      n,
    );
    return Math.max(0, Math.ceil((step > 0 ? e - s : s - e) / Math.abs(step)));
  }
  throw new GraphError(`graphMemory: symbolic dim "${d}" is not bound; bind it in opts.dims`);
}

/** Bytes of a value, its symbolic dims bound by `dims` (see {@link dimSize}). */
export function valueBytes(v: Value, dims: Record<string, number> = {}): number {
  return v.shape.reduce<number>((n, d) => n * dimSize(d, dims), DTYPE_BYTES[v.dtype]);
}

/** Stands for the graph's outputs among a value's readers (never a MatMul). */
const OUTPUT = { op: "(output)", inputs: [], outputs: [], attrs: {} } as Node;

/** Peak live intermediate bytes, kept activations, inputs and initializers of `g`. */
export function graphMemory(g: Graph, opts: GraphMemoryOptions = {}): GraphMemory {
  const dims = opts.dims ?? {};
  const n = g.nodes.length, backwardFrom = opts.backwardFrom ?? n;
  // Each intermediate's buffer: the value that owns it (an alias maps to its source's owner).
  const owner = new Map<Value, Value>();
  const start = new Map<Value, number>(), end = new Map<Value, number>();
  const keptBufs = new Set<Value>();
  const readers = new Map<Value, Node[]>();
  for (const node of g.nodes) {
    for (const v of node.inputs) if (v) readers.set(v, [...(readers.get(v) ?? []), node]);
  }
  for (const v of g.outputs) readers.set(v, [...(readers.get(v) ?? []), OUTPUT]);
  g.nodes.forEach((node, i) => {
    for (const v of node.inputs) {
      const o = v && owner.get(v);
      if (!o) continue; // an input, an initializer, an optional input left out, a parent's value
      end.set(o, Math.max(end.get(o)!, i));
      if (i >= backwardFrom && start.get(o)! < backwardFrom) keptBufs.add(o);
    }
    const src = node.inputs[0];
    node.outputs.forEach((out, k) => {
      if (k === 0 && src && (ALIASES.has(node.op) || foldedTranspose(node, readers))) {
        // The alias's buffer is its source's; an alias of an input or constant costs nothing.
        const o = owner.get(src);
        if (o) owner.set(out, o);
        return;
      }
      owner.set(out, out);
      start.set(out, i);
      end.set(out, i);
    });
  });
  for (const v of g.outputs) {
    const o = owner.get(v);
    if (o && opts.fedOutputs) start.delete(o);
    else if (o) end.set(o, n - 1);
  }
  // Live bytes per node: +bytes where a buffer starts, −bytes after its last read.
  const delta = new Float64Array(n + 1);
  for (const [v, s] of start) {
    const b = valueBytes(v, dims);
    delta[s] += b;
    delta[end.get(v)! + 1] -= b;
  }
  let live = 0, peak = 0, peakNode = 0;
  for (let i = 0; i < n; i++) {
    live += delta[i];
    if (live > peak) [peak, peakNode] = [live, i];
  }
  const sum = (vs: Iterable<Value>) => [...vs].reduce((a, v) => a + valueBytes(v, dims), 0);
  return {
    peak,
    peakNode,
    kept: sum([...keptBufs].filter((v) => start.has(v))),
    inputs: sum(g.inputs),
    initializers: sum([...g.initializers.values()].map((i) => i.value)),
  };
}
