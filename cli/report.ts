/**
 * `deno task report results/<experiment> [more dirs] [--metric m ...] [--out dir]` — turn an
 * experiment's result bundles into a report: `report.md` (summary, plots, per-trial table),
 * `summary.md/.csv`, `trials.md/.csv`, and `plots/<chart>.svg`, `.png` and `.vl.json` (the
 * Vega-Lite spec, for notebooks). Written next to the bundles (`results/<experiment>/report/`)
 * unless `--out` says otherwise; the folder is built under a temporary name and renamed into
 * place, so a reader never sees half a report. The output has no timestamps: the same
 * bundles give the same report.
 *
 * Exit status: 0 written, 2 a usage error or unusable input (the message names the path and
 * the fix).
 * @module
 */
import { fsyncDir, publishDir } from "../lib/experiment/bundle.ts";
import { didYouMean } from "../lib/suggest.ts";
import { fmtValue } from "../lib/experiment/table.ts";
import { exists } from "../lib/fs.ts";
import {
  type BandKind,
  curveChart,
  defaultCurveMetrics,
  DIAGNOSTIC_METRICS,
  diagnosticsChart,
  type ExperimentResults,
  finalChart,
  firstPresent,
  FRONTIER_KL_CANDIDATES,
  FRONTIER_REWARD_CANDIDATES,
  frontierChart,
  hasColumn,
  hasMetric,
  loadResults,
  renderChart,
  type RenderOptions,
  ReportError,
  summaryTable,
  toCsv,
  toMarkdown,
  trialsTable,
} from "../lib/report/mod.ts";
import type { TopLevelSpec } from "vega-lite";
import { UsageError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";
import { parseFlags as parseCommandFlags } from "./flags.ts";
import { checkOutputDir } from "./preflight.ts";

const HELP = `Usage: deno task report <results/experiment> [<dir> ...] [flags]

Writes report.md, summary/trials tables (.md, .csv) and plots (.svg, .png, .vl.json) for the
trial bundles of each experiment folder (or of every experiment under a results root).
Seeds are pooled per setting of the swept keys (config keys whose values differ across the
bundles, seed excluded): mean, sample std and Student-t 95% CI.

Flags:
  --metric <m>   a metric to plot and tabulate (repeat for more). A metrics.jsonl column
                 (kl_ref, episodic_return) gets a curve vs update; every metric gets a
                 final-value chart and table columns. Per trial, <m> is a named metric of
                 summary.json (gold_score, return, kl) or else the column's last value;
                 <m>:mean is the column's mean over the run.
                 Default: picked by what the bundles log (RLHF: gold_score, rm_score, kl_ref;
                 env runs: episodic_return).
  --out <dir>    where to write (default: <experiment dir>/report; with several experiments,
                 <dir>/<experiment>)
  --band <kind>  curve bands: ci95 (default), std, none
  --no-verify    skip recomputing every bundle's hashes (faster; default: verify)
  --help`;

/** What a report is made of. */
export interface ReportOptions {
  /** Metrics to plot and tabulate (default: picked by what the bundles log). */
  metrics?: string[];
  /** Output folder (default `<experiment dir>/report`; several experiments: `<out>/<name>`). */
  out?: string;
  band?: BandKind;
  /** Recompute every bundle hash first (default true). */
  verify?: boolean;
  render?: RenderOptions;
}

/** One report written. */
export interface WrittenReport {
  experiment: string;
  /** The report folder. */
  dir: string;
  /** Files in it (relative, sorted). */
  files: string[];
  warnings: string[];
}

/** Which metrics go where in one experiment's report. */
export interface MetricPlan {
  /** metrics.jsonl columns plotted against update. */
  curves: string[];
  /** Per-trial metrics in the tables. */
  table: string[];
  /** Per-trial metrics charted against the swept value. */
  finals: string[];
  frontier: { kl: string; reward: string } | null;
  diagnostics: string[];
}

const BOOKKEEPING = new Set(["steps", "updates", "episodes"]);

/** Decide the metrics of a report; unknown requested metrics fail with the available names. */
export function planMetrics(exp: ExperimentResults, requested: readonly string[] = []): MetricPlan {
  const { trials } = exp;
  const base = (m: string) => m.replace(/:(mean|last)$/, "");
  const kl = firstPresent(trials, FRONTIER_KL_CANDIDATES);
  const reward = firstPresent(trials, FRONTIER_REWARD_CANDIDATES);
  const frontier = kl && reward ? { kl, reward } : null;
  const diagnostics = DIAGNOSTIC_METRICS.filter((m) => hasColumn(trials, m));
  if (requested.length) {
    for (const m of requested) {
      if (!hasMetric(trials, m) && !hasColumn(trials, base(m))) {
        const names = availableMetrics(exp);
        const close = didYouMean(m, names);
        throw new ReportError(
          `${exp.dir}: no trial has metric "${m}"${close ? ` (did you mean "${close}"?)` : ""} — ` +
            `use one of: ${names.join(", ")} (a column also as <column>:mean)`,
        );
      }
    }
    const curves = [...new Set(requested.map(base).filter((c) => hasColumn(trials, c)))];
    return { curves, table: [...requested], finals: [...requested], frontier, diagnostics };
  }
  const named = [...new Set(trials.flatMap((t) => Object.keys(t.summary.metrics ?? {})))]
    .filter((m) => !BOOKKEEPING.has(m) && hasMetric(trials, m));
  const table = [...named];
  for (const m of [kl, ...DIAGNOSTIC_METRICS.map((d) => `${d}:mean`)]) {
    if (m && !table.includes(m) && hasMetric(trials, m)) table.push(m);
  }
  return {
    curves: defaultCurveMetrics(trials),
    table,
    finals: frontier ? [frontier.reward, frontier.kl] : named.slice(0, 2),
    frontier,
    diagnostics,
  };
}

/** Metric names the trials have: summary.json named metrics, then metrics.jsonl columns. */
export function availableMetrics(exp: ExperimentResults): string[] {
  const named = exp.trials.flatMap((t) => Object.keys(t.summary.metrics ?? {}));
  const cols = exp.trials.flatMap((t) => t.columns);
  return [...new Set([...named, ...cols])];
}

/** A metric name as a file name part (`reward/total` -> `reward_total`, `kl:mean` -> `kl_mean`). */
export function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]+/g, "_");
}

