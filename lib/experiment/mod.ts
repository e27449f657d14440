/**
 * Experiments: declarative sweeps over any built-in task (or a kind the file defines),
 * content-addressed trials, hash-stamped result bundles, a resumable parallel runner and a
 * stage cache.
 *
 * @example
 * ```ts
 * import { defineExperiment, grid } from "./mod.ts";
 * export default defineExperiment({
 *   name: "clip",
 *   task: "CartPole-v1",
 *   base: { total_steps: 50_000 },
 *   sweep: grid({ "ppo.clip": [0.1, 0.2, 0.3], seed: [1, 2] }),
 *   metrics: ["return"],
 * });
 * ```
 * @module
 */
export * from "./hash.ts";
export * from "../suggest.ts";
export * from "./code_version.ts";
export * from "./sweep.ts";
export * from "./kinds.ts";
export * from "./tasks.ts";
export { ENV_METRIC_COLUMNS, type EnvTrialConfig } from "../envs/kind.ts";
export * from "../trial/stage_cache.ts";
export * from "./bundle.ts";
export * from "./spec.ts";
export * from "./trial.ts";
export * from "./runner.ts";
export * from "./executors/slurm/mod.ts";
export * from "./executors/executor.ts";
export * from "./executors/local.ts";
export * from "./table.ts";
export { lockTry, lockWait } from "../lock.ts";
