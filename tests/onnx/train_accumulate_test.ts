/**
 * Gradient accumulation in the Trainer (lib/onnx/train_accumulate.ts): a batch fed as
 * micro-batches, each loss its share of the whole (Σ over its rows / the whole batch's rows),
 * gives the whole batch's step: the same summed gradient norm (hand-computed), one clip of it,
 * one AdamW step, the same params (float64: 1e-12).
 */
import assert from "node:assert/strict";
import { adamw } from "../../lib/onnx/optim.ts";
import { Trainer, type TrainStepSpec } from "../../lib/onnx/train.ts";
import { tensor } from "../../lib/onnx/session.ts";

/** Least squares y ≈ x·w + b, loss = Σ_rows (x·w + b − y)² / n (n fed: the whole batch's rows). */
const spec: TrainStepSpec = {
  dtype: "float64",
  params: { w: { shape: [3, 1] }, b: { shape: [1] } },
  batch: {
    x: { dtype: "float64", shape: ["B", 3] },
    y: { dtype: "float64", shape: ["B", 1] },
    n: { dtype: "float64", shape: [] },
  },
  loss: (g, { w, b }, { x, y, n }) => {
    const err = g.sub(g.add(g.matmul(x, w), b), y);
    const loss = g.div(g.reduceSum(g.mul(err, err)), n);
    return { loss, metrics: { err_sum: g.div(g.reduceSum(err), n) } };
  },
  optimizer: adamw,
};
const X = [1, 2, 3, -1, 0.5, 2, 0, 1, -2, 3, 1, 1];
const Y = [1, -2, 0.5, 4];
const W0 = [0.1, -0.2, 0.3], B0 = [0.05];
const rows = (lo: number, hi: number) => ({
  x: tensor("float64", [hi - lo, 3], X.slice(lo * 3, hi * 3)),
  y: tensor("float64", [hi - lo, 1], Y.slice(lo, hi)),
  n: tensor("float64", [], [4]),
});
const hp = { lr: 0.1, max_grad_norm: 0.5 };

Deno.test("Trainer accumulate: 2 and 4 micro-batches give the whole batch's step", async () => {
  const init = () => ({ w: Float64Array.from(W0), b: Float64Array.from(B0) });
  const whole = await Trainer.create(spec, init());
  const r1 = await whole.step(rows(0, 4), hp);
  // The gradient by hand: d/dw = 2/n Σ e·x, d/db = 2/n Σ e.
  let sq = 0;
  const gw = [0, 0, 0];
  let gb = 0;
  for (let i = 0; i < 4; i++) {
    const e = X[i * 3] * W0[0] + X[i * 3 + 1] * W0[1] + X[i * 3 + 2] * W0[2] + B0[0] - Y[i];
    for (let j = 0; j < 3; j++) gw[j] += (2 / 4) * e * X[i * 3 + j];
    gb += (2 / 4) * e;
  }
  sq = gw.reduce((a, g) => a + g * g, 0) + gb * gb;
  assert.ok(Math.abs(r1.gradNorm[0] - Math.sqrt(sq)) < 1e-12);
  assert.ok(r1.gradNorm[0] > hp.max_grad_norm, "the clip is engaged");
  for (const pieces of [2, 4]) {
    const whole = await Trainer.create(spec, init());
    await whole.step(rows(0, 4), hp);
    const acc = await Trainer.create(spec, init(), { accumulate: true });
    assert.equal(acc.mode, "split");
    const size = 4 / pieces;
    const batches = Array.from({ length: pieces }, (_, p) => rows(p * size, (p + 1) * size));
    const r = await acc.stepAccumulated(batches, hp);
    assert.equal(acc.steps, 1);
    assert.ok(Math.abs(r.gradNorm[0] - r1.gradNorm[0]) < 1e-12, `${pieces}: grad norm`);
    assert.ok(Math.abs(r.loss[0] - r1.loss[0]) < 1e-12, `${pieces}: loss`);
    assert.ok(Math.abs(r.metrics.err_sum[0] - r1.metrics.err_sum[0]) < 1e-12, `${pieces}: metric`);
    for (const n of ["w", "b"]) {
      const a = whole.params()[n], b = acc.params()[n];
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-12, `${n}[${i}]`);
      assert.ok(Math.abs(b[0] - (n === "w" ? W0[0] : B0[0])) > 1e-3, "the step moved it");
    }
    // A second step: the gradients of the first are not carried over.
    const again = await acc.stepAccumulated(batches, hp);
    const ref = await whole.step(rows(0, 4), hp);
    assert.ok(Math.abs(again.gradNorm[0] - ref.gradNorm[0]) < 1e-12);
  }
  await assert.rejects(() => whole.stepAccumulated([rows(0, 4)], hp), /accumulate: true/);
});
