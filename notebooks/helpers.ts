/**
 * Small helpers the notebooks share: where the results are, displaying a chart as Vega-Lite
 * with a static PNG fallback in one output, markdown tables, and the two charts the library
 * has no builder for (a metric across experiments; a paper table, ours beside published).
 *
 * Everything else comes from lib/report (loading bundles, statistics, charts, rendering).
 * Run inside the Deno Jupyter kernel (`Deno.jupyter`); the kernel's working folder is
 * notebooks/ (cli/notebooks.ts pins it), so relative paths start there.
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import { findBundles } from "../lib/experiment/bundle.ts";
import { type ExperimentResults, renderChart, trialMetric } from "../lib/report/mod.ts";

/** The results root: `$PROXIMA_RESULTS` (set by `deno task notebooks`), else ../results. */
export function resultsRoot(): string {
  return (Deno.env.get("PROXIMA_RESULTS") ?? "../results").replace(/\/+$/, "");
}

/** The MIME type Jupyter frontends render Vega-Lite from (JupyterLab, VS Code, nteract). */
export const VEGALITE_MIME = "application/vnd.vegalite.v5+json";

/** Base64 of bytes (Jupyter wants image/png as base64 text). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function titleOf(spec: TopLevelSpec): string {
  const t = (spec as { title?: unknown }).title;
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && "text" in t) return String((t as { text: unknown }).text);
  return "chart";
}

/**
 * Display a Vega-Lite chart: the spec (interactive where the frontend renders Vega-Lite) and
 * the same chart rendered to PNG (the fallback everywhere else: classic Notebook, GitHub,
 * nbconvert) in ONE output, so the notebook shows exactly one picture per chart.
 * Awaited on purpose: the output is on its way before the cell reports that it finished.
 */
export async function show(spec: TopLevelSpec): Promise<void> {
  const { png } = await renderChart(spec);
  await Deno.jupyter.display({
    [VEGALITE_MIME]: spec as unknown as Deno.jupyter.VegaObject,
    "image/png": base64(png),
    "text/plain": `[chart: ${titleOf(spec)}]`,
  }, { raw: true });
}

/** Display markdown (a table, a note), with the same text as the plain-text fallback. */
export async function showMarkdown(markdown: string): Promise<void> {
  await Deno.jupyter.display({ "text/markdown": markdown, "text/plain": markdown }, { raw: true });
}

/**
 * What a notebook shows when its results do not exist yet: what to run, as a note, and (in a
 * cell tagged `plot`, `chart: true`) as a chart too, so the cell still has its picture and the
 * notebook runs clean instead of failing on a fresh checkout.
 *
 * @example
 * ```ts
 * if (kl === null) await showMissing("deno task sweep experiments/kl.ts", { chart: true });
 * ```
 */
export async function showMissing(command: string, opts: { chart?: boolean } = {}): Promise<void> {
  if (!opts.chart) {
    await showMarkdown(
      `**No results yet.** Run\n\n\`\`\`sh\n${command}\n\`\`\`\n\nthen run this notebook again.`,
    );
    return;
  }
  await show({
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "No results yet",
    width: 420,
    height: 90,
    data: {
      values: [{ y: 0, line: "Run this, then this notebook again:" }, { y: 1, line: command }],
    },
    mark: { type: "text", fontSize: 14 },
    encoding: {
      y: { field: "y", type: "ordinal", axis: null },
      text: { field: "line", type: "nominal" },
    },
  });
}

/** Whether `dir` holds at least one finished bundle (the experiment has results to show). */
export async function hasBundles(dir: string): Promise<boolean> {
  try {
    return (await findBundles(dir)).length > 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Experiment folders under the results root that hold at least one bundle, sorted. */
export async function listExperiments(root = resultsRoot()): Promise<string[]> {
  const names: string[] = [];
  try {
    await Deno.stat(root);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      `${root}: no such folder — run e.g. \`deno task sweep experiments/kl.ts\`, or set ` +
        "PROXIMA_RESULTS to the results root",
    );
  }
  for await (const e of Deno.readDir(root)) {
    if (!e.isDirectory || e.name.startsWith(".")) continue;
    const bundles = (await findBundles(`${root}/${e.name}`)).filter((b) =>
      b.slice(root.length + e.name.length + 2).split("/").length === 1
    );
    if (bundles.length) names.push(e.name);
  }
  return names.sort();
}

/**
 * One metric across experiments: a point per trial, coloured by its setting within the
 * experiment, and each setting's mean as a tick. Experiments that do not report the metric
 * are left out (and named in the subtitle).
 */
export function compareChart(
  experiments: readonly ExperimentResults[],
  metric: string,
): TopLevelSpec {
  const values: { experiment: string; setting: string; seed: number | null; value: number }[] = [];
  const missing: string[] = [];
  for (const e of experiments) {
    let any = false;
    for (const t of e.trials) {
      const v = trialMetric(t, metric);
      if (v === null) continue;
      any = true;
      const setting = e.sweptKeys.map((k) => `${k}=${JSON.stringify(t.swept[k])}`).join(", ");
      values.push({ experiment: e.name, setting: setting || "all", seed: t.seed, value: v });
    }
    if (!any) missing.push(e.name);
  }
  if (values.length === 0) {
    throw new Error(`compare: no experiment reports ${metric} (${missing.join(", ")})`);
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `${metric} across experiments`,
      subtitle: missing.length ? `not reported by: ${missing.join(", ")}` : "a point per trial",
    },
    data: { values },
    width: 420,
    height: 260,
    encoding: {
      y: { field: "experiment", type: "nominal", title: null },
      color: { field: "setting", type: "nominal", title: "setting" },
    },
    layer: [
      {
        mark: { type: "point", filled: true, opacity: 0.6 },
        encoding: {
          x: { field: "value", type: "quantitative", title: metric, scale: { zero: false } },
          yOffset: { field: "setting" },
          tooltip: [{ field: "setting" }, { field: "seed" }, { field: "value", format: ".4g" }],
        },
      },
      {
        mark: { type: "tick", thickness: 2, size: 14 },
        encoding: {
          x: { aggregate: "mean", field: "value", type: "quantitative" },
          yOffset: { field: "setting" },
        },
      },
    ],
  } as TopLevelSpec;
}

