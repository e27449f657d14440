/** Training through the engine: optimizer math, convergence, determinism, fusion, resume. */
import assert from "node:assert/strict";
import { adamw, sgd } from "../../lib/onnx/optim.ts";
import { repeatSteps, Trainer, type TrainStepSpec } from "../../lib/onnx/train.ts";
import { tensor } from "../../lib/onnx/session.ts";
import { decodeSafetensors, encodeSafetensors } from "../../lib/onnx/safetensors.ts";
import { initMlp, type MlpConfig, mlpForward, mlpShapes } from "../../lib/nn/mlp.ts";
import { Rng } from "../../lib/rng.ts";

/** loss = Σ c ⊙ p² + Σ d ⊙ p  ->  grad = 2 c ⊙ p + d (known in closed form). */
const C = [0.5, 2, 1, 3], D = [1, -1, 0.5, 0.25];
const quadSpec = (optimizer = adamw): TrainStepSpec => ({
  dtype: "float64",
  params: { p: { shape: [4] } },
  batch: { c: { dtype: "float64", shape: [4] }, d: { dtype: "float64", shape: [4] } },
  loss: (g, { p }, { c, d }) => ({
    loss: g.add(g.reduceSum(g.mul(c, g.mul(p, p))), g.reduceSum(g.mul(d, p))),
  }),
  optimizer,
  clipGradNorm: false,
});
const quadBatch = () => ({ c: tensor("float64", [4], C), d: tensor("float64", [4], D) });
const P0 = [0.3, -0.7, 1.1, 0.05];

Deno.test("AdamW matches a hand-computed reference for 3 steps (float64, 1e-7)", async () => {
  const h = { lr: 0.1, beta1: 0.8, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
  const t = await Trainer.create(quadSpec(), { p: Float64Array.from(P0) });
  // Textbook AdamW (Loshchilov & Hutter, Alg. 2), written independently of the graph's op order.
  const p = [...P0], m = [0, 0, 0, 0], v = [0, 0, 0, 0];
  for (let step = 1; step <= 3; step++) {
    await t.step(quadBatch(), h);
    for (let i = 0; i < 4; i++) {
      const grad = 2 * C[i] * p[i] + D[i];
      m[i] = h.beta1 * m[i] + (1 - h.beta1) * grad;
      v[i] = h.beta2 * v[i] + (1 - h.beta2) * grad * grad;
      const mhat = m[i] / (1 - h.beta1 ** step), vhat = v[i] / (1 - h.beta2 ** step);
      p[i] = p[i] - h.lr * (mhat / (Math.sqrt(vhat) + h.eps) + h.weight_decay * p[i]);
    }
    const got = t.params().p;
    for (let i = 0; i < 4; i++) {
      assert.ok(Math.abs(got[i] - p[i]) < 1e-7, `step ${step} p[${i}]: ${got[i]} vs ${p[i]}`);
    }
  }
  const sd = t.stateDict();
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(sd["state/m/p"].data[i] as number - m[i]) < 1e-12);
    assert.ok(Math.abs(sd["state/v/p"].data[i] as number - v[i]) < 1e-12);
  }
});

Deno.test("SGD with momentum and weight decay matches a hand-computed reference", async () => {
  const h = { lr: 0.05, momentum: 0.9, weight_decay: 0.01 };
  const t = await Trainer.create(quadSpec(sgd), { p: Float64Array.from(P0) });
  const p = [...P0], buf = [0, 0, 0, 0];
  for (let step = 1; step <= 3; step++) {
    await t.step(quadBatch(), h);
    for (let i = 0; i < 4; i++) {
      const grad = 2 * C[i] * p[i] + D[i] + h.weight_decay * p[i];
      buf[i] = step === 1 ? grad : h.momentum * buf[i] + grad;
      p[i] -= h.lr * buf[i];
    }
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(t.params().p[i] - p[i]) < 1e-12);
  }
});

