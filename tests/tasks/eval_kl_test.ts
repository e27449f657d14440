/**
 * The evaluation KL (lib/tasks/eval_kl.ts): exact over the vocabulary, never negative, 0 for
 * the starting policy, and equal to KL computed by hand from an independent forward pass.
 */
import assert from "node:assert/strict";
import { evalKl, exactKlAt, exactRefKl, sameParams } from "../../lib/tasks/eval_kl.ts";
import { createLmProblem, type LmTask } from "../../lib/tasks/mod.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { trainPpo } from "../../lib/ppo/trainer.ts";
import { decoderForward, decoderShapes } from "../../lib/nn/decoder.ts";
import type { GptConfig } from "../../lib/nn/gpt.ts";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { Rng } from "../../lib/rng.ts";

Deno.test("exactKlAt: KL of hand-picked distributions; equal ones give exactly 0", () => {
  const lg = (xs: number[]) => xs.map(Math.log);
  // KL([½, ½] ‖ [¼, ¾]) = ½ ln 2 + ½ ln(2/3) = ½ ln(4/3).
  const kl = exactKlAt(lg([9, 0.5, 0.5]), lg([9, 0.25, 0.75]), 1, 2);
  assert.ok(Math.abs(kl - 0.5 * Math.log(4 / 3)) < 1e-15, `${kl}`);
  assert.equal(exactKlAt(lg([0.2, 0.3, 0.5]), lg([0.2, 0.3, 0.5]), 0, 3), 0);
  // Rounding that would make a plain Σ p log p/q slightly negative is floored at 0.
  assert.ok(
    exactKlAt([Math.log(0.5), Math.log(0.5)], [Math.log(0.5 + 1e-17), -0.6931471805599453], 0, 2) >=
      0,
  );
});

