/**
 * DPO and IPO (lib/ppo/dpo.ts): the loss and its gradient against a hand computation; the pair
 * batch layout (what the sequence log-prob sums); and DPO on a tiny GPT raises the held-out
 * preference accuracy of the policy's implicit reward above the starting policy's (whose
 * implicit reward is 0 for every response: accuracy ½), deterministically.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import {
  compileSequenceScorer,
  createDpoTrainer,
  dpoLoss,
  DpoSchema,
  implicitRewardAccuracy,
  makePairBatch,
} from "../../lib/ppo/dpo.ts";
import type { PreferencePair } from "../../lib/ppo/reward_model.ts";
import { type GptConfig, initGpt } from "../../lib/nn/gpt.ts";
import type { MetricsRow } from "../../lib/ppo/trainer.ts";
import { Rng } from "../../lib/rng.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

const PC = [-3.0, -5.0, -2.5], PR = [-4.0, -4.5, -2.0]; // policy: chosen, rejected
const RC = [-3.5, -5.2, -2.0], RR = [-3.8, -4.0, -2.1]; // reference
const BETA = 0.5;

async function lossAndGrad(kind: "sigmoid" | "ipo") {
  const g = new Graph(`dpo_${kind}`);
  const v = (n: string) => g.input(n, "float64", [3]);
  const [pc, pr, rc, rr] = [v("pc"), v("pr"), v("rc"), v("rr")];
  const beta = g.input("beta", "float64", []);
  const { loss, metrics } = dpoLoss(g, kind, { chosen: pc, rejected: pr }, {
    chosen: rc,
    rejected: rr,
  }, beta);
  const [dpc, dpr] = gradients(g, loss, [pc, pr]);
  g.output(loss, "loss");
  g.output(dpc, "dpc");
  g.output(dpr, "dpr");
  for (const [k, m] of Object.entries(metrics)) g.output(m, k);
  const s = await compile(g);
  const t = (a: number[]) => tensor("float64", [3], a);
  const out = await s.run({
    pc: t(PC),
    pr: t(PR),
    rc: t(RC),
    rr: t(RR),
    beta: tensor("float64", [], [BETA]),
  });
  const arr = (k: string) => Array.from(out[k].data as Float64Array);
  return { loss: arr("loss")[0], dpc: arr("dpc"), dpr: arr("dpr"), m: out };
}

// h_i = (pc − rc) − (pr − rr): 0.5 − (−0.2) = 0.7, 0.2 − (−0.5) = 0.7, −0.5 − 0.1 = −0.6
const H = [0.7, 0.7, -0.6];
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

Deno.test("dpo: sigmoid loss −log σ(β·h) and its gradient by hand", async () => {
  const { loss, dpc, dpr, m } = await lossAndGrad("sigmoid");
  const want = H.reduce((s, h) => s - Math.log(sigmoid(BETA * h)), 0) / 3;
  near(loss, want);
  // dL/ds(chosen)_i = −β·σ(−β·h_i)/N, dL/ds(rejected)_i = +β·σ(−β·h_i)/N
  H.forEach((h, i) => {
    near(dpc[i], -BETA * sigmoid(-BETA * h) / 3);
    near(dpr[i], BETA * sigmoid(-BETA * h) / 3);
  });
  near(Number(m.accuracy.data[0]), 2 / 3);
  near(Number(m.margin.data[0]), BETA * (0.7 + 0.7 - 0.6) / 3);
  near(Number(m.chosen_reward.data[0]), BETA * (0.5 + 0.2 - 0.5) / 3);
  near(Number(m.rejected_reward.data[0]), BETA * (-0.2 - 0.5 + 0.1) / 3);
});

Deno.test("ipo: loss (h − 1/(2β))² and its gradient by hand", async () => {
  const { loss, dpc, dpr } = await lossAndGrad("ipo");
  const c = 1 / (2 * BETA); // 1
  near(loss, H.reduce((s, h) => s + (h - c) ** 2, 0) / 3);
  H.forEach((h, i) => {
    near(dpc[i], 2 * (h - c) / 3);
    near(dpr[i], -2 * (h - c) / 3);
  });
});

Deno.test("dpo: the pair batch sums log-probs over exactly the response tokens", () => {
  const b = makePairBatch([{ prompt: [5, 6], chosen: [7, 1], rejected: [8] }], 0);
  assert.equal(b.rows, 2);
  assert.equal(b.width, 4);
  assert.deepEqual([...b.tokens].map(Number), [5, 6, 7, 1, 5, 6, 8, 0]);
  assert.deepEqual([...b.mask].map(Number), [1, 1, 1, 1, 1, 1, 1, 0]);
  // position s predicts token s + 1; response tokens are 7, 1 (row 0) and 8 (row 1)
  assert.deepEqual([...b.targets].map(Number), [6, 7, 1, 0, 6, 8, 0, 0]);
  assert.deepEqual([...b.respMask], [0, 1, 1, 0, 0, 1, 0, 0]);
  assert.throws(() => makePairBatch([]), /no pairs/);
});

// A toy preference: responses of 2–4 tokens from 2..15; the chosen one holds more 3s.
const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
function toyPairs(seed: number, n: number): PreferencePair[] {
  const rng = new Rng(seed);
  const out: PreferencePair[] = [];
  const resp = (threes: number) => {
    const r = Array.from({ length: 2 + rng.int(3) }, () => 4 + rng.int(12));
    for (let i = 0; i < threes && i < r.length; i++) r[rng.int(r.length)] = 3;
    return [...r, 1];
  };
  while (out.length < n) {
    const prompt = [2 + rng.int(14)];
    out.push({ prompt, chosen: resp(2), rejected: resp(0) });
  }
  return out;
}

Deno.test("dpo: training raises the implicit reward's held-out preference accuracy above the starting policy's", async () => {
  const init = initGpt(MODEL, new Rng(1), "float32");
  const train = toyPairs(1, 160), heldOut = toyPairs(2, 100);
  const scorer = await compileSequenceScorer(MODEL);
  const ref = await scorer(init, heldOut);
  const before = implicitRewardAccuracy(await scorer(init, heldOut), ref);
  assert.equal(before, 0.5, "π = π_ref: every implicit reward is 0, every pair a tie");
  const runOnce = async () => {
    const dpo = await createDpoTrainer({
      model: MODEL,
      cfg: DpoSchema.parse({ beta: 0.1, lr: 3e-3 }),
      init,
      pairs: train,
      pairsPerUpdate: 16,
    });
    const out = await Deno.makeTempDir({ prefix: "proxima-dpo-" });
    const rows: MetricsRow[] = [];
    try {
      await dpo.train({ updates: 10, seed: 1, outDir: out, onUpdate: (r) => rows.push(r) });
      const metrics = await Deno.readTextFile(`${out}/metrics.jsonl`);
      const after = implicitRewardAccuracy(
        await scorer(dpo.trainer.paramTensors(), heldOut),
        ref,
      );
      return { rows, metrics, after };
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  };
  const a = await runOnce();
  console.log(
    `implicit-reward accuracy: ${before} -> ${a.after.toFixed(3)}; loss ` +
      `${(a.rows[0].loss as number).toFixed(4)} -> ${(a.rows.at(-1)!.loss as number).toFixed(4)}`,
  );
  assert.ok(a.after > 0.8, `held-out accuracy ${a.after}`);
  assert.ok((a.rows.at(-1)!.loss as number) < (a.rows[0].loss as number));
  near(a.rows[0].loss as number, Math.log(2), 0.05); // starts at −log σ(0) on the first batch
  const tokens = train.reduce((s, p) => s + p.chosen.length + p.rejected.length, 0);
  assert.equal(a.rows.at(-1)!.step, tokens, "step = response tokens trained on (160 pairs)");
  // Same config, same seed: the same bytes.
  const b = await runOnce();
  assert.equal(b.metrics, a.metrics);
});

Deno.test("dpo: a run interrupted after a checkpoint and resumed ends byte-identical", async () => {
  const init = initGpt(MODEL, new Rng(3), "float32");
  const pairs = toyPairs(5, 64);
  const make = () =>
    createDpoTrainer({
      model: MODEL,
      cfg: DpoSchema.parse({ beta: 0.1, lr: 3e-3, lr_anneal: true }),
      init,
      pairs,
      pairsPerUpdate: 8,
    });
  const files = async (dir: string) => ({
    metrics: await Deno.readTextFile(`${dir}/metrics.jsonl`),
    final: await Deno.readFile(`${dir}/final.safetensors`),
  });
  const a = await Deno.makeTempDir({ prefix: "proxima-dpo-a-" });
  const b = await Deno.makeTempDir({ prefix: "proxima-dpo-b-" });
  try {
    await (await make()).train({ updates: 6, seed: 2, outDir: a, checkpointEvery: 2 });
    // Killed during update 5 (after the checkpoint at 4), then resumed by a fresh process.
    await assert.rejects(() =>
      make().then((d) =>
        d.train({
          updates: 6,
          seed: 2,
          outDir: b,
          checkpointEvery: 2,
          onUpdate: (_r, u) => {
            if (u === 5) throw new Error("killed");
          },
        })
      ), /killed/);
    let startedAt = -1;
    await (await make()).train({
      updates: 6,
      seed: 2,
      outDir: b,
      checkpointEvery: 2,
      resume: true,
      onStart: (u) => (startedAt = u),
    });
    assert.equal(startedAt, 4);
    const [fa, fb] = [await files(a), await files(b)];
    assert.equal(fb.metrics, fa.metrics);
    assert.deepEqual(fb.final, fa.final);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});
