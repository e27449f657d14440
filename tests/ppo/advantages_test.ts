/**
 * The advantage estimators (lib/ppo/advantages.ts) against hand computations on one fixed
 * rollout of two groups of three responses; the config checks that refuse a group of one
 * (and the other bad combinations) before anything runs; the critic-free loss reductions
 * (GRPO's per-response mean, Dr. GRPO's token budget) by hand.
 */
import assert from "node:assert/strict";
import {
  computeAdvantages,
  groupAdvantages,
  GRPO_STD_EPS,
  rewardToGo,
  sequenceRewards,
} from "../../lib/ppo/advantages.ts";
import { gae } from "../../lib/ppo/gae.ts";
import { advantageProblems, parsePpoConfig } from "../../lib/ppo/config.ts";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { type LossAggregation, ppoLoss } from "../../lib/ppo/losses.ts";
import { lossAggregation } from "../../lib/ppo/train_step.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

// Six responses (rows) × 3 positions: two groups of 3 consecutive responses to one prompt.
// Row lengths 3, 2, 1 | 3, 3, 2; padding carries absurd rewards that must be ignored.
const X = 99;
const ROWS = 6, COLS = 3;
// deno-fmt-ignore
const REWARDS = [
  0.5, -0.5, 1,    // sequence reward 1
  0.25, -0.25, X,  // 0
  2, X, X,         // 2
  1, 1, 1,         // 3
  0, 0, 3,         // 3
  -1, 1, X,        // 0
];
// deno-fmt-ignore
const MASK = [
  1, 1, 1,
  1, 1, 0,
  1, 0, 0,
  1, 1, 1,
  1, 1, 1,
  1, 1, 0,
];
const input = {
  rows: ROWS,
  cols: COLS,
  rewards: REWARDS,
  values: new Array(18).fill(0.3),
  dones: MASK.map((_, i) => (i % 3 === 2 || !MASK[i + 1] ? 1 : 0)),
  mask: MASK,
  lastValues: new Array(ROWS).fill(0),
  gamma: 1,
  lambda: 0.95,
  groupSize: 3,
};

/** A per-row advantage spread over the row's real positions (0 at padding). */
const perToken = (perRow: number[]) => MASK.map((m, i) => (m ? perRow[Math.floor(i / COLS)] : 0));

Deno.test("advantages: sequence rewards and reward-to-go skip padding", () => {
  assert.deepEqual([...sequenceRewards(ROWS, COLS, REWARDS, MASK)], [1, 0, 2, 3, 3, 0]);
  // deno-fmt-ignore
  assert.deepEqual([...rewardToGo(ROWS, COLS, REWARDS, 1, MASK)], [
    1, 0.5, 1,   0, -0.25, 0,   2, 0, 0,   3, 2, 1,   3, 3, 3,   0, 1, 0,
  ]);
  // γ = 0.5 on row 0: G_2 = 1, G_1 = −0.5 + 0.5, G_0 = 0.5 + 0.5·0
  assert.deepEqual([...rewardToGo(1, 3, [0.5, -0.5, 1], 0.5)], [0.5, 0, 1]);
});

Deno.test("advantages: GRPO = (r − group mean) / (group std + 1e-4), std with n − 1", () => {
  // Group A: r = 1, 0, 2: mean 1, std √((0 + 1 + 1)/2) = 1. Group B: r = 3, 3, 0: mean 2,
  // std √((1 + 1 + 4)/2) = √3.
  const a = 1 + GRPO_STD_EPS, b = Math.sqrt(3) + GRPO_STD_EPS;
  const want = [0, -1 / a, 1 / a, 1 / b, 1 / b, -2 / b];
  const { advantages, returns } = computeAdvantages("grpo", input);
  perToken(want).forEach((w, i) => near(advantages[i], w));
  // returns: the reward-to-go (diagnostics only)
  assert.deepEqual([...returns], [...rewardToGo(ROWS, COLS, REWARDS, 1, MASK)]);
});

Deno.test("advantages: Dr. GRPO = r − group mean (no std)", () => {
  const { advantages } = computeAdvantages("dr_grpo", input);
  assert.deepEqual([...advantages], perToken([0, -1, 1, 1, 1, -2]));
});

