/**
 * Trial kinds: what an experiment's `task` names. A kind has a zod config schema, a
 * `run(config, outDir, ctx)` that trains and writes `metrics.jsonl` and its final state into
 * outDir (resuming from outDir's checkpoints when `ctx.resume`), a `summarize` that turns
 * outDir into summary.json, and optional named stages for the stage cache. Classic control
 * (`CartPole-v1`, `Acrobot-v1`) is registered by `env_kind.ts`; the RLHF `sentiment` task
 * registers itself the same way when it lands:
 *
 * ```ts
 * registerTrialKind({ name: "sentiment", schema: SentimentSchema, stages: { sft, rm }, ... });
 * ```
 *
 * An experiment file may also pass a kind object as `task` (tests do): workers import the
 * experiment file, so the kind is registered there too.
 * @module
 */
import type { z } from "zod";
import type { StageDef, StageResult } from "./stages.ts";
import { suggestion } from "./suggest.ts";

/** Progress a kind reports while it runs. */
export interface TrialProgress {
  /** Units done (updates) and in total. */
  done: number;
  total: number;
  /** Environment steps / samples so far (for steps/s). */
  step?: number;
  /** A few numbers for the progress line (e.g. `{ return: 57.3 }`). */
  info?: Record<string, number | string | null>;
}

/** What the runner gives a kind's run(). */
export interface TrialRunContext {
  /** Continue from outDir's checkpoints if there are any. */
  resume: boolean;
  threads: number;
  device: "cpu" | "cuda";
  onProgress(p: TrialProgress): void;
  /** Output folder of a named stage for `config`, computed once and cached across trials. */
  stage(name: string, config: unknown): Promise<StageResult>;
}

/** One registered task or environment. */
// deno-lint-ignore no-explicit-any
export interface TrialKind<C extends Record<string, any> = any> {
  /** Canonical task name (what config.json records). */
  name: string;
  /** Other accepted names, matched case-insensitively. */
  aliases?: string[];
  description: string;
  /** The trial config (strict object; defaults filled by parsing). */
  schema: z.ZodObject;
  /** Hints for keys that are not config keys of this kind but look like they could be. */
  keyHints?: Record<string, string>;
  /** Cross-key checks after parsing: returns problems as {key, cause, fix}. */
  check?(config: C): { key: string; cause: string; fix: string }[];
  /**
   * Files or folders a trial reads besides its config (a starting policy, a reward model, a
   * prompts file), by config key. Planning refuses a missing one, naming the key, and puts
   * the sha256 of each one's content into the trial identity, so a changed model folder is a
   * new trial rather than a stale "done".
   */
  inputs?(config: C): { key: string; path: string }[];
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
  stages?: Record<string, StageDef>;
}

export interface TrialSummary {
  metrics: Record<string, number | string | null>;
  last?: Record<string, number | string | null>;
  mean?: Record<string, number | null>;
  [k: string]: unknown;
}

const KINDS = new Map<string, TrialKind>();

/** Register a kind (re-registering the same object is a no-op; another one by the same name is refused). */
export function registerTrialKind<C extends Record<string, unknown>>(
  kind: TrialKind<C>,
): TrialKind<C> {
  for (const n of [kind.name, ...(kind.aliases ?? [])]) {
    const prev = KINDS.get(n.toLowerCase());
    if (prev && prev !== kind) {
      throw new Error(`trial kind "${n}" is already registered (by ${prev.name})`);
    }
  }
  for (const n of [kind.name, ...(kind.aliases ?? [])]) KINDS.set(n.toLowerCase(), kind);
  return kind;
}

/** The kind for a task name or alias (case-insensitive), or null. */
export function findTrialKind(name: string): TrialKind | null {
  return KINDS.get(String(name).toLowerCase()) ?? null;
}

/** Canonical names of all registered kinds. */
export function trialKindNames(): string[] {
  return [...new Set([...KINDS.values()].map((k) => k.name))].sort();
}

/** Error text for an unknown task. */
export function unknownTaskMessage(name: string): { cause: string; fix: string } {
  const all = [...KINDS.keys()];
  const names = trialKindNames();
  const s = suggestion(String(name), [...names, ...all]);
  return {
    cause: `unknown task ${JSON.stringify(name)}${s}`,
    fix: `use one of the registered tasks: ${names.join(", ")}`,
  };
}
