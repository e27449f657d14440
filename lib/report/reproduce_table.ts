/**
 * What every paper table of `deno task reproduce` shares: the shape of a table (its experiment
 * files, the trials it sees, what it builds) and the formatting that keeps its bytes fixed
 * (fixed decimals, mean ± std, markdown). The tables themselves live in reproduce.ts,
 * cleanrl_table.ts, methods_table.ts and rlvr_table.ts, which all import this module (so no
 * table imports reproduce.ts back).
 * @module
 */
import type { Point, TrialSummary } from "../experiment/mod.ts";
import type { TrialResources } from "../tasks/resources.ts";
import { describe, type Described } from "./aggregate.ts";
import type { Citation } from "./papers.ts";

/** One experiment file behind a table, and how `--quick` shrinks it. */
export interface ReproduceExperimentRef {
  /** The experiment file, relative to the repository root. */
  file: string;
  /** `--quick`: config overrides for every trial (like `--set`) and the seeds kept. */
  quick: { set: Record<string, unknown>; seeds: number[] };
}

/** A finished (or failed) trial as a table sees it. */
export interface ReproduceTrial {
  /** Experiment name (results/<experiment>/). */
  experiment: string;
  /** The task (canonical name). */
  task: string;
  /** The swept values of the trial (dotted keys, seed included). */
  point: Point;
  seed: number;
  /** The resolved config. */
  config: Record<string, unknown>;
  /** Summary of a finished trial; null if it failed or was interrupted. */
  summary: TrialSummary | null;
  /** The bundle's resources.json (wall time, peak RSS, models), when the trial measured them. */
  resources?: TrialResources | null;
  /** Its planned work: updates (`total`) and samples per update (`steps`). */
  work?: { total: number; unit: string; steps: number };
}

/** What a table's build gets. */
export interface ReproduceContext {
  quick: boolean;
  trials: ReproduceTrial[];
}

/** A built table: markdown (what is printed) and the same numbers as JSON. */
export interface ReproduceTableResult {
  markdown: string;
  json: Record<string, unknown>;
}

export interface ReproduceTableDef {
  name: string;
  title: string;
  /** One line for `--list`. */
  summary: string;
  experiments: ReproduceExperimentRef[];
  build(ctx: ReproduceContext): ReproduceTableResult;
}

/** A number with fixed decimals ("-" for null); −0 prints as 0. */
export function fixed(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "-";
  const s = v.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** "mean ± std" ("mean" alone for one value, "-" for none). */
export function meanStd(d: Described, digits = 2): string {
  if (d.mean === null) return "-";
  return d.std === null
    ? fixed(d.mean, digits)
    : `${fixed(d.mean, digits)} ± ${fixed(d.std, digits)}`;
}

/** A GitHub-flavoured markdown table; `right` marks right-aligned (numeric) columns. */
export function markdownTable(headers: string[], rows: string[][], right: boolean[] = []): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const line = (cells: string[]) => `| ${cells.map(esc).join(" | ")} |`;
  return [
    line(headers),
    `|${headers.map((_, i) => (right[i] ? "---:" : ":---")).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

export const cite = (c: Citation) => `${c.full}. ${c.where}. <${c.url}>`;

/** JSON-safe Described (numbers kept at full precision). */
export const stats = (d: Described) => ({ n: d.n, mean: d.mean, std: d.std });

export function metricOf(t: ReproduceTrial, name: string): number | null {
  const v = t.summary?.metrics?.[name];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** describe() of a metric over trials, skipping trials without it. */
export function over(trials: ReproduceTrial[], f: (t: ReproduceTrial) => number | null): Described {
  return describe(trials.map(f).filter((v): v is number => v !== null));
}

export const seedsOf = (trials: ReproduceTrial[]) =>
  [...new Set(trials.map((t) => t.seed))].sort((a, b) => a - b);

export function failedNote(trials: ReproduceTrial[]): string[] {
  const failed = trials.filter((t) => !t.summary);
  if (!failed.length) return [];
  return [
    "",
    `**${failed.length} trial(s) did not finish** and are left out of the numbers above: ` +
    failed.map((t) =>
      `${t.task} ${Object.entries(t.point).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}`
    ).join("; ") + ".",
  ];
}
