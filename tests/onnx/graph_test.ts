/**
 * The typed graph builder: build-time shape/dtype errors, shape inference (static and
 * symbolic, cross-checked against ONNX Runtime), deterministic serialisation, and the
 * errors `gradients()` raises.
 */
import assert from "node:assert/strict";
import {
  broadcastShapes,
  Graph,
  GraphError,
  type Shape,
  type Value,
} from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";

/** "To the end" sentinel for Slice ends (the builder treats >= 2^62 as unbounded). */
const END = 2 ** 62;

/** `fn` throws a GraphError whose message matches `re`. */
function throwsGraphError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GraphError, `expected GraphError, got ${e}`);
    assert.equal(e.name, "GraphError");
    assert.match(e.message, re);
    return true;
  });
}

// ---- build-time errors -----------------------------------------------------------------

/** [case, build (must throw), regex the GraphError message must match] */
const errorCases: [string, (g: Graph) => unknown, RegExp][] = [
  [
    "Add [2,3] + [4,3]",
    (g) => g.add(g.input("a", "float32", [2, 3]), g.input("b", "float32", [4, 3])),
    /^Add: shapes \[2, 3\] and \[4, 3\] do not broadcast \(dim 0: 2 vs 4\)/,
  ],
  [
    "MatMul inner-dim mismatch [2,3] @ [4,5]",
    (g) => g.matmul(g.input("a", "float32", [2, 3]), g.input("b", "float32", [4, 5])),
    /^MatMul: inner dims differ: a: float32\[2, 3\] @ b: float32\[4, 5\]/,
  ],
  [
    "MatMul of a rank-1 operand",
    (g) => g.matmul(g.input("a", "float32", [2, 3]), g.input("v", "float32", [3])),
    /^MatMul: needs rank >= 2 .*a: float32\[2, 3\] and v: float32\[3\]/,
  ],
  [
    "Gemm inner mismatch (transB)",
    (g) =>
      g.gemm(g.input("a", "float32", [2, 3]), g.input("b", "float32", [3, 4]), undefined, {
        transB: true,
      }),
    /^Gemm: inner dims differ: a: float32\[2, 3\] x b: float32\[3, 4\] \(transA=false, transB=true\)/,
  ],
  [
    "Concat with differing non-axis dims",
    (g) => g.concat([g.input("a", "float32", [2, 3]), g.input("b", "float32", [2, 4])], 0),
    /^Concat: dim 1 differs in a: float32\[2, 3\], b: float32\[2, 4\]/,
  ],
  [
    "Split sizes not summing to the dim",
    (g) => g.split(g.input("x", "float32", [5, 2]), [2, 2], 0),
    /^Split: sizes \[2,2\] do not add up to dim 0 of x: float32\[5, 2\]/,
  ],
  [
    "Reshape [2,3] -> [4,2]",
    (g) => g.reshape(g.input("x", "float32", [2, 3]), [4, 2]),
    /^Reshape: cannot reshape x: float32\[2, 3\] \(6 elements\) to \[4, 2\]/,
  ],
  [
    "Reshape [2,3] -> [-1,4] (-1 cannot be inferred)",
    (g) => g.reshape(g.input("x", "float32", [2, 3]), [-1, 4]),
    /^Reshape: cannot reshape x: float32\[2, 3\] to \[-1, 4\]/,
  ],
  [
    "Transpose with a repeated axis",
    (g) => g.transpose(g.input("x", "float32", [2, 3]), [0, 0]),
    /^Transpose: perm \[0,0\] is not a permutation of rank 2/,
  ],
  [
    "Transpose with a perm of the wrong length",
    (g) => g.transpose(g.input("x", "float32", [2, 3, 4]), [1, 0]),
    /^Transpose: perm \[1,0\] is not a permutation of rank 3/,
  ],
  [
    "Squeeze of a non-1 dim",
    (g) => g.squeeze(g.input("x", "float32", [2, 1, 3]), [2]),
    /^Squeeze: dim 2 of x: float32\[2, 1, 3\] is not 1/,
  ],
  [
    "Softmax axis out of range",
    (g) => g.softmax(g.input("x", "float32", [2, 3]), 2),
    /^Softmax: axis 2 out of range for rank 2/,
  ],
  [
    "Softmax negative axis out of range",
    (g) => g.softmax(g.input("x", "float32", [2, 3]), -3),
    /^Softmax: axis -3 out of range for rank 2/,
  ],
  [
    "Where with a non-bool condition",
    (g) => {
      const x = g.input("x", "float32", [2, 3]);
      return g.where(g.input("c", "float32", [2, 3]), x, 0);
    },
    /^Where: condition must be bool, got c: float32\[2, 3\]/,
  ],
  [
    "dtype mismatch float32 + float64",
    (g) => g.add(g.input("a", "float32", [2]), g.input("b", "float64", [2])),
    /^Add: dtype mismatch float32 vs float64/,
  ],
  [
    'symbolic "B" vs "T" do not broadcast',
    (g) => g.mul(g.input("a", "float32", ["B", 3]), g.input("b", "float32", ["T", 3])),
    /^Mul: shapes \[B, 3\] and \[T, 3\] do not broadcast \(dim 0: B vs T\)/,
  ],
  [
    "symbolic dim vs static dim do not broadcast",
    (g) => g.add(g.input("a", "float32", ["B", 3]), g.input("b", "float32", [4, 3])),
    /^Add: shapes \[B, 3\] and \[4, 3\] do not broadcast \(dim 0: B vs 4\)/,
  ],
  [
    "Gather with float indices",
    (g) => g.gather(g.input("table", "float32", [10, 4]), g.input("ids", "float32", [2])),
    /^Gather: indices must be int64\/int32, got ids: float32\[2\]/,
  ],
  [
    "duplicate input name",
    (g) => {
      g.input("x", "float32", [2]);
      return g.input("x", "float64", [3]);
    },
    /^duplicate value name "x"/,
  ],
];

