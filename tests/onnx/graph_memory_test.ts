/** graphMemory: peaks and kept activations counted by hand on tiny graphs. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { dimSize, graphMemory } from "../../lib/onnx/graph_memory.ts";

Deno.test("graphMemory: a chain holds two links at once", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3]); // 24 B
  const w = g.input("w", "float32", [3, 5]); // 60 B
  const h = g.matmul(x, w); // node 0: [2, 5] 40 B
  const a = g.exp(h); // node 1: 40 B, h dies here
  g.output(g.neg(a), "y"); // node 2: neg 40 B (a dies), node 3: Identity "y" aliases neg
  const m = graphMemory(g);
  // node 0: h = 40; node 1: h + a = 80; node 2: a + neg = 80; node 3: neg = 40.
  assert.equal(m.peak, 80);
  assert.equal(m.peakNode, 1);
  assert.equal(m.inputs, 24 + 60);
  assert.equal(m.initializers, 0);
  assert.equal(m.kept, 0);
});

Deno.test("graphMemory: a diamond keeps its fork alive until the join", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [4]);
  const a = g.exp(x); // node 0: 16 B
  const b = g.neg(a); // node 1: 16 B
  const c = g.sin(a); // node 2: 16 B; a's last read
  const d = g.add(b, c); // node 3: 16 B
  g.output(g.mul(d, d)); // node 4: 16 B, an output
  // node 0: a 16; 1: a b 32; 2: a b c 48; 3: b c d 48; 4: d out 32.
  const m = graphMemory(g);
  assert.equal(m.peak, 48);
  assert.equal(m.peakNode, 2);
});

Deno.test("graphMemory: outputs live to the end, a Reshape shares its source's buffer", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3]);
  const a = g.exp(x); // node 0: 24 B, a graph output: alive to the end
  g.output(a);
  const r = g.reshape(g.neg(a), [6]); // node 1: neg 24 B; node 2: Reshape, the same buffer
  const s = g.sin(r); // node 3: 24 B; neg's buffer's last read (through r)
  g.output(g.cos(s)); // node 4: 24 B
  // node 0: 24; 1: a neg 48; 2: 48; 3: a neg s 72; 4: a s cos 72. Reshape's shape constant:
  // an initializer (2 × int64).
  const m = graphMemory(g);
  assert.equal(m.peak, 72);
  assert.equal(m.peakNode, 3);
  assert.equal(m.initializers, 8);
});

Deno.test("graphMemory: symbolic dims are bound by opts.dims, or named", () => {
  const g = new Graph();
  const x = g.input("x", "float64", ["B", 3]);
  g.output(g.neg(g.exp(x)));
  assert.equal(graphMemory(g, { dims: { B: 5 } }).peak, 2 * 5 * 3 * 8);
  assert.equal(graphMemory(g, { dims: { B: 5 } }).inputs, 5 * 3 * 8);
  assert.throws(() => graphMemory(g), /symbolic dim "B"/);
});

Deno.test("graphMemory: a 2-layer MLP's forward + backward keeps what the gradient rules read", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3]);
  const w1 = g.input("w1", "float32", [3, 4]);
  const w2 = g.input("w2", "float32", [4, 1]);
  const h = g.matmul(x, w1); // [2, 4] 32 B
  const a = g.relu(h); // [2, 4] 32 B
  const y = g.matmul(a, w2); // [2, 1] 8 B
  const sq = g.mul(y, y); // [2, 1] 8 B
  const loss = g.output(g.reduceSum(sq), "loss"); // [] 4 B, and its Identity
  const backwardFrom = g.nodes.length;
  const [d1, d2] = gradients(g, loss, [w1, w2]);
  g.output(d1);
  g.output(d2);
  // By hand, the forward values the rules read: ReduceSum's (its input's static shape: no
  // tensor), Mul's: y (dy·y twice), MatMul(a, w2)'s: a (dW2 = aᵀ·dy; da = dy·w2ᵀ reads the
  // input w2), Relu's: h (where h > 0), MatMul(x, w1)'s: x (an input). Not sq: nothing reads
  // it back. So kept = y + a + h.
  const m = graphMemory(g, { backwardFrom });
  assert.equal(m.kept, 8 + 32 + 32);
  // The backward as autodiff emits it: 6 Unsqueeze(1) (an alias of a constant: no buffer),
  // 7 Expand → dsq [2, 1], 8-9 Mul dsq·y twice, 10 Add → dy, 11 Gemm dy·w2ᵀ → da [2, 4],
  // 12 Gemm aᵀ·dy → dW2 [4, 1] (an output), 13 Greater h > 0 (bool [2, 4]), 14 Where → dh,
  // 15 Gemm xᵀ·dh → dW1. While node 12 runs: h 32 (read at 13), a 32, the loss 4 (an output),
  // dy 8, da 32, dW2 16 = 124; at 13: h, loss, da, dW2, the bool mask 8 = 92; at 14: + dh 32
  // − h = 92.
  assert.equal(m.peak, 124);
  assert.equal(m.peakNode, 12);
  // The outputs in the caller's buffers (a trainer's gradients): without the loss 4 and dW2
  // 16 at node 12 (dW1 is made at 15, when less is alive).
  assert.equal(graphMemory(g, { backwardFrom, fedOutputs: true }).peak, 124 - 4 - 16);
  assert.equal(m.inputs, 24 + 48 + 16);
});

Deno.test("dimSize: the dims shape inference derives (slices, products, sums) from their names", () => {
  const dims = { B: 3, T: 20 };
  assert.equal(dimSize("T[0:8:1]", dims), 8);
  assert.equal(dimSize("T[16::1]", dims), 4); // to the end
  assert.equal(dimSize("T[-5::1]", dims), 5);
  assert.equal(dimSize("T[1:9:2]", dims), 4);
  assert.equal(dimSize("B*T[16::1]", dims), 12);
  assert.equal(dimSize("2*B", dims), 6);
  assert.equal(dimSize("0+T[0:8:1]+T[8:16:1]+T[16::1]", dims), 20);
  assert.throws(() => dimSize("B*2+T", dims), /mixes a sum and a product/);
  assert.throws(() => dimSize("S", dims), /symbolic dim "S" is not bound/);
  // A chunked graph's own names, as shape inference makes them.
  const g = new Graph();
  const x = g.input("x", "float32", ["B", "T"]);
  const [a, b] = [g.slice(x, [0], [8], [1]), g.slice(x, [8], [2 ** 31 - 1], [1])];
  const y = g.concat([g.exp(a), g.exp(b)], 1);
  const flat = g.reshape(g.exp(a), [-1]);
  assert.deepEqual([a.shape[1], b.shape[1], y.shape[1], flat.shape[0]], [
    "T[0:8:1]",
    "T[8::1]",
    "0+T[0:8:1]+T[8::1]",
    "B*T[0:8:1]",
  ]);
  assert.deepEqual([y, flat].map((v) => dimSize(v.shape.at(-1)!, dims)), [20, 24]);
});

Deno.test("graphMemory: a Transpose read only by MatMul is folded into it (no buffer)", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3]);
  const w = g.input("w", "float32", [5, 3]); // [out, in], as a decoder's weights
  const h = g.exp(x); // node 0: 24 B
  const y = g.matmul(h, g.transpose(w, [1, 0])); // node 1: Transpose (folded), node 2: [2, 5] 40 B
  const t = g.transpose(h, [1, 0]); // node 3: also read by Exp: a real [3, 2] copy, 24 B
  g.output(g.matmul(g.exp(t), y)); // node 4: 24 B, node 5: [3, 5] 60 B
  // node 2: h y 64; node 3: h y t 88 (h's last read); node 4: y t exp 88; node 5: y exp out 124.
  const m = graphMemory(g);
  assert.equal(m.peak, 124);
  assert.equal(m.peakNode, 5);
  // A folded transpose of an intermediate keeps its source alive to the MatMul that reads it.
  const g2 = new Graph();
  const a = g2.exp(g2.input("a", "float32", [4, 4])); // node 0: 64 B
  const at = g2.transpose(a, [1, 0]); // node 1: folded: a's buffer
  const b = g2.neg(g2.input("b", "float32", [4, 4])); // node 2: 64 B
  g2.output(g2.matmul(b, at)); // node 3: 64 B; a read here: a b out = 192
  assert.equal(graphMemory(g2).peak, 192);
});

Deno.test("graphMemory: a Transpose and its inverse both read by MatMuls are folded (W, Wᵀ uncopied)", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3]);
  const w = g.input("w", "float32", [5, 3]);
  const wt = g.transpose(w, [1, 0]); // node 0: folded
  const y = g.matmul(x, wt); // node 1: [2, 5] 40 B
  const back = g.matmul(y, g.transpose(wt, [1, 0])); // node 2: folded (= w), node 3: [2, 3] 24 B
  g.output(back);
  // Unfolded, wt (60 B) would live from node 0 to node 2 and its inverse (60 B) at 2-3.
  assert.equal(graphMemory(g).peak, 40 + 24);
});

Deno.test("gradients: a reduction over static dims does not keep its input alive for its shape", () => {
  // y = Σ_j (x·x)[b, j]: the backward reads x (an input) but not the product x·x.
  const g = new Graph();
  const x = g.input("x", "float32", ["B", 4]);
  const sq = g.mul(x, x);
  const y = g.reduceSum(g.reduceSum(sq, [1], false), [0], false);
  const backwardFrom = g.nodes.length;
  const [dx] = gradients(g, y, [x]);
  g.output(dx, "dx");
  assert.ok(!g.nodes.slice(backwardFrom).some((n) => n.inputs.includes(sq)));
  // Kept: only the [B] row sums (12 B at B = 3), whose reduction is over the symbolic B and so
  // reads their Shape; not the [B, 4] product (48 B).
  assert.equal(graphMemory(g, { dims: { B: 3 }, backwardFrom }).kept, 12);
  // A symbolic reduced dim still takes its size from the input's shape.
  const h = new Graph();
  const z = h.input("z", "float32", [2, "N"]);
  const from = h.nodes.length;
  gradients(h, h.reduceSum(h.reduceSum(h.exp(z), [1], false), [0], false), [z]);
  assert.ok(h.nodes.slice(from).some((n) => n.op === "Shape"));
});
