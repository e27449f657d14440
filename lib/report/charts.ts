/**
 * Vega-Lite specs for an experiment's trials (plain JSON: notebooks display them as they are,
 * {@link ../report/render.ts} renders them to SVG/PNG). Every chart colours one series per
 * combination of swept values (seeds pooled), orders series by swept value, and names the
 * metric and the swept key in its axis / legend titles.
 *
 * - {@link curveChart}: a metric vs update, mean line and a band (95% CI over seeds) per series.
 * - {@link frontierChart}: KL vs reward, one point per trial and the mean (± CI) per series.
 * - {@link finalChart}: a per-trial metric vs swept value, points per seed, mean and error bars.
 * - {@link diagnosticsChart}: a panel of curves (clipfrac, entropy, explained variance, ...).
 *
 * @example
 * ```ts
 * import { loadExperimentResults } from "./bundles.ts";
 * import { curveChart } from "./charts.ts";
 * const kl = await loadExperimentResults("results/kl");
 * const spec = curveChart(kl, "kl_ref"); // one line + band per β
 * ```
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import {
  aggregateByUpdate,
  describe,
  formatSweptValue,
  type Group,
  groupBySwept,
  sweptLabel,
} from "./aggregate.ts";
import { DIAGNOSTIC_METRICS, type TrialBundle, trialMetric } from "./bundles.ts";
import { clampInterval } from "./domains.ts";

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** What the charts need of an experiment (an ExperimentResults fits). */
export interface ChartInput {
  trials: readonly TrialBundle[];
  sweptKeys: readonly string[];
  /** Experiment name, for chart titles. */
  name?: string;
}

/** Which spread the curve bands show. */
export type BandKind = "ci95" | "std" | "none";

export interface CurveOptions {
  /** Band around the mean line: Student-t 95% CI over seeds (default), ±1 std, or none. */
  band?: BandKind;
  width?: number;
  height?: number;
  /** Chart title (default: "<metric> vs update, by <swept key>"). */
  title?: string;
}

/** One series: the seeds of one setting, with its legend label and order. */
export interface Series {
  label: string;
  rank: number;
  group: Group<TrialBundle>;
}

/**
 * The series of an experiment: one per combination of swept values, ordered by value. With
 * one swept key the label is the bare value (`"0.1"`, the legend title names the key);
 * with several it is `key=value, ...`; with none, `"all"`.
 */
export function seriesOf(input: ChartInput): Series[] {
  const keys = [...input.sweptKeys];
  return groupBySwept(input.trials, keys, (t) => t.swept).map((group, rank) => ({
    label: keys.length === 1 ? formatSweptValue(group.values[keys[0]]) : sweptLabel(group.values),
    rank,
    group,
  }));
}

/** Legend / axis title for the swept keys ("ppo.kl.beta"; "lr, ppo.clip"; "trials"). */
export function sweptTitle(sweptKeys: readonly string[]): string {
  return sweptKeys.length ? sweptKeys.join(", ") : "trials";
}

function colorEncoding(series: Series[], sweptKeys: readonly string[]) {
  const domain = series.map((s) => s.label);
  return {
    field: "series",
    type: "nominal" as const,
    title: sweptTitle(sweptKeys),
    sort: domain,
    scale: { domain, scheme: domain.length > 10 ? "tableau20" : "category10" },
  };
}

/** Rows of a curve chart: per series and update, the mean and the band's ends. */
export interface CurvePoint {
  series: string;
  update: number;
  mean: number;
  lo: number;
  hi: number;
  /** Seeds that logged the metric at this update. */
  n: number;
}

/** The data behind {@link curveChart} (exported for tables and tests). */
export function curvePoints(
  input: ChartInput,
  metric: string,
  band: BandKind = "ci95",
): CurvePoint[] {
  return seriesOf(input).flatMap((s) =>
    aggregateByUpdate(s.group.members.map((t) => t.rows), metric).map((p) => {
      const half = band === "std" ? (p.std ?? 0) : 0;
      // The band stays inside the metric's domain (domains.ts: a KL is never negative).
      const [lo, hi] = clampInterval(
        metric,
        band === "ci95" ? p.lo : p.mean - half,
        band === "ci95" ? p.hi : p.mean + half,
        p.mean,
      );
      return { series: s.label, update: p.update, mean: p.mean, lo, hi, n: p.n };
    })
  );
}

