/**
 * The LM PPO problem (lib/ppo/lm_problem.ts) with the critic-free estimators and group sampling:
 * `samplesPerPrompt` repeats each prompt in consecutive rows; GRPO, Dr. GRPO, RLOO and
 * REINFORCE++ hold no value model (no value parameter in the train step or its checkpoint)
 * and learn a toy task; the exact KL (`ppo.kl.estimator = "full"`) equals Σ p·log(p/q)
 * computed by hand on a 16-token vocabulary, in the reward and in the loss; whitened rewards
 * give the returns a hand computation gives; the `eos` reward term is 1 for a response that
 * ended with EOS and 0 for one cut at the token limit.
 */
import assert from "node:assert/strict";
import type { LmProblem, LmTask } from "../../lib/tasks/mod.ts";
import type { PpoConfig } from "../../lib/ppo/config.ts";
import { computeAdvantages, rewardToGo } from "../../lib/ppo/advantages.ts";
import { whiten } from "../../lib/ppo/gae.ts";
import { gatherPpoBatch, type Rollout } from "../../lib/ppo/trainer.ts";
import { ppoHparams } from "../../lib/ppo/losses.ts";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { decoderForward } from "../../lib/nn/decoder.ts";
import { gptShapes } from "../../lib/nn/gpt.ts";
import type { FloatArray } from "../../lib/nn/sample.ts";
import { BYTE_EOS_ID, byteEncode } from "../../lib/nn/tokenizer.ts";
import { decodeByteText, LmPpoSchema } from "../../lib/tasks/byte_lm.ts";
import { rewardLmTask } from "../../lib/tasks/rewards.ts";
import { builtinSentimentRewards } from "../../lib/tasks/sentiment/rewards.ts";
import { Rng } from "../../lib/rng.ts";
import { MODEL, type ToyOptions, toyProblem, toyPrompts, toyTask, trainToy } from "./toy_lm.ts";

/** The toy task (tests/tasks/toy_lm.ts), recording how many prompts each call asked for. */
const calls: number[] = [];
const countingTask: LmTask = {
  ...toyTask,
  prompts: (n, index, rng) => {
    calls.push(n);
    return toyPrompts(n, index, rng);
  },
};

const cfgFor = (over: Record<string, unknown>): PpoConfig =>
  LmPpoSchema.parse({
    gamma: 1,
    lambda: 0.95,
    lr: 3e-3,
    lr_anneal: false,
    ent_coef: 0,
    epochs: 2,
    minibatches: 2,
    whiten_advantages: false,
    ...over,
  });

const problemFor = (cfg: PpoConfig, extra: ToyOptions = {}) =>
  toyProblem(cfg, { task: countingTask, ...extra });

Deno.test("group sampling: samples_per_prompt repeats each prompt in consecutive rows", async () => {
  const p = await problemFor(cfgFor({ advantage: "grpo" }));
  calls.length = 0;
  const roll = await p.rollout(new Rng(3));
  assert.deepEqual(calls, [4], "16 responses = 4 prompts × 4 samples");
  assert.equal(roll.groupSize, 4);
  assert.equal(roll.rows, 16);
  const seqs = (() => {
    // The prompts are the left-padded first columns of each row's sequence: rows of a group
    // share them.
    const extra = p.inputs(roll, [...Array(16).keys()]);
    const S = extra.tokens.dims[1], T = roll.cols, W = S - T;
    const tok = extra.tokens.data as BigInt64Array;
    return Array.from({ length: 16 }, (_, r) => Array.from(tok.slice(r * S, r * S + W)).join(","));
  })();
  for (let g = 0; g < 4; g++) {
    for (let j = 1; j < 4; j++) assert.equal(seqs[g * 4 + j], seqs[g * 4]);
  }
  assert.notEqual(seqs[0], seqs[4]);
  await assert.rejects(
    () => problemFor(cfgFor({ advantage: "grpo" }), { batch: 10 }),
    /batch 10 must be a multiple of samplesPerPrompt 4/,
  );
});

