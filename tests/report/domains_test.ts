/**
 * Plotted intervals stay inside each metric's domain (lib/report/domains.ts): the frontier's
 * KL whisker of two far-apart seeds stops at 0 instead of running negative, rate error bars
 * stay in [0, 1], curve bands of a KL stay ≥ 0; and LM bundles plot `reward/total` and its
 * components by default, with the evaluated `reward` on the frontier.
 */
import assert from "node:assert/strict";
import { clampInterval, metricDomain } from "../../lib/report/domains.ts";
import { curvePoints, finalPoints, frontierChart } from "../../lib/report/charts.ts";
import {
  defaultCurveMetrics,
  firstPresent,
  FRONTIER_REWARD_CANDIDATES,
} from "../../lib/report/bundles.ts";
import { describe } from "../../lib/report/aggregate.ts";
import { memTrial } from "./helpers.ts";

Deno.test("metricDomain / clampInterval: KL ≥ 0, rates in [0, 1], gold in [-1, 1], never past the mean", () => {
  assert.deepEqual(metricDomain("kl"), [0, Infinity]);
  assert.deepEqual(metricDomain("kl_ref:last"), [0, Infinity]);
  assert.deepEqual(metricDomain("approx_kl_k3:mean"), [0, Infinity]);
  assert.deepEqual(metricDomain("eval/kl"), [0, Infinity]);
  assert.deepEqual(metricDomain("eos_rate"), [0, 1]);
  assert.deepEqual(metricDomain("clipfrac:mean"), [0, 1]);
  assert.deepEqual(metricDomain("gold_score_before"), [-1, 1]);
  assert.deepEqual(metricDomain("rm_score"), [-Infinity, Infinity]);
  assert.deepEqual(metricDomain("reward/total"), [-Infinity, Infinity]);
  assert.deepEqual(clampInterval("kl", -10, 0.5, 0.2), [0, 0.5]);
  assert.deepEqual(clampInterval("parse_rate", -0.2, 1.3, 0.6), [0, 1]);
  // A k1 estimate whose mean is itself below 0: the interval keeps reaching the mean.
  assert.deepEqual(clampInterval("kl_ref", -0.3, 0.1, -0.1), [-0.1, 0.1]);
  assert.deepEqual(clampInterval("rm_score", -3, 3, 0), [-3, 3]);
});

const trial = (beta: number, seed: number, kl: number, rate: number, rows = 2) =>
  memTrial(
    {
      task: "lm",
      config: { seed, ppo: { kl: { beta } } },
      rows: Array.from({ length: rows }, (_, i) => ({
        update: i + 1,
        kl_ref: i === 0 ? 0 : kl,
        eos_rate: rate,
        "reward/total": 0.1 * (i + 1),
        "reward/rm": 0.2 * (i + 1),
        "reward/length": 3,
        rm_score: 0.2,
      })),
      metrics: { kl, reward: 0.5 + kl, rm_score: 0.2, eos_rate: rate },
    },
    ["ppo.kl.beta"],
    `t${beta}-${seed}`,
  );

Deno.test("frontier, final and curve intervals are clamped to the metric's domain", () => {
  // Two seeds far apart: the unclamped Student-t CI of the KL reaches far below 0.
  const exp = {
    trials: [trial(0.1, 1, 0.01, 0.05), trial(0.1, 2, 1.5, 0.95)],
    sweptKeys: ["ppo.kl.beta"],
  };
  const raw = describe([0.01, 1.5]).ci95!;
  assert.ok(raw[0] < -5, `the raw CI's low end: ${raw[0]}`);
  const spec = frontierChart(exp, "kl", "reward") as unknown as {
    layer: { data: { values: Record<string, number>[] } }[];
  };
  const mean = spec.layer[2].data.values[0];
  assert.equal(mean.kl_lo, 0);
  assert.equal(mean.kl_hi, raw[1]);
  // reward is unbounded: its whisker is the CI as computed.
  assert.equal(mean.reward_lo, describe([0.51, 2]).ci95![0]);
  const { stats } = finalPoints(exp, "eos_rate");
  assert.deepEqual([stats[0].lo, stats[0].hi], [0, 1]);
  for (const p of curvePoints(exp, "kl_ref")) assert.ok(p.lo >= 0, JSON.stringify(p));
  assert.ok(curvePoints(exp, "kl_ref").some((p) => p.hi > 1));
});

Deno.test("LM bundles: reward/total and its components are the first curves; reward is on the frontier", () => {
  const trials = [trial(0.1, 1, 0.2, 0.5)];
  assert.deepEqual(defaultCurveMetrics(trials), [
    "reward/total",
    "reward/length",
    "reward/rm",
    "rm_score",
    "kl_ref",
  ]);
  assert.equal(firstPresent(trials, FRONTIER_REWARD_CANDIDATES), "reward");
});
