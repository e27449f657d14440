/** SFT: batch layout, response-only loss (hand checks), and learning the shipped corpus. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { Trainer } from "../../lib/onnx/train.ts";
import { encodePairs, makeCorpus, type TokenPair } from "../../lib/nn/corpus.ts";
import { type GptConfig, gptForward, gptShapes, initGpt } from "../../lib/nn/gpt.ts";
import { evaluateSft, makeSftBatch, type SftBatch, sftSpec, SftTrainer } from "../../lib/nn/sft.ts";
import { logSoftmax } from "../../lib/nn/sample.ts";
import { BYTE_EOS_ID, BYTE_VOCAB_SIZE, byteDecode } from "../../lib/nn/tokenizer.ts";
import { Rng } from "../../lib/rng.ts";

const tiny: GptConfig = { vocabSize: 11, nPositions: 16, nEmbd: 16, nLayer: 2, nHead: 2 };
const PAIRS: TokenPair[] = [
  { prompt: [1, 2, 3], response: [4, 5] },
  { prompt: [6], response: [7, 8, 10] },
  { prompt: [2, 9], response: [3] },
];

Deno.test("makeSftBatch: prompt ++ response rows, targets and weights on response tokens only", () => {
  const ex = [{ prompt: [5, 6], response: [7, 1] }, { prompt: [9], response: [8] }];
  const right = makeSftBatch(ex, { padTokenId: 0 });
  assert.equal(right.width, 4);
  assert.deepEqual(Array.from(right.tokens, Number), [5, 6, 7, 1, 9, 8, 0, 0]);
  assert.deepEqual(Array.from(right.mask, Number), [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(right.targets, Number), [0, 7, 1, 0, 8, 0, 0, 0]);
  assert.deepEqual(Array.from(right.scored), [0, 1, 1, 0, 1, 0, 0, 0]);
  assert.equal(right.count, 3);
  assert.deepEqual(Array.from(right.weights), [0, 1, 1, 0, 1, 0, 0, 0].map((s) => s / 3));

  const left = makeSftBatch(ex, { padTokenId: 0, padding: "left" });
  assert.deepEqual(Array.from(left.tokens, Number), [5, 6, 7, 1, 0, 0, 9, 8]);
  assert.deepEqual(Array.from(left.mask, Number), [1, 1, 1, 1, 0, 0, 1, 1]);
  assert.deepEqual(Array.from(left.targets, Number), [0, 7, 1, 0, 0, 0, 8, 0]);
  assert.deepEqual(Array.from(left.scored), [0, 1, 1, 0, 0, 0, 1, 0]);

  assert.equal(makeSftBatch(ex).tokens[6], BigInt(BYTE_EOS_ID), "default pad is EOS");
  assert.throws(() => makeSftBatch([{ prompt: [], response: [1] }]), /example 0: empty prompt/);
  assert.throws(() => makeSftBatch([{ prompt: [1], response: [] }]), /empty response/);
  assert.throws(() => makeSftBatch([]), /no examples/);
});

/** logits [B, T, V] of a forward pass over a batch (float64). */
async function forwardLogits(cfg: GptConfig, params: Record<string, Float64Array>, b: SftBatch) {
  const g = new Graph("fwd");
  const p = Object.fromEntries(
    Object.entries(gptShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, "float64", shape)]),
  );
  const tokens = g.input("tokens", "int64", ["B", "T"]),
    mask = g.input("mask", "int64", ["B", "T"]);
  g.output(gptForward(g, cfg, p, tokens, mask).logits, "logits");
  const s = await compile(g);
  const feeds = Object.fromEntries(
    Object.entries(gptShapes(cfg)).map((
      [n, { shape }],
    ) => [n, tensor("float64", shape, params[n])]),
  );
  const out = await s.run({
    ...feeds,
    tokens: tensor("int64", [b.rows, b.width], b.tokens),
    mask: tensor("int64", [b.rows, b.width], b.mask),
  });
  return out.logits.data as Float64Array;
}

/** Loss of one step with lr = 0 (nothing moves) and the params after one step with lr > 0. */
async function lossAndUpdate(params: Record<string, Float64Array>, b: SftBatch) {
  const spec = sftSpec(tiny, { dtype: "float64" });
  const feeds = {
    tokens: tensor("int64", [b.rows, b.width], b.tokens),
    mask: tensor("int64", [b.rows, b.width], b.mask),
    targets: tensor("int64", [b.rows, b.width], b.targets),
    weights: tensor("float64", [b.rows, b.width], b.weights),
  };
  const frozen = await Trainer.create(spec, params);
  const loss = (await frozen.step(feeds, { lr: 0 })).loss[0];
  const moving = await Trainer.create(spec, params);
  await moving.step(feeds, { lr: 1e-2 });
  return { loss, updated: moving.params() };
}

