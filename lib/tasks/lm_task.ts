/**
 * `defineLmTask`: a language-model task from its parts — a config schema, its stages, a
 * problem builder, an evaluation, a summary and the progress columns — as one trial function
 * and one trial kind (lib/trial/contract.ts). Every LM task's trial is the same template:
 *
 * 1. the config: resolved once where the trial is planned (the method record, the schema, the
 *    cross-key `check` and the training flags' checks: lib/trial/resolve.ts), so the kind's
 *    `run` takes it as it is and only `trial(input)` resolves an input itself; refuse a trial whose
 *    peak-memory estimate (the task's `memory` hook, lib/tasks/memory.ts) exceeds this
 *    machine's memory — planning (`validate`) refuses it before any trial starts;
 * 2. `problem(config, ctx)`: the stages it needs (`ctx.stage`: the runner's stage cache, or the
 *    same cache in `results/.stages` without a runner), inputs given by path, the rewards, and
 *    the PPO problem (lib/ppo/lm_problem.ts) with the PPO config it carries;
 * 3. `evaluate` the starting policy, PPO (`trainPpo`: `metrics.jsonl`, `checkpoints/`,
 *    `final.safetensors` in outDir), `evaluate` again on the same samples' prompts and seed;
 * 4. `eval.json` = `{ task, ...setup.record, before, after }` (stage hashes, never cache paths);
 * 5. the summary (summary.json `metrics`) = `summary(eval.json)`, plus the last metrics row and
 *    the column means.
 *
 * A reward function that throws or returns a non-finite value stops the trial with a
 * RewardError naming the task and the sample, and the trial's outputs are removed.
 *
 * @example
 * ```ts
 * export const MY_TASK = defineLmTask({
 *   name: "mine", description: "…", schema: MySchema, stages: { "mine-sft": mySftStage },
 *   stageVersion: 1,
 *   samples: (c) => c.batch,
 *   async problem(c, ctx) {
 *     const sft = await loadSftStage(ctx.stage, "mine-sft", { model: c.model, sft: c.sft });
 *     const problem = await createLmProblem({ ...; cfg: c.ppo, init: sft.params });
 *     return { problem, record: { sft: { hash: sft.hash } } };
 *   },
 *   evaluate: (setup, c, ctx) => evaluateMine(setup.problem, c, ctx.session),
 *   summary: (e) => ({ score: e.after.score, score_before: e.before.score }),
 *   progress: { score: "score_mean", kl: "kl_ref" },
 *   metrics: { named: { score: "…", score_before: "…" }, columns: ["score_mean"] },
 * });
 * await MY_TASK.trial({ seed: 1 }, "results/mine/s1");
 * ```
 * @module
 */
import { z } from "zod";
import type { SessionOptions } from "../onnx/session.ts";
import { ConfigError, formatIssues } from "../ppo/config.ts";
import { MethodSchema, resolveMethod } from "../ppo/methods/mod.ts";
import { type MetricsRow, PPO_METRIC_COLUMNS } from "../ppo/trainer.ts";
import type { StopToken } from "../ppo/stop.ts";
import type { PhaseTimer } from "../ppo/phase_times.ts";
import type {
  PlanContext,
  StageDef,
  StageFn,
  StageRequest,
  TrialKind,
  TrialRunContext,
} from "../trial/contract.ts";
import type { DefaultOverrides } from "../trial/overrides.ts";
import { resolveTrialConfig } from "../trial/resolve.ts";
import { localStageCache, type LocalStageOptions } from "../trial/stage_cache.ts";
import { TrialContext } from "../trial/context.ts";
import type { LmProblem } from "../ppo/lm_problem.ts";
import type { OfflineLmProblem } from "../ppo/offline/problem.ts";
import { RewardRefSchema, type UserReward } from "./rewards.ts";
import { readLmTrial, runLmPpo, writeEvalJson } from "./trial_files.ts";
import { estimateLmMemory, type LmMemoryInput, memoryProblem } from "./memory.ts";
import { microBatchProblems } from "../ppo/micro_batches.ts";
import { trainFlagProblems, trainFlagsShape, trainHooks } from "./train_hooks.ts";
import { tracedAsync } from "../setup_trace.ts";

/** Keys every LM task's config has (its schema adds the rest: {@link lmTrialShape}). */
export interface LmTrialConfig {
  /** PPO trial seed (value head, sampling, minibatches). */
  seed: number;
  /** PPO updates. */
  updates: number;
  /** Checkpoint every k updates (0: only the final state). */
  checkpoint_every: number;
  /** TRL's training flags: mid-training evaluation, log lines, transformers checkpoints. */
  eval_steps: number;
  logging_steps: number;
  save_steps: number;
  save_total_limit: number | null;
}

