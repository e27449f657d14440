/**
 * Aggregation across seeds: descriptive statistics with Student-t 95% confidence intervals,
 * grouping of trials by their swept values, and per-update aggregation of one metrics column.
 *
 * Conventions (chosen so results survive JSON and never look more certain than they are):
 * - `std` is the sample standard deviation (n − 1 in the denominator), `sem = std / √n`, and
 *   `ci95 = mean ± t(0.975, n − 1) · sem` with the exact Student-t quantile.
 * - With n = 1 the spread is unknown: `std`, `sem` and `ci95` are `null` (not 0, which would
 *   claim certainty; not NaN, which JSON cannot hold). With n = 0 `mean` is `null` too.
 * - Missing values (null, undefined, NaN, ±Infinity: a metric a trial did not log at that
 *   update) are skipped by the grouping helpers and counted in `n` nowhere; {@link describe}
 *   itself refuses them, so a caller never averages a NaN by accident.
 *
 * @example
 * ```ts
 * import { describe } from "./aggregate.ts";
 * const d = describe([1, 2, 3, 4]);
 * // d.n 4, d.mean 2.5, d.std 1.2910, d.sem 0.6455, d.ci95 [0.4457, 4.5543]
 * ```
 * @module
 */

/** Summary statistics of one sample. */
export interface Described {
  /** Number of values. */
  n: number;
  /** Arithmetic mean (null when n = 0). */
  mean: number | null;
  /** Sample standard deviation, n − 1 denominator (null when n < 2). */
  std: number | null;
  /** Standard error of the mean, std / √n (null when n < 2). */
  sem: number | null;
  /** Student-t 95% confidence interval of the mean (null when n < 2). */
  ci95: [number, number] | null;
}

/**
 * Mean, sample std, standard error and Student-t 95% CI of `values`.
 * Throws a RangeError naming the index of a non-finite value.
 *
 * @example
 * ```ts
 * describe([5]);       // { n: 1, mean: 5, std: null, sem: null, ci95: null }
 * describe([1, 2, 3]); // mean 2, std 1, sem 0.5774, ci95 [-0.4841, 4.4841] (t(2) = 4.3027)
 * ```
 */
export function describe(values: readonly number[]): Described {
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(`describe: value ${i} is ${v}; pass finite numbers only`);
    }
  });
  const n = values.length;
  if (n === 0) return { n, mean: null, std: null, sem: null, ci95: null };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n === 1) return { n, mean, std: null, sem: null, ci95: null };
  // Two-pass variance: subtracting the mean first keeps precision for large offsets.
  const ss = values.reduce((s, v) => s + (v - mean) ** 2, 0);
  const std = Math.sqrt(ss / (n - 1));
  const sem = std / Math.sqrt(n);
  const half = tCritical95(n - 1) * sem;
  return { n, mean, std, sem, ci95: [mean - half, mean + half] };
}

/**
 * Student-t critical values by degrees of freedom: process-wide on purpose, a table of a pure
 * function's values (no trial's state), bounded by the sample sizes a report aggregates.
 */
const T95_CACHE = new Map<number, number>();

/**
 * Two-sided 95% Student-t critical value t(0.975, df), exact to ~1e-12 (the root of the
 * regularised incomplete beta function, found by bisection). t(1) = 12.7062, t(3) = 3.1824,
 * t(30) = 2.0423, approaching 1.95996 as df grows.
 */
export function tCritical95(df: number): number {
  return tQuantileTwoSided(0.05, df);
}

/**
 * Two-sided Student-t critical value: the t with P(|T| > t) = `alpha` for `df` degrees of
 * freedom (df ≥ 1, real-valued allowed).
 */
export function tQuantileTwoSided(alpha: number, df: number): number {
  if (!(df > 0) || !Number.isFinite(df)) throw new RangeError(`t quantile: df ${df} must be > 0`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`t quantile: alpha ${alpha} not in (0, 1)`);
  const cached = alpha === 0.05 ? T95_CACHE.get(df) : undefined;
  if (cached !== undefined) return cached;
  // P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t²); I_x increases with x, so bisect on x.
  let lo = 0, hi = 1;
  for (let i = 0; i < 200 && hi - lo > 0; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (regularizedBeta(mid, df / 2, 0.5) < alpha) lo = mid;
    else hi = mid;
  }
  const x = (lo + hi) / 2;
  const t = Math.sqrt((df * (1 - x)) / x);
  if (alpha === 0.05) T95_CACHE.set(df, t);
  return t;
}

/** ln Γ(z) for z > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative). */
function logGamma(z: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z);
  z -= 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised incomplete beta I_x(a, b) (continued fraction, modified Lentz). */
function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) +
    b * Math.log(1 - x);
  // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaFraction(x, a, b)) / a;
  return 1 - (Math.exp(lnFront) * betaFraction(1 - x, b, a)) / b;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** A finite number, or null for anything else (missing metric, NaN, string). */
export function finiteOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** {@link describe} of the finite numbers among `values` (nulls and NaNs are skipped). */
export function describeFinite(values: readonly unknown[]): Described {
  return describe(values.map(finiteOrNull).filter((v): v is number => v !== null));
}

/** Trials that share every swept value (one per seed, normally). */
export interface Group<T> {
  /** `key=value` pairs joined by ", " (`"ppo.kl.beta=0.1"`); "all" when nothing is swept. */
  label: string;
  /** The shared swept values, in the order of the keys given. */
  values: Record<string, unknown>;
  /** The trials, in input order. */
  members: T[];
}

