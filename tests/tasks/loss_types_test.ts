/**
 * TRL 1.13's loss types and options on the LM policy-gradient problem (lib/ppo/lm_problem.ts),
 * at token- and sequence-level ratios: each learns the toy task (the share of response tokens
 * equal to 3), and the train step carries exactly the hyperparameter inputs its objective
 * reads. Named reward components with `reward_aggregation: "normalize_then_sum"` learn it too.
 * (The losses themselves are checked against TRL's code in tests/ppo/trl_losses_test.ts.)
 */
import assert from "node:assert/strict";
import type { LmTask } from "../../lib/tasks/mod.ts";
import { LOSS_TYPES, type PpoConfig } from "../../lib/ppo/config.ts";
import { gatherPpoBatch } from "../../lib/ppo/trainer.ts";
import { Rng } from "../../lib/rng.ts";
import { informativeGroups, mergeGenerations } from "../../lib/ppo/lm_dynamic.ts";
import { LmPpoSchema } from "../../lib/tasks/byte_lm.ts";
import { rewardLmTask } from "../../lib/tasks/rewards.ts";
import {
  EOS,
  PAD,
  share,
  TARGET,
  toyProblem,
  toyPrompts as prompts,
  toyTask,
  trainToy,
} from "./toy_lm.ts";

const cfgFor = (over: Record<string, unknown>): PpoConfig =>
  LmPpoSchema.parse({
    lr: 3e-3,
    ent_coef: 0,
    epochs: 2,
    minibatches: 2,
    advantage: "grpo",
    whiten_advantages: false,
    kl: { beta: 0.01, placement: "loss", estimator: "k3" },
    ...over,
  });

/** Trains the toy problem for `updates` updates: the metric rows and the step's hparam names. */
async function learn(cfg: PpoConfig, task: LmTask = toyTask, updates = 10) {
  const problem = await toyProblem(cfg, { task });
  const { rows } = await trainToy(problem, updates);
  return { rows, hparams: Object.keys(problem.trainer.hparams) };
}

const OBJECTIVE_INPUTS: Record<string, string[]> = {
  cispo: ["clip_high"],
  sapo: ["sapo_temperature_pos", "sapo_temperature_neg"],
  vespo: ["vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg"],
};

for (const lossType of LOSS_TYPES) {
  for (const level of ["token", "sequence"] as const) {
    Deno.test(`loss_type ${lossType}, ${level}-level ratios: learns the toy task`, async () => {
      const cfg = cfgFor({
        loss_type: lossType,
        importance_sampling_level: level,
        ...(lossType === "cispo" ? { epsilon_high: 5 } : {}),
        ...(lossType === "dapo" ? { epsilon_high: 0.28 } : {}),
      });
      const { rows, hparams } = await learn(cfg);
      const extra = hparams.filter((h) =>
        !["clip", "clip_value", "vf_coef", "ent_coef", "beta", "penalty_beta"].includes(h) &&
        !["lr", "eps", "weight_decay", "max_grad_norm", "beta1", "beta2"].includes(h)
      );
      const want = [
        ...(lossType === "dapo" || lossType === "cispo" ? ["clip_high"] : []),
        ...(OBJECTIVE_INPUTS[lossType] ?? []).filter((h) => h !== "clip_high"),
      ];
      assert.deepEqual(extra.sort(), want.sort());
      const first = rows[0].score_mean as number, end = rows.at(-1)!.score_mean as number;
      assert.ok(rows.every((r) => Number.isFinite(r.loss as number)));
      assert.ok(end > first + 0.15, `${lossType}/${level} did not learn: ${first} -> ${end}`);
    });
  }
}

Deno.test("two-sided delta and reward components normalised then summed: learns the toy task", async () => {
  // Two named rewards (the target share, and a weight-0.5 bonus for ending early); GDPO's
  // normalize_then_sum normalises each in its group before the sum.
  const task = rewardLmTask({
    name: "toy",
    prompts,
    decode: (ids) => ids.join(","),
    eosTokenId: EOS,
    rewards: [
      { name: "target", weight: 1, fn: (s) => share(s.response) },
      { name: "short", weight: 0.5, fn: (s) => (s.ended ? 1 : 0) },
    ],
  });
  const { rows } = await learn(
    cfgFor({ delta: 1.5, reward_aggregation: "normalize_then_sum" }),
    task,
  );
  const first = rows[0]["reward/target"] as number, end = rows.at(-1)!["reward/target"] as number;
  assert.ok(end > first + 0.15, `did not learn: ${first} -> ${end}`);
});

Deno.test("top_entropy_quantile 0.5, token and sequence level: learns the toy task", async () => {
  for (const level of ["token", "sequence"]) {
    const cfg = cfgFor({ top_entropy_quantile: 0.5, importance_sampling_level: level });
    const { rows } = await learn(cfg);
    const first = rows[0].score_mean as number, end = rows.at(-1)!.score_mean as number;
    assert.ok(end > first + 0.15, `${level}: did not learn: ${first} -> ${end}`);
  }
});