Deno.test("global grad-norm clipping scales gradients to max_grad_norm", async () => {
  const spec = { ...quadSpec(sgd), clipGradNorm: true };
  const t = await Trainer.create(spec, { p: Float64Array.from(P0) });
  const grad = P0.map((p, i) => 2 * C[i] * p + D[i]);
  const norm = Math.hypot(...grad);
  const r = await t.step(quadBatch(), { lr: 1, momentum: 0, weight_decay: 0, max_grad_norm: 0.5 });
  assert.ok(Math.abs(r.gradNorm[0] - norm) < 1e-12, "reports the pre-clip norm");
  const coef = 0.5 / (norm + 1e-6);
  P0.forEach((p0, i) => assert.ok(Math.abs(t.params().p[i] - (p0 - grad[i] * coef)) < 1e-12));
  // Below the threshold nothing changes (coef clamps to 1).
  const t2 = await Trainer.create(spec, { p: Float64Array.from(P0) });
  await t2.step(quadBatch(), { lr: 1, momentum: 0, weight_decay: 0, max_grad_norm: 1e9 });
  P0.forEach((p0, i) => assert.ok(Math.abs(t2.params().p[i] - (p0 - grad[i])) < 1e-12));
});

// ---- MLPs ------------------------------------------------------------------
function regressionData(n: number, seed: number) {
  const rng = new Rng(seed), x = new Float32Array(n * 2), y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform() * 4 - 2, b = rng.uniform() * 4 - 2;
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = Math.sin(a) + 0.5 * b * b - 1;
  }
  return { x: tensor("float32", [n, 2], x), y: tensor("float32", [n, 1], y) };
}

const regCfg: MlpConfig = { sizes: [2, 32, 32, 1], activation: "tanh" };
const regSpec = (fuse = 1): TrainStepSpec => ({
  dtype: "float32",
  params: mlpShapes(regCfg),
  batch: { x: { dtype: "float32", shape: ["B", 2] }, y: { dtype: "float32", shape: ["B", 1] } },
  loss: (g, p, b) => {
    const e = g.sub(mlpForward(g, regCfg, p, b.x), b.y);
    return { loss: g.reduceMean(g.mul(e, e)) };
  },
  optimizer: adamw,
  fuse,
});

Deno.test("an MLP regression trains below MSE 0.01 through the engine", async () => {
  const t = await Trainer.create(regSpec(), initMlp(regCfg, new Rng(1), "float32"));
  const data = regressionData(256, 2);
  const first = (await t.step(data, { lr: 1e-2, weight_decay: 0 })).loss[0];
  let last = first;
  for (let i = 0; i < 600; i++) last = (await t.step(data, { lr: 1e-2, weight_decay: 0 })).loss[0];
  assert.ok(first > 0.3, `initial loss ${first} should be well above the target`);
  assert.ok(last < 0.01, `final MSE ${last} >= 0.01`);
});

Deno.test("a 2-class classifier trains to cross-entropy < 0.05 and accuracy 1.0", async () => {
  const cfg: MlpConfig = { sizes: [2, 16, 2], activation: "relu" };
  // Two interleaved half-moons-like rings: label = inside radius 1.
  const n = 200, rng = new Rng(7), xs = new Float32Array(n * 2), labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const r = i % 2 ? 0.3 + 0.5 * rng.uniform() : 1.3 + 0.5 * rng.uniform(),
      th = rng.uniform() * 2 * Math.PI;
    xs[2 * i] = r * Math.cos(th);
    xs[2 * i + 1] = r * Math.sin(th);
    labels[i] = BigInt(i % 2);
  }
  const t = await Trainer.create({
    dtype: "float32",
    params: mlpShapes(cfg),
    batch: { x: { dtype: "float32", shape: ["B", 2] }, label: { dtype: "int64", shape: ["B", 1] } },
    loss: (g, p, b) => {
      const logp = g.logSoftmax(mlpForward(g, cfg, p, b.x), -1);
      const picked =
        g.node("GatherElements", [logp, b.label], { axis: { kind: "int", value: 1 } }, undefined, [
          { dtype: "float32", shape: ["B", 1] },
        ])[0];
      const correct = g.cast(
        g.equal(
          g.cast(
            g.unsqueeze(
              g.node(
                "ArgMax",
                [logp],
                { axis: { kind: "int", value: 1 }, keepdims: { kind: "int", value: 0 } },
                undefined,
                [{ dtype: "int64", shape: ["B"] }],
              )[0],
              [1],
            ),
            "int64",
          ),
          b.label,
        ),
        "float32",
      );
      return { loss: g.neg(g.reduceMean(picked)), metrics: { accuracy: g.reduceMean(correct) } };
    },
    optimizer: adamw,
  }, initMlp(cfg, new Rng(3), "float32"));
  const batch = { x: tensor("float32", [n, 2], xs), label: tensor("int64", [n, 1], labels) };
  let r = await t.step(batch, { lr: 3e-2, weight_decay: 0 });
  for (let i = 0; i < 400; i++) r = await t.step(batch, { lr: 3e-2, weight_decay: 0 });
  assert.ok(r.loss[0] < 0.05, `cross-entropy ${r.loss[0]}`);
  assert.equal(r.metrics.accuracy[0], 1);
});

