/** Every gradient rule against central finite differences in float64 (max rel. error < 1e-6). */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { gradientRules, gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { gradcheck, type InputSpec } from "./gradcheck.ts";
import { graphMemory } from "../../lib/onnx/graph_memory.ts";

const TOL = 1e-6;
type Case = [string, (g: Graph, xs: Value[]) => Value, InputSpec[]];

/** Op type -> cases; each case names what it exercises. */
const cases: Record<string, Case[]> = {
  MatMul: [
    ["2-D", (g, [a, b]) => g.matmul(a, b), [{ shape: [3, 4] }, { shape: [4, 2] }]],
    ["batched x 2-D weight", (g, [a, b]) => g.matmul(a, b), [{ shape: [2, 3, 4] }, {
      shape: [4, 5],
    }]],
    ["broadcast batch", (g, [a, b]) => g.matmul(a, b), [{ shape: [2, 1, 3, 4] }, {
      shape: [3, 4, 2],
    }]],
    ["symbolic batch", (g, [a, b]) => g.matmul(a, b), [{ shape: ["B", 3, 4], feed: [2, 3, 4] }, {
      shape: [4, 2],
    }]],
  ],
  Gemm: [
    ["plain + C row", (g, [a, b, c]) => g.gemm(a, b, c), [{ shape: [3, 4] }, { shape: [4, 2] }, {
      shape: [2],
    }]],
    ["transA", (g, [a, b, c]) => g.gemm(a, b, c, { transA: true, alpha: 0.7 }), [
      { shape: [4, 3] },
      { shape: [4, 2] },
      { shape: [3, 2] },
    ]],
    ["transB beta", (g, [a, b, c]) => g.gemm(a, b, c, { transB: true, beta: 1.3 }), [
      { shape: [3, 4] },
      { shape: [2, 4] },
      { shape: [3, 1] },
    ]],
    [
      "transA transB",
      (g, [a, b]) => g.gemm(a, b, undefined, { transA: true, transB: true, alpha: 2 }),
      [{ shape: [4, 3] }, { shape: [2, 4] }],
    ],
  ],
  Add: [
    ["broadcast", (g, [a, b]) => g.add(a, b), [{ shape: [2, 3, 4] }, { shape: [3, 1] }]],
    ["symbolic", (g, [a, b]) => g.add(a, b), [{ shape: ["N", 3], feed: [4, 3] }, {
      shape: ["N", 1],
      feed: [4, 1],
    }]],
  ],
  Sub: [["broadcast both", (g, [a, b]) => g.sub(a, b), [{ shape: [2, 1, 4] }, { shape: [3, 1] }]]],
  Mul: [["broadcast", (g, [a, b]) => g.mul(a, b), [{ shape: [2, 3] }, { shape: [1, 3] }]], [
    "same input twice",
    (g, [a]) => g.mul(a, a),
    [{ shape: [5] }],
  ]],
  Div: [["broadcast", (g, [a, b]) => g.div(a, b), [{ shape: [2, 3] }, { shape: [3], lo: 0.5 }]]],
  Neg: [["", (g, [a]) => g.neg(a), [{ shape: [2, 3] }]]],
  Exp: [["", (g, [a]) => g.exp(a), [{ shape: [2, 3] }]]],
  Log: [["", (g, [a]) => g.log(a), [{ shape: [2, 3], positive: true, lo: 0.3 }]]],
  Sqrt: [["", (g, [a]) => g.sqrt(a), [{ shape: [2, 3], positive: true, lo: 0.3 }]]],
  Pow: [
    ["tensor exponent", (g, [a, b]) => g.pow(a, b), [{ shape: [2, 3], positive: true, lo: 0.3 }, {
      shape: [3],
    }]],
    ["constant exponent", (g, [a]) => g.pow(a, 3), [{ shape: [4] }]],
  ],
  Tanh: [["", (g, [a]) => g.tanh(a), [{ shape: [2, 3] }]]],
  Cos: [["", (g, [a]) => g.cos(a), [{ shape: [2, 3], lo: -4, hi: 4 }]]],
  Sin: [["", (g, [a]) => g.sin(a), [{ shape: [2, 3], lo: -4, hi: 4 }]]],
  Sigmoid: [["", (g, [a]) => g.sigmoid(a), [{ shape: [2, 3] }]]],
  Relu: [["", (g, [a]) => g.relu(a), [{ shape: [3, 4] }]]],
  Erf: [["", (g, [a]) => g.erf(a), [{ shape: [2, 4], hi: 3 }]]],
  Gelu: [
    ["tanh form", (g, [a]) => g.gelu(a, "tanh"), [{ shape: [3, 4], hi: 3 }]],
    ["erf form", (g, [a]) => g.gelu(a, "none"), [{ shape: [3, 4], hi: 3 }]],
  ],
  Softmax: [
    ["last axis", (g, [a]) => g.softmax(a, -1), [{ shape: [2, 5] }]],
    ["middle axis", (g, [a]) => g.softmax(a, 1), [{ shape: [2, 3, 2] }]],
  ],
  LogSoftmax: [["last axis", (g, [a]) => g.logSoftmax(a, -1), [{ shape: [3, 4] }]]],
  ReduceSum: [
    ["axis keepdims", (g, [a]) => g.reduceSum(a, [1], true), [{ shape: [2, 3, 4] }]],
    ["axes dropped", (g, [a]) => g.reduceSum(a, [0, 2]), [{ shape: [2, 3, 4] }]],
    ["symbolic", (g, [a]) => g.reduceSum(a, [0]), [{ shape: ["B", 3], feed: [4, 3] }]],
  ],
  ReduceMean: [
    ["axis", (g, [a]) => g.reduceMean(a, [-1]), [{ shape: [2, 3, 4] }]],
    ["symbolic", (g, [a]) => g.reduceMean(a, [0], true), [{ shape: ["B", 3], feed: [5, 3] }]],
  ],
  ReduceMax: [["axis", (g, [a]) => g.reduceMax(a, [1]), [{ shape: [3, 4] }]]],
  Reshape: [
    ["static", (g, [a]) => g.reshape(a, [3, -1]), [{ shape: [2, 3, 2] }]],
    ["symbolic", (g, [a]) => g.reshape(a, [0, -1]), [{ shape: ["B", 2, 3], feed: [2, 2, 3] }]],
  ],
  Transpose: [["perm", (g, [a]) => g.transpose(a, [2, 0, 1]), [{ shape: [2, 3, 4] }]]],
  Gather: [
    ["embedding, repeated ids", (g, [t, i]) => g.gather(t, i, 0), [{ shape: [5, 3] }, {
      shape: [2, 3],
      ints: [0, 4, 0, 2, 2, 2],
    }]],
    ["axis 1", (g, [t, i]) => g.gather(t, i, 1), [{ shape: [2, 4, 3] }, {
      shape: [3],
      ints: [3, 0, 3],
    }]],
  ],
  GatherElements: [[
    "token logprobs",
    (g, [t, i]) =>
      g.node("GatherElements", [t, i], { axis: { kind: "int", value: 1 } }, undefined, [{
        dtype: "float64",
        shape: [3, 2],
      }])[0],
    [{ shape: [3, 4] }, { shape: [3, 2], ints: [0, 3, 1, 1, 2, 0] }],
  ]],
  Slice: [
    ["static", (g, [a]) => g.slice(a, [1, 0], [3, -1], [0, 1]), [{ shape: [4, 5] }]],
    ["negative start, symbolic", (g, [a]) => g.slice(a, [0, -2], [2 ** 62, 2 ** 62], [0, 1]), [{
      shape: ["B", 5],
      feed: [3, 5],
    }]],
    ["drop last on symbolic", (g, [a]) => g.slice(a, [0], [-1], [1]), [{
      shape: [2, "T"],
      feed: [2, 5],
    }]],
    ["strided", (g, [a]) => g.slice(a, [0, 4], [6, 0], [0, 1], [2, -2]), [{ shape: [6, 5] }]],
  ],
  Concat: [
    ["static", (g, [a, b]) => g.concat([a, b], 1), [{ shape: [2, 3] }, { shape: [2, 2] }]],
    ["symbolic", (g, [a, b]) => g.concat([a, b], 0), [{ shape: ["N", 3], feed: [2, 3] }, {
      shape: [1, 3],
    }]],
  ],
  Split: [
    ["all outputs", (g, [a]) => {
      const [p, q] = g.split(a, [1, 3], 1);
      return g.add(g.mul(p, 2), g.reduceSum(q, [1], true));
    }, [{ shape: [2, 4] }]],
    ["one output unused", (g, [a]) => g.split(a, [2, 2], 0)[1], [{ shape: [4, 3] }]],
  ],
  Where: [["broadcast", (g, [c, a, b]) => g.where(g.greater(c, 0), a, b), [{ shape: [2, 3] }, {
    shape: [2, 3],
  }, { shape: [3] }]]],
  Min: [["broadcast", (g, [a, b]) => g.min(a, b), [{ shape: [2, 3] }, { shape: [3] }]]],
  Max: [["broadcast", (g, [a, b]) => g.max(a, b), [{ shape: [2, 3] }, { shape: [2, 1] }]]],
  Clip: [
    ["both bounds", (g, [a]) => g.clip(a, -0.5, 0.7), [{ shape: [3, 4], lo: 0.05 }]],
    ["lower only", (g, [a]) => g.clip(a, 0.3), [{ shape: [3, 4], lo: 0.05 }]],
  ],
  Abs: [["", (g, [a]) => g.abs(a), [{ shape: [3, 4] }]]],
  LayerNormalization: [
    ["scale + bias", (g, [x, s, b]) => g.layerNorm(x, s, b), [{ shape: [3, 4] }, { shape: [4] }, {
      shape: [4],
    }]],
    [
      "two normalised axes",
      (g, [x, s]) => g.layerNorm(x, s, undefined, { axis: 1, epsilon: 1e-3 }),
      [{ shape: [2, 3, 4] }, { shape: [3, 4] }],
    ],
  ],
  Cast: [["float64 -> float64 via identity cast", (g, [a]) => g.cast(a, "float64"), [{
    shape: [2, 3],
  }]]],
  Expand: [
    ["static", (g, [a]) => g.expand(a, [2, 3, 4]), [{ shape: [3, 1] }]],
    ["symbolic", (g, [a, like]) => g.add(g.expand(a, like.shape, like), like), [{ shape: [1, 3] }, {
      shape: ["N", 3],
      feed: [4, 3],
    }]],
  ],
  Unsqueeze: [["", (g, [a]) => g.unsqueeze(a, [0, -1]), [{ shape: [2, 3] }]]],
  Squeeze: [["", (g, [a]) => g.squeeze(a, [1]), [{ shape: [2, 1, 3] }]]],
  Identity: [["", (g, [a]) => g.identity(a), [{ shape: [2, 3] }]]],
};

Deno.test("every gradient rule has a finite-difference case", () => {
  const missing = Object.keys(gradientRules).filter((op) => !cases[op]);
  assert.deepEqual(missing, []);
});

for (const [op, list] of Object.entries(cases)) {
  for (const [label, build, specs] of list) {
    Deno.test(`gradient ${op}${label ? ` (${label})` : ""} matches finite differences`, async () => {
      const { maxRelError } = await gradcheck(build, specs);
      assert.ok(
        maxRelError < TOL,
        `${op} ${label}: max relative error ${maxRelError.toExponential(2)} >= ${TOL}`,
      );
    });
  }
}

Deno.test("a composed expression (softmax attention) matches finite differences", async () => {
  const { maxRelError } = await gradcheck((g, [q, k, v]) => {
    const att = g.softmax(g.div(g.matmul(q, g.transpose(k, [0, 2, 1])), 2), -1);
    return g.layerNorm(
      g.matmul(att, v),
      g.constant({ dtype: "float64", shape: [3], data: [1, 2, 3] }),
    );
  }, [{ shape: [2, 4, 3] }, { shape: [2, 4, 3] }, { shape: [2, 4, 3] }]);
  assert.ok(maxRelError < TOL, `max relative error ${maxRelError}`);
});

Deno.test("the embedding gradient adds repeated ids in id order, on 2 threads, every run alike", async () => {
  // Big enough that ORT splits the scatter across threads; 16 distinct ids over 4096 positions.
  const V = 16, d = 512, N = 4096;
  const g = new Graph("embedding_grad");
  const table = g.input("table", "float32", [V, d]);
  const ids = g.input("ids", "int64", [N]);
  const w = g.input("w", "float32", [N, d]);
  g.output(gradients(g, g.reduceSum(g.mul(g.gather(table, ids, 0), w)), [table])[0], "grad");
  const s = await compile(g, { threads: 2 });
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const idv = Array.from({ length: N }, () => Math.floor(next() * V));
  const wv = Float32Array.from({ length: N * d }, () => next() - 0.5);
  // Reference: float32 sums in id order (what a sequential scatter-add computes).
  const ref = new Float32Array(V * d);
  idv.forEach((id, i) => {
    for (let j = 0; j < d; j++) ref[id * d + j] = Math.fround(ref[id * d + j] + wv[i * d + j]);
  });
  for (let run = 0; run < 3; run++) {
    const out = await s.run({
      table: tensor("float32", [V, d]),
      ids: tensor("int64", [N], idv),
      w: tensor("float32", [N, d], wv),
    });
    assert.deepEqual(out.grad.data, ref, `run ${run}`);
  }
});

Deno.test("gradients: SiLU, Exp and Sigmoid are made again in the backward (symbolic dims): finite differences hold, their outputs are not kept", async () => {
  // A SiLU as a decoder spells it (float32 x·σ(x); float64, which ORT cannot fuse, x·σ(x) as
  // σ(x)·x), then exp and a log-softmax (an entropy's pieces).
  const build = (g: Graph, [x]: Value[]) => {
    const silu = x.dtype === "float32" ? g.mul(x, g.sigmoid(x)) : g.mul(g.sigmoid(x), g.add(x, 0));
    const l = g.logSoftmax(silu, -1);
    return g.mul(g.exp(l), l);
  };
  const { maxRelError } = await gradcheck(build, [{ shape: ["B", 6], feed: [3, 6] }]);
  assert.ok(maxRelError < TOL, `max rel error ${maxRelError}`);
  // Kept for the backward (float32: float64 keeps σ(x), see autodiff.ts): x is an input, l
  // (the log-softmax's own rule reads it); σ(x), the SiLU and exp(l) are made again: 3 rows ×
  // 6 × 4 B of l alone.
  const g = new Graph();
  const x = g.input("x", "float32", ["B", 6]);
  const loss = g.reduceSum(g.reduceSum(build(g, [x]), [1], false), [0], false);
  const backwardFrom = g.nodes.length;
  const [dx] = gradients(g, loss, [x]);
  g.output(dx, "dx");
  // ... and the [B] row sums (3 × 4 B), whose sum over the symbolic B reads their shape.
  assert.equal(graphMemory(g, { dims: { B: 3 }, backwardFrom }).kept, 3 * 6 * 4 + 3 * 4);
});