const BAND_TEXT: Record<BandKind, string> = {
  ci95: "line: mean over seeds; band: 95% CI (Student t)",
  std: "line: mean over seeds; band: ±1 std",
  none: "line: mean over seeds",
};

// The layers of one curve (shared by curveChart and the diagnostics panel).
function curveLayers(
  input: ChartInput,
  metric: string,
  band: BandKind,
  series: Series[],
  size: { width: number; height: number },
) {
  const values = curvePoints(input, metric, band);
  const x = {
    field: "update",
    type: "quantitative" as const,
    title: "update",
    axis: { tickMinStep: 1, format: "d" },
  };
  const color = colorEncoding(series, input.sweptKeys);
  const area = {
    mark: { type: "area" as const, opacity: 0.2 },
    encoding: {
      x,
      y: { field: "lo", type: "quantitative" as const },
      y2: { field: "hi" },
      color,
    },
  };
  const line = {
    mark: { type: "line" as const, strokeWidth: 2 },
    encoding: {
      x,
      y: {
        field: "mean",
        type: "quantitative" as const,
        // Only the metric: a long rotated title overflows the plot height and pads the layout.
        title: metric,
        scale: { zero: false },
      },
      color,
      tooltip: [
        { field: "series", title: sweptTitle(input.sweptKeys) },
        { field: "update" },
        { field: "mean", title: metric, format: ".4g" },
        { field: "n", title: "seeds" },
      ],
    },
  };
  const layer = band === "none" ? [line] : [area, line];
  return { ...size, data: { values }, layer };
}

function requireTrials(input: ChartInput, what: string): void {
  if (input.trials.length === 0) throw new Error(`${what}: no trials to chart`);
}

/**
 * A metric vs update: one mean line and one band per swept value (seeds pooled).
 *
 * @example
 * ```ts
 * const spec = curveChart(kl, "episodic_return", { band: "ci95" });
 * ```
 */
export function curveChart(
  input: ChartInput,
  metric: string,
  opts: CurveOptions = {},
): TopLevelSpec {
  requireTrials(input, `curve of ${metric}`);
  const series = seriesOf(input);
  return {
    $schema: SCHEMA,
    title: {
      text: opts.title ?? `${metric} vs update, by ${sweptTitle(input.sweptKeys)}`,
      subtitle: BAND_TEXT[opts.band ?? "ci95"],
    },
    ...curveLayers(input, metric, opts.band ?? "ci95", series, {
      width: opts.width ?? 480,
      height: opts.height ?? 300,
    }),
  } as TopLevelSpec;
}

/** Per-trial value and per-series mean of one number per trial. */
export interface TrialPoint {
  series: string;
  rank: number;
  id: string;
  seed: number | null;
  value: number;
}

/** Per-series statistics of one number per trial. */
export interface SeriesStat {
  series: string;
  rank: number;
  n: number;
  mean: number;
  std: number | null;
  /** 95% CI (null with one seed). */
  lo: number | null;
  hi: number | null;
}

/** One value per trial of `metric` ({@link trialMetric} conventions) and the per-series stats. */
export function finalPoints(
  input: ChartInput,
  metric: string,
): { trials: TrialPoint[]; stats: SeriesStat[] } {
  const trials: TrialPoint[] = [];
  const stats: SeriesStat[] = [];
  for (const s of seriesOf(input)) {
    const vals: number[] = [];
    for (const t of s.group.members) {
      const v = trialMetric(t, metric);
      if (v === null) continue;
      vals.push(v);
      trials.push({ series: s.label, rank: s.rank, id: t.id, seed: t.seed, value: v });
    }
    if (vals.length === 0) continue;
    const d = describe(vals);
    const ci = d.ci95 ? clampInterval(metric, d.ci95[0], d.ci95[1], d.mean!) : null;
    stats.push({
      series: s.label,
      rank: s.rank,
      n: d.n,
      mean: d.mean!,
      std: d.std,
      lo: ci?.[0] ?? null,
      hi: ci?.[1] ?? null,
    });
  }
  return { trials, stats };
}