/** Wide enough (256) that ORT's GEMMs and reductions split across threads. */
const wideCfg: MlpConfig = { sizes: [2, 256, 256, 1], activation: "tanh" };
async function train100(threads: number, fuse = 1): Promise<Uint8Array> {
  const spec = { ...regSpec(fuse), params: mlpShapes(wideCfg) };
  spec.loss = (g, p, b) => {
    const e = g.sub(mlpForward(g, wideCfg, p, b.x), b.y);
    return { loss: g.reduceMean(g.mul(e, e)) };
  };
  const init = initMlp(wideCfg, new Rng(11), "float32");
  const t = await Trainer.create(spec, init, { threads });
  const data = regressionData(128, 5);
  if (fuse === 1) {
    for (let i = 0; i < 100; i++) {
      await t.step(data, { lr: 3e-3, max_grad_norm: 1 });
    }
  } else {
    const batch = { x: repeatSteps(data.x, fuse), y: repeatSteps(data.y, fuse) };
    for (let i = 0; i < 100 / fuse; i++) await t.step(batch, { lr: 3e-3, max_grad_norm: 1 });
  }
  assert.equal(t.steps, 100);
  assert.notDeepEqual(t.params()["mlp.0.weight"], init["mlp.0.weight"], "training changed nothing");
  return encodeSafetensors(t.stateDict());
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

Deno.test("100 training steps are byte-identical across runs and across 1 vs 2 threads", async () => {
  const a = await train100(2), b = await train100(2), c = await train100(1);
  assert.ok(sameBytes(a, b), "two runs with 2 threads differ");
  assert.ok(sameBytes(a, c), "1 thread and 2 threads differ");
});

Deno.test("K steps fused in an ONNX Loop equal K separate steps, byte for byte", async () => {
  const single = await train100(2, 1), fused = await train100(2, 10);
  assert.ok(sameBytes(single, fused), "fused (Loop) training differs from step-by-step");
});

Deno.test("checkpoint -> safetensors -> restore resumes byte-identically", async () => {
  const data = regressionData(64, 9);
  const make = () => Trainer.create(regSpec(), initMlp(regCfg, new Rng(4), "float32"));
  const full = await make();
  for (let i = 0; i < 20; i++) await full.step(data, { lr: 1e-2 });
  const first = await make();
  for (let i = 0; i < 8; i++) await first.step(data, { lr: 1e-2 });
  const bytes = encodeSafetensors(first.stateDict(), { step: String(first.steps) });
  const { tensors, metadata } = decodeSafetensors(bytes);
  const resumed = await make();
  resumed.loadStateDict(tensors as Record<string, { data: Float32Array }>, Number(metadata.step));
  for (let i = 0; i < 12; i++) await resumed.step(data, { lr: 1e-2 });
  assert.ok(sameBytes(encodeSafetensors(full.stateDict()), encodeSafetensors(resumed.stateDict())));
});

Deno.test("saveCheckpoint/loadCheckpoint round-trip is byte-exact and resumes identically", async () => {
  const dir = await Deno.makeTempDir();
  const data = regressionData(64, 3);
  const make = () => Trainer.create(regSpec(), initMlp(regCfg, new Rng(8), "float32"));
  const a = await make();
  for (let i = 0; i < 5; i++) await a.step(data, { lr: 1e-2 });
  await a.saveCheckpoint(`${dir}/ck.safetensors`, { rng: "[1,2,3,4]" });
  const b = await make();
  const meta = await b.loadCheckpoint(`${dir}/ck.safetensors`);
  assert.equal(meta.rng, "[1,2,3,4]");
  assert.equal(b.steps, 5);
  await b.saveCheckpoint(`${dir}/ck2.safetensors`, { rng: "[1,2,3,4]" });
  assert.ok(
    sameBytes(
      await Deno.readFile(`${dir}/ck.safetensors`),
      await Deno.readFile(`${dir}/ck2.safetensors`),
    ),
  );
  await a.step(data, { lr: 1e-2 });
  await b.step(data, { lr: 1e-2 });
  assert.ok(sameBytes(encodeSafetensors(a.stateDict()), encodeSafetensors(b.stateDict())));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("one compiled session serves trainers with different hyperparameters", async () => {
  const a = await Trainer.create(regSpec(), initMlp(regCfg, new Rng(1), "float32"));
  const b = await Trainer.create(regSpec(), initMlp(regCfg, new Rng(1), "float32"));
  assert.equal(a.session, b.session, "identical graphs should share one ORT session");
  const data = regressionData(32, 1);
  await a.step(data, { lr: 1e-3 });
  await b.step(data, { lr: 1e-1 });
  assert.notDeepEqual(
    a.params()["mlp.0.weight"],
    b.params()["mlp.0.weight"],
    "lr is a live graph input",
  );
  assert.equal(a.session.info().threads, 2);
});

Deno.test("an unknown hyperparameter name is rejected with the known names", async () => {
  const t = await Trainer.create(quadSpec(), { p: Float64Array.from(P0) });
  await assert.rejects(
    () => t.step(quadBatch(), { learning_rate: 0.1 }),
    /unknown hyperparameter "learning_rate" \(known: lr, beta1, beta2, eps, weight_decay\)/,
  );
  assert.equal(t.steps, 0, "a rejected call must not advance the step counter");
});

// ---- split mode: the optimizer in its own session, in place ---------------------------------

/** The bytes of a trainer's state after `steps` steps of `spec` in the given optimizer mode. */
async function trainIn(
  mode: "graph" | "split",
  spec: TrainStepSpec,
  init: Record<string, Float32Array | Float64Array>,
  batch: Record<string, ReturnType<typeof tensor>>,
  hp: Record<string, number>,
  steps: number,
  chunk?: number,
): Promise<{ bytes: Uint8Array; losses: number[]; metrics: number[]; trainer: Trainer }> {
  const t = await Trainer.create(spec, init, { optimizerMode: mode, optimizerChunk: chunk });
  assert.equal(t.mode, mode);
  const losses: number[] = [], metrics: number[] = [];
  for (let i = 0; i < steps; i++) {
    const r = await t.step(batch, hp);
    losses.push(r.loss[0], r.gradNorm[0]);
    metrics.push(...Object.values(r.metrics).flat());
  }
  return { bytes: encodeSafetensors(t.stateDict()), losses, metrics, trainer: t };
}

Deno.test("split optimizer mode equals graph mode byte for byte (AdamW/SGD, clip on/off, f32/f64, chunks)", async () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const optimizer of [adamw, sgd]) {
      for (const clip of [true, false]) {
        const spec: TrainStepSpec = {
          ...regSpec(),
          dtype,
          params: mlpShapes(wideCfg),
          batch: {
            x: { dtype, shape: ["B", 2] },
            y: { dtype, shape: ["B", 1] },
          },
          hparams: { scale: 1 },
          loss: (g, p, b, h) => {
            const e = g.sub(mlpForward(g, wideCfg, p, b.x), b.y);
            const mse = g.reduceMean(g.mul(e, e));
            return { loss: g.mul(mse, h.scale), metrics: { mse } };
          },
          optimizer,
          clipGradNorm: clip,
        };
        const init = initMlp(wideCfg, new Rng(11), dtype);
        const d = regressionData(64, 5);
        const batch = dtype === "float32" ? d : {
          x: tensor("float64", d.x.dims as number[], Float64Array.from(d.x.data as Float32Array)),
          y: tensor("float64", d.y.dims as number[], Float64Array.from(d.y.data as Float32Array)),
        };
        const hp = { lr: 3e-3, scale: 1.5, ...(clip ? { max_grad_norm: 0.5 } : {}) };
        const a = await trainIn("graph", spec, init, batch, hp, 12);
        // A chunk that is not a multiple of any tensor size, so chunks straddle tensors.
        const b = await trainIn("split", spec, init, batch, hp, 12, 1000);
        const what = `${dtype} ${optimizer.name} clip=${clip}`;
        assert.deepEqual(b.losses, a.losses, what);
        assert.deepEqual(b.metrics, a.metrics, what);
        assert.ok(sameBytes(a.bytes, b.bytes), `${what}: params/state differ`);
      }
    }
  }
});