/** Render one swept value for labels: numbers as JS prints them, strings bare, others JSON. */
export function formatSweptValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return JSON.stringify(v) ?? "undefined";
}

/** Label of one combination of swept values (`"lr=0.001, ppo.clip=0.2"`; "all" for none). */
export function sweptLabel(values: Record<string, unknown>, keys = Object.keys(values)): string {
  if (keys.length === 0) return "all";
  return keys.map((k) => `${k}=${formatSweptValue(values[k])}`).join(", ");
}

/**
 * Order of swept values: numbers ascending (before other types), then booleans, strings
 * alphabetically, then anything else by its JSON. Used so tables and legends read in order.
 */
export function compareSweptValues(a: unknown, b: unknown): number {
  const rank = (v: unknown) =>
    typeof v === "number" ? 0 : typeof v === "boolean" ? 1 : typeof v === "string" ? 2 : 3;
  const ra = rank(a), rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return (a as number) - (b as number);
  if (ra === 1) return Number(a) - Number(b);
  const sa = ra === 2 ? (a as string) : JSON.stringify(a) ?? "";
  const sb = ra === 2 ? (b as string) : JSON.stringify(b) ?? "";
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/**
 * Group items by their values at `keys` (the swept keys, seed excluded), so each group holds
 * the seeds of one setting. Groups are ordered by their values (first key first, numbers
 * ascending); members keep their input order.
 *
 * @example
 * ```ts
 * const trials = [
 *   { id: "a", swept: { "ppo.kl.beta": 0.1 } },
 *   { id: "b", swept: { "ppo.kl.beta": 0.02 } },
 *   { id: "c", swept: { "ppo.kl.beta": 0.1 } },
 * ];
 * const groups = groupBySwept(trials, ["ppo.kl.beta"], (t) => t.swept);
 * // [{ label: "ppo.kl.beta=0.02", members: [b] }, { label: "ppo.kl.beta=0.1", members: [a, c] }]
 * ```
 */
export function groupBySwept<T>(
  items: readonly T[],
  keys: readonly string[],
  sweptOf: (item: T) => Record<string, unknown>,
): Group<T>[] {
  const byKey = new Map<string, Group<T>>();
  for (const item of items) {
    const all = sweptOf(item);
    const values: Record<string, unknown> = {};
    for (const k of keys) values[k] = all[k];
    // JSON of the values in key order identifies the group (undefined becomes null).
    const id = JSON.stringify(keys.map((k) => values[k] ?? null));
    let g = byKey.get(id);
    if (!g) {
      g = { label: sweptLabel(values, [...keys]), values, members: [] };
      byKey.set(id, g);
    }
    g.members.push(item);
  }
  return [...byKey.values()].sort((a, b) => {
    for (const k of keys) {
      const c = compareSweptValues(a.values[k], b.values[k]);
      if (c !== 0) return c;
    }
    return 0;
  });
}

/** One update's aggregate of a metric over the runs (seeds) that logged it. */
export interface UpdatePoint {
  /** The x value (the `update` column by default). */
  update: number;
  n: number;
  mean: number;
  /** Sample std across runs (null when only one run logged this update). */
  std: number | null;
  sem: number | null;
  /** 95% CI band; with one run it collapses to the mean, so a band still draws. */
  lo: number;
  hi: number;
}

/**
 * Per-update aggregation of one metrics column across runs (the seeds of one setting): for
 * every x value any run logged, the mean and the Student-t 95% CI band over the runs that
 * have a finite value of `metric` there. Rows without one (e.g. `episodic_return` is null in
 * an update where no episode ended) are skipped, so `n` may vary per update.
 *
 * @example
 * ```ts
 * const seed1 = [{ update: 1, kl_ref: 0.1 }, { update: 2, kl_ref: 0.3 }];
 * const seed2 = [{ update: 1, kl_ref: 0.2 }, { update: 2, kl_ref: 0.5 }];
 * aggregateByUpdate([seed1, seed2], "kl_ref");
 * // [{ update: 1, n: 2, mean: 0.15, ... }, { update: 2, n: 2, mean: 0.4, ... }]
 * ```
 */
export function aggregateByUpdate(
  runs: readonly (readonly Record<string, unknown>[])[],
  metric: string,
  x = "update",
): UpdatePoint[] {
  const byX = new Map<number, number[]>();
  for (const rows of runs) {
    for (const row of rows) {
      const xv = finiteOrNull(row[x]), yv = finiteOrNull(row[metric]);
      if (xv === null || yv === null) continue;
      let list = byX.get(xv);
      if (!list) byX.set(xv, list = []);
      list.push(yv);
    }
  }
  return [...byX.entries()].sort(([a], [b]) => a - b).map(([update, ys]) => {
    const d = describe(ys);
    return {
      update,
      n: d.n,
      mean: d.mean!,
      std: d.std,
      sem: d.sem,
      lo: d.ci95 ? d.ci95[0] : d.mean!,
      hi: d.ci95 ? d.ci95[1] : d.mean!,
    };
  });
}

/** The last finite value of `metric` in a run's rows (null when it never logged one). */
export function lastFinite(
  rows: readonly Record<string, unknown>[],
  metric: string,
): number | null {
  for (let i = rows.length - 1; i >= 0; i--) {
    const v = finiteOrNull(rows[i][metric]);
    if (v !== null) return v;
  }
  return null;
}

/** Mean of the finite values of `metric` over a run's rows (null when there are none). */
export function meanFinite(
  rows: readonly Record<string, unknown>[],
  metric: string,
): number | null {
  return describeFinite(rows.map((r) => r[metric])).mean;
}