for (const [name, build, re] of errorCases) {
  Deno.test(`build-time error: ${name}`, () => {
    const g = new Graph("errors");
    throwsGraphError(() => build(g), re);
    // The failing op left no node behind.
    assert.equal(g.nodes.length, 0, `nodes after the failed op: ${g.nodes.map((n) => n.op)}`);
  });
}

Deno.test("build-time error: a valid neighbour of each rejected case builds", () => {
  // Guards against the error checks being over-eager (each line mirrors a case above).
  const g = new Graph("ok");
  const f = (name: string, shape: Shape) => g.input(name, "float32", shape);
  assert.deepEqual(g.add(f("a", [2, 3]), f("b", [1, 3])).shape, [2, 3]);
  assert.deepEqual(g.matmul(f("c", [2, 3]), f("d", [3, 5])).shape, [2, 5]);
  assert.deepEqual(g.gemm(f("e", [2, 3]), f("h", [4, 3]), undefined, { transB: true }).shape, [
    2,
    4,
  ]);
  assert.deepEqual(g.concat([f("i", [2, 3]), f("j", [5, 3])], 0).shape, [7, 3]);
  assert.deepEqual(g.split(f("k", [5, 2]), [2, 3], 0).map((v) => v.shape), [[2, 2], [3, 2]]);
  assert.deepEqual(g.reshape(f("l", [2, 3]), [3, 2]).shape, [3, 2]);
  assert.deepEqual(g.transpose(f("m", [2, 3, 4]), [2, 0, 1]).shape, [4, 2, 3]);
  assert.deepEqual(g.transpose(f("m2", [2, 3, 4])).shape, [4, 3, 2]);
  // rank > 10: the permutation check must sort numerically, not as strings.
  const r11 = [...Array(11).keys()];
  assert.deepEqual(g.transpose(f("m3", r11.map((i) => i + 1)), r11).shape, r11.map((i) => i + 1));
  assert.deepEqual(g.squeeze(f("n", [2, 1, 3]), [1]).shape, [2, 3]);
  assert.deepEqual(g.softmax(f("o", [2, 3]), -2).shape, [2, 3]);
  assert.deepEqual(g.where(g.input("c2", "bool", [2, 1]), f("p", [3]), 0).shape, [2, 3]);
  assert.deepEqual(g.mul(f("q", ["B", 3]), f("r", ["B", 1])).shape, ["B", 3]);
  assert.deepEqual(g.gather(f("t", [10, 4]), g.input("ids", "int32", [2])).shape, [2, 4]);
});