for (const advantage of ["grpo", "dr_grpo", "rloo", "reinforce_pp"] as const) {
  Deno.test(`critic-free ${advantage}: no value model anywhere; it learns the toy task`, async () => {
    const placement = advantage === "grpo" || advantage === "dr_grpo" ? "loss" : "reward";
    const cfg = cfgFor({
      advantage,
      kl: { beta: 0.01, placement, estimator: placement === "loss" ? "k3" : "k1" },
    });
    const p = await problemFor(cfg);
    const names = Object.keys(p.trainer.spec.params);
    assert.ok(names.every((n) => !n.startsWith("v_head") && !n.startsWith("value_model")));
    assert.ok(!("returns" in p.trainer.spec.batch) && !("old_values" in p.trainer.spec.batch));
    assert.deepEqual(Object.keys(p.models!).sort(), ["policy", "reference"]);
    const rolls: Rollout[] = [];
    const { rows, checkpoint } = await trainToy(p, 12, (r) => rolls.push(r));
    assert.ok(checkpoint.length > 0);
    for (const n of checkpoint) {
      assert.ok(!/v_head|value_model/.test(n), `value parameter ${n} in the checkpoint`);
    }
    assert.ok(rolls.every((r) => r.values.every((v) => v === 0)), "no value pass");
    const last = rows.at(-1)!;
    assert.equal(last.value_loss, null);
    assert.equal(last.explained_variance, null);
    const first = rows[0].score_mean as number, end = last.score_mean as number;
    console.log(`${advantage}: score ${first.toFixed(3)} -> ${end.toFixed(3)}`);
    assert.ok(end > first + 0.2, `${advantage} did not learn: ${first} -> ${end}`);
    // The advantages the update used are the estimator's on the shaped rewards.
    const r = rolls[0];
    const adv = computeAdvantages(advantage, {
      ...r,
      rewards: r.rewards,
      gamma: 1,
      lambda: 0.95,
      groupSize: r.groupSize,
    }).advantages;
    if (advantage !== "reinforce_pp" && advantage !== "rloo") {
      // KL in the loss: the rewards are the scores, so each group's advantages sum to ~0.
      for (let g = 0; g < 16; g += 4) {
        let s = 0;
        for (let row = g; row < g + 4; row++) s += adv[row * r.cols];
        assert.ok(Math.abs(s) < 1e-9);
      }
    }
  });
}

Deno.test("critic-free refuses a value model", async () => {
  await assert.rejects(
    () => problemFor(cfgFor({ advantage: "rloo" }), { valueModel: "separate" }),
    /"rloo" is critic-free and holds no value model/,
  );
});

/** log-softmax in float64. */
function logSoftmax(x: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(x));
  const lse = m + Math.log(Array.from(x).reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(x, (v) => v - lse);
}

/**
 * By hand: each model's logits from a plain forward, softmax in float64, and
 * Σ_a p(a)·log(p(a)/q(a)) at every response position of the rollout.
 */
async function handKl(p: LmProblem, roll: Rollout): Promise<Float64Array> {
  const g = new Graph("hand_logits");
  const shapes = Object.fromEntries(
    Object.keys(p.reference).map((n) => [n, g.input(n, "float32", shapeOf(n, p))]),
  );
  const tokens = g.input("tokens", "int64", ["B", "S"]);
  const mask = g.input("attention_mask", "int64", ["B", "S"]);
  g.output(decoderForward(g, MODEL, shapes, tokens, mask).logits, "logits");
  const s = await compile(g);
  const inputs = p.inputs(roll, [...Array(roll.rows).keys()]);
  const logitsOf = async (params: Record<string, unknown>) => {
    const feeds: Record<string, ReturnType<typeof tensor>> = {
      tokens: inputs.tokens,
      attention_mask: inputs.attention_mask,
    };
    for (const n of Object.keys(p.reference)) {
      const v = params[n] as FloatArray | ReturnType<typeof tensor>;
      feeds[n] = ArrayBuffer.isView(v)
        ? tensor("float32", shapeOf(n, p), Float32Array.from(v as Float32Array))
        : v as ReturnType<typeof tensor>;
    }
    return (await s.run(feeds)).logits.data as Float32Array;
  };
  const [lp, lq] = [await logitsOf(p.policyParams()), await logitsOf(p.reference)];
  const S = inputs.tokens.dims[1], T = roll.cols, W = S - T, V = MODEL.vocabSize;
  const out = new Float64Array(roll.rows * T);
  for (let r = 0; r < roll.rows; r++) {
    for (let t = 0; t < T; t++) {
      const at = (r * S + W - 1 + t) * V;
      const pp = logSoftmax(lp.subarray(at, at + V)), qq = logSoftmax(lq.subarray(at, at + V));
      let kl = 0;
      for (let a = 0; a < V; a++) kl += Math.exp(pp[a]) * (pp[a] - qq[a]);
      out[r * T + t] = kl;
    }
  }
  return out;
}

const SHAPES = gptShapes(MODEL);
const shapeOf = (n: string, _p: LmProblem) => SHAPES[n].shape;