/**
 * The schema fields of {@link LmTrialConfig}, each with its one default (10 updates; a task's
 * own number is an override in its record, e.g. `updates: 20`).
 */
export function lmTrialShape() {
  return {
    method: MethodSchema,
    seed: z.number().int().default(1).describe(
      "PPO trial seed (value head, sampling, minibatches)",
    ),
    updates: z.number().int().min(1).default(10).describe("PPO updates"),
    checkpoint_every: z.number().int().min(0).default(0).describe(
      "checkpoint every k updates (0: only the final state)",
    ),
    ...trainFlagsShape(),
  };
}

/**
 * Sampling keys several LM tasks have, each with its one default (a task's own value is an
 * override in its record; a task may re-describe a field with `.describe`).
 */
export const LM_SAMPLING_FIELDS = {
  batch: z.number().int().min(1).default(8).describe(
    "responses per update (batch / samples_per_prompt prompts, each sampled samples_per_prompt times)",
  ),
  samples_per_prompt: z.number().int().min(1).default(1).describe(
    "responses sampled per prompt: the group of the critic-free estimators (ppo.advantage " +
      "grpo, dr_grpo, rloo need 2 or more)",
  ),
  max_new_tokens: z.number().int().min(1).default(32).describe("most tokens per response"),
  /** Responses per evaluation (`eval.samples`). */
  eval_samples: z.number().int().min(1).default(16).describe("responses per evaluation"),
};

/** `rewards`, the reward list (the reward model alone by default), described by the task. */
export function rewardsField(description: string) {
  return z.array(RewardRefSchema).min(1).default([{ name: "rm", weight: 1 }]).describe(
    description,
  );
}

/** What a task's `problem` and `evaluate` get besides the config. */
export interface LmTaskContext {
  /** Stage folders: the runner's stage cache, or the local one (`results/.stages`). */
  stage: StageFn;
  /** Sessions' device and threads. */
  session?: SessionOptions;
  /** User reward functions the config's `rewards` may name (besides the task's built-ins). */
  rewards?: Record<string, UserReward>;
  /** Progress lines (stages trained or reused). */
  log?: (line: string) => void;
  /**
   * The trial's memo of stage outputs held in memory (`TrialContext.memo`: an SFT trunk the
   * reward-model stage reuses), shared with the stage runs.
   */
  stageMemo: Map<string, unknown>;
  /** Wall time per phase, for benchmarks (the trial context's); absent: not timed. */
  phases?: PhaseTimer;
  /**
   * This trial's reads that hooks share (the `memory` hook's inputs, which `problem` reuses);
   * made per trial, dropped with it.
   */
  memo: PlanContext["memo"];
}

/** What a task's `problem` builds: the PPO problem and what the trial records about it. */
export interface LmSetup {
  /** The online PPO problem, or an offline method's (lib/ppo/offline: its own loop, no rollout). */
  problem: LmProblem | OfflineLmProblem;
  /**
   * What eval.json records besides the two evaluations, after `task`: the stages' content
   * hashes and held-out scores (nothing that depends on where the cache is or whether a stage
   * was reused: eval.json is part of the result bundle).
   */
  record: object;
}

/** eval.json of a finished trial. */
export type LmEvaluation<R, E> = { task: string } & R & { before: E; after: E };

/** What a trial returns: eval.json's content and the last PPO metrics row. */
export type LmTrialResult<R, E> = LmEvaluation<R, E> & { last: MetricsRow };

