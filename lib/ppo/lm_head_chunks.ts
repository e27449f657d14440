/**
 * The LM head and its vocabulary passes (log-softmax, the gathered log-probs, the entropy) over
 * chunks of the response positions, as TRL's `selective_log_softmax` loops over rows: no
 * `[B, T, V]` float tensor is formed at once (for a 152K vocabulary, 32 rows × 32 tokens, each
 * is 0.62 GB, and a train step held five of them at its peak).
 *
 * The chunks split the positions, never the vocabulary's reductions: every log-prob and entropy
 * is computed by the same ops over the same V values as the unchunked graph, so the forward
 * values are the same bits. Autodiff walks the chunks in reverse: the backward holds, of the
 * vocabulary tensors, only what each chunk's gradient rules read (its log-softmax and exp) plus
 * one chunk's transients. The head weight's gradient is the sum of the chunks' (its summation
 * order, hence its last bits, differ from one product over all positions; a frozen head, as
 * under LoRA, has none).
 * @module
 */
import { type Graph, GraphError, type Node, type Value } from "../onnx/graph.ts";
import { TO_END } from "../onnx/graph_shapes.ts";
import { gatherLogprobs } from "../nn/gpt.ts";
import { categoricalEntropy } from "./losses.ts";

/** Response positions per chunk of the head's vocabulary passes. */
export const HEAD_CHUNK_POSITIONS = 8;

/** What {@link chunkedHeadOutputs} gives: log π(a_t), and on first read entropy and log π(·). */
export interface HeadOutputs {
  logp: Value;
  readonly entropy: Value;
  readonly logpAll: Value;
}

/**
 * Take the nodes that compute `logits` from `hidden` (the LM head: the ops downstream of
 * `hidden` after its producer) out of `g` and return them in order; the weight's own nodes
 * (a transpose) stay. Throws when anything else reads the head's values.
 */
function takeHead(g: Graph, hidden: Value, logits: Value): Node[] {
  const producer = g.producer.get(hidden);
  const start = producer ? g.nodes.indexOf(producer) + 1 : 0;
  const made = new Set<Value>([hidden]);
  const head: Node[] = [];
  for (const n of g.nodes.slice(start)) {
    if (!n.inputs.some((v) => v && made.has(v))) continue;
    head.push(n);
    n.outputs.forEach((o) => made.add(o));
  }
  made.delete(hidden);
  const last = head.at(-1);
  const readElsewhere = g.nodes.some((n) =>
    !head.includes(n) && n.inputs.some((v) => v && made.has(v))
  );
  if (!last?.outputs.includes(logits) || readElsewhere || g.outputs.some((o) => made.has(o))) {
    throw new GraphError("chunkedHeadOutputs: the logits are not a head read by nothing else");
  }
  for (const n of head) {
    g.nodes.splice(g.nodes.indexOf(n), 1);
    n.outputs.forEach((o) => g.producer.delete(o));
  }
  return head;
}

/** The head's nodes again, on `x` in place of `hidden`; returns what stands for `logits`. */
function replay(g: Graph, head: Node[], hidden: Value, x: Value, logits: Value): Value {
  const map = new Map<Value, Value>([[hidden, x]]);
  for (const n of head) {
    const inputs = n.inputs.map((v) => (v && map.get(v)) ?? v);
    const rows = x.shape[0], cols = x.shape[1];
    // The same op and attributes; the chunk's leading dims in place of hidden's.
    const outs = g.node(
      n.op,
      inputs,
      n.attrs,
      undefined,
      n.outputs.map((o) => ({ dtype: o.dtype, shape: [rows, cols, ...o.shape.slice(2)] })),
    );
    n.outputs.forEach((o, i) => map.set(o, outs[i]));
  }
  return map.get(logits)!;
}

/**
 * The entropy of one chunk's log-softmax `y`, its nodes placed right after `end` (the chunk's
 * last node) rather than after every chunk: autodiff walks the nodes in reverse, so each
 * chunk's entropy gradient is then made and spent with that chunk's own backward (built after
 * all chunks, the backward held every chunk's [B, c, V] entropy gradient at once: 311 MB at the
 * 0.5B bench). The readers of `y` keep their order (its gather, then the entropy's), so the
 * gradient contributions are summed in the same order and the bits are the same.
 */
function chunkEntropy(g: Graph, y: Value, end: Node): Value {
  const from = g.nodes.length;
  const h = categoricalEntropy(g, y);
  g.nodes.splice(g.nodes.indexOf(end) + 1, 0, ...g.nodes.splice(from));
  return h;
}

/**
 * The head's outputs over chunks of `chunk` response positions. `hidden [B, T, d]` and
 * `logits [B, T, V]` are what the decoder built at the response's columns (the head's nodes
 * are taken out of the graph and built again per chunk), `actions [B, T]` the response tokens,
 * `maxT` the most positions a feed may have (T ≤ maxT; chunks past T are empty).
 */
export function chunkedHeadOutputs(
  g: Graph,
  hidden: Value,
  logits: Value,
  actions: Value,
  maxT: number,
  chunk = HEAD_CHUNK_POSITIONS,
): HeadOutputs {
  const head = takeHead(g, hidden, logits);
  const n = Math.max(1, Math.ceil(maxT / chunk));
  const logpAlls: Value[] = [], logps: Value[] = [];
  // Each chunk's last node: where its entropy's nodes go when they are built.
  const chunkEnds: Node[] = [];
  for (let k = 0; k < n; k++) {
    // The last chunk runs to the end, so a feed longer than maxT is still scored whole.
    const end = k === n - 1 ? TO_END : (k + 1) * chunk;
    const h = g.slice(hidden, [k * chunk], [end], [1]);
    const a = g.slice(actions, [k * chunk], [end], [1]);
    const all = g.logSoftmax(replay(g, head, hidden, h, logits), -1);
    logpAlls.push(all);
    logps.push(gatherLogprobs(g, all, a));
    chunkEnds.push(g.nodes.at(-1)!);
  }
  // Back to [B, T] (the concatenation's symbolic length is T again at run time).
  const asActions = (x: Value) => g.reshape(x, g.shapeOf(actions), actions.shape);
  const cat = (xs: Value[]) => (xs.length === 1 ? xs[0] : g.concat(xs, 1));
  let entropy: Value | undefined, logpAll: Value | undefined;
  const V = logits.shape[2];
  if (typeof V !== "number") throw new GraphError(`chunkedHeadOutputs: ${logits} has no static V`);
  return {
    logp: asActions(cat(logps)),
    // Built on first read only (ORT runs nodes nobody reads), each chunk from its log-softmax.
    get entropy() {
      return entropy ??= asActions(cat(logpAlls.map((y, k) => chunkEntropy(g, y, chunkEnds[k]))));
    },
    get logpAll() {
      const shape = g.concat([g.shapeOf(actions), g.ints([V])], 0);
      return logpAll ??= g.reshape(cat(logpAlls), shape, [...actions.shape, V]);
    },
  };
}