export interface FinalOptions {
  width?: number;
  height?: number;
  title?: string;
}

/**
 * A per-trial metric (final value, a `:mean`, or a summary metric) vs swept value: one point
 * per seed, the mean per swept value, and 95% CI error bars where there are ≥ 2 seeds.
 *
 * @example
 * ```ts
 * finalChart(kl, "gold_score"); // x: ppo.kl.beta, y: gold_score
 * ```
 */
export function finalChart(
  input: ChartInput,
  metric: string,
  opts: FinalOptions = {},
): TopLevelSpec {
  requireTrials(input, `final ${metric}`);
  const series = seriesOf(input);
  const { trials, stats } = finalPoints(input, metric);
  const keyTitle = sweptTitle(input.sweptKeys);
  const x = {
    field: "series",
    type: "ordinal" as const,
    title: keyTitle,
    sort: series.map((s) => s.label),
    axis: { labelAngle: series.some((s) => s.label.length > 8) ? -30 : 0 },
  };
  const color = { ...colorEncoding(series, input.sweptKeys), legend: null };
  const yTitle = metric;
  return {
    $schema: SCHEMA,
    title: {
      text: opts.title ?? `${metric} by ${keyTitle}`,
      subtitle: "circles: seeds; diamond: mean; bar: 95% CI (Student t)",
    },
    width: opts.width ?? Math.max(320, 60 * series.length),
    height: opts.height ?? 300,
    layer: [
      {
        data: { values: trials },
        mark: { type: "point", opacity: 0.6, size: 40 },
        encoding: {
          x,
          y: { field: "value", type: "quantitative", title: yTitle, scale: { zero: false } },
          color,
          tooltip: [{ field: "id", title: "trial" }, { field: "seed" }, {
            field: "value",
            title: metric,
            format: ".4g",
          }],
        },
      },
      {
        data: { values: stats.filter((s) => s.lo !== null) },
        mark: { type: "rule", strokeWidth: 2 },
        encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color },
      },
      {
        data: { values: stats },
        mark: { type: "point", filled: true, size: 140, shape: "diamond" },
        encoding: {
          x,
          y: { field: "mean", type: "quantitative" },
          color,
          tooltip: [{ field: "series", title: keyTitle }, { field: "n", title: "seeds" }, {
            field: "mean",
            format: ".4g",
          }],
        },
      },
    ],
  } as TopLevelSpec;
}

export interface FrontierOptions {
  width?: number;
  height?: number;
  title?: string;
}

/**
 * KL vs reward: one point per trial and the mean (with 95% CI whiskers on both axes) per
 * swept value, the means joined in swept-value order. `kl` and `reward` are metric names
 * in {@link trialMetric}'s conventions (e.g. `"kl"` and `"gold_score"` for sentiment,
 * `"kl_penalty:mean"` and `"return"` for env runs).
 */