/** The parts of an LM task (see the module doc). */
export interface LmTaskSpec<C extends LmTrialConfig, S extends LmSetup, E, I = unknown> {
  /** The task's name (what `task:` names in an experiment file). */
  name: string;
  description: string;
  /** The trial config (strict, defaults filled by parsing; `I` is what it accepts). */
  schema: z.ZodObject & z.ZodType<C, I>;
  /** The defaults the schema gives differently from the base ones (`TrialKind.overrides`). */
  overrides?: DefaultOverrides;
  /** Cross-key checks after parsing (problems as {key, cause, fix}; the trial refuses any). */
  check?(config: C): { key: string; cause: string; fix: string }[];
  /** Files or folders the trial reads by config key (planning hashes them into the trial id). */
  inputs?(config: C): { key: string; path: string }[];
  /** The stages `problem` may ask `ctx.stage` for, by name. */
  stages: Record<string, StageDef>;
  /** The stages (names, configs) `problem` asks for with `config` (the kind's `stagesFor`). */
  stagesFor?(config: C): StageRequest[];
  /**
   * Version of the stage code, part of a stage's hash when no runner supplies the code
   * version (bump it when the corpus or the stage training changes what a stage produces).
   */
  stageVersion: number;
  /** Samples (responses) per PPO update (progress, steps/s). */
  samples(config: C): number;
  /** Stages, inputs, rewards and the PPO problem of a trial. */
  problem(config: C, ctx: LmTaskContext): Promise<S>;
  /** Evaluate the problem's current policy (called before and after PPO). */
  evaluate(setup: S, config: C, ctx: LmTaskContext): Promise<E>;
  /** The named metrics of a finished trial (summary.json `metrics`) from its eval.json. */
  summary(evaluation: LmEvaluation<S["record"], E>): Record<string, number | null>;
  /** The progress line while PPO runs: label -> metrics.jsonl column. */
  progress: Record<string, string>;
  /** Named metrics (with their meaning) and the metrics.jsonl columns the task adds. */
  metrics: { named: Record<string, string>; columns: readonly string[] };
  /**
   * Inputs read and checked before any trial starts (planning calls it once per distinct
   * config of inputs): problems as {key, cause, fix}, or a thrown ConfigError.
   */
  validate?(config: C, ctx: PlanContext): Promise<{ key: string; cause: string; fix: string }[]>;
  /**
   * Quick checks before anything heavy loads (the user's reward modules imported and run on
   * a smoke sample): at the trial's start before the memory check, and first thing in
   * planning's `validate`; throws a ConfigError.
   */
  preflight?(config: C, ctx: { rewards?: Record<string, UserReward> }): Promise<void>;
  /**
   * What the trial's peak-memory estimate needs (lib/tasks/memory.ts: the model, batch,
   * minibatches, longest sequence, LoRA, a separate value trunk). With it, planning
   * (`validate`) and the trial itself refuse a config whose estimate exceeds this machine's
   * memory, naming the key to lower, the estimate and the fix ({@link LmTaskSpec.memoryKeys}).
   */
  memory?(config: C, ctx: PlanContext): LmMemoryInput | Promise<LmMemoryInput>;
  /**
   * The config keys a memory refusal names (default `batch`, `ppo.minibatches`,
   * `max_new_tokens`).
   */
  memoryKeys?: { batch: string; minibatches: string; seqLen: string };
  /**
   * After the final evaluation, before eval.json: write more of the final state into outDir
   * (e.g. the trained policy as a Hugging Face folder), under the names in `finalFiles`.
   */
  finish?(setup: S, config: C, outDir: string): Promise<void>;
  /** Top-level files or folders `finish` writes (they move to checkpoints/ with the rest). */
  finalFiles?: readonly string[];
  /**
   * Write the current policy as a folder transformers loads (`save_steps`' `checkpoint-N/`):
   * config.json, weights, tokenizer files (and with LoRA a PEFT adapter in `adapter/`). A task
   * without it refuses `save_steps`.
   */
  savePretrained?(setup: S, config: C, dir: string): Promise<void>;
}

/** Options of an LM task's trial function (none of them changes the results). */
export interface LmTrialOptions<S extends LmSetup = LmSetup> {
  /** Continue from the newest checkpoint in outDir (a finished trial is only re-evaluated). */
  resume?: boolean;
  /** After each PPO update, with its metrics row. */
  onUpdate?: (row: MetricsRow, update: number) => void;
  /** Once before the first PPO update, with the update it starts from. */
  onStart?: (startUpdate: number) => void;
  /** A stop request (a requeue, a time limit): checkpoint after the current update and stop. */
  stop?: StopToken;
  /** User reward functions the config's `rewards` may name. */
  rewards?: Record<string, UserReward>;
  /** Called once the PPO problem exists, before any update (tests, notebooks). */
  onProblem?: (problem: S["problem"], setup: S) => void;
  /** Stage folders from here (the runner's `ctx.stage`); default: the local stage cache. */
  stage?: StageFn;
  /** Folder of the default stage cache (default `results/.stages`). */
  cacheDir?: string;
  /** Session options (device, threads). */
  session?: SessionOptions;
  /** Progress lines. */
  log?: (line: string) => void;
  /**
   * The trial's context (the runner's): its sessions cache every session the trial compiles,
   * its memo the stage outputs it holds. Absent: the trial makes its own and disposes it when
   * it returns.
   */
  trial?: TrialContext;
}