Deno.test("advantages: RLOO = r − mean of the other responses to the prompt", () => {
  // A: 1 − (0 + 2)/2 = 0, 0 − (1 + 2)/2 = −1.5, 2 − (1 + 0)/2 = 1.5.
  // B: 3 − (3 + 0)/2 = 1.5 (twice), 0 − (3 + 3)/2 = −3.
  const { advantages } = computeAdvantages("rloo", input);
  assert.deepEqual([...advantages], perToken([0, -1.5, 1.5, 1.5, 1.5, -3]));
  // RLOO is k/(k−1) times Dr. GRPO's advantage.
  const dr = computeAdvantages("dr_grpo", input).advantages;
  advantages.forEach((v, i) => near(v, dr[i] * 3 / 2));
});

Deno.test("advantages: REINFORCE++ = reward-to-go normalised over the batch's real tokens", () => {
  // The 14 real reward-to-go values, their mean and (n − 1) std, by hand.
  const g = [1, 0.5, 1, 0, -0.25, 2, 3, 2, 1, 3, 3, 3, 0, 1];
  const mean = 20.25 / 14;
  const std = Math.sqrt(g.reduce((s, x) => s + (x - mean) ** 2, 0) / 13);
  const { advantages } = computeAdvantages("reinforce_pp", input);
  let j = 0;
  for (let i = 0; i < 18; i++) {
    if (MASK[i]) near(advantages[i], (g[j++] - mean) / (std + 1e-8));
    else assert.equal(advantages[i], 0);
  }
  // Normalised: mean 0 over the real tokens.
  near(advantages.reduce((s, x) => s + x, 0), 0, 1e-12);
});

Deno.test("advantages: gae is exactly lib/ppo/gae.ts", () => {
  const want = gae(input);
  const got = computeAdvantages("gae", input);
  assert.deepEqual(got, want);
});

Deno.test("advantages: a group of one is refused, with the fix", () => {
  for (const est of ["grpo", "dr_grpo", "rloo"] as const) {
    assert.throws(
      () => groupAdvantages(est, [1, 2, 3], 1),
      /groups need at least 2 responses per prompt \(samples_per_prompt = 1\); fix: set samples_per_prompt to 2/,
    );
    assert.throws(() => computeAdvantages(est, { ...input, groupSize: 1 }), /at least 2/);
    assert.throws(
      () => groupAdvantages(est, [1, 2, 3], 2),
      /3 responses do not split into groups of 2/,
    );
  }
  // REINFORCE++ has no groups: one response per prompt is fine.
  computeAdvantages("reinforce_pp", { ...input, groupSize: 1 });
});

Deno.test("advantages: config checks name the key and the fix before anything runs", () => {
  const ppo = (advantage: string, whiten = false) =>
    ({ advantage, whiten_advantages: whiten }) as Parameters<typeof advantageProblems>[0];
  for (const est of ["grpo", "dr_grpo", "rloo"]) {
    const [p, ...rest] = advantageProblems(ppo(est), { samplesPerPrompt: 1 });
    assert.equal(rest.length, 0);
    assert.equal(p.key, "samples_per_prompt");
    assert.match(p.cause, new RegExp(`"${est}" needs groups of at least 2 responses per prompt`));
    assert.match(p.fix, /set samples_per_prompt to 2 or more/);
  }
  assert.deepEqual(advantageProblems(ppo("reinforce_pp"), { samplesPerPrompt: 1 }), []);
  assert.deepEqual(advantageProblems(ppo("gae", true), { samplesPerPrompt: 1 }), []);
  // batch not a multiple of the group
  const [b] = advantageProblems(ppo("grpo"), {
    samplesPerPrompt: 4,
    batch: { key: "batch", value: 30 },
  });
  assert.equal(b.key, "batch");
  assert.match(b.fix, /multiple of 4 \(e\.g\. 28\)/);
  // whitening on top of a critic-free estimator
  const [w] = advantageProblems(ppo("grpo", true), { samplesPerPrompt: 4 });
  assert.equal(w.key, "ppo.whiten_advantages");
  assert.match(w.fix, /false/);
  // a value model asked of a critic-free estimator
  const [v] = advantageProblems(ppo("rloo"), {
    samplesPerPrompt: 4,
    valueModel: { key: "value_model", value: "separate" },
  });
  assert.equal(v.key, "value_model");
  assert.match(v.cause, /critic-free and holds no value model/);
  // the kl-penalty surrogate's exact KL(π_old‖π) is refused for LMs at planning, too
  const penalty = { ...parsePpoConfig({ loss: "kl-penalty" }), advantage: "gae" as const };
  const [f] = advantageProblems(penalty, { samplesPerPrompt: 1 });
  assert.equal(f.key, "ppo.penalty.estimator");
  assert.match(f.fix, /k3/);
  // the schema: PpoSchema itself has no estimator; parsePpoConfig leaves it out
  assert.equal((parsePpoConfig({}) as { advantage?: string }).advantage, undefined);
});