/** The files of one experiment's report, by relative path (nothing written yet). */
export async function buildReport(
  exp: ExperimentResults,
  opts: ReportOptions = {},
): Promise<Map<string, string | Uint8Array>> {
  const plan = planMetrics(exp, opts.metrics);
  const files = new Map<string, string | Uint8Array>();
  const band = opts.band ?? "ci95";
  const charts: { name: string; title: string; spec: TopLevelSpec }[] = [];
  for (const m of plan.curves) {
    charts.push({
      name: `curve-${fileSafe(m)}`,
      title: `${m} vs update`,
      spec: curveChart(exp, m, { band }),
    });
  }
  if (plan.frontier) {
    charts.push({
      name: "frontier",
      title: `KL (${plan.frontier.kl}) vs reward (${plan.frontier.reward})`,
      spec: frontierChart(exp, plan.frontier.kl, plan.frontier.reward),
    });
  }
  for (const m of plan.finals) {
    charts.push({
      name: `final-${fileSafe(m)}`,
      title: `${m} by ${exp.sweptKeys.join(", ") || "trial"}`,
      spec: finalChart(exp, m),
    });
  }
  if (plan.diagnostics.length) {
    charts.push({
      name: "diagnostics",
      title: `PPO diagnostics (${plan.diagnostics.join(", ")})`,
      spec: diagnosticsChart(exp, plan.diagnostics, { band }),
    });
  }
  for (const c of charts) {
    const { svg, png } = await renderChart(c.spec, opts.render);
    files.set(`plots/${c.name}.svg`, svg);
    files.set(`plots/${c.name}.png`, png);
    files.set(`plots/${c.name}.vl.json`, JSON.stringify(c.spec, null, 2) + "\n");
  }

  const summary = summaryTable(exp, plan.table);
  const trials = trialsTable(exp, plan.table);
  files.set("summary.md", toMarkdown(summary.markdown));
  files.set("summary.csv", toCsv(summary.csv));
  files.set("trials.md", toMarkdown(trials.markdown));
  files.set("trials.csv", toCsv(trials.csv));

  const seedsPer = [...new Set(summary.rows.map((r) => r.seeds.length))].sort((a, b) => a - b);
  const md: string[] = [
    `# ${exp.name}: report`,
    "",
    `- bundles: \`${exp.dir}\` (${exp.trials.length} trial${exp.trials.length === 1 ? "" : "s"}` +
    `${opts.verify === false ? "" : ", every hash verified"})`,
    `- task: ${exp.tasks.join(", ")}`,
    `- swept: ${
      exp.sweptKeys.length
        ? exp.sweptKeys.map((k) =>
          `\`${k}\` ∈ {${[...new Set(summary.rows.map((r) => fmtValue(r.values[k])))].join(", ")}}`
        ).join(", ")
        : "nothing (one setting)"
    }; ${summary.rows.length} setting${summary.rows.length === 1 ? "" : "s"} × ` +
    `${seedsPer.join("–")} seed${seedsPer.at(-1) === 1 ? "" : "s"}`,
    `- code version: ${exp.codeVersions.join(", ")}`,
    "",
    "Seeds are pooled per setting: mean ± sample std (n − 1), and the Student-t 95% " +
    "confidence interval of the mean (mean ± t(0.975, n − 1) · std / √n; unknown with one " +
    "seed). Per trial, a metric is the summary.json value of that name, else the last logged " +
    "value of the metrics.jsonl column; `<column>:mean` is the column's mean over the run.",
    "",
  ];
  for (const w of exp.warnings) md.push(`> **Note:** ${w}`, "");
  md.push("## Summary", "", toMarkdown(summary.markdown).trimEnd(), "");
  md.push("CSV (full precision): [summary.csv](summary.csv)", "");
  md.push("## Plots", "");
  for (const c of charts) {
    md.push(`### ${c.title}`, "", `![${c.title}](plots/${c.name}.png)`, "");
    md.push(
      `[SVG](plots/${c.name}.svg) · [Vega-Lite spec](plots/${c.name}.vl.json)`,
      "",
    );
  }
  md.push("## Trials", "", toMarkdown(trials.markdown).trimEnd(), "");
  md.push(
    "CSV with full bundle hashes: [trials.csv](trials.csv). Check the bundles with " +
      `\`deno task verify ${exp.dir}\`.`,
    "",
  );
  files.set("report.md", md.join("\n"));
  return files;
}

