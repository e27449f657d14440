/** Sessions: the compile cache, device selection and its errors, and `tensor()` validation. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import {
  availableDevices,
  compile,
  compileWithConstants,
  type Device,
  DeviceError,
  Session,
  tensor,
} from "../../lib/onnx/session.ts";

/** y = softmax(x @ w + b) with a symbolic batch; `tag` varies a constant (a different graph). */
function smallGraph(tag = 0): Graph {
  const g = new Graph("small");
  const x = g.input("x", "float32", ["B", 3]);
  const w = g.constant({ dtype: "float32", shape: [3, 2], data: [0.5, -1, 2, 0.25, -0.75, 1.5] });
  const b = g.constant({ dtype: "float32", shape: [2], data: [0.1, tag] });
  g.output(g.softmax(g.add(g.matmul(x, w), b), -1), "y");
  return g;
}

const X = [1, 2, 3, -1, 0.5, 2];

Deno.test("compile: the same graph compiled twice returns the same Session", async () => {
  const g = smallGraph();
  const a = await compile(g);
  const b = await compile(g);
  assert.ok(a instanceof Session);
  assert.equal(b, a);
  // The cache is keyed by the serialised bytes: an identical, separately built graph hits it too.
  assert.equal(await compile(smallGraph()), a);
  assert.equal(await compile(smallGraph().toModelBytes()), a);
  // Explicit defaults are the same options.
  assert.equal(await compile(g, { device: "cpu", threads: 2, optimization: "all" }), a);
  // A different graph is a different session.
  const other = await compile(smallGraph(1));
  assert.notEqual(other, a);
  assert.notEqual(other.hash, a.hash);
});

Deno.test("compile: different options give different sessions", async () => {
  const g = smallGraph();
  const two = await compile(g, { threads: 2 });
  const one = await compile(g, { threads: 1 });
  assert.notEqual(one, two);
  assert.equal(one.options.threads, 1);
  assert.equal(two.options.threads, 2);
  assert.equal(one.hash, two.hash, "same graph, same hash");
  assert.equal(await compile(g, { threads: 1 }), one);
  const basic = await compile(g, { optimization: "basic" });
  assert.notEqual(basic, two);
  assert.equal(basic.options.optimization, "basic");
  // Both compute the same thing.
  const feeds = { x: tensor("float32", [2, 3], X) };
  const [r1, r2] = [await one.run(feeds), await two.run(feeds)];
  assert.deepEqual([...(r1.y.data as Float32Array)], [...(r2.y.data as Float32Array)]);
});

Deno.test("availableDevices: lists cpu, and only known device names", async () => {
  const devs = await availableDevices();
  assert.ok(devs.includes("cpu"), `availableDevices() = ${JSON.stringify(devs)}`);
  for (const d of devs) assert.ok(d === "cpu" || d === "cuda", `unexpected device ${d}`);
  assert.equal(new Set(devs).size, devs.length);
});

/** `fn` rejects (or throws) a DeviceError naming `device`, the available devices and the fallback. */
async function rejectsDeviceError(fn: () => Promise<unknown>, device: string): Promise<void> {
  const available = (await availableDevices()).join(", ");
  await assert.rejects(async () => await fn(), (e: unknown) => {
    assert.ok(e instanceof DeviceError, `expected DeviceError, got ${e}`);
    assert.equal(e.name, "DeviceError");
    assert.match(e.message, new RegExp(device, "i"));
    assert.ok(e.message.includes(device.toUpperCase()), e.message);
    assert.ok(
      e.message.includes(`available: ${available}`),
      `message does not list the available devices: ${e.message}`,
    );
    assert.match(e.message, /--device cpu/);
    return true;
  });
}

