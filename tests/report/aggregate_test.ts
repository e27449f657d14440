/**
 * lib/report/aggregate.ts against hand computations and published Student-t tables.
 */
import assert from "node:assert/strict";
import {
  aggregateByUpdate,
  compareSweptValues,
  describe,
  groupBySwept,
  lastFinite,
  meanFinite,
  tCritical95,
} from "../../lib/report/aggregate.ts";

const close = (got: number | null | undefined, want: number, tol = 1e-4, what = "") => {
  assert.ok(
    typeof got === "number" && Math.abs(got - want) <= tol,
    `${what}: got ${got}, want ${want} ± ${tol}`,
  );
};

Deno.test("tCritical95 matches the published two-sided 95% Student-t table", () => {
  // t(0.975, df) from standard tables (e.g. NIST/SEMATECH e-Handbook, Table 1.3.6.7.2).
  const table: [number, number][] = [
    [1, 12.706],
    [2, 4.303],
    [3, 3.182],
    [4, 2.776],
    [5, 2.571],
    [9, 2.262],
    [10, 2.228],
    [20, 2.086],
    [30, 2.042],
    [100, 1.984],
  ];
  for (const [df, t] of table) close(tCritical95(df), t, 5e-4, `t(${df})`);
  close(tCritical95(1e7), 1.959964, 1e-5, "t(large) -> z(0.975)");
  assert.throws(() => tCritical95(0), /df 0 must be > 0/);
});

Deno.test("describe: mean, sample std, sem and t CI by hand", () => {
  // [1, 2, 3, 4]: mean = 10/4 = 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5;
  // var = 5/3 = 1.6667; std = 1.2910; sem = 1.2910/√4 = 0.6455; t(3) = 3.1824;
  // half width = 3.1824 · 0.6455 = 2.0543 -> CI [0.4457, 4.5543].
  const d = describe([1, 2, 3, 4]);
  assert.equal(d.n, 4);
  close(d.mean, 2.5, 1e-12, "mean");
  close(d.std, 1.2910, 1e-4, "std");
  close(d.sem, 0.6455, 1e-4, "sem");
  close(d.ci95?.[0], 0.4457, 1e-4, "ci lo");
  close(d.ci95?.[1], 4.5543, 1e-4, "ci hi");

  // [10, 12]: mean 11; deviations ±1 -> var = 2/1 = 2, std = 1.4142, sem = 1.4142/√2 = 1;
  // t(1) = 12.7062 -> CI [11 - 12.7062, 11 + 12.7062] = [-1.7062, 23.7062].
  const two = describe([10, 12]);
  close(two.std, Math.SQRT2, 1e-12, "std of 2");
  close(two.sem, 1, 1e-12, "sem of 2");
  close(two.ci95?.[0], -1.7062, 1e-4, "ci lo of 2");
  close(two.ci95?.[1], 23.7062, 1e-4, "ci hi of 2");

  // A large offset must not lose precision (two-pass variance): same spread as [1, 2, 3, 4].
  close(describe([1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4]).std, 1.2910, 1e-4, "std with offset");
});

Deno.test("describe: one value has no spread (null, not 0); none has no mean; NaN is refused", () => {
  assert.deepEqual(describe([7]), { n: 1, mean: 7, std: null, sem: null, ci95: null });
  assert.deepEqual(describe([]), { n: 0, mean: null, std: null, sem: null, ci95: null });
  assert.throws(() => describe([1, NaN, 3]), /value 1 is NaN/);
  assert.throws(() => describe([1, Infinity]), /value 1 is Infinity/);
  // Identical values: zero spread and a zero-width CI.
  assert.deepEqual(describe([2, 2, 2]), { n: 3, mean: 2, std: 0, sem: 0, ci95: [2, 2] });
});

Deno.test("groupBySwept: one group per swept value, ordered by value, seeds kept in order", () => {
  const trials = [
    { id: "a", swept: { beta: 0.1, mode: "x" } },
    { id: "b", swept: { beta: 0.02, mode: "x" } },
    { id: "c", swept: { beta: 0.1, mode: "x" } },
    { id: "d", swept: { beta: 1, mode: "x" } },
    { id: "e", swept: { beta: 0.02, mode: "x" } },
  ];
  const groups = groupBySwept(trials, ["beta"], (t) => t.swept);
  assert.deepEqual(groups.map((g) => g.label), ["beta=0.02", "beta=0.1", "beta=1"]);
  assert.deepEqual(groups.map((g) => g.members.map((m) => m.id)), [["b", "e"], ["a", "c"], ["d"]]);
  assert.deepEqual(groups[1].values, { beta: 0.1 });
  // Two keys: the first key orders first.
  const two = groupBySwept(
    [{ v: { a: 2, b: "y" } }, { v: { a: 1, b: "z" } }, { v: { a: 1, b: "y" } }],
    ["a", "b"],
    (t) => t.v,
  );
  assert.deepEqual(two.map((g) => g.label), ["a=1, b=y", "a=1, b=z", "a=2, b=y"]);
  // Nothing swept: one group of everything.
  assert.deepEqual(groupBySwept(trials, [], (t) => t.swept).map((g) => g.label), ["all"]);
  assert.ok(compareSweptValues(2, 10) < 0, "numbers compare numerically, not as text");
});

Deno.test("aggregateByUpdate: mean and t band per update, missing values skipped", () => {
  const seed1 = [
    { update: 1, r: 1 },
    { update: 2, r: 2 },
    { update: 3, r: null }, // no episode ended: not a zero
  ];
  const seed2 = [
    { update: 1, r: 3 },
    { update: 2, r: 6 },
    { update: 3, r: 5 },
  ];
  const pts = aggregateByUpdate([seed2, seed1], "r");
  assert.deepEqual(pts.map((p) => p.update), [1, 2, 3]);
  // update 1: [3, 1] -> mean 2, std √2, sem 1, CI 2 ± 12.7062.
  assert.equal(pts[0].n, 2);
  close(pts[0].mean, 2, 1e-12, "u1 mean");
  close(pts[0].lo, 2 - 12.7062, 1e-4, "u1 lo");
  close(pts[0].hi, 2 + 12.7062, 1e-4, "u1 hi");
  // update 2: [6, 2] -> mean 4, std 2√2, sem 2, CI 4 ± 25.4124.
  close(pts[1].hi, 4 + 25.4124, 1e-3, "u2 hi");
  // update 3: only seed 2 logged it -> n 1, band collapses to the mean.
  assert.deepEqual(
    { n: pts[2].n, mean: pts[2].mean, lo: pts[2].lo, hi: pts[2].hi, std: pts[2].std },
    { n: 1, mean: 5, lo: 5, hi: 5, std: null },
  );
  assert.equal(lastFinite(seed1, "r"), 2);
  assert.equal(meanFinite(seed1, "r"), 1.5);
});