/** Summary of a finished trial folder (what summary.json holds). */
export type LmTrialSummary = {
  metrics: Record<string, number | null>;
  last?: MetricsRow;
  mean: Record<string, number | null>;
};

/** What {@link defineLmTask} builds: the trial kind, with the trial function beside it. */
export interface LmTrialKind<C extends LmTrialConfig, S extends LmSetup, E, I = unknown>
  extends TrialKind<C> {
  /** Parse and default a trial config; throws {@link ConfigError} naming every bad key. */
  parse(input: unknown): C;
  /** One whole trial into outDir (see the module doc). */
  trial(
    input: I | C,
    outDir: string,
    opts?: LmTrialOptions<S>,
  ): Promise<LmTrialResult<S["record"], E>>;
  /** The named metrics, last metrics row and column means of a finished trial folder. */
  summarize(outDir: string): Promise<LmTrialSummary>;
  /** The stage folders a trial uses without a runner (`opts.stage`, else the local cache). */
  stageFn(opts?: LocalStageOptions): StageFn;
  /** The progress line while PPO runs: label -> metrics.jsonl column. */
  progress: Record<string, string>;
  stages: Record<string, StageDef>;
}

/** The keys a memory refusal names unless the task says others ({@link LmTaskSpec.memoryKeys}). */
const MEMORY_KEYS = { batch: "batch", minibatches: "ppo.minibatches", seqLen: "max_new_tokens" };

/** Files that hold a finished LM trial's final state: when both exist the trial is done. */
export const LM_FINAL_FILES: readonly string[] = ["final.safetensors", "eval.json"];

/** Whether a trial kind is an LM task (built by {@link defineLmTask}). */
export function isLmTrialKind(
  kind: TrialKind,
): kind is LmTrialKind<LmTrialConfig, LmSetup, unknown> {
  return "trial" in kind && typeof kind.trial === "function" && "parse" in kind;
}