interface Stat {
  mean: number | null;
  std?: number | null;
}

/**
 * A chart of a `deno task reproduce` table (its table.json), ours beside the published
 * numbers, for the table shapes lib/report/reproduce.ts writes; null for any other shape.
 */
export function reproduceChart(json: Record<string, unknown>): TopLevelSpec | null {
  const rows = Array.isArray(json.rows) ? json.rows as Record<string, unknown>[] : null;
  if (!rows) return null;
  const quick = json.quick ? " (quick mode)" : "";
  const schema = "https://vega.github.io/schema/vega-lite/v6.json";
  if (json.table === "cleanrl-classic-control") {
    const values = rows.flatMap((r) =>
      (["ours", "cleanrl", "baselines"] as const).flatMap((who) => {
        const s = r[who] as Stat | undefined;
        if (!s || s.mean === null) return [];
        const std = s.std ?? 0;
        const source = who === "ours" ? "Proxima" : who === "cleanrl" ? "CleanRL" : "baselines";
        return [{ env: r.env, source, mean: s.mean, lo: s.mean - std, hi: s.mean + std }];
      })
    );
    return {
      $schema: schema,
      title: { text: `Episodic return: ours vs published${quick}`, subtitle: "mean ± std" },
      data: { values },
      facet: { column: { field: "env", type: "nominal", title: null } },
      resolve: { scale: { x: "independent" } },
      spec: {
        width: 260,
        height: 90,
        encoding: { y: { field: "source", type: "nominal", title: null } },
        layer: [
          {
            mark: { type: "rule" },
            encoding: {
              x: { field: "lo", type: "quantitative", title: "return" },
              x2: { field: "hi" },
            },
          },
          {
            mark: { type: "point", filled: true, size: 60 },
            encoding: {
              x: { field: "mean", type: "quantitative" },
              color: { field: "source", type: "nominal", legend: null },
            },
          },
        ],
      },
    } as TopLevelSpec;
  }
  if (json.table === "ppo-table1") {
    const values = rows.flatMap((r) =>
      ([["paper", r.paper], ["ours", r.ours]] as const).flatMap(([source, v]) =>
        typeof v === "number" ? [{ setting: r.label, source, score: v }] : []
      )
    );
    return {
      $schema: schema,
      title: { text: `Normalised score by surrogate objective${quick}`, subtitle: "paper vs ours" },
      data: { values },
      width: 360,
      height: { step: 18 },
      mark: { type: "point", filled: true, size: 60 },
      encoding: {
        y: {
          field: "setting",
          type: "nominal",
          sort: null,
          title: null,
          axis: { labelLimit: 320 },
        },
        x: { field: "score", type: "quantitative", title: "normalised score" },
        color: { field: "source", type: "nominal", title: null },
      },
    } as TopLevelSpec;
  }
  if (json.table === "ziegler-kl") {
    const values = rows.flatMap((r) => {
      const kl = (r.kl as Stat | undefined)?.mean;
      return (["rm_score", "gold_score"] as const).flatMap((m) => {
        const y = (r[m] as Stat | undefined)?.mean;
        return typeof kl === "number" && typeof y === "number"
          ? [{ setting: r.label, score: m, kl, value: y }]
          : [];
      });
    });
    return {
      $schema: schema,
      title: { text: `Reward vs KL${quick}`, subtitle: "a point per KL setting (mean over seeds)" },
      data: { values },
      width: 360,
      height: 240,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "kl", type: "quantitative", title: "KL(π‖π_ref)" },
        y: { field: "value", type: "quantitative", title: "score" },
        color: { field: "score", type: "nominal", title: null },
        order: { field: "kl" },
        tooltip: [{ field: "setting" }, { field: "kl", format: ".3g" }, {
          field: "value",
          format: ".3g",
        }],
      },
    } as TopLevelSpec;
  }
  return null;
}