Deno.test("mask_truncated_completions: responses cut at the limit are scored but out of the loss", async () => {
  const cfg = cfgFor({ mask_truncated_completions: true });
  const problem = await toyProblem(cfg);
  const roll = await problem.rollout(new Rng(5));
  const T = roll.cols;
  let ended = 0, cut = 0;
  for (let r = 0; r < roll.rows; r++) {
    const row = (a: Uint8Array) => a.slice(r * T, (r + 1) * T).reduce((s, x) => s + x, 0);
    const real = row(roll.mask!), inLoss = row(roll.lossMask!);
    // A response that ended with EOS keeps every real token; one cut at MAX_NEW keeps none.
    const endedRow = roll.actions[r * T + real - 1] === EOS;
    if (endedRow) ended++;
    else cut++;
    assert.equal(inLoss, endedRow ? real : 0, `row ${r}`);
    // Its reward is still there (the group baseline counts it).
    assert.equal(
      roll.rewards.slice(r * T, (r + 1) * T).some((x) => x !== 0),
      share(
        Array.from(roll.actions.slice(r * T, r * T + real)),
      ) !== 0,
    );
  }
  assert.ok(ended > 0 && cut > 0, `ended ${ended}, cut ${cut}`);
  const idx = [...Array(roll.rows).keys()];
  const fed = gatherPpoBatch(
    roll,
    idx,
    new Float64Array(roll.rows * T),
    new Float64Array(0),
    false,
    "float64",
  );
  assert.deepEqual(Array.from(fed.mask.data as Float64Array), Array.from(roll.lossMask!));
});

Deno.test("overlong_cache: DAPO's soft punishment is added to each response's score", async () => {
  const cfg = cfgFor({ overlong_cache: 3 });
  const problem = await toyProblem(cfg);
  const roll = await problem.rollout(new Rng(5));
  const T = roll.cols;
  let punished = 0;
  for (let r = 0; r < roll.rows; r++) {
    const len = roll.mask!.slice(r * T, (r + 1) * T).reduce((s, x) => s + x, 0);
    const response = Array.from(roll.actions.slice(r * T, r * T + len));
    // Lengths 6, 7, 8 of MAX_NEW 8 with a cache of 3 lose 1/3, 2/3, 1.
    const penalty = len <= 5 ? 0 : (5 - len) / 3;
    if (penalty < 0) punished++;
    assert.ok(Math.abs(roll.rewards[r * T + len - 1] - (share(response) + penalty)) < 1e-12);
  }
  assert.ok(punished > 0);
});

Deno.test("dynamic_sampling: groups with equal scores are replaced by fresh ones, re-padded right", async () => {
  // A coarse score (1 if any token is 3) makes all-equal groups common.
  const coarse: LmTask = {
    prompts,
    score: (_p, responses) => responses.map((r) => (r.includes(TARGET) ? 1 : 0)),
  };
  const cfg = cfgFor({ dynamic_sampling: 4, epochs: 1, minibatches: 1 });
  const problem = await toyProblem(cfg, { task: coarse });
  const roll = await problem.rollout(new Rng(7));
  const T = roll.cols;
  const scores = Array.from({ length: roll.rows }, (_, r) => {
    const len = roll.mask!.slice(r * T, (r + 1) * T).reduce((s, x) => s + x, 0);
    return roll.rewards[r * T + len - 1];
  });
  const batches = roll.metrics!.dynamic_batches, frac = roll.metrics!.informative_groups;
  assert.ok(batches >= 2 && batches <= 4, `batches ${batches}`);
  const groups = informativeGroups(scores, 4);
  assert.equal(groups.filter(Boolean).length / 4, frac);
  // The merged sequences hold each row's response tokens at the response columns.
  const idx = [...Array(roll.rows).keys()];
  const seq = problem.inputs(roll, idx);
  const S = seq.tokens.dims[1] as number, W = S - T;
  const tok = seq.tokens.data as BigInt64Array;
  for (let r = 0; r < roll.rows; r++) {
    for (let t = 0; t < T; t++) {
      if (roll.mask![r * T + t]) assert.equal(Number(tok[r * S + W + t]), roll.actions[r * T + t]);
    }
  }
  // The train step's log-probs of the merged batch match the sampler's: ratio 1 before the step.
  const { rows } = await learn(cfg, coarse, 1);
  assert.ok(Math.abs(rows[0].approx_kl_k1 as number) < 1e-4, `approx KL ${rows[0].approx_kl_k1}`);
});

Deno.test("informativeGroups and mergeGenerations by hand", () => {
  assert.deepEqual(informativeGroups([1, 1, 0, 1, 2, 2], 2), [false, true, false]);
  const gen = (w: number, c: number, tokens: number[], seqs: number[]) => ({
    rows: 1,
    cols: c,
    prompts: [[9]],
    responses: [tokens.filter((t) => t !== PAD)],
    tokens: Int32Array.from(tokens),
    logp: Float64Array.from(tokens.map((t) => (t ? -1 : 0))),
    sampleLogp: new Float64Array(c),
    mask: Uint8Array.from(tokens.map((t) => (t ? 1 : 0))),
    ended: Uint8Array.of(1),
    promptWidth: w,
    sequences: Int32Array.from(seqs),
    sequenceMask: Uint8Array.from(seqs.map((t) => (t ? 1 : 0))),
  });
  const a = gen(1, 2, [5, 1], [9, 5, 1]), b = gen(2, 1, [1], [8, 9, 1]);
  const m = mergeGenerations([{ gen: a, rows: [0] }, { gen: b, rows: [0] }], PAD);
  assert.equal(m.promptWidth, 2);
  assert.equal(m.cols, 2);
  assert.deepEqual(Array.from(m.sequences), [0, 9, 5, 1, 8, 9, 1, 0]);
  assert.deepEqual(Array.from(m.sequenceMask), [0, 1, 1, 1, 1, 1, 1, 0]);
  assert.deepEqual(Array.from(m.tokens), [5, 1, 1, 0]);
  assert.deepEqual(Array.from(m.mask), [1, 1, 1, 0]);
});