Deno.test("compile on cuda: DeviceError when unavailable, else same numbers as cpu", async () => {
  const g = smallGraph();
  if (!(await availableDevices()).includes("cuda")) {
    await rejectsDeviceError(() => compile(g, { device: "cuda" }), "cuda");
    return;
  }
  // availableDevices() says CUDA is usable: then it must actually compile and run there.
  let cuda: Session;
  try {
    cuda = await compile(g, { device: "cuda" });
  } catch (e) {
    // deno-lint-ignore no-control-regex -- strip ORT's ANSI colour codes
    const msg = String((e as Error).message ?? e).replace(/\x1b\[[0-9;]*m/g, "").slice(0, 400);
    assert.fail(
      `availableDevices() lists "cuda", but compile(graph, { device: "cuda" }) failed with ` +
        `${(e as Error).name}: ${msg}`,
    );
  }
  assert.equal(cuda.options.device, "cuda");
  const cpu = await compile(g, { device: "cpu" });
  assert.notEqual(cuda, cpu);
  const feeds = { x: tensor("float32", [2, 3], X) };
  const yc = (await cuda.run(feeds)).y.data as Float32Array;
  const yh = (await cpu.run(feeds)).y.data as Float32Array;
  assert.equal(yc.length, 4);
  for (let i = 0; i < yh.length; i++) {
    assert.ok(Math.abs(yc[i] - yh[i]) <= 1e-5, `y[${i}]: cuda ${yc[i]} vs cpu ${yh[i]}`);
  }
});

Deno.test("compile: a device that is not available raises DeviceError before ORT is asked", async () => {
  // A device name no build has, so this path runs on every machine.
  await rejectsDeviceError(() => compile(smallGraph(), { device: "tpu" as Device }), "tpu");
});

Deno.test("compile + run on cpu gives the hand-computed softmax", async () => {
  const s = await compile(smallGraph());
  const r = await s.run({ x: tensor("float32", [2, 3], X) });
  // Row 1: x·w + b = [0.5+4-2.25+0.1, -1+0.5+4.5+0] = [2.35, 4]; row 2: [-0.5+1-1.5+0.1, 1+0.125+3] = [-0.9, 4.125].
  const want = [[2.35, 4], [-0.9, 4.125]].flatMap(([a, b]) => {
    const m = Math.max(a, b), ea = Math.exp(a - m), eb = Math.exp(b - m);
    return [ea / (ea + eb), eb / (ea + eb)];
  });
  assert.deepEqual([...r.y.dims], [2, 2]);
  const got = r.y.data as Float32Array;
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(got[i] - want[i]) < 1e-6, `y[${i}] ${got[i]} vs ${want[i]}`);
  }
});

