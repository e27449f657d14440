/**
 * The range a metric's true value can take, so that plotted intervals stay inside it: a
 * Student-t 95% CI over two or three seeds is wide and symmetric, and ran a KL whisker to −10
 * (a KL is never negative) and rates below 0. Intervals are clamped to the domain, never past
 * the plotted mean (a k1 KL estimate can itself come out slightly negative; its mean is shown
 * as measured).
 *
 * @example
 * ```ts
 * metricDomain("kl_ref:last"); // [0, Infinity]
 * clampInterval("kl", -10, 0.5, 0.2); // [0, 0.5]
 * ```
 * @module
 */

/** Domains by metric name (the first match wins); unknown metrics are unbounded. */
const DOMAINS: readonly { match: RegExp; domain: readonly [number, number] }[] = [
  // KL divergences and their estimates (kl, kl_ref, penalty_kl, approx_kl_k3, kl_penalty).
  { match: /(^|_)kl(_|$)/, domain: [0, Infinity] },
  // Shares and rates.
  { match: /(^|_)(rate|clipfrac|accuracy)$/, domain: [0, 1] },
  // The sentiment task's gold score: (positive − negative words) / words.
  { match: /^gold_score$/, domain: [-1, 1] },
  { match: /(^|_)(entropy|length)$/, domain: [0, Infinity] },
  { match: /^explained_variance$/, domain: [-Infinity, 1] },
];

/**
 * The domain of `metric`: a name in the report's conventions (`kl`, `kl_ref:last`,
 * `clipfrac:mean`, `eval/kl`, `gold_score_before`).
 */
export function metricDomain(metric: string): readonly [number, number] {
  const base = metric.replace(/:(mean|last)$/, "").replace(/^eval\//, "").replace(
    /_before$/,
    "",
  );
  return DOMAINS.find((d) => d.match.test(base))?.domain ?? [-Infinity, Infinity];
}

/** `[lo, hi]` clamped to `metric`'s domain, but never past `mean`. */
export function clampInterval(
  metric: string,
  lo: number,
  hi: number,
  mean: number,
): [number, number] {
  const [a, b] = metricDomain(metric);
  return [Math.max(lo, Math.min(a, mean)), Math.min(hi, Math.max(b, mean))];
}
