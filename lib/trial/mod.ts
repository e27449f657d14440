/**
 * The trial layer: what every kind of trial (an LM task in lib/tasks, a classic-control
 * environment in lib/envs) gives the experiment layer and gets back from it, below both of them
 * so that tasks and environments sit side by side.
 *
 * - `contract.ts`: {@link TrialKind} (schema, run, summarize, stages), the run context, progress;
 * - `context.ts`: {@link TrialContext}, what one trial owns (sessions, memo, stop), disposed at
 *   its end;
 * - `stage_cache.ts`: the one content-addressed cache of shared stages (SFT, reward model);
 * - `stage_process.ts` / `stage_child.ts`: a stage run in a child process of its own;
 * - `overrides.ts`: one default per config key, a task's different ones as a declared record;
 * - `resolve.ts`: a trial's config resolved once (planning), confirmed where it runs.
 *
 * @example
 * ```ts
 * import type { TrialKind } from "./mod.ts";
 * ```
 * @module
 */
export * from "./contract.ts";
export * from "./context.ts";
export * from "./stage_cache.ts";
export * from "./stage_process.ts";
export * from "./overrides.ts";
export * from "./resolve.ts";