Deno.test("broadcastShapes: errors name the op and every shape", () => {
  throwsGraphError(
    () => broadcastShapes("Where", [2, 1], [3], [4, 1]),
    /^Where: shapes \[2, 1\] and \[3\] and \[4, 1\] do not broadcast \(dim 0: 2 vs 4\)/,
  );
  assert.deepEqual(broadcastShapes("Where", [2, 1], [3], [1, 1]), [2, 3]);
});

// ---- shape inference -------------------------------------------------------------------

Deno.test('shape inference: symbolic broadcast ["B",1,4] + [3,1] -> ["B",3,4]', () => {
  const g = new Graph();
  const a = g.input("a", "float32", ["B", 1, 4]);
  const b = g.input("b", "float32", [3, 1]);
  const y = g.add(a, b);
  assert.deepEqual(y.shape, ["B", 3, 4]);
  assert.equal(y.dtype, "float32");
  assert.deepEqual(g.add(b, a).shape, ["B", 3, 4]);
  // Comparisons broadcast the same way but yield bool.
  const c = g.less(a, b);
  assert.deepEqual([c.dtype, c.shape], ["bool", ["B", 3, 4]]);
  // A number operand is lifted to a scalar of the other side's dtype.
  assert.deepEqual(g.sub(1, a).shape, ["B", 1, 4]);
  assert.deepEqual(broadcastShapes("Add", ["B", 1], [1, "T"]), ["B", "T"]);
});

Deno.test("shape inference: matmul batch dims broadcast", () => {
  const g = new Graph();
  const f = (name: string, shape: Shape) => g.input(name, "float32", shape);
  assert.deepEqual(g.matmul(f("a", [2, 1, 3, 4]), f("b", [5, 4, 6])).shape, [2, 5, 3, 6]);
  assert.deepEqual(g.matmul(f("c", ["B", 1, "T", 4]), f("d", [7, 4, 2])).shape, ["B", 7, "T", 2]);
  assert.deepEqual(g.matmul(f("e", ["B", "T", 8]), f("w", [8, 3])).shape, ["B", "T", 3]);
  throwsGraphError(
    () => g.matmul(f("h", [2, 3, 4]), f("i", [5, 4, 6])),
    /^MatMul: shapes \[2\] and \[5\]/,
  );
});

Deno.test("shape inference: reshape -1 of a symbolic input names the dim by its product", () => {
  const g = new Graph();
  const a = g.input("a", "float32", ["B", 3, 4]);
  const b = g.input("b", "float32", ["B", 12]);
  const c = g.input("c", "float32", ["B", 2, 6]);
  const ra = g.reshape(a, [-1, 4]);
  const rb = g.reshape(b, [-1, 4]);
  const rc = g.reshape(c, [-1, 4]);
  assert.deepEqual(ra.shape, ["3*B", 4]);
  assert.deepEqual(rb.shape, ["3*B", 4]);
  assert.deepEqual(rc.shape, ["3*B", 4]);
  // Equal-sized reshapes agree, so they combine without a broadcast error...
  assert.deepEqual(g.add(ra, rb).shape, ["3*B", 4]);
  // ...and a differently-sized one does not.
  const rd = g.reshape(g.input("d", "float32", ["B", 8]), [-1, 4]);
  assert.deepEqual(rd.shape, ["2*B", 4]);
  throwsGraphError(() => g.add(ra, rd), /^Add: shapes \[3\*B, 4\] and \[2\*B, 4\]/);
  // Several symbols: order-independent name; a flatten to 1-D keeps all factors.
  const bt = g.reshape(g.input("bt", "float32", ["B", "T", 2]), [-1, 2]);
  const tb = g.reshape(g.input("tb", "float32", ["T", "B", 2]), [-1, 2]);
  assert.deepEqual(bt.shape, ["B*T", 2]);
  assert.deepEqual(tb.shape, ["B*T", 2]);
  assert.deepEqual(g.reshape(a, [-1]).shape, ["12*B"]);
  // A kept symbol (0 copies it) is not part of the inferred product.
  assert.deepEqual(g.reshape(a, [0, -1]).shape, ["B", 12]);
  assert.deepEqual(g.reshape(a, ["B", -1]).shape, ["B", 12]);
  // The same construction in a fresh graph infers the same name (no counters involved).
  const g2 = new Graph();
  assert.deepEqual(g2.reshape(g2.input("zz", "float32", [3, "B", 4]), [-1, 4]).shape, ["3*B", 4]);
});