Deno.test("split mode: frozen params, live views updated in place, checkpoints resume exactly", async () => {
  const cfg: MlpConfig = { sizes: [2, 16, 1], activation: "tanh" };
  const shapes = mlpShapes(cfg);
  const [frozenName, ...trainable] = Object.keys(shapes);
  const spec: TrainStepSpec = {
    ...regSpec(),
    params: Object.fromEntries(trainable.map((n) => [n, shapes[n]])),
    frozen: { [frozenName]: shapes[frozenName] },
    loss: (g, p, b) => {
      const e = g.sub(mlpForward(g, cfg, p, b.x), b.y);
      return { loss: g.reduceMean(g.mul(e, e)) };
    },
  };
  const init = initMlp(cfg, new Rng(2), "float32");
  const data = regressionData(32, 4);
  const a = await trainIn("graph", spec, init, data, { lr: 1e-2 }, 6);
  const b = await trainIn("split", spec, init, data, { lr: 1e-2 }, 6);
  assert.ok(sameBytes(a.bytes, b.bytes));
  const t = b.trainer;
  const view = t.paramTensors()[trainable[0]];
  const before = Float32Array.from(view.data as Float32Array);
  await t.step(data, { lr: 1e-2 });
  assert.notDeepEqual(view.data, before, "the view is the live buffer");
  assert.equal(t.params()[trainable[0]], t.paramTensors()[trainable[0]].data);
  // Resume: state dict out of split, into graph and into split; all continue alike.
  const sd = t.stateDict();
  const g2 = await Trainer.create(spec, init, { optimizerMode: "graph" });
  const s2 = await Trainer.create(spec, init, { optimizerMode: "split" });
  g2.loadStateDict(sd as Record<string, { data: Float32Array }>, t.steps);
  s2.loadStateDict(sd as Record<string, { data: Float32Array }>, t.steps);
  for (const x of [t, g2, s2]) await x.step(data, { lr: 1e-2 });
  const ref = encodeSafetensors(t.stateDict());
  assert.ok(sameBytes(ref, encodeSafetensors(g2.stateDict())));
  assert.ok(sameBytes(ref, encodeSafetensors(s2.stateDict())));
  await assert.rejects(
    () => Trainer.create({ ...spec, fuse: 2 }, init, { optimizerMode: "split" }),
    /fuse 1/,
  );
  // adopt: large arrays become the live params (no copy), small ones are copied.
  const own = initMlp(cfg, new Rng(2), "float32");
  const [w1, , b1] = trainable; // mlp.0.bias [16] and mlp.1.bias [1]
  const ad = await Trainer.create(spec, own, {
    optimizerMode: "split",
    optimizerChunk: 32,
    adopt: true,
  });
  assert.equal(ad.params()[w1], own[w1], "a tensor of >= chunk/4 values is adopted");
  assert.notEqual(ad.params()[b1], own[b1], "a small one is copied into the pack");
  const c = await trainIn("split", spec, init, data, { lr: 1e-2 }, 6);
  for (let i = 0; i < 6; i++) await ad.step(data, { lr: 1e-2 });
  assert.ok(sameBytes(c.bytes, encodeSafetensors(ad.stateDict())));
});
