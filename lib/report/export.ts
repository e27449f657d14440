/**
 * Exports of finished bundles for other tools (`deno task export`, cli/export.ts):
 *
 * - `tensorboard`: one run per trial, `<out>/tensorboard/<trial-id>/events.out.tfevents.0.
 *   proxima-export.0` (with several experiments `<experiment>/<trial-id>`), one scalar event
 *   per metrics.jsonl row (lib/tensorboard: step = `update`, tag = column), and `runs.json`
 *   naming each run's experiment, swept values, seed and bundle hash. Bundles record no times,
 *   so every exported event has wall time 0: the bytes depend on the bundles alone.
 * - `csv` / `parquet`: one wide table `<out>/metrics.csv` / `<out>/metrics.parquet`, a row per
 *   metrics.jsonl row: `experiment`, `trial`, the swept keys (flattened, `ppo.kl.beta`),
 *   `seed`, then every metrics column (first-seen order; empty / null where a trial has no
 *   value). Parquet columns are INT32 where every value is an integer (update, step, seed),
 *   DOUBLE where every value is a number (or none is there), BOOLEAN where every value is a
 *   boolean, else STRING (JSON for arrays and objects); written by hyparquet-writer.
 *
 * Every output is written under a temporary name and renamed into place.
 *
 * @example
 * ```ts
 * const { files } = await exportResults(["results/kl"], { to: "csv" });
 * // ["results/kl/export/metrics.csv"]
 * ```
 * @module
 */
import { parquetWriteBuffer } from "hyparquet-writer";
import { canonicalJson, stableJson } from "../json.ts";
import { writeFileSynced, writeFolderAtomic } from "../fs.ts";
import { eventFileBytes, eventFileName } from "../tensorboard/mod.ts";
import { type ExperimentResults, loadResults, ReportError } from "./bundles.ts";
import { type Table, toCsv } from "./tables.ts";

/** What `--to` takes. */
export type ExportFormat = "tensorboard" | "csv" | "parquet";
export const EXPORT_FORMATS: readonly ExportFormat[] = ["tensorboard", "csv", "parquet"];

/** Options of {@link exportResults}. */
export interface ExportOptions {
  to: ExportFormat;
  /** Output folder (default `<experiment dir>/export`; required with several experiments). */
  out?: string;
  /** Recompute every bundle hash first (default true). */
  verify?: boolean;
}

/** Cells of the wide metrics table: numbers, strings, booleans, null. */
export type Cell = string | number | boolean | null;

/** The wide metrics table of {@link metricsTable}. */
export interface MetricsTable {
  headers: string[];
  rows: Cell[][];
}

const ID_COLUMNS = ["experiment", "trial"];

/**
 * One table of every metrics row of every trial: experiment, trial id, swept keys, seed, then
 * the metrics columns. A swept key that is also a metrics column is named `config.<key>`.
 */
export function metricsTable(exps: readonly ExperimentResults[]): MetricsTable {
  const trials = exps.flatMap((e) => e.trials);
  const metricCols: string[] = [];
  const seen = new Set<string>();
  for (const t of trials) {
    for (const r of t.rows) {
      for (const k of Object.keys(r)) if (!seen.has(k)) seen.add(k), metricCols.push(k);
    }
  }
  const swept = [...new Set(exps.flatMap((e) => e.sweptKeys))].sort();
  const sweptName = (k: string) =>
    seen.has(k) || ID_COLUMNS.includes(k) || k === "seed" ? `config.${k}` : k;
  const seedName = seen.has("seed") ? "config.seed" : "seed";
  const leaf = (v: unknown): Cell =>
    v === undefined || v === null
      ? null
      : typeof v === "number" || typeof v === "string" || typeof v === "boolean"
      ? v
      : canonicalJson(v);
  const rows: Cell[][] = [];
  for (const t of trials) {
    const head = [t.experiment, t.id, ...swept.map((k) => leaf(t.flat[k])), t.seed];
    for (const r of t.rows) rows.push([...head, ...metricCols.map((c) => leaf(r[c]))]);
  }
  return { headers: [...ID_COLUMNS, ...swept.map(sweptName), seedName, ...metricCols], rows };
}