Deno.test("shape inference: reshape of symbolic dims must keep their position", () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["B", 3, 4]);
  throwsGraphError(
    () => g.reshape(x, [3, "B", 4]),
    /^Reshape: symbolic dim "B" must keep its position 1 in x: float32\[B, 3, 4\]/,
  );
  throwsGraphError(
    () => g.reshape(x, ["T", -1]),
    /^Reshape: symbolic dim "T" .*x: float32\[B, 3, 4\]/,
  );
});

Deno.test("shape inference: slice (static, negative start, step -2, symbolic)", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [10, 6]);
  assert.deepEqual(g.slice(x, [2], [8]).shape, [6, 6]);
  assert.deepEqual(g.slice(x, [-3], [END], [0]).shape, [3, 6]);
  assert.deepEqual(g.slice(x, [-4], [-1], [0]).shape, [3, 6]);
  assert.deepEqual(g.slice(x, [-1], [-END], [0], [-2]).shape, [5, 6]); // 9,7,5,3,1
  assert.deepEqual(g.slice(x, [8], [1], [0], [-2]).shape, [4, 6]); // 8,6,4,2
  assert.deepEqual(g.slice(x, [0], [6], [1], [4]).shape, [10, 2]); // 0,4
  assert.deepEqual(g.slice(x, [3, 1], [100, 5], [0, 1]).shape, [7, 4]); // ends clamp
  assert.deepEqual(g.slice(x, [7], [3], [0]).shape, [0, 6]); // empty, not negative
  const s = g.input("s", "float32", ["T", 6]);
  // [0, 2) of an unknown T may be shorter than 2: the dim stays symbolic, named by the slice.
  assert.deepEqual(g.slice(s, [0], [2], [0]).shape, ["T[0:2:1]", 6]);
  assert.deepEqual(g.slice(s, [0], [2], [0]).shape, g.slice(s, [0], [2], [0]).shape);
  assert.deepEqual(g.slice(s, [-3], [END], [0]).shape, [3, 6]);
  assert.deepEqual(g.slice(s, [0], [END], [0]).shape, ["T", 6]);
  assert.deepEqual(g.slice(s, [1, 2], [END, 4], [0, 1]).shape.slice(1), [2]);
  throwsGraphError(() => g.slice(x, [0], [1], [0], [0]), /^Slice: step 0/);
  throwsGraphError(() => g.slice(x, [0], [1], [2]), /^Slice: axis 2 out of range for rank 2/);
});

Deno.test("shape inference: reductions with and without keepdims", () => {
  const g = new Graph();
  const x = g.input("x", "float32", [2, 3, 4]);
  assert.deepEqual(g.reduceSum(x, [1], true).shape, [2, 1, 4]);
  assert.deepEqual(g.reduceSum(x, [1]).shape, [2, 4]);
  assert.deepEqual(g.reduceMean(x, [0, -1], true).shape, [1, 3, 1]);
  assert.deepEqual(g.reduceMean(x, [0, -1]).shape, [3]);
  assert.deepEqual(g.reduceMax(x).shape, []);
  assert.deepEqual(g.reduceMax(x, undefined, true).shape, [1, 1, 1]);
  const s = g.input("s", "float32", ["B", "T", 4]);
  assert.deepEqual(g.reduceSum(s, [-1]).shape, ["B", "T"]);
  assert.deepEqual(g.reduceSum(s, [1], true).shape, ["B", 1, 4]);
  throwsGraphError(() => g.reduceSum(x, [3]), /^ReduceSum: axis 3 out of range for rank 3/);
});