/** Load, build and write the report of every experiment under `paths` (atomically each). */
export async function writeReports(
  paths: readonly string[],
  opts: ReportOptions = {},
): Promise<WrittenReport[]> {
  const exps = await loadResults(paths, { verify: opts.verify ?? true });
  const outs = exps.map((e) =>
    opts.out
      ? (exps.length > 1 ? `${opts.out.replace(/\/+$/, "")}/${e.name}` : opts.out)
      : `${e.dir}/report`
  );
  const dup = outs.find((o, i) => outs.indexOf(o) !== i);
  if (dup) {
    throw new ReportError(
      `two experiments named ${JSON.stringify(baseName(dup))} would both write ${dup} — ` +
        `report them one at a time with separate --out folders`,
    );
  }
  const written: WrittenReport[] = [];
  for (const [i, exp] of exps.entries()) {
    const files = await buildReport(exp, opts);
    await writeDirAtomically(outs[i].replace(/\/+$/, ""), files);
    written.push({
      experiment: exp.name,
      dir: outs[i],
      files: [...files.keys()].sort(),
      warnings: exp.warnings,
    });
  }
  return written;
}

/**
 * Write `files` as the whole content of folder `dir`: built in a hidden sibling, fsynced,
 * renamed into place; an existing `dir` is moved aside first and removed after, so `dir`
 * holds the old report or the new one, never a mix.
 */
export async function writeDirAtomically(
  dir: string,
  files: Map<string, string | Uint8Array>,
): Promise<void> {
  const parent = dir.includes("/") ? dir.replace(/\/[^/]*$/, "") || "/" : ".";
  const name = baseName(dir);
  await Deno.mkdir(parent, { recursive: true });
  const tmp = `${parent}/.${name}.tmp-${Deno.pid}`;
  const old = `${parent}/.${name}.old-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  try {
    for (const [rel, data] of files) {
      const path = `${tmp}/${rel}`;
      await Deno.mkdir(path.replace(/\/[^/]*$/, ""), { recursive: true });
      if (typeof data === "string") await Deno.writeTextFile(path, data);
      else await Deno.writeFile(path, data);
    }
    const hadOld = await exists(dir);
    if (hadOld) await Deno.rename(dir, old);
    try {
      await publishDir(tmp, dir);
    } catch (e) {
      if (hadOld) await Deno.rename(old, dir).catch(() => {});
      throw e;
    }
    if (hadOld) {
      await Deno.remove(old, { recursive: true });
      await fsyncDir(parent);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

function baseName(path: string): string {
  return path.replace(/\/+$/, "").split("/").at(-1) || path;
}

function parseFlags(args: string[]) {
  const parsed = parseCommandFlags("report", args, {
    metric: { type: "string", multiple: true },
    out: { type: "string" },
    band: { type: "string" },
    "no-verify": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, { allowPositionals: true });
  const { values, positionals } = parsed;
  const band = values.band ?? "ci95";
  if (!["ci95", "std", "none"].includes(band)) {
    throw new UsageError(`report: --band must be ci95, std or none (got "${band}")`);
  }
  return {
    paths: positionals,
    metrics: values.metric?.flatMap((m) => m.split(",")).map((m) => m.trim()).filter(Boolean),
    out: values.out,
    band: band as BandKind,
    verify: !values["no-verify"],
    help: Boolean(values.help),
  };
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (flags.paths.length === 0) {
    throw new UsageError(
      `report: give an experiment folder, e.g. deno task report results/kl\n\n${HELP}`,
    );
  }
  if (flags.out !== undefined) await checkOutputDir("report", "--out", flags.out);
  const written = await writeReports(flags.paths, {
    metrics: flags.metrics,
    out: flags.out,
    band: flags.band,
    verify: flags.verify,
  });
  for (const w of written) {
    for (const warning of w.warnings) console.error(`note: ${warning}`);
    console.log(`${w.experiment}: wrote ${w.dir}/ (${w.files.length} files)`);
    for (const f of w.files) console.log(`  ${w.dir}/${f}`);
  }
  return 0;
}

if (import.meta.main) await runCommand(() => main(Deno.args));