Deno.test("tensor: builds each dtype with the right length", () => {
  const f = tensor("float32", [2, 3], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([f.type, [...f.dims], [...(f.data as Float32Array)]], ["float32", [2, 3], [
    1,
    2,
    3,
    4,
    5,
    6,
  ]]);
  const i = tensor("int64", [3], [1, -2, 3]);
  assert.deepEqual([i.type, [...(i.data as BigInt64Array)]], ["int64", [1n, -2n, 3n]]);
  const z = tensor("float64", [2, 2]);
  assert.deepEqual([z.type, [...(z.data as Float64Array)]], ["float64", [0, 0, 0, 0]]);
  const own = new Float32Array([1, 2]);
  assert.equal(
    tensor("float32", [2], own).data,
    own,
    "a matching typed array is wrapped, not copied",
  );
  const s = tensor("float32", [], [7]);
  assert.deepEqual([[...s.dims], [...(s.data as Float32Array)]], [[], [7]]);
});

Deno.test("tensor: a wrong number of values throws", () => {
  // A typed array of the tensor's own type, too short and too long.
  assert.throws(
    () => tensor("float32", [2, 2], new Float32Array(3)),
    /tensor: 3 values for shape \[2,2\]/,
  );
  assert.throws(
    () => tensor("float32", [2, 2], new Float32Array(5)),
    /tensor: 5 values for shape \[2,2\]/,
  );
  // int64 from numbers, too short and too long.
  assert.throws(() => tensor("int64", [2, 2], [1, 2, 3]), /tensor: 3 values for shape \[2,2\]/);
  assert.throws(() => tensor("int64", [3], [1, 2, 3, 4]), /tensor: 4 values for shape \[3\]/);
  // A plain array that is too long.
  assert.throws(() => tensor("float32", [2, 2], [1, 2, 3, 4, 5]));
  assert.throws(() => tensor("float64", [1], new Float32Array(2)));
});

Deno.test({
  name: "tensor: too few plain values throws",
  fn() {
    assert.throws(() => tensor("float32", [2, 2], [1, 2, 3]), /3 values for shape \[2,2\]/);
    assert.throws(
      () => tensor("float64", [2, 2], new Float32Array(3)),
      /3 values for shape \[2,2\]/,
    );
    assert.throws(() => tensor("bool", [2], [1]), /1 values for shape \[2\]/);
  },
});

Deno.test("compileWithConstants: inputs fixed to tensors run as constants (ffi) or feeds (node), same numbers", async () => {
  // y = relu(x @ w1) @ w2 + b: a [B, 16] x [16, 64] product large enough for ORT to pre-pack.
  const g = new Graph("consts");
  const x = g.input("x", "float32", ["B", 16]);
  const w1 = g.input("w1", "float32", [16, 64]);
  const w2 = g.input("w2", "float32", [64, 8]);
  const b = g.input("b", "float32", [8]);
  g.output(g.add(g.matmul(g.relu(g.matmul(x, w1)), w2), b), "y");
  const vals = (n: number, k: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  const w = {
    w1: tensor("float32", [16, 64], vals(16 * 64, 0.37)),
    w2: tensor("float32", [64, 8], vals(64 * 8, 0.91)),
    b: tensor("float32", [8], vals(8, 1.3)),
  };
  const xt = tensor("float32", [3, 16], vals(48, 0.23));
  const shared = await compile(g);
  const want = (await shared.run({ x: xt, ...w })).y.data as Float32Array;
  for (const backend of ["ffi", "node"] as const) {
    const s = await compileWithConstants(g, w, { backend });
    assert.equal(s.backend, backend);
    // The constants are no longer inputs on ffi; on node they are fed by the session.
    assert.deepEqual(
      [...s.inputNames].sort(),
      backend === "ffi" ? ["x"] : ["b", "w1", "w2", "x"],
    );
    const got = (await s.run({ x: xt })).y.data as Float32Array;
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) < 1e-4 * (1 + Math.abs(want[i])), `${backend} y[${i}]`);
    }
    s.release();
    if (backend === "ffi") await assert.rejects(() => s.run({ x: xt }), /released/);
  }
  // A shared session is not freed by release(): the cache hands it out again, working.
  shared.release();
  assert.ok((await (await compile(g)).run({ x: xt, ...w })).y);
  // Constants must name inputs with static shapes.
  await assert.rejects(() => compileWithConstants(g, { nope: w.b }), /not inputs of the graph/);
  await assert.rejects(() => compileWithConstants(g, { x: xt }), /shape must be static/);
});

Deno.test("shrinkArena: the run option reaches ORT (ffi) and the results are the same bytes", async () => {
  const g = new Graph("shrink");
  const x = g.input("x", "float32", ["N"]);
  g.output(g.reduceSum(g.mul(g.exp(x), x), [0], false), "y");
  const xt = tensor("float32", [4096], Float32Array.from({ length: 4096 }, (_, i) => i / 4096));
  const plain = (await (await compile(g)).run({ x: xt })).y.data as Float32Array;
  const s = await compile(g, { shrinkArena: true });
  assert.equal(s.options.shrinkArena, true);
  for (let run = 0; run < 2; run++) {
    assert.deepEqual((await s.run({ x: xt })).y.data, plain);
  }
});