const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
const PAD = 0, EOS = 1;
// Prompts of one length (no left padding), so a plain forward over the sequence is the same.
const task: LmTask = {
  prompts: (n, _i, rng) => Array.from({ length: n }, () => [2 + rng.int(14), 2 + rng.int(14)]),
  score: (_p, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
};

/** KL(π‖π_ref) per response by hand: float64 log-softmax of both models' logits. */
async function handKl(
  params: Record<string, Float32Array>,
  reference: Record<string, Float32Array>,
  seqs: { rows: number; cols: number; promptWidth: number; sequences: Int32Array },
  mask: ArrayLike<number>,
): Promise<number> {
  const g = new Graph("hand_kl");
  const shapes = decoderShapes(MODEL);
  const inp = Object.fromEntries(
    Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
  );
  g.output(decoderForward(g, MODEL, inp, g.input("tokens", "int64", ["B", "T"])).logits, "logits");
  const s = await compile(g);
  const S = seqs.promptWidth + seqs.cols, V = MODEL.vocabSize;
  const logits = async (p: Record<string, Float32Array>) =>
    (await s.run({
      ...Object.fromEntries(
        Object.entries(shapes).map(([n, { shape }]) => [n, tensor("float32", shape, p[n])]),
      ),
      tokens: tensor("int64", [seqs.rows, S], Array.from(seqs.sequences)),
    })).logits.data as Float32Array;
  const lp = await logits(params), lq = await logits(reference);
  const logSoftmax = (x: Float32Array, off: number) => {
    const m = Math.max(...x.subarray(off, off + V));
    let z = 0;
    for (let a = 0; a < V; a++) z += Math.exp(x[off + a] - m);
    return Array.from(x.subarray(off, off + V), (v) => v - m - Math.log(z));
  };
  let total = 0;
  for (let r = 0; r < seqs.rows; r++) {
    for (let t = 0; t < seqs.cols; t++) {
      if (!mask[r * seqs.cols + t]) continue;
      const off = (r * S + seqs.promptWidth - 1 + t) * V;
      const p = logSoftmax(lp, off), q = logSoftmax(lq, off);
      for (let a = 0; a < V; a++) total += Math.exp(p[a]) * (p[a] - q[a]);
    }
  }
  return total / seqs.rows;
}

Deno.test({
  name: "evalKl: 0 for the starting policy; after PPO ≥ 0 and equal to the exact KL by hand",
  sanitizeResources: false,
  async fn() {
    const problem = await createLmProblem({
      model: MODEL,
      task,
      cfg: parsePpoConfig({ lr: 3e-2, lr_anneal: false, epochs: 2, minibatches: 2 }),
      seed: 1,
      batch: 8,
      maxNewTokens: 6,
      eosTokenId: EOS,
      padTokenId: PAD,
    });
    const prompts = Array.from({ length: 12 }, (_, i) => [2 + (i % 14), 2 + ((i * 5) % 14)]);
    const sample = () =>
      problem.sample(prompts, {
        maxNewTokens: 6,
        eosTokenId: EOS,
        padTokenId: PAD,
        rng: new Rng(7),
      });
    assert.equal(await evalKl(problem, await sample()), 0);
    const out = await Deno.makeTempDir({ prefix: "proxima_eval_kl_" });
    await trainPpo(problem, { updates: 3, seed: 1, rng: problem.rng, outDir: out });
    const gen = await sample();
    const perPos = await exactRefKl(problem, gen);
    assert.ok(perPos.every((x) => x >= 0));
    // Scored a row at a time (the chunking of large vocabularies): the same KL.
    const oneByOne = await exactRefKl(problem, gen, {}, 1);
    for (let i = 0; i < perPos.length; i++) assert.ok(Math.abs(oneByOne[i] - perPos[i]) < 1e-6);
    const kl = await evalKl(problem, gen);
    assert.ok(kl > 1e-4, `the policy moved: KL ${kl}`);
    const live = Object.fromEntries(
      Object.entries(problem.policyParams()).map(([n, p]) => [
        n,
        ArrayBuffer.isView(p) ? p as Float32Array : (p.data as Float32Array),
      ]),
    );
    const hand = await handKl(
      live,
      problem.reference as Record<string, Float32Array>,
      gen,
      gen.mask,
    );
    assert.ok(Math.abs(kl - hand) < 1e-5 * Math.max(1, hand), `evalKl ${kl} vs by hand ${hand}`);
    problem.release();
    await Deno.remove(out, { recursive: true });
  },
});

Deno.test("sameParams: the same arrays under the same names, not equal values", () => {
  const a = new Float32Array([1, 2]), b = new Float32Array([3]);
  assert.equal(sameParams({ a, b }, { b, a }), true);
  assert.equal(sameParams({ a, b }, { a, b: new Float32Array([3]) }), false); // equal, not same
  assert.equal(sameParams({ a }, { a, b }), false);
  assert.equal(sameParams({ a, b }, { a, c: b }), false);
  assert.equal(sameParams({}, {}), true);
});

Deno.test({
  name: "evalKl with LoRA: the starting policy is the reference's arrays (KL 0, scored once); " +
    "after an update it is not, and KL > 0",
  sanitizeResources: false,
  async fn() {
    const problem = await createLmProblem({
      model: MODEL,
      task,
      cfg: parsePpoConfig({ lr: 5e-2, lr_anneal: false, epochs: 2, minibatches: 2 }),
      seed: 1,
      batch: 8,
      maxNewTokens: 6,
      eosTokenId: EOS,
      padTokenId: PAD,
      lora: { r: 2, alpha: 4 },
    });
    const prompts = Array.from({ length: 8 }, (_, i) => [2 + (i % 14), 2 + ((i * 5) % 14)]);
    const sample = () =>
      problem.sample(prompts, {
        maxNewTokens: 6,
        eosTokenId: EOS,
        padTokenId: PAD,
        rng: new Rng(7),
      });
    const start = problem.policyParams();
    assert.ok(sameParams(start, problem.reference), "LoRA at B = 0 shares the base's arrays");
    problem.releasePolicyParams?.(start);
    assert.equal(await evalKl(problem, await sample()), 0);
    const out = await Deno.makeTempDir({ prefix: "proxima_eval_kl_" });
    await trainPpo(problem, { updates: 2, seed: 1, rng: problem.rng, outDir: out });
    const moved = problem.policyParams();
    assert.ok(!sameParams(moved, problem.reference));
    problem.releasePolicyParams?.(moved);
    const kl = await evalKl(problem, await sample());
    assert.ok(kl > 1e-6, `the adapters moved: KL ${kl}`);
    problem.release();
    await Deno.remove(out, { recursive: true });
  },
});