Deno.test("shape inference: gather", () => {
  const g = new Graph();
  const table = g.input("table", "float32", [10, 4]);
  const ids = g.input("ids", "int64", ["B", "T"]);
  const e = g.gather(table, ids, 0);
  assert.deepEqual([e.dtype, e.shape], ["float32", ["B", "T", 4]]);
  assert.deepEqual(g.gather(table, g.input("cols", "int32", [3]), 1).shape, [10, 3]);
  assert.deepEqual(g.gather(table, g.input("cols2", "int64", [2, 5]), -1).shape, [10, 2, 5]);
  assert.deepEqual(g.gather(table, g.scalar(2, "int64"), 0).shape, [4]);
  const x = g.input("x", "float32", [2, 3, 5]);
  assert.deepEqual(g.gather(x, g.input("k", "int64", [7]), 1).shape, [2, 7, 5]);
});

Deno.test("shape inference: unsqueeze / squeeze", () => {
  const g = new Graph();
  const v = g.input("v", "float32", [3]);
  assert.deepEqual(g.unsqueeze(v, [0]).shape, [1, 3]);
  assert.deepEqual(g.unsqueeze(v, [-1]).shape, [3, 1]);
  const u = g.unsqueeze(v, [0, 2]);
  assert.deepEqual(u.shape, [1, 3, 1]);
  assert.deepEqual(g.squeeze(u, [0, 2]).shape, [3]);
  assert.deepEqual(g.squeeze(u, [-1]).shape, [1, 3]);
  const s = g.input("s", "float32", ["B", 4]);
  assert.deepEqual(g.unsqueeze(s, [1]).shape, ["B", 1, 4]);
  assert.deepEqual(g.squeeze(g.unsqueeze(s, [1]), [1]).shape, ["B", 4]);
  throwsGraphError(() => g.squeeze(s, [0]), /^Squeeze: dim 0 of s: float32\[B, 4\] is not 1/);
  throwsGraphError(() => g.unsqueeze(v, [3]), /^Unsqueeze: axis 3 out of range for rank 2/);
});

Deno.test("shape inference: static shapes agree with ONNX Runtime's output dims", async () => {
  const g = new Graph("shapes");
  const x = g.input("x", "float32", [10, 6]);
  const ids = g.input("ids", "int64", [2, 3]);
  const outs: [string, Value][] = [
    ["slice_plain", g.slice(x, [2], [8])],
    ["slice_negstart", g.slice(x, [-3], [END], [0])],
    ["slice_step_m2", g.slice(x, [-1], [-END], [0], [-2])],
    ["slice_step_m2b", g.slice(x, [8], [1], [0], [-2])],
    ["slice_cols", g.slice(x, [0], [6], [1], [4])],
    ["slice_empty", g.slice(x, [7], [3], [0])],
    ["sum_keep", g.reduceSum(x, [1], true)],
    ["sum_drop", g.reduceSum(x, [1])],
    ["max_all", g.reduceMax(x)],
    ["gather0", g.gather(x, ids, 0)],
    ["gather1", g.gather(x, ids, 1)],
    ["unsq", g.unsqueeze(x, [0, -1])],
    ["sq", g.squeeze(g.unsqueeze(x, [1]), [1])],
    ["mm", g.matmul(g.unsqueeze(x, [0]), g.transpose(g.reshape(x, [2, 5, 6]), [0, 2, 1]))],
    ["cat", g.concat([x, g.slice(x, [0], [3])], 0)],
    ["split1", g.split(x, [1, 5], 1)[1]],
    ["resh", g.reshape(x, [3, -1])],
  ];
  for (const [name, v] of outs) g.output(v, name);
  const s = await compile(g);
  const res = await s.run({
    x: tensor("float32", [10, 6]),
    ids: tensor("int64", [2, 3], [0, 1, 2, 3, 4, 5]),
  });
  for (const [name, v] of outs) assert.deepEqual([...res[name].dims], v.shape, name);
});

// ---- serialisation -----------------------------------------------------------------------

/** A small graph touching initializers, attributes, Split, and a float64 lowering (Erf). */
function buildMixed(wScale = 1): Graph {
  const g = new Graph("mixed");
  const x = g.input("x", "float64", ["B", 4]);
  const w = g.constant({
    dtype: "float64",
    shape: [4, 3],
    data: [...Array(12).keys()].map((i) => i * wScale),
  });
  const h = g.gelu(g.add(g.matmul(x, w), g.scalar(0.25, "float64")));
  const [a, b] = g.split(h, [1, 2], 1);
  g.output(g.softmax(g.concat([b, a], 1), -1), "y");
  g.output(g.reduceMean(g.erf(h), [0], true), "m");
  return g;
}