/** The PPO loss on a [2, 3] minibatch with the given aggregation, critic-free. */
async function criticFreeLoss(aggregate?: LossAggregation) {
  const g = new Graph("ppo_loss_cf");
  const names = ["logp", "old_logp", "advantages", "mask", "entropy", "ref_logp"];
  const v = Object.fromEntries(names.map((n) => [n, g.input(`in_${n}`, "float64", [2, 3])]));
  const hpNames = ["clip", "clip_value", "vf_coef", "ent_coef", "beta", "penalty_beta"];
  const h = Object.fromEntries(hpNames.map((n) => [n, g.input(`hp_${n}`, "float64", [])]));
  const { loss, metrics } = ppoLoss(
    g,
    {
      loss: "no-clip",
      valueClip: true,
      kl: { estimator: "k3", placement: "loss" },
      hasReference: true,
      ...(aggregate ? { aggregate } : {}),
    },
    { logp: v.logp, entropy: v.entropy },
    { oldLogp: v.old_logp, advantages: v.advantages, mask: v.mask, refLogp: v.ref_logp },
    h as never,
  );
  g.output(loss, "loss");
  for (const [k, m] of Object.entries(metrics)) g.output(m, k);
  const s = await compile(g);
  const data: Record<string, number[]> = {
    logp: [-1, -1, -1, -1, -1, -1],
    old_logp: [-1, -1, -1, -1, -1, -1], // ratio 1: the surrogate is −A per token
    advantages: [1, 2, 3, 4, 100, 100],
    mask: [1, 1, 1, 1, 0, 0], // row 0: 3 tokens, row 1: 1 token
    entropy: [0, 0, 0, 0, 0, 0],
    ref_logp: [-1, -1, -1, -1, -1, -1], // KL 0
  };
  const hp = { clip: 0.2, clip_value: 0.2, vf_coef: 0.5, ent_coef: 0, beta: 0.1, penalty_beta: 0 };
  const out = await s.run({
    ...Object.fromEntries(
      Object.entries(data).map(([k, a]) => [`in_${k}`, tensor("float64", [2, 3], a)]),
    ),
    ...Object.fromEntries(
      Object.entries(hp).map(([k, x]) => [`hp_${k}`, tensor("float64", [], [x])]),
    ),
  });
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Number(t.data[0])]));
}

Deno.test("losses: critic-free reductions by hand (token mean, per-response mean, token budget)", async () => {
  // Per-token surrogate −A: row 0 → −1, −2, −3; row 1 → −4.
  const token = await criticFreeLoss();
  near(token.loss, -(1 + 2 + 3 + 4) / 4); // PPO: mean over the 4 real tokens
  assert.ok(!("value_loss" in token), "no value loss without a critic");
  const seq = await criticFreeLoss("sequence");
  near(seq.loss, -((1 + 2 + 3) / 3 + 4 / 1) / 2); // GRPO: mean of per-response means
  const budget = await criticFreeLoss({ tokens: 8 });
  near(budget.loss, -(1 + 2 + 3 + 4) / (2 * 8)); // Dr. GRPO: Σ tokens / (B · max_new_tokens)
  // The estimators pick them.
  assert.equal(lossAggregation({ advantage: "gae" }), undefined);
  assert.equal(lossAggregation({ advantage: "rloo" }), undefined);
  assert.equal(lossAggregation({ advantage: "reinforce_pp" }), undefined);
  assert.equal(lossAggregation({ advantage: "grpo" }), "sequence");
  assert.deepEqual(lossAggregation({ advantage: "dr_grpo" }, 32), { tokens: 32 });
  assert.throws(() => lossAggregation({ advantage: "dr_grpo" }), /token budget/);
});