/** An LM task's trial function and trial kind from its parts (see the module doc). */
export function defineLmTask<C extends LmTrialConfig, S extends LmSetup, E, I = unknown>(
  spec: LmTaskSpec<C, S, E, I>,
): LmTrialKind<C, S, E, I> {
  const schema: z.ZodType<C, I> = spec.schema;
  /** Every cross-key check of a parsed config: the task's own, then the training flags'. */
  const check = (c: C) => [
    ...(spec.check?.(c) ?? []),
    ...trainFlagProblems(c, spec.name, Boolean(spec.savePretrained)),
  ];
  const resolver = {
    schema,
    // The method's record first: its definition and paper defaults, under what the input sets.
    resolve: (raw: Record<string, unknown>) => resolveMethod(raw, schema),
    check,
  };
  const parse = (input: unknown): C => {
    const r = resolveTrialConfig(resolver, (input ?? {}) as Record<string, unknown>);
    if (!r.ok && r.issues) {
      throw new ConfigError(formatIssues(r.issues, input, `${spec.name} config`));
    }
    if (!r.ok) {
      throw new ConfigError(
        `${spec.name} config: ` +
          r.problems.map((p) => `${p.key}: ${p.cause}; fix: ${p.fix}`).join("\n  "),
      );
    }
    if (r.problems.length) {
      throw new ConfigError(
        `${spec.name} config: ` + r.problems.map((p) => `${p.cause}; ${p.fix}`).join("\n  "),
      );
    }
    return r.config;
  };
  const stageFn = (opts: LocalStageOptions = {}) => localStageCache(spec, opts);

  /**
   * The memory refusal of a config (null when it fits, or the task has no `memory` hook); first
   * `ppo.micro_batches` against the minibatches' rows, which the memory input knows.
   */
  const memory = async (c: C, ctx: PlanContext) => {
    if (!spec.memory) return null;
    const input = await spec.memory(c, ctx);
    const micro = { minibatches: input.minibatches, micro_batches: input.microBatches ?? 1 };
    const split = microBatchProblems(micro, input.batch);
    if (split.length) return split[0];
    return memoryProblem(estimateLmMemory(input), spec.memoryKeys ?? MEMORY_KEYS, undefined, input);
  };
  /** The task's own input checks, then (when they pass) the memory estimate. */
  const validate = spec.validate || spec.memory || spec.preflight
    ? async (c: C, ctx: PlanContext = { memo: new Map() }) => {
      await spec.preflight?.(c, {});
      const own = (await spec.validate?.(c, ctx)) ?? [];
      if (own.length) return own;
      const m = await memory(c, ctx);
      return m ? [m] : [];
    }
    : undefined;

  /** A trial of a resolved config (parsed and checked already: planning did it, or `trial`). */
  const runResolved = async (
    c: C,
    outDir: string,
    opts: LmTrialOptions<S> = {},
  ): Promise<LmTrialResult<S["record"], E>> => {
    await tracedAsync("trial: preflight", async () => {
      await spec.preflight?.(c, { rewards: opts.rewards });
    });
    // Refuse a trial that cannot fit before anything trains (planning refused it already).
    const memo: PlanContext["memo"] = new Map();
    const m = await tracedAsync("trial: memory check", () => memory(c, { memo }));
    if (m) {
      const e = new ConfigError(`${spec.name} config: ${m.key}: ${m.cause}\n  fix: ${m.fix}`);
      throw Object.assign(e, m);
    }
    // The trial's own sessions and stage memo: the caller's context, or one made here and
    // disposed when the trial returns (nothing it compiled outlives it).
    await using own = opts.trial ? null : new TrialContext({ label: `${spec.name} trial` });
    const tc = opts.trial ?? own!;
    const session: SessionOptions = { ...opts.session, sessions: tc.sessions };
    const ctx: LmTaskContext = {
      stage: stageFn({ ...opts, session, stageMemo: tc.memo }),
      session,
      rewards: opts.rewards,
      log: opts.log,
      stageMemo: tc.memo,
      phases: tc.phases,
      memo,
    };
    const setup = await tracedAsync("trial: problem", () => spec.problem(c, ctx));
    opts.onProblem?.(setup.problem, setup);
    let ran;
    try {
      const evaluate = () => tracedAsync("trial: evaluate", () => spec.evaluate(setup, c, ctx));
      ran = await runLmPpo(setup.problem, c, outDir, {
        ...opts,
        phases: tc.phases,
        ...trainHooks(c, outDir, {
          evaluate,
          save: spec.savePretrained && ((dir) => spec.savePretrained!(setup, c, dir)),
        }),
      }, evaluate);
    } finally {
      setup.problem.release(); // before `finish`, which writes (and allocates) the model
    }
    const { before, after, last } = ran;
    await spec.finish?.(setup, c, outDir);
    const evaluation: LmEvaluation<S["record"], E> = {
      task: spec.name,
      ...setup.record,
      before,
      after,
    };
    await writeEvalJson(outDir, evaluation);
    return { ...evaluation, last };
  };

  const trial = (
    input: I | C,
    outDir: string,
    opts: LmTrialOptions<S> = {},
  ): Promise<LmTrialResult<S["record"], E>> => runResolved(parse(input), outDir, opts);

  const summarize = async (outDir: string): Promise<LmTrialSummary> => {
    const { evaluation, last, mean } = await readLmTrial<LmEvaluation<S["record"], E>>(outDir);
    return { metrics: spec.summary(evaluation), ...(last ? { last } : {}), mean };
  };

  const run = async (config: C, outDir: string, ctx: TrialRunContext): Promise<void> => {
    const per = spec.samples(config), total = config.updates;
    const info = (row: MetricsRow) =>
      Object.fromEntries(Object.entries(spec.progress).map(([label, col]) => [label, row[col]]));
    // Resolved at planning (and confirmed against the trial id by the runner): not parsed again.
    await runResolved(config, outDir, {
      resume: ctx.resume,
      stop: ctx.stop,
      stage: ctx.stage,
      session: { threads: ctx.threads, device: ctx.device },
      ...(ctx.trial ? { trial: ctx.trial } : {}),
      onStart: (u) => ctx.onProgress({ done: u, total, step: u * per }),
      onUpdate: (row, u) => ctx.onProgress({ done: u, total, step: u * per, info: info(row), row }),
    });
  };

  return {
    name: spec.name,
    aliases: [],
    description: spec.description,
    schema: spec.schema,
    ...(spec.overrides ? { overrides: spec.overrides } : {}),
    resolve: resolver.resolve,
    check,
    ...(spec.inputs ? { inputs: spec.inputs } : {}),
    ...(validate ? { validate } : {}),
    work: (c) => ({ total: c.updates, unit: "updates", steps: spec.samples(c) }),
    finalFiles: [...LM_FINAL_FILES, ...(spec.finalFiles ?? [])],
    run,
    summarize,
    metricNames: {
      named: { ...spec.metrics.named },
      columns: [...PPO_METRIC_COLUMNS, ...spec.metrics.columns],
    },
    stages: spec.stages,
    ...(spec.stagesFor ? { stagesFor: spec.stagesFor } : {}),
    parse,
    trial,
    stageFn,
    progress: spec.progress,
  };
}
