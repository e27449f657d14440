/**
 * The live dashboard (`deno task dashboard [results/]`): a local web page that lists the
 * experiments and trials of a results folder, plots any metric with seed bands, the KL–reward
 * frontier and PPO diagnostics (lib/report's Vega-Lite specs, drawn in the browser by vega
 * served from node_modules), shows evaluation samples before and after training and the
 * `reproduce` paper tables, and follows running trials' metrics.jsonl as rows are appended.
 * Read-only: nothing is written into the results folder.
 *
 * @example
 * ```ts
 * import { startDashboard } from "./mod.ts";
 * const d = await startDashboard({ root: "results", hostname: "127.0.0.1", port: 8787 });
 * console.log(`open ${d.url}`);
 * ```
 * @module
 */
export * from "./assets.ts";
export * from "./data.ts";
export * from "./live.ts";
export * from "./server.ts";
export * from "./views.ts";
