/**
 * Report tables in markdown and CSV: a summary with one row per setting (combination of swept
 * values; seeds pooled: mean ± std, Student-t 95% CI, n seeds) and a per-trial listing
 * (trial id, swept values, seed, metrics, bundle hash).
 *
 * Markdown cells are rounded for reading (4 significant digits); CSV cells keep full
 * precision (JSON number text) so the numbers can be re-used.
 *
 * @example
 * ```ts
 * import { summaryTable, toMarkdown, toCsv } from "./tables.ts";
 * const t = summaryTable(kl, ["gold_score", "kl", "clipfrac:mean"]);
 * console.log(toMarkdown(t.markdown)); // | ppo.kl.beta | seeds | gold_score (mean ± std) | ...
 * await Deno.writeTextFile("summary.csv", toCsv(t.csv));
 * ```
 * @module
 */
import { fmtValue } from "../experiment/table.ts";
import { describe, type Described } from "./aggregate.ts";
import { type TrialBundle, trialMetric } from "./bundles.ts";
import { type ChartInput, seriesOf } from "./charts.ts";

/** A table: header cells and rows of cells (null: no value). */
export interface Table {
  headers: string[];
  rows: (string | number | null)[][];
}

/** One setting's statistics. */
export interface SummaryRow {
  /** Legend label of the setting (as in the charts). */
  series: string;
  /** The swept values. */
  values: Record<string, unknown>;
  /** Seeds of the trials in this setting. */
  seeds: (number | null)[];
  /** Per metric: statistics over the trials that have it. */
  stats: Record<string, Described>;
}

/** Per setting, {@link describe} of each metric ({@link trialMetric} conventions) over seeds. */
export function summaryRows(input: ChartInput, metrics: readonly string[]): SummaryRow[] {
  return seriesOf(input).map((s) => {
    const stats: Record<string, Described> = {};
    for (const m of metrics) {
      const vs = s.group.members.map((t) => trialMetric(t, m)).filter((v): v is number =>
        v !== null
      );
      stats[m] = describe(vs);
    }
    return {
      series: s.label,
      values: s.group.values,
      seeds: s.group.members.map((t) => t.seed),
      stats,
    };
  });
}

/** "mean ± std" (4 significant digits; the mean alone with one seed; "-" with none). */
export function formatMeanStd(d: Described): string {
  if (d.mean === null) return "-";
  return d.std === null ? fmtValue(d.mean) : `${fmtValue(d.mean)} ± ${fmtValue(d.std)}`;
}

/** "[lo, hi]" of the 95% CI, or "-" when it is unknown (fewer than 2 seeds). */
export function formatCi(d: Described): string {
  return d.ci95 ? `[${fmtValue(d.ci95[0])}, ${fmtValue(d.ci95[1])}]` : "-";
}

/**
 * The summary table, for reading (markdown: `metric (mean ± std)` and `metric 95% CI`
 * columns) and for re-use (CSV: `metric_mean`, `metric_std`, `metric_ci95_lo`,
 * `metric_ci95_hi`, `metric_n` at full precision). One row per setting.
 */
