/**
 * The task contract: what a task (an RLHF task here, a classic-control environment in
 * lib/envs) gives the experiment layer, and what the experiment layer gives it back. Tasks and
 * environments build {@link TrialKind}s against these types; lib/experiment imports them (it
 * plans, runs and summarises trials of any kind) and never the other way round.
 *
 * A kind has a zod config schema, a `run(config, outDir, ctx)` that trains and writes
 * `metrics.jsonl` and its final state into outDir (resuming from outDir's checkpoints when
 * `ctx.resume`), a `summarize` that turns outDir into summary.json, and optional named
 * {@link StageDef}s: expensive outputs many trials share (SFT, reward model), which the run
 * asks for through `ctx.stage(name, config)` and the stage cache (lib/trial/stage_cache.ts)
 * computes once per config.
 *
 * @example
 * ```ts
 * const kind: TrialKind<{ seed: number }> = {
 *   name: "dummy", description: "...", schema: z.object({ seed: z.number() }).strict(),
 *   work: () => ({ total: 1, unit: "updates", steps: 1 }),
 *   finalFiles: ["final.bin"],
 *   async run(c, outDir, ctx) { ... },
 *   async summarize(outDir) { return { metrics: {} }; },
 *   metricNames: { named: {}, columns: [] },
 * };
 * ```
 * @module
 */
import type { z } from "zod";
import type { StopToken } from "../ppo/stop.ts";
import type { DefaultOverrides } from "./overrides.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import type { TrialContext } from "./context.ts";

/** Progress a kind reports while it runs. */
export interface TrialProgress {
  /** Units done (updates) and in total. */
  done: number;
  total: number;
  /** Environment steps / samples so far (for steps/s). */
  step?: number;
  /** A few numbers for the progress line (e.g. `{ return: 57.3 }`). */
  info?: Record<string, number | string | null>;
  /** The whole metrics.jsonl row of the update just done (for live logs: TensorBoard). */
  row?: Readonly<Record<string, number | string | null>>;
}

/** Session options of a stage run (the experiment runner passes both), and its owner's memo. */
export interface StageContext {
  threads?: number;
  device?: "cpu" | "cuda";
  /**
   * Where the stage's sessions are cached: one made for the stage run and disposed when it
   * ends (lib/trial/stage_cache.ts). Absent: the process-wide cache.
   */
  sessions?: SessionCache;
  /**
   * The calling trial's memo ({@link TrialContext.memo}): outputs of earlier stages the trial
   * holds in memory (absent in a stage's child process, which then recomputes them).
   */
  memo?: Map<string, unknown>;
}

/** A cacheable stage. run() writes its outputs into outDir (which holds only config.json). */
export interface StageDef<C = unknown> {
  name: string;
  description?: string;
  schema: z.ZodType<C>;
  run(config: C, outDir: string, ctx: StageContext): Promise<void>;
}

/** A stage's output folder, as the stage cache hands it out. */
export interface StageResult {
  name: string;
  /** The stage's content hash (what its folder is named). */
  hash: string;
  dir: string;
  /** true when the folder already existed (nothing was computed). */
  cached: boolean;
}

/** One stage a trial will ask `ctx.stage` for: its name and config. */
export interface StageRequest {
  name: string;
  config: unknown;
}

/** Where stage folders come from: `(name, config) -> its folder` (computed once per config). */
export type StageFn = (name: string, config: unknown) => Promise<StageResult>;

/** What the runner gives a kind's run(). */
export interface TrialRunContext {
  /** Continue from outDir's checkpoints if there are any. */
  resume: boolean;
  threads: number;
  device: "cpu" | "cuda";
  onProgress(p: TrialProgress): void;
  /** Output folder of a named stage for `config`, computed once and cached across trials. */
  stage: StageFn;
  /**
   * A stop request (a requeue, a time limit), passed on to the trainer: it checkpoints after
   * the current update and throws `StopRequested` (lib/ppo/stop.ts). Absent: never asked.
   */
  stop?: StopToken;
  /**
   * The trial's own resources (compiled sessions, in-memory stage outputs), made by the runner
   * for this trial and disposed when it ends: pass `trial.sessions` down in session options.
   * Absent (a test calling run directly): process-wide defaults.
   */
  trial?: TrialContext;
}