Deno.test("exact KL in the reward (estimator full) = Σ p·log(p/q) by hand; kl_ref its sum per response", async () => {
  const cfg = cfgFor({ kl: { beta: 0.05, placement: "reward", estimator: "full" } });
  const p = await problemFor(cfg, { samplesPerPrompt: 1 });
  const rolls: Rollout[] = [];
  const { rows } = await trainToy(p, 3, (r) => rolls.push(r));
  // A fresh rollout from the trained policy, against the hand computation.
  const roll = await p.rollout(new Rng(11));
  const hand = await handKl(p, roll);
  let max = 0, nonzero = 0;
  for (let i = 0; i < hand.length; i++) {
    if (!roll.mask![i]) continue;
    max = Math.max(max, Math.abs(roll.refKl![i] - hand[i]));
    if (hand[i] > 1e-4) nonzero++;
  }
  console.log(`exact KL vs hand: max |Δ| ${max.toExponential(2)} over ${nonzero} positions > 1e-4`);
  assert.ok(nonzero > 10, "the policy has not moved from the reference");
  assert.ok(max < 1e-5, `exact KL differs from the hand computation by ${max}`);
  // The trainer's kl_ref (per response) is the exact KL summed, as the rollout gave it.
  const r0 = rolls[2], sum = Array.from(r0.refKl!).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs((rows[2].kl_ref as number) - sum / r0.rows) < 1e-12);
  // And it is what went into the reward: score − β·KL at each real position.
  assert.ok(r0.refKl!.every((k) => k >= -1e-6), "exact KL is never negative");
});

Deno.test("exact KL in the loss (estimator full) = Σ p·log(p/q) by hand (kl_ref_loss)", async () => {
  const cfg = cfgFor({ kl: { beta: 0.05, placement: "loss", estimator: "full" } });
  const p = await problemFor(cfg, { samplesPerPrompt: 1 });
  assert.ok("ref_logp_all" in p.trainer.spec.batch);
  await trainToy(p, 3);
  const roll = await p.rollout(new Rng(11));
  const hand = await handKl(p, roll);
  let sum = 0, count = 0;
  for (let i = 0; i < hand.length; i++) if (roll.mask![i]) sum += hand[i], count++;
  const all = [...Array(roll.rows).keys()];
  const z = new Float64Array(roll.rows * roll.cols);
  const step = await p.trainer.step({
    ...gatherPpoBatch(roll, all, z, z, false, "float32"),
    ...p.inputs(roll, all),
  }, { ...ppoHparams(cfg), lr: 0 });
  const got = step.metrics.kl_ref_loss[0];
  console.log(`kl_ref_loss ${got} vs hand ${sum / count}`);
  assert.ok(sum / count > 1e-3, "the policy has not moved from the reference");
  assert.ok(Math.abs(got - sum / count) < 1e-5, `${got} vs ${sum / count}`);
});

Deno.test("whiten_rewards = true: returns are GAE's on rewards / std (mean kept)", async () => {
  const cfg = cfgFor({ whiten_rewards: true, lambda: 1, kl: { beta: 0 } });
  const p = await problemFor(cfg, { samplesPerPrompt: 1 });
  const rolls: Rollout[] = [];
  const { rows } = await trainToy(p, 2, (r) => rolls.push(r));
  for (const [u, r] of rolls.entries()) {
    // γ = λ = 1: the return is the reward-to-go of the whitened rewards (V cancels).
    const shaped = whiten(r.rewards, r.mask, false);
    const g = rewardToGo(r.rows, r.cols, shaped, 1, r.mask);
    let s = 0, n = 0, raw = 0;
    for (let i = 0; i < g.length; i++) if (r.mask![i]) s += g[i], n++, raw += r.rewards[i];
    assert.ok(Math.abs((rows[u].return_mean as number) - s / n) < 1e-9);
    assert.ok(Math.abs((rows[u].reward_mean as number) - raw / n) < 1e-12, "raw rewards logged");
    // Whitening rescales: the whitened rewards have std 1 over the real positions.
    const real = Array.from(shaped).filter((_, i) => r.mask![i]);
    const m = real.reduce((a, b) => a + b, 0) / real.length;
    const sd = Math.sqrt(real.reduce((a, b) => a + (b - m) ** 2, 0) / (real.length - 1));
    assert.ok(Math.abs(sd - 1) < 1e-6, `std ${sd}`);
  }
});

Deno.test("the eos reward term is 1 for a response that ended with EOS, 0 for one cut short", async () => {
  const eos = builtinSentimentRewards(32).eos;
  const task = rewardLmTask({
    name: "t",
    prompts: () => [],
    rewards: [{ name: "eos", weight: 0.5, fn: eos }],
    decode: decodeByteText,
    eosTokenId: BYTE_EOS_ID,
  });
  const prompt = byteEncode("The movie was");
  const ended = [...byteEncode(" great."), BYTE_EOS_ID], cut = byteEncode(" great and");
  const scored = await task.score([prompt, prompt], [ended, cut]);
  const { scores, metrics } = Array.isArray(scored) ? { scores: scored, metrics: {} } : scored;
  assert.deepEqual(scores, [0.5, 0]);
  assert.equal(metrics?.["reward/eos"], 0.5, "component mean: (1 + 0) / 2");
});