export function summaryTable(
  input: ChartInput,
  metrics: readonly string[],
): { markdown: Table; csv: Table; rows: SummaryRow[] } {
  const rows = summaryRows(input, metrics);
  const keys = [...input.sweptKeys];
  const seedCount = (r: SummaryRow) => r.seeds.length;
  const markdown: Table = {
    headers: [
      ...(keys.length ? keys : ["setting"]),
      "seeds",
      ...metrics.flatMap((m) => [`${m} (mean ± std)`, `${m} 95% CI`]),
    ],
    rows: rows.map((r) => [
      ...(keys.length ? keys.map((k) => fmtValue(r.values[k])) : [r.series]),
      seedCount(r),
      ...metrics.flatMap((m) => {
        const d = r.stats[m];
        // A metric some seeds lack says so, instead of silently averaging fewer.
        const note = d.n < seedCount(r) && d.n > 0 ? ` (n=${d.n})` : "";
        return [formatMeanStd(d) + note, formatCi(d)];
      }),
    ]),
  };
  const csv: Table = {
    headers: [
      ...keys,
      "seeds",
      ...metrics.flatMap((
        m,
      ) => [`${m}_mean`, `${m}_std`, `${m}_ci95_lo`, `${m}_ci95_hi`, `${m}_n`]),
    ],
    rows: rows.map((r) => [
      ...keys.map((k) => csvValue(r.values[k])),
      seedCount(r),
      ...metrics.flatMap((m) => {
        const d = r.stats[m];
        return [d.mean, d.std, d.ci95?.[0] ?? null, d.ci95?.[1] ?? null, d.n];
      }),
    ]),
  };
  return { markdown, csv, rows };
}

/**
 * One row per trial: trial id, swept values, seed, each metric, bundle hash (the first 12
 * hex digits in markdown, all of it in CSV, so a number can be traced to its bundle).
 */
export function trialsTable(
  input: ChartInput,
  metrics: readonly string[],
): { markdown: Table; csv: Table } {
  const keys = [...input.sweptKeys];
  const trials: TrialBundle[] = seriesOf(input).flatMap((s) => s.group.members);
  const values = (t: TrialBundle) => metrics.map((m) => trialMetric(t, m));
  return {
    markdown: {
      headers: ["trial", ...keys, "seed", ...metrics, "bundle"],
      rows: trials.map((t) => [
        t.id,
        ...keys.map((k) => fmtValue(t.swept[k])),
        t.seed,
        ...values(t).map((v) => (v === null ? "-" : fmtValue(v))),
        t.bundleHash.slice(0, 12),
      ]),
    },
    csv: {
      headers: ["trial", ...keys, "seed", ...metrics, "bundle_hash", "task", "code_version"],
      rows: trials.map((t) => [
        t.id,
        ...keys.map((k) => csvValue(t.swept[k])),
        t.seed,
        ...values(t),
        t.bundleHash,
        t.task,
        t.codeVersion,
      ]),
    },
  };
}

function csvValue(v: unknown): string | number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "number" || typeof v === "string") return v;
  return JSON.stringify(v);
}

/**
 * A GitHub-flavoured markdown table. Numbers are right-aligned; `|` and newlines in cells
 * are escaped so a cell never breaks the row.
 */
export function toMarkdown(table: Table): string {
  const cell = (v: string | number | null) =>
    v === null ? "-" : String(v).replaceAll("|", "\\|").replaceAll("\n", " ");
  const numeric = table.headers.map((_, i) =>
    table.rows.length > 0 &&
    table.rows.every((r) =>
      // A number, "-", or a number followed by a space ("1.2 ± 0.3"); not a hash like "6a88…".
      typeof r[i] === "number" || r[i] === null ||
      /^(-|[-+]?\d[\d.]*(e[-+]?\d+)?(\s.*)?)$/.test(String(r[i]))
    )
  );
  const lines = [
    `| ${table.headers.map(cell).join(" | ")} |`,
    `|${numeric.map((n) => (n ? " ---: " : " --- ")).join("|")}|`,
    ...table.rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ];
  return lines.join("\n") + "\n";
}

/**
 * RFC 4180 CSV (CRLF-free: `\n` line ends): cells with a comma, quote or newline are quoted,
 * quotes doubled; null is an empty cell; numbers are written as JSON writes them (full
 * precision, round-trip exact).
 */
export function toCsv(table: Table): string {
  const cell = (v: string | number | null) => {
    if (v === null) return "";
    const s = typeof v === "number" ? (Number.isFinite(v) ? JSON.stringify(v) : String(v)) : v;
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [table.headers, ...table.rows].map((r) => r.map(cell).join(",")).join("\n") + "\n";
}