Deno.test("SFT loss = hand-computed mean NLL of response tokens; prompt/pad targets and pad tokens contribute nothing", async () => {
  const params = initGpt(tiny, new Rng(5), "float64") as Record<string, Float64Array>;
  for (const a of Object.values(params)) for (let i = 0; i < a.length; i++) a[i] *= 5; // peaked logits
  const V = tiny.vocabSize;
  const base = makeSftBatch(PAIRS, { padTokenId: 0, padding: "right" });

  // Hand computation from the forward logits: Σ over response positions / count.
  const logits = await forwardLogits(tiny, params, base);
  let sum = 0, n = 0;
  for (let i = 0; i < base.rows * base.width; i++) {
    if (!base.scored[i]) continue;
    sum -= logSoftmax(logits.subarray(i * V, (i + 1) * V))[Number(base.targets[i])];
    n++;
  }
  assert.equal(n, 2 + 3 + 1);
  const ref = await lossAndUpdate(params, base);
  assert.ok(Math.abs(ref.loss - sum / n) < 1e-12, `loss ${ref.loss} vs hand ${sum / n}`);
  assert.ok(ref.loss > 0.5, `loss ${ref.loss} should not be trivially small`);

  // Garbage targets at every unscored position (prompt positions, the last real token,
  // padding), and different pad token ids: loss and update are bit-identical.
  const garbled: SftBatch = { ...base, targets: base.targets.slice(), tokens: base.tokens.slice() };
  for (let i = 0; i < base.rows * base.width; i++) {
    if (!base.scored[i]) garbled.targets[i] = BigInt(1 + (i * 7) % (V - 1)); // never the pad 0
    if (!base.mask[i]) garbled.tokens[i] = BigInt(1 + (i * 5) % (V - 1));
  }
  const differ = (a: BigInt64Array, b: BigInt64Array) => a.filter((v, i) => v !== b[i]).length;
  assert.ok(
    differ(garbled.targets, base.targets) === 15 - 6 && differ(garbled.tokens, base.tokens) === 3,
  );
  const got = await lossAndUpdate(params, garbled);
  assert.equal(got.loss, ref.loss, "loss changed with prompt/pad targets or pad tokens");
  for (const [k, v] of Object.entries(ref.updated)) {
    assert.deepEqual(got.updated[k], v, `update of ${k} changed`);
  }

  // Changing a SCORED target does change the loss (the check above is not vacuous).
  const scoredChanged: SftBatch = { ...base, targets: base.targets.slice() };
  const j = base.scored.indexOf(1);
  scoredChanged.targets[j] = (scoredChanged.targets[j] + 1n) % BigInt(V);
  assert.notEqual((await lossAndUpdate(params, scoredChanged)).loss, ref.loss);

  // Left padding: same loss up to rounding (positions follow the mask); evaluateSft agrees.
  const left = await lossAndUpdate(params, makeSftBatch(PAIRS, { padTokenId: 0, padding: "left" }));
  assert.ok(Math.abs(left.loss - ref.loss) < 1e-12, `left ${left.loss} vs right ${ref.loss}`);
  for (const padding of ["left", "right"] as const) {
    for (const batchSize of [1, 2, 64]) {
      const e = await evaluateSft({ cfg: tiny, params }, PAIRS, {
        padTokenId: 0,
        padding,
        batchSize,
      });
      assert.equal(e.tokens, 6);
      assert.ok(Math.abs(e.meanNll - ref.loss) < 1e-12, `${padding}/${batchSize}: ${e.meanNll}`);
    }
  }
});

Deno.test("makeCorpus: deterministic, held-out prompts never in train, short byte sequences", () => {
  const a = makeCorpus({ seed: 1 }), b = makeCorpus({ seed: 1 }), c = makeCorpus({ seed: 2 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.train.slice(0, 20), c.train.slice(0, 20));
  const trainPrompts = new Set(a.train.map((p) => p.prompt));
  assert.equal(trainPrompts.size, a.train.length, "train prompts are distinct");
  assert.ok(a.heldOut.every((p) => !trainPrompts.has(p.prompt)));
  assert.ok(
    a.train.length > 400 && a.heldOut.length > 100,
    `${a.train.length}/${a.heldOut.length}`,
  );
  const ex = encodePairs([...a.train, ...a.heldOut]);
  assert.ok(ex.every((e) => e.prompt.length + e.response.length <= 48));
  assert.ok(ex.every((e) => e.response.at(-1) === BYTE_EOS_ID));
  assert.equal(byteDecode(ex[0].response, { skipSpecialTokens: true }), a.train[0].response);
});

/** The acceptance bar: held-out mean NLL per response token after SFT_STEPS steps. */
const SFT_THRESHOLD = 0.25;
const SFT_STEPS = 300;

Deno.test(`SFT on the shipped corpus: held-out NLL/token < ${SFT_THRESHOLD} after ${SFT_STEPS} steps (d=64, L=2, H=4, byte vocab)`, async () => {
  const cfg: GptConfig = {
    vocabSize: BYTE_VOCAB_SIZE,
    nPositions: 64,
    nEmbd: 64,
    nLayer: 2,
    nHead: 4,
  };
  const corpus = makeCorpus({ seed: 1 });
  const train = encodePairs(corpus.train), heldOut = encodePairs(corpus.heldOut);
  const sft = await SftTrainer.create(cfg, initGpt(cfg, new Rng(1), "float32"), {
    hparams: { lr: 3e-3, weight_decay: 0, max_grad_norm: 1 },
    padding: "left",
  });
  const policy = { cfg, params: sft.paramTensors() };
  const before = await evaluateSft(policy, heldOut);
  const t0 = performance.now();
  const losses = await sft.fit(train, { steps: SFT_STEPS, batchSize: 16, rng: new Rng(2) });
  const ms = performance.now() - t0;
  const after = await evaluateSft({ cfg, params: sft.paramTensors() }, heldOut);
  console.log(
    `  held-out NLL/token ${before.meanNll.toFixed(3)} -> ${after.meanNll.toFixed(4)} ` +
      `(${after.tokens} tokens); train loss ${losses[0].toFixed(3)} -> ${
        losses.at(-1)!.toFixed(4)
      }; ${SFT_STEPS} steps in ${(ms / 1000).toFixed(1)} s`,
  );
  assert.equal(losses.length, SFT_STEPS);
  assert.ok(Math.abs(before.meanNll - Math.log(BYTE_VOCAB_SIZE)) < 0.1, "init ~ uniform");
  assert.ok(after.meanNll < SFT_THRESHOLD, `held-out NLL ${after.meanNll} >= ${SFT_THRESHOLD}`);
});