export function frontierChart(
  input: ChartInput,
  kl: string,
  reward: string,
  opts: FrontierOptions = {},
): TopLevelSpec {
  requireTrials(input, `frontier ${kl} vs ${reward}`);
  const series = seriesOf(input);
  const keyTitle = sweptTitle(input.sweptKeys);
  const points: { series: string; id: string; seed: number | null; kl: number; reward: number }[] =
    [];
  const means: Record<string, unknown>[] = [];
  for (const s of series) {
    const kls: number[] = [], rs: number[] = [];
    for (const t of s.group.members) {
      const k = trialMetric(t, kl), r = trialMetric(t, reward);
      if (k === null || r === null) continue;
      kls.push(k);
      rs.push(r);
      points.push({ series: s.label, id: t.id, seed: t.seed, kl: k, reward: r });
    }
    if (kls.length === 0) continue;
    const dk = describe(kls), dr = describe(rs);
    // Whiskers inside each metric's domain (a KL CI over two seeds ran to −10).
    const [klLo, klHi] = clampInterval(kl, ...(dk.ci95 ?? [dk.mean!, dk.mean!]), dk.mean!);
    const [rLo, rHi] = clampInterval(reward, ...(dr.ci95 ?? [dr.mean!, dr.mean!]), dr.mean!);
    means.push({
      series: s.label,
      rank: s.rank,
      n: dk.n,
      kl: dk.mean,
      reward: dr.mean,
      kl_lo: klLo,
      kl_hi: klHi,
      reward_lo: rLo,
      reward_hi: rHi,
    });
  }
  const color = colorEncoding(series, input.sweptKeys);
  const xTitle = `KL: ${kl}`, yTitle = `reward: ${reward}`;
  const x = { field: "kl", type: "quantitative" as const, title: xTitle, scale: { zero: false } };
  const y = {
    field: "reward",
    type: "quantitative" as const,
    title: yTitle,
    scale: { zero: false },
  };
  return {
    $schema: SCHEMA,
    title: {
      text: opts.title ?? `KL vs reward frontier, by ${keyTitle}`,
      subtitle: "circles: trials; diamonds: mean per setting, whiskers: 95% CI",
    },
    width: opts.width ?? 420,
    height: opts.height ?? 300,
    layer: [
      {
        data: { values: points },
        mark: { type: "point", opacity: 0.5, size: 40 },
        encoding: {
          x,
          y,
          color,
          tooltip: [{ field: "id", title: "trial" }, { field: "seed" }, {
            field: "kl",
            format: ".4g",
          }, { field: "reward", format: ".4g" }],
        },
      },
      {
        data: { values: means },
        mark: { type: "line", color: "#888", strokeDash: [4, 3] },
        encoding: { x, y, order: { field: "rank", type: "quantitative" } },
      },
      {
        data: { values: means },
        mark: { type: "rule" },
        encoding: { x: { ...x, field: "kl_lo" }, x2: { field: "kl_hi" }, y, color },
      },
      {
        data: { values: means },
        mark: { type: "rule" },
        encoding: { x, y: { ...y, field: "reward_lo" }, y2: { field: "reward_hi" }, color },
      },
      {
        data: { values: means },
        mark: { type: "point", filled: true, size: 150, shape: "diamond" },
        encoding: {
          x,
          y,
          color,
          tooltip: [{ field: "series", title: keyTitle }, { field: "n", title: "seeds" }, {
            field: "kl",
            format: ".4g",
          }, { field: "reward", format: ".4g" }],
        },
      },
    ],
  } as TopLevelSpec;
}

export interface DiagnosticsOptions {
  band?: BandKind;
  /** Panels per row (default 3). */
  columns?: number;
  width?: number;
  height?: number;
  title?: string;
}

/**
 * A panel of PPO diagnostics vs update (default clipfrac, entropy, explained_variance; only
 * the ones the trials log), one small curve chart per metric with a shared colour legend.
 * Throws when none of the metrics is logged.
 */
export function diagnosticsChart(
  input: ChartInput,
  metrics: readonly string[] = DIAGNOSTIC_METRICS,
  opts: DiagnosticsOptions = {},
): TopLevelSpec {
  requireTrials(input, "diagnostics");
  const logged = metrics.filter((m) => input.trials.some((t) => t.columns.includes(m)));
  if (logged.length === 0) {
    throw new Error(`diagnostics: the trials log none of ${metrics.join(", ")}`);
  }
  const series = seriesOf(input);
  const band = opts.band ?? "ci95";
  return {
    $schema: SCHEMA,
    title: {
      text: opts.title ?? `PPO diagnostics vs update, by ${sweptTitle(input.sweptKeys)}`,
      subtitle: BAND_TEXT[band],
    },
    columns: opts.columns ?? 3,
    concat: logged.map((m) => ({
      title: m,
      ...curveLayers(input, m, band, series, {
        width: opts.width ?? 240,
        height: opts.height ?? 170,
      }),
    })),
    resolve: { scale: { color: "shared" } },
  } as TopLevelSpec;
}