Deno.test("serialisation: the same construction twice gives byte-identical model bytes", () => {
  const a = buildMixed().toModelBytes();
  const b = buildMixed().toModelBytes();
  assert.ok(a.length > 100, `suspiciously small model: ${a.length} bytes`);
  assert.deepEqual(b, a);
  // Serialising the same Graph again is also stable.
  const g = buildMixed();
  assert.deepEqual(g.toModelBytes(), g.toModelBytes());
  // And the comparison is not vacuous: one changed constant changes the bytes.
  assert.notDeepEqual(buildMixed(2).toModelBytes(), a);
});

Deno.test("serialisation: a symbolic-batch graph compiles and runs on two batch sizes", async () => {
  const g = new Graph("affine");
  const x = g.input("x", "float32", ["B", 3]);
  const w = g.constant({ dtype: "float32", shape: [3, 2], data: [1, 2, 3, 4, 5, 6] });
  const bias = g.constant({ dtype: "float32", shape: [2], data: [0.5, -1] });
  const y = g.relu(g.add(g.matmul(x, w), bias));
  assert.deepEqual(y.shape, ["B", 2]);
  g.output(y, "y");
  g.output(g.reduceSum(y, [1]), "s");
  const s = await compile(g);
  assert.deepEqual([...s.inputNames], ["x"]);
  assert.deepEqual([...s.outputNames], ["y", "s"]);

  // B = 1: [1,1,1] @ w = [9, 12]; + bias = [9.5, 11].
  const r1 = await s.run({ x: tensor("float32", [1, 3], [1, 1, 1]) });
  assert.deepEqual([...r1.y.dims], [1, 2]);
  assert.deepEqual([...(r1.y.data as Float32Array)], [9.5, 11]);
  assert.deepEqual([...(r1.s.data as Float32Array)], [20.5]);

  // B = 3: rows e0, e1, -2·e2 -> [1,2], [3,4], [-10,-12]; + bias; relu.
  const r3 = await s.run({ x: tensor("float32", [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, -2]) });
  assert.deepEqual([...r3.y.dims], [3, 2]);
  assert.deepEqual([...(r3.y.data as Float32Array)], [1.5, 1, 3.5, 3, 0, 0]);
  assert.deepEqual([...r3.s.dims], [3]);
  assert.deepEqual([...(r3.s.data as Float32Array)], [2.5, 6.5, 0]);
});

// ---- gradients() errors ----------------------------------------------------------------------

Deno.test("gradients: a non-scalar loss needs a seed", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [2, 3]);
  const y = g.mul(x, x);
  throwsGraphError(
    () => gradients(g, y, [x]),
    /^gradients: loss must be a scalar, got mul_\d+: float64\[2, 3\]/,
  );
  // With a seed of the loss's shape the same call succeeds: dy/dx = 2x·seed.
  const [dx] = gradients(g, y, [x], g.input("seed", "float64", [2, 3]));
  assert.deepEqual([dx.dtype, dx.shape], ["float64", [2, 3]]);
});

Deno.test("gradients: an op without a gradient rule is named", () => {
  const g = new Graph();
  const x = g.input("x", "float64", [4]);
  const [fl] = g.node("Floor", [x]);
  const loss = g.reduceSum(g.mul(fl, x));
  throwsGraphError(
    () => gradients(g, loss, [x]),
    /^gradients: no gradient rule for Floor \(needed for x: float64\[4\]\)/,
  );
  // Without Floor in the path the same loss shape differentiates fine.
  const g2 = new Graph();
  const x2 = g2.input("x", "float64", [4]);
  const [dx] = gradients(g2, g2.reduceSum(g2.mul(x2, x2)), [x2]);
  assert.deepEqual(dx.shape, [4]);
  // A rule-less op that does not lie between wrt and the loss is not a problem.
  const g3 = new Graph();
  const a = g3.input("a", "float64", [4]);
  const c = g3.input("c", "float64", [4]);
  const [fc] = g3.node("Floor", [c]);
  const [da] = gradients(g3, g3.reduceSum(g3.mul(a, fc)), [a]);
  assert.deepEqual(da.shape, [4]);
});