/** The table as CSV (RFC 4180 quoting; null is an empty cell). */
export function metricsCsv(table: MetricsTable): string {
  const t: Table = {
    headers: table.headers,
    rows: table.rows.map((r) => r.map((c) => typeof c === "boolean" ? String(c) : c)),
  };
  return toCsv(t);
}

/** The table as a Parquet file (see the module doc for the column types). */
export function metricsParquet(table: MetricsTable): Uint8Array {
  const columnData = table.headers.map((name, j) => {
    const vals = table.rows.map((r) => r[j]);
    const present = vals.filter((v) => v !== null);
    if (present.every((v) => typeof v === "number")) {
      // Counters (update, step, seed) stay integers for pandas and SQL readers.
      const int = present.length > 0 &&
        present.every((v) => Number.isInteger(v) && Math.abs(v as number) < 2 ** 31);
      return { name, data: vals, type: int ? "INT32" as const : "DOUBLE" as const };
    }
    if (present.length && present.every((v) => typeof v === "boolean")) {
      return { name, data: vals, type: "BOOLEAN" as const };
    }
    const str = vals.map((v) => v === null ? null : typeof v === "string" ? v : JSON.stringify(v));
    return { name, data: str, type: "STRING" as const };
  });
  return new Uint8Array(parquetWriteBuffer({ columnData, createdBy: "proxima export" }));
}

/**
 * The TensorBoard export: relative path -> bytes (`<run>/events...` per trial, `runs.json`).
 * Run names are trial ids (with several experiments `<experiment>/<trial-id>`).
 */
export function tensorboardFiles(exps: readonly ExperimentResults[]): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const runs: Record<string, unknown> = {};
  const enc = new TextEncoder();
  for (const e of exps) {
    for (const t of e.trials) {
      const run = exps.length > 1 ? `${e.name}/${t.id}` : t.id;
      files.set(`${run}/${eventFileName(0, "proxima-export", 0)}`, eventFileBytes(t.rows, 0));
      runs[run] = {
        experiment: e.name,
        trial: t.id,
        task: t.task,
        swept: t.swept,
        seed: t.seed,
        bundle_hash: t.bundleHash,
        rows: t.rows.length,
      };
    }
  }
  files.set("runs.json", enc.encode(stableJson(runs)));
  return files;
}

/** What {@link exportResults} wrote. */
export interface ExportResult {
  out: string;
  /** Paths written (files; for tensorboard the folder). */
  files: string[];
  trials: number;
  rows: number;
  warnings: string[];
}

/** Load the bundles under `paths` and write them out in format `opts.to`. */
export async function exportResults(
  paths: readonly string[],
  opts: ExportOptions,
): Promise<ExportResult> {
  if (!EXPORT_FORMATS.includes(opts.to)) {
    throw new ReportError(
      `export: unknown format "${opts.to}" — use --to ${EXPORT_FORMATS.join(", --to ")}`,
    );
  }
  const exps = await loadResults(paths, { verify: opts.verify ?? true });
  if (exps.length > 1 && !opts.out) {
    throw new ReportError(
      `export: ${exps.length} experiment folders (${exps.map((e) => e.name).join(", ")}) — ` +
        `give --out DIR for their one export`,
    );
  }
  const out = (opts.out ?? `${exps[0].dir}/export`).replace(/\/+$/, "") || "/";
  const trials = exps.reduce((n, e) => n + e.trials.length, 0);
  const rows = exps.reduce((n, e) => n + e.trials.reduce((m, t) => m + t.rows.length, 0), 0);
  const warnings = exps.flatMap((e) => e.warnings);
  const written = opts.to === "tensorboard" ? `${out}/tensorboard` : `${out}/metrics.${opts.to}`;
  try {
    await Deno.mkdir(out, { recursive: true });
    if (opts.to === "tensorboard") {
      const files = tensorboardFiles(exps);
      await writeFolderAtomic(written, [...files], { who: "export", marker: "runs.json" });
    } else {
      const table = metricsTable(exps);
      await writeFileSynced(
        written,
        opts.to === "csv" ? metricsCsv(table) : metricsParquet(table),
      );
    }
  } catch (e) {
    throw new ReportError(
      `export: cannot write ${written}: ` +
        `${(e as Error).message.replace(`export: ${written}: `, "")} — choose another --out folder`,
    );
  }
  return { out, files: [written], trials, rows, warnings };
}
