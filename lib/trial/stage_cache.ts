/**
 * The stage cache: outputs of expensive stages that many trials share (SFT, reward model)
 * are content-addressed by the stage's own config and computed once, under
 * `<dir>/<stage>/<hash>/` (the experiment runner's `dir` is `results/.stages`) where hash =
 * sha256 of canonical `{ stage, config, code_version }` (16 hex digits). Any trial of any sweep
 * that asks for the same stage config gets the same folder back; a stage folder is a bundle
 * (config.json, outputs, manifest.json), written in `.tmp-<hash>` and renamed whole, and
 * verified before it is reused. Concurrent trials that need the same stage wait on a lock for
 * the first one.
 *
 * The one cache for every caller: the runner hands a trial `ctx.stage` over it (with the
 * sweep's code version), and a task run without a runner (`deno task train`, tests, notebooks)
 * uses {@link stageCache} directly, with a version of its own stages in place of the code
 * version.
 *
 * @example
 * ```ts
 * const sft: StageDef<{ steps: number }> = {
 *   name: "sft",
 *   schema: z.object({ steps: z.number().int().positive() }).strict(),
 *   async run(cfg, outDir) { await Deno.writeTextFile(`${outDir}/model.txt`, "...") },
 * };
 * const { dir, cached } = await ensureStage(sft, { steps: 100 }, { dir: "results/.stages", codeVersion });
 * ```
 * @module
 */
import { ConfigError, formatIssues } from "../ppo/config.ts";
import { exists, publishDir, verifyBundle, writeFileSynced, writeManifest } from "../bundle.ts";
import { canonicalJson, stableJson } from "../json.ts";
import { shortHash } from "../hash.ts";
import { lockWait } from "../lock.ts";
import type { StageContext, StageDef, StageFn, StageResult } from "./contract.ts";
import type { SessionOptions } from "../onnx/session.ts";
import { SessionCache } from "../onnx/session_cache.ts";

export interface StageCacheOptions extends Omit<StageContext, "sessions"> {
  /** The cache folder: stage `name` with hash h lives in `<dir>/<name>/<h>/`. */
  dir: string;
  /**
   * Part of every stage hash: the sweep's code version, or (without a runner) a version of
   * the task's stage code, so a stale output is never reused.
   */
  codeVersion: string;
}

/** The hash a stage config gets (what its folder is named). */
export function stageId(name: string, config: unknown, codeVersion: string): string {
  return shortHash(canonicalJson({ stage: name, config, code_version: codeVersion }));
}

/** The stage's output folder for `input`, computing it if no verified copy exists. */
export async function ensureStage<C>(
  stage: StageDef<C>,
  input: unknown,
  opts: StageCacheOptions,
): Promise<StageResult> {
  const parsed = stage.schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(formatIssues(parsed.error.issues, input, `stage ${stage.name}`));
  }
  const config = parsed.data;
  const identity = { stage: stage.name, config, code_version: opts.codeVersion };
  const hash = shortHash(canonicalJson(identity));
  const base = `${opts.dir}/${stage.name}`;
  const dir = `${base}/${hash}`, tmp = `${base}/.tmp-${hash}`;
  await Deno.mkdir(base, { recursive: true });
  using _lock = await lockWait(`${base}/.lock-${hash}`);
  if (await exists(dir)) {
    const v = await verifyBundle(dir);
    if (!v.ok) {
      throw new Error(
        `stage ${stage.name} ${dir} fails verification (${
          v.problems.map((p) => `${p.file}: ${p.problem}`).join("; ")
        }); delete ${dir} to compute it again`,
      );
    }
    return { name: stage.name, hash, dir, cached: true };
  }
  // A stage is not resumable: a half-done temporary from a killed run starts over.
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await writeFileSynced(`${tmp}/config.json`, stableJson(identity));
  // The stage run's sessions are its own: freed when it ends (the trial that asked goes on
  // without them, and a stage's training sessions are of no use to it).
  await using sessions = new SessionCache(`stage ${stage.name} ${hash}`);
  const ctx: StageContext = { sessions };
  if (opts.threads !== undefined) ctx.threads = opts.threads;
  if (opts.device !== undefined) ctx.device = opts.device;
  if (opts.memo !== undefined) ctx.memo = opts.memo;
  await stage.run(config, tmp, ctx);
  await writeManifest(tmp);
  await publishDir(tmp, dir);
  return { name: stage.name, hash, dir, cached: false };
}

/**
 * A {@link StageFn} over a task's stages: `(name, config)` -> {@link ensureStage} of the stage
 * named `name`; an unknown name is refused, naming the task and its stages.
 */
export function stageCache(
  task: { name: string; stages: Record<string, StageDef> },
  opts: StageCacheOptions,
): StageFn {
  return async (name, config) => {
    const def = task.stages[name];
    if (!def) {
      throw new Error(
        `${task.name}: no stage "${name}" (it has ${Object.keys(task.stages).join(", ")})`,
      );
    }
    return await ensureStage(def, config, opts);
  };
}

/** Where a task's stages come from outside the runner. */
export interface LocalStageOptions {
  /** Stage folders from here (e.g. the runner's `ctx.stage`). */
  stage?: StageFn;
  /** The cache folder (default `results/.stages`). */
  cacheDir?: string;
  /** Session options of the stage runs. */
  session?: SessionOptions;
  /**
   * Stage outputs held in memory for later stages (the trial's `TrialContext.memo`); without
   * the runner's `stage`, passed to the stage runs.
   */
  stageMemo?: Map<string, unknown>;
}

/**
 * A task's stage folders without the runner: `opts.stage` if given, else {@link stageCache}
 * in `opts.cacheDir` (default `results/.stages`) with the task's stage version
 * (`<task>-stages-v<n>`) in place of the sweep's code version.
 */
export function localStageCache(
  task: { name: string; stages: Record<string, StageDef>; stageVersion: number },
  opts: LocalStageOptions = {},
): StageFn {
  return opts.stage ?? stageCache(task, {
    dir: opts.cacheDir ?? "results/.stages",
    codeVersion: `${task.name}-stages-v${task.stageVersion}`,
    threads: opts.session?.threads,
    device: opts.session?.device,
    memo: opts.stageMemo,
  });
}
