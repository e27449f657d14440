/**
 * The FFI backend (ort_ffi.ts): outputs written in place and returned as the given tensors,
 * in-place updates (an output over its input's memory), ORT-allocated outputs of every dtype,
 * errors with ORT's message, and the same bits as onnxruntime-node for a whole train run.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { ffiStatus } from "../../lib/onnx/ort_ffi.ts";
import { adamw } from "../../lib/onnx/optim.ts";
import { Trainer, type TrainStepSpec } from "../../lib/onnx/train.ts";
import { initMlp, mlpForward, mlpShapes } from "../../lib/nn/mlp.ts";
import { Rng } from "../../lib/rng.ts";
import { arenaConfig, arenaEntries } from "../../lib/onnx/ort_ffi_api.ts";
import { UsageError } from "../../lib/errors.ts";

const ffi = ffiStatus().ok;

Deno.test({
  name: "ffi: a preallocated output is written in place and returned as the same tensor",
  ignore: !ffi,
  fn: async () => {
    const g = new Graph("axpb");
    const x = g.input("x", "float32", ["N"]);
    const k = g.input("k", "float32", []);
    g.output(g.add(g.mul(x, k), 1), "y");
    g.output(g.reduceSum(x), "s");
    g.output(g.cast(g.greater(x, 1.5), "int64"), "big");
    const s = await compile(g, { backend: "ffi" });
    assert.equal(s.backend, "ffi");
    const xs = Float32Array.from({ length: 1000 }, (_, i) => i % 3);
    const y = tensor("float32", [1000]);
    const out = await s.run(
      { x: tensor("float32", [1000], xs), k: tensor("float32", [], [2]) },
      { y, s: null, big: null },
    );
    assert.equal(out.y, y, "the fetched tensor itself");
    assert.equal((y.data as Float32Array)[5], 2 * 2 + 1);
    assert.deepEqual(out.s.dims, []);
    assert.equal((out.s.data as Float32Array)[0], xs.reduce((a, b) => a + b, 0));
    assert.equal(out.big.type, "int64");
    assert.equal((out.big.data as BigInt64Array)[2], 1n);
    // In place: the output is the input's memory (an elementwise update reads before it writes).
    const buf = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    await s.run(
      { x: tensor("float32", [17], buf), k: tensor("float32", [], [3]) },
      { y: tensor("float32", [17], buf) },
    );
    assert.deepEqual([...buf.subarray(0, 3)], [4, 7, 10]);
    // Views: a subarray is fed and written at its offset.
    const big = new Float32Array(40).fill(1);
    await s.run(
      { x: tensor("float32", [10], big.subarray(20, 30)), k: tensor("float32", [], [5]) },
      { y: tensor("float32", [10], big.subarray(20, 30)) },
    );
    assert.deepEqual([big[19], big[20], big[29], big[30]], [1, 6, 6, 1]);
    // Without fetches, every output comes back.
    const all = await s.run({ x: tensor("float32", [2], [1, 2]), k: tensor("float32", [], [1]) });
    assert.deepEqual(Object.keys(all).sort(), ["big", "s", "y"]);
    await assert.rejects(
      () => s.run({ x: tensor("float32", [2, 2], [1, 2, 3, 4]), k: tensor("float32", [], [1]) }),
      /onnxruntime Run: .*(rank|dimension)/i,
    );
  },
});

Deno.test({
  name: "ffi: 20 MLP train steps give the same bits as onnxruntime-node",
  ignore: !ffi,
  fn: async () => {
    const cfg = { sizes: [8, 16, 16, 1], activation: "tanh" as const };
    const spec: TrainStepSpec = {
      dtype: "float32",
      params: mlpShapes(cfg),
      batch: {
        x: { dtype: "float32", shape: ["B", 8] },
        y: { dtype: "float32", shape: ["B", 1] },
      },
      loss: (g, p, b) => {
        const e = g.sub(mlpForward(g, cfg, p, b.x), b.y);
        return { loss: g.reduceMean(g.mul(e, e)) };
      },
      optimizer: adamw,
    };
    const rng = new Rng(3);
    const batch = {
      x: tensor("float32", [32, 8], rng.fillNormal(new Float32Array(256))),
      y: tensor("float32", [32, 1], rng.fillNormal(new Float32Array(32))),
    };
    const run = async (backend: "ffi" | "node") => {
      const t = await Trainer.create(spec, initMlp(cfg, new Rng(1), "float32"), { backend });
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) losses.push((await t.step(batch, { max_grad_norm: 1 })).loss[0]);
      return { losses, params: t.stateDict() };
    };
    const a = await run("ffi"), b = await run("node");
    assert.deepEqual(a.losses, b.losses);
    for (const k of Object.keys(b.params)) {
      assert.deepEqual(a.params[k].data, b.params[k].data, k);
    }
  },
});

Deno.test("ffi: $PROXIMA_ORT_ARENA_CFG entries are parsed, and a bad one is a usage error naming the variable and the keys", () => {
  assert.deepEqual(arenaConfig(""), []);
  assert.deepEqual(arenaConfig("arena_extend_strategy=1,max_dead_bytes_per_chunk=1048576"), [
    ["arena_extend_strategy", 1],
    ["max_dead_bytes_per_chunk", 1048576],
  ]);
  for (const bad of ["arena_strategy=1", "max_mem", "max_mem=-1", "max_mem=1.5", "max_mem=1=2"]) {
    assert.throws(
      () => arenaConfig(bad),
      (e: Error) =>
        e instanceof UsageError && e.message.startsWith("PROXIMA_ORT_ARENA_CFG: ") &&
        (e as UsageError).fix!.includes("arena_extend_strategy"),
      bad,
    );
  }
});

Deno.test("ffi: the shared arena extends by the size requested unless $PROXIMA_ORT_ARENA_CFG says otherwise", () => {
  assert.deepEqual(arenaEntries(""), [["arena_extend_strategy", 1]]);
  assert.deepEqual(arenaEntries("arena_extend_strategy=0"), [["arena_extend_strategy", 0]]);
  assert.deepEqual(arenaEntries("max_mem=1048576"), [
    ["arena_extend_strategy", 1],
    ["max_mem", 1048576],
  ]);
});
