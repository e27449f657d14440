/**
 * Constants that are views of a mapped weight file (file_map.ts): the model names the file and
 * span as their external data, ORT takes our memory as shared initializers (no copy while it
 * builds the graph), and the numbers are those of the memory, bit for bit.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { externalInitializers } from "../../lib/onnx/graph_proto.ts";
import { mappedSource } from "../../lib/onnx/file_map.ts";
import { openSafetensors, saveSafetensors } from "../../lib/onnx/safetensors.ts";
import { compileWithConstants, tensor } from "../../lib/onnx/session.ts";

const vals = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));

/** y = relu(x @ w1) @ w2 + b: products large enough for ORT to pre-pack. */
function graph(): Graph {
  const g = new Graph("file_consts");
  const x = g.input("x", "float32", ["B", 16]);
  const w1 = g.input("w1", "float32", [16, 64]);
  const w2 = g.input("w2", "float32", [64, 8]);
  const b = g.input("b", "float32", [8]);
  g.output(g.add(g.matmul(g.relu(g.matmul(x, w1)), w2), b), "y");
  return g;
}

Deno.test("externalInitializers: a file-backed input names its file, offset and length", () => {
  const g = graph();
  const external = new Map([
    ["w1", { location: "model.safetensors", offset: 4096, length: 16 * 64 * 4 }],
    ["b", undefined],
  ]);
  // deno-lint-ignore no-explicit-any
  const [w1, b] = externalInitializers(g.inputs, external) as any[];
  assert.equal(w1.name, "w1");
  assert.deepEqual(w1.dims, [16, 64]);
  assert.equal(w1.dataLocation, 1);
  assert.deepEqual(w1.externalData, [
    { key: "location", value: "model.safetensors" },
    { key: "offset", value: "4096" },
    { key: "length", value: "4096" },
  ]);
  assert.deepEqual(b.externalData, [{ key: "location", value: "proxima-session-memory" }]);
});

Deno.test("compileWithConstants: mapped constants give the memory's numbers, bit for bit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "file_consts_" });
  try {
    const w = { w1: vals(16 * 64, 0.37), w2: vals(64 * 8, 0.91), b: vals(8, 1.3) };
    const path = `${dir}/model.safetensors`;
    await saveSafetensors(path, {
      w1: { dtype: "float32", shape: [16, 64], data: w.w1 },
      w2: { dtype: "float32", shape: [64, 8], data: w.w2 },
      b: { dtype: "float32", shape: [8], data: w.b },
    });
    const f = await openSafetensors(path, { map: true });
    assert.ok(f.mapped);
    const mapped = {
      w1: (await f.read("w1")).data as Float32Array,
      w2: (await f.read("w2")).data as Float32Array,
      b: (await f.read("b")).data as Float32Array,
    };
    f.close();
    assert.equal(mappedSource(mapped.w1)?.path, path);
    assert.equal(mappedSource(w.w1), undefined);
    const xt = tensor("float32", [3, 16], vals(48, 0.23));
    const run = async (c: Record<"w1" | "w2" | "b", Float32Array>) => {
      const s = await compileWithConstants(graph(), {
        w1: tensor("float32", [16, 64], c.w1),
        w2: tensor("float32", [64, 8], c.w2),
        b: tensor("float32", [8], c.b),
      }, { backend: "ffi" });
      try {
        return new Uint8Array(((await s.run({ x: xt })).y.data as Float32Array).slice().buffer);
      } finally {
        s.release();
      }
    };
    const want = await run(w);
    assert.deepEqual(await run(mapped), want);
    // The session reads the memory, not the file: a write (copied on write, the file keeps its
    // bytes) changes the result as it does for the plain arrays.
    mapped.w2[5] += 1;
    w.w2[5] += 1;
    const changed = await run(w);
    assert.notDeepEqual(changed, want);
    assert.deepEqual(await run(mapped), changed);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
