/** Flat parameters: same training math as per-tensor parameters, layout round trip. */
import assert from "node:assert/strict";
import { adamw } from "../../lib/onnx/optim.ts";
import { tensor } from "../../lib/onnx/session.ts";
import { Trainer, type TrainStepSpec } from "../../lib/onnx/train.ts";
import { flatLayout, flattenSpec, packFlat, unpackFlat } from "../../lib/onnx/flat.ts";
import { type GptConfig, gptForward, gptShapes, initGpt, tokenLogprobs } from "../../lib/nn/gpt.ts";
import { Rng } from "../../lib/rng.ts";

Deno.test("flatLayout/packFlat/unpackFlat: key order, offsets, zero-copy views, errors", () => {
  const l = flatLayout({ a: { shape: [2, 3] }, b: { shape: [4] }, c: { shape: [] } });
  assert.deepEqual(l.offsets, [0, 6, 10]);
  assert.deepEqual(l.sizes, [6, 4, 1]);
  assert.equal(l.size, 11);
  const flat = packFlat(l, { a: [1, 2, 3, 4, 5, 6], b: [7, 8, 9, 10], c: [11] }, "float32");
  assert.deepEqual(Array.from(flat), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const v = unpackFlat(l, flat);
  v.b[0] = -1;
  assert.equal(flat[6], -1, "views share the buffer");
  assert.deepEqual(Array.from(v.c), [11]);
  assert.throws(() => packFlat(l, { a: [1], b: [], c: [] }, "float32"), /"a" has 1 values/);
  assert.throws(
    () => packFlat(l, { a: [1, 2, 3, 4, 5, 6] }, "float64"),
    /no value for parameter "b"/,
  );
  assert.throws(() => unpackFlat(l, new Float32Array(3)), /has 3 values, layout needs 11/);
});

Deno.test("a flattened GPT step (AdamW + clip, a frozen tensor) equals the per-tensor step in float64", async () => {
  const cfg: GptConfig = { vocabSize: 13, nPositions: 8, nEmbd: 8, nLayer: 1, nHead: 2 };
  const all = gptShapes(cfg);
  const frozenName = "transformer.wpe.weight";
  const { [frozenName]: wpe, ...trainable } = all;
  const spec: TrainStepSpec = {
    dtype: "float64",
    params: trainable,
    frozen: { [frozenName]: wpe },
    batch: {
      tokens: { dtype: "int64", shape: ["B", "T"] },
      targets: { dtype: "int64", shape: ["B", "T"] },
    },
    loss: (g, p, b) => {
      const { logits } = gptForward(g, cfg, p, b.tokens);
      return { loss: g.neg(g.reduceMean(tokenLogprobs(g, logits, b.targets))) };
    },
    optimizer: adamw,
  };
  const init = initGpt(cfg, new Rng(4), "float64");
  const flat = flattenSpec(spec);
  assert.deepEqual(Object.keys(flat.spec.params), ["flat"]);
  assert.equal(flat.layout.names.length, Object.keys(trainable).length);
  const a = await Trainer.create(spec, init);
  const b = await Trainer.create(flat.spec, {
    flat: packFlat(flat.layout, init, "float64"),
    [frozenName]: init[frozenName],
  });
  const rng = new Rng(5);
  const draw = () => Array.from({ length: 3 * 6 }, () => rng.int(cfg.vocabSize));
  const hp = { lr: 1e-2, weight_decay: 0.1, max_grad_norm: 0.5 };
  for (let i = 0; i < 3; i++) {
    const batch = {
      tokens: tensor("int64", [3, 6], draw()),
      targets: tensor("int64", [3, 6], draw()),
    };
    const ra = await a.step(batch, hp), rb = await b.step(batch, hp);
    assert.ok(Math.abs(ra.loss[0] - rb.loss[0]) < 1e-12, `loss ${ra.loss[0]} vs ${rb.loss[0]}`);
    assert.ok(Math.abs(ra.gradNorm[0] - rb.gradNorm[0]) < 1e-12);
    assert.ok(ra.gradNorm[0] > 0.5, "clipping is active");
  }
  const named = unpackFlat(flat.layout, b.params().flat as Float64Array);
  for (const [n, v] of Object.entries(a.params())) {
    const err = Math.max(...Array.from(v, (x, i) => Math.abs(x - named[n][i])));
    assert.ok(err < 1e-12, `${n}: max |diff| ${err}`);
  }
  assert.throws(() => flattenSpec(spec, frozenName), /also a frozen parameter/);
});