/** Summary of a finished run (summary.json). */
export interface TrialSummary {
  metrics: Record<string, number | string | null>;
  last?: Record<string, number | string | null>;
  mean?: Record<string, number | null>;
  [k: string]: unknown;
}

/**
 * What one planning pass shares between its `validate` calls: inputs a kind read for one
 * trial (a tokenizer, tokenized prompts, a model's config and headers, never weights), by a
 * key the kind chooses, for the next trial with the same inputs. Made per plan and dropped
 * with it, so nothing read at planning outlives it.
 */
export interface PlanContext {
  memo: Map<string, Promise<unknown>>;
}

/** One task or environment, as experiments name it. */
// deno-lint-ignore no-explicit-any
export interface TrialKind<C extends Record<string, any> = any> {
  /** Canonical task name (what config.json records). */
  name: string;
  /** Other accepted names, matched case-insensitively. */
  aliases?: string[];
  description: string;
  /** The trial config (strict object; defaults filled by parsing). */
  schema: z.ZodObject;
  /**
   * The defaults this kind's schema gives differently from the base ones (dotted key ->
   * value), declared beside its schema and applied with `withOverrides`
   * (lib/trial/overrides.ts); listed by `deno task train --help`. Absent: none.
   */
  overrides?: DefaultOverrides;
  /** Hints for keys that are not config keys of this kind but look like they could be. */
  keyHints?: Record<string, string>;
  /**
   * Before parsing: fill what the raw config's named parts imply (an LM task's `method` record:
   * lib/ppo/methods), returning the filled config and contradictions as {key, cause, fix}.
   */
  resolve?(raw: Record<string, unknown>): {
    config: Record<string, unknown>;
    problems: { key: string; cause: string; fix: string }[];
  };
  /** Cross-key checks after parsing: returns problems as {key, cause, fix}. */
  check?(config: C): { key: string; cause: string; fix: string }[];
  /**
   * Files or folders a trial reads besides its config (a starting policy, a reward model, a
   * prompts file), by config key. Planning refuses a missing one, naming the key, and puts
   * the sha256 of each one's content into the trial identity, so a changed model folder is a
   * new trial rather than a stale "done".
   */
  inputs?(config: C): { key: string; path: string }[];
  /**
   * Reads and checks the inputs (files, folders) of a config before any trial starts: what a
   * synchronous `check` cannot (a prompt longer than the context, a reward model with another
   * tokenizer). Planning calls it for each trial with one {@link PlanContext}, so trials
   * that share inputs read them once; problems as {key, cause, fix}.
   */
  validate?(
    config: C,
    ctx?: PlanContext,
  ): Promise<{ key: string; cause: string; fix: string }[]>;
  /** Work of one trial: `total` units (e.g. updates) of `steps` environment steps / samples each (progress bars, steps/s, ETA). */
  work(config: C): { total: number; unit: string; steps: number };
  /** Files (relative to outDir) holding the final state after run(); they end in checkpoints/. */
  finalFiles: string[];
  run(config: C, outDir: string, ctx: TrialRunContext): Promise<void>;
  /**
   * Summary of a finished run (deterministic: no times): `metrics` (named numbers), and
   * optionally `last` (last metrics row) and `mean` (column means over the run).
   */
  summarize(outDir: string, config: C): Promise<TrialSummary>;
  /** Metric names an experiment may list: named metrics and metrics.jsonl columns. */
  metricNames: { named: Record<string, string>; columns: string[] };
  /** The stages `run` may ask `ctx.stage` for, by name. */
  stages?: Record<string, StageDef>;
  /**
   * The stages a trial of `config` will ask `ctx.stage` for (names and configs, in order),
   * declared rather than found by running it: what a cluster's stages job builds once before
   * the trials (lib/experiment/trial.ts `prepareStages`). Absent: each trial builds its own,
   * under the stage cache's locks.
   */
  stagesFor?(config: C): StageRequest[];
}
