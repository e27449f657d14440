/**
 * GRPO's advantages against TRL 1.13's own advantage code (its block of
 * GRPOTrainer._generate_and_score_completions, run unchanged by
 * tests/fixtures/trl/make_trl_advantages.py): scale_rewards group / batch / none with
 * sum_then_normalize, and normalize_then_sum, through computeAdvantages, within 1e-6.
 */
import assert from "node:assert/strict";
import { computeAdvantages } from "../../lib/ppo/advantages.ts";
import { softOverlongPunishment } from "../../lib/ppo/shaping.ts";

const fx = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/trl/trl_grpo_advantages.json", import.meta.url)),
) as {
  rewards: number[][];
  group: number;
  cases: {
    config: {
      name: string;
      multi_objective_aggregation: "sum_then_normalize" | "normalize_then_sum";
      scale_rewards: "group" | "batch" | "none";
      weights: number[];
    };
    advantages: number[];
  }[];
};

const n = fx.rewards.length, T = 3;

for (const c of fx.cases) {
  Deno.test(`TRL 1.13 advantages ${c.config.name}: within 1e-6`, () => {
    const { weights } = c.config;
    // The task's reward, Σ weight · component, at each response's last token (T = 3 positions).
    const rewards = new Float64Array(n * T), mask = new Float64Array(n * T).fill(1);
    fx.rewards.forEach((r, i) => {
      rewards[i * T + T - 1] = r.reduce((a, x, k) => a + weights[k] * x, 0);
    });
    const components = weights.map((_, k) => fx.rewards.map((r) => r[k]));
    const { advantages } = computeAdvantages("grpo", {
      rows: n,
      cols: T,
      rewards,
      values: new Float64Array(n * T),
      dones: new Float64Array(n * T),
      mask,
      lastValues: new Float64Array(n),
      gamma: 1,
      lambda: 1,
      groupSize: fx.group,
      scaleRewards: c.config.scale_rewards,
      aggregation: c.config.multi_objective_aggregation,
      components: { values: components, weights },
    });
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < T; t++) {
        const got = advantages[i * T + t], want = c.advantages[i];
        assert.ok(Math.abs(got - want) <= 1e-6, `response ${i} token ${t}: ${got} vs TRL ${want}`);
      }
    }
  });
}

Deno.test("DAPO's soft overlong punishment equals TRL's get_soft_overlong_punishment", () => {
  const { overlong } = fx as unknown as {
    overlong: { max_completion_len: number; soft_punish_cache: number; rewards: number[] }[];
  };
  assert.equal(overlong.length, 4);
  for (const o of overlong) {
    o.rewards.forEach((want, len) => {
      const got = softOverlongPunishment(len, o.max_completion_len, o.soft_punish_cache);
      assert.ok(
        Math.abs(got - want) <= 1e-12,
        `L ${len} of ${o.max_completion_len}: ${got} vs ${want}`,
      );
    });
  }
});
