/** graphMemory: peaks and kept activations counted by hand on tiny graphs. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { graphMemory } from "../../lib/onnx/graph_memory.ts";

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
  assert.equal(m.inputs, 24 + 48 + 16);
});
