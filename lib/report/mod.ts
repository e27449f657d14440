/**
 * Reports: load result bundles, aggregate across seeds, and turn them into markdown/CSV
 * tables and Vega-Lite charts rendered headless to SVG and PNG. `deno task report` (cli/report.ts)
 * puts it together for one or more experiment folders.
 *
 * @example
 * ```ts
 * import {
 *   curveChart, loadExperimentResults, renderChart, summaryTable, toMarkdown,
 * } from "./mod.ts";
 * const kl = await loadExperimentResults("results/kl", { verify: true });
 * console.log(toMarkdown(summaryTable(kl, ["gold_score", "kl"]).markdown));
 * const { svg, png } = await renderChart(curveChart(kl, "kl_ref"));
 * ```
 * @module
 */
export * from "./aggregate.ts";
export * from "./bundles.ts";
export * from "./charts.ts";
export * from "./domains.ts";
export * from "./render.ts";
export * from "./tables.ts";
export * from "./papers.ts";
export * as reproduce from "./reproduce.ts";
export * from "./export.ts";
