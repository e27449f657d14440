/**
 * One trial, start to bundle — what a sweep worker runs (the runner is handed the worker's
 * command; `cli/trial.ts` is the one the CLI gives it).
 *
 * The trial works in `results/<experiment>/.tmp-<id>/` (hidden; also where a killed trial
 * resumes from) under an exclusive lock `results/<experiment>/.lock-<id>`, so a resumed
 * sweep's worker waits for a killed sweep's orphaned worker to exit. When training is done
 * it is finalised: intermediate checkpoints are deleted and the final state moves to
 * `checkpoints/` (so a resumed and an uninterrupted trial leave the same bytes), summary.json
 * and env.json are written, then manifest.json, every file and folder is fsynced, and the
 * folder is renamed to `results/<experiment>/<id>/`. A bundle is never partially visible.
 * Each step of finalising can be interrupted and redone.
 *
 * @module
 */
import {
  copyTree,
  exists,
  publishDir,
  verifyBundle,
  writeFileSynced,
  writeManifest,
} from "./bundle.ts";
import { stableJson } from "./hash.ts";
import { resolvedConfig } from "../trial/resolve.ts";
import {
  findTrialKind,
  type TrialKind,
  type TrialProgress,
  type TrialSummary,
  unknownTaskMessage,
} from "./kinds.ts";
import { lockWait } from "../lock.ts";
import { kindOfExperiment, trialId, type TrialIdentity } from "./spec.ts";
import { pathToFileURL } from "node:url";
import { ensureStage } from "../trial/stage_cache.ts";
import type { StageResult } from "../trial/contract.ts";
import { TrialContext } from "../trial/context.ts";
import { NonFiniteError } from "../ppo/trainer.ts";
import type { StopToken } from "../ppo/stop.ts";
import { RewardError } from "../tasks/rewards.ts";
import { ConfigError } from "../ppo/config.ts";
import { MetricsEventLog, type ReportTo, tensorboardDir } from "../tensorboard/mod.ts";

/** What the sweep sends a worker (one JSON line on its stdin). */
export interface TrialRequest {
  id: string;
  identity: TrialIdentity;
  /** results/<experiment> */
  expDir: string;
  /** The results root: the stage cache is `<root>/.stages/`, other experiments its folders. */
  root: string;
  /** The experiment file: a trial kind it defines itself is taken from its default export. */
  experimentFile?: string;
  threads: number;
  device: "cpu" | "cuda";
  git: { commit: string; dirty: boolean } | null;
  /**
   * Where metrics rows also go while the trial trains (absent: nowhere): "tensorboard" appends
   * them to event files in `<expDir>/tensorboard/<id>/`, outside the bundle. Not part of the
   * identity: it changes no result.
   */
  report_to?: ReportTo;
}

/** What a worker reports (JSON lines on its stdout). */
export type TrialEvent =
  | { type: "start"; done: number; total: number; resumed: boolean }
  | ({ type: "progress" } & TrialProgress)
  | { type: "stage"; name: string; hash: string; cached: boolean }
  | {
    type: "done";
    /** ran: trained here; existing: the bundle was already there; reused: copied from another experiment. */
    how: "ran" | "existing" | "reused";
    from?: string;
    bundle_hash: string;
    summary: TrialSummary;
  }
  | {
    /** The trial stopped when asked (a requeue, a time limit), after a checkpoint at `update`. */
    type: "stopped";
    update: number;
    reason: string;
  }
  | {
    type: "error";
    message: string;
    /** Running it again fails the same way (a diverged loss, an invalid config). */
    deterministic: boolean;
    /** The message names the cause and the fix (false: an unexpected exception). */
    known: boolean;
  };

/** A trial that failed in a way that names its cause and fix. */
export class TrialError extends Error {
  constructor(message: string, readonly deterministic = false) {
    super(message);
    this.name = "TrialError";
  }
}

/**
 * The kind of a request's trial: `own` when given (an in-process caller's kind object), else a
 * built-in task by name, else the kind the experiment file defines itself (its default export's
 * `task`, imported here: nothing is registered anywhere).
 */
export async function resolveTrialKind(req: TrialRequest, own?: TrialKind): Promise<TrialKind> {
  const name = req.identity.task;
  let kind = findTrialKind(name, own);
  if (!kind && req.experimentFile) {
    const mod = await import(pathToFileURL(req.experimentFile).href);
    kind = findTrialKind(name, kindOfExperiment(mod.default));
  }
  if (!kind) throw new TrialError(unknownTaskMessage(name).cause);
  return kind;
}

/** Run (or resume, or find) one trial and publish its bundle; progress goes to `emit`. */
export async function executeTrial(
  req: TrialRequest,
  emit: (e: TrialEvent) => void,
  /** The stop token, the kind and the context hook of {@link TrialPlace}. */
  opts: Pick<TrialPlace, "stop" | "kind" | "onContext"> = {},
): Promise<void> {
  const { expDir, id } = req;
  await runTrialAt(req, {
    final: `${expDir}/${id}`,
    tmp: `${expDir}/.tmp-${id}`,
    lock: `${expDir}/.lock-${id}`,
    reuse: true,
    ...opts,
  }, emit);
}

/**
 * Where {@link runTrialAt} puts a trial: the bundle `final`, the hidden work folder `tmp` (a
 * sibling of `final`, so the publishing rename stays on one filesystem), the lock file (null:
 * the caller holds its own lock) and whether a finished copy of the trial in another
 * experiment under `req.root` may be copied instead of training (a sweep: yes), and whether
 * progress events carry the metrics rows.
 */
export interface TrialPlace {
  final: string;
  tmp: string;
  lock: string | null;
  reuse: boolean;
  /**
   * Progress events carry the update's whole metrics row (an in-process caller's display); a
   * worker's events leave it out (they cross a pipe, and the runner needs none).
   */
  rows?: boolean;
  /**
   * A stop request the trial's training honours: it checkpoints after the current update and
   * throws `StopRequested` (a requeue resumes there).
   */
  stop?: StopToken;
  /** The trial's kind, when the caller holds it (default: {@link resolveTrialKind}). */
  kind?: TrialKind;
  /** Called with the trial's context before its run starts (tests look at it afterwards). */
  onContext?: (trial: TrialContext) => void;
}

/**
 * {@link executeTrial} with the folders given: what `deno task train` runs for its one trial
 * (the bundle at `--out`), so a trained folder and a sweep's trial are the same bundle.
 */
export async function runTrialAt(
  req: TrialRequest,
  place: TrialPlace,
  emit: (e: TrialEvent) => void,
): Promise<void> {
  const id = trialId(req.identity);
  if (id !== req.id) {
    throw new TrialError(`trial request: id ${req.id} does not match its config (${id})`);
  }
  const kind = await resolveTrialKind(req, place.kind);
  // Resolved and checked at planning; the id above is its hash. Only typed here (one parse,
  // no cross-key checks; none at all when this process planned it: lib/trial/resolve.ts).
  const config = resolvedConfig(kind, req.identity.config) as Record<string, unknown> | null;
  if (!config) throw new TrialError(`trial ${id}: config is not a resolved ${kind.name} config`);
  const { expDir } = req;
  const { final, tmp } = place;
  await Deno.mkdir(expDir, { recursive: true });
  const lockPath = place.lock;
  using lock = lockPath === null ? null : await lockWait(lockPath);

  // Already finished (by an earlier or an orphaned worker)?
  if (await exists(final)) {
    const v = await verifyBundle(final);
    if (!v.ok) throw corruptBundle(final, v.problems);
    emit({
      type: "done",
      how: "existing",
      bundle_hash: v.bundleHash!,
      summary: await readSummary(final),
    });
    return;
  }
  // The same trial finished in another experiment: copy its bundle (never run a trial twice).
  if (place.reuse && !(await exists(tmp))) {
    const other = await findElsewhere(req.root, expDir, id);
    if (other) {
      const copy = `${expDir}/.copy-${id}`;
      await Deno.remove(copy, { recursive: true }).catch(() => {});
      await copyTree(other, copy);
      const v = await verifyBundle(copy);
      if (v.ok) {
        await publishDir(copy, final);
        await unlinkLock(lockPath, lock);
        emit({
          type: "done",
          how: "reused",
          from: other,
          bundle_hash: v.bundleHash!,
          summary: await readSummary(final),
        });
        return;
      }
      await Deno.remove(copy, { recursive: true }).catch(() => {});
    }
  }

  // Work folder: its config.json must be this trial's.
  const identityText = stableJson(req.identity);
  if (await exists(tmp)) {
    let text: string | null = null;
    try {
      text = await Deno.readTextFile(`${tmp}/config.json`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (text === null) await writeFileSynced(`${tmp}/config.json`, identityText);
    else if (text !== identityText) {
      throw new TrialError(
        `${tmp}/config.json is not this trial's config (the folder was edited or is corrupt); ` +
          `fix: delete ${tmp} to run the trial again from the start`,
      );
    }
  } else {
    await Deno.mkdir(tmp);
    await writeFileSynced(`${tmp}/config.json`, identityText);
  }

  // Train (or resume) unless the final state is already there.
  const ck = `${tmp}/checkpoints`;
  const trained = async () => {
    for (const f of kind.finalFiles) {
      if (!(await exists(`${tmp}/${f}`)) && !(await exists(`${ck}/${f}`))) return false;
    }
    return true;
  };
  if (!(await trained())) {
    const latest = await Deno.readTextFile(`${ck}/LATEST`).then((t) => t.trim(), () => null);
    let started = false;
    const live = req.report_to === "tensorboard"
      ? new MetricsEventLog(tensorboardDir(final))
      : null;
    // What this trial owns (compiled sessions, stage outputs in memory): disposed when the
    // run ends, however it ends, so nothing of it outlives the trial in this process.
    await using trial = new TrialContext({ label: `trial ${id}`, stop: place.stop });
    place.onContext?.(trial);
    try {
      await kind.run(config, tmp, {
        resume: true,
        threads: req.threads,
        device: req.device,
        stop: place.stop,
        trial,
        onProgress: ({ row, ...p }) => {
          if (row) live?.append(row);
          if (!started) {
            started = true;
            emit({ type: "start", done: p.done, total: p.total, resumed: p.done > 0 });
          } else emit({ type: "progress", ...p, ...(place.rows && row ? { row } : {}) });
        },
        stage: async (name, cfg): Promise<StageResult> => {
          const r = await stageFor(kind, req, trial.memo)(name, cfg);
          // Recorded in the bundle (stages.json) as it is used, so a trial finalised after a
          // restart (which runs no stage) records the same.
          const rec = await readJson<Record<string, string>>(`${tmp}/stages.json`) ?? {};
          rec[name] = r.hash;
          await writeFileSynced(`${tmp}/stages.json`, stableJson(rec));
          emit({ type: "stage", name, hash: r.hash, cached: r.cached });
          return r;
        },
      });
    } catch (e) {
      if (e instanceof NonFiniteError || e instanceof RewardError || e instanceof ConfigError) {
        // Deterministic: running it again fails the same way (a diverged loss, a reward
        // function that throws or returns NaN, a bad config). The work folder goes.
        await Deno.remove(tmp, { recursive: true }).catch(() => {});
        await unlinkLock(lockPath, lock);
        // The cause stays attached: `deno task train` reports a bad config as bad input.
        throw Object.assign(new TrialError(e.message, true), { cause: e });
      }
      if (latest && !started) {
        throw new TrialError(
          `cannot resume from checkpoint ${ck}/${latest}: ${(e as Error).message}\n` +
            `    fix: delete ${tmp} to run this trial again from the start ` +
            `(or restore the checkpoint)`,
        );
      }
      throw e;
    } finally {
      live?.close();
    }
  }

  // Finalise: only the final state stays in checkpoints/ (LATEST goes first, so a kill here
  // leaves a run that reads as finished: the final files are still at the top level).
  await Deno.remove(`${ck}/LATEST`).catch(() => {});
  if (await exists(ck)) {
    for await (const e of Deno.readDir(ck)) {
      // save_steps' checkpoint-N/ folders are results (lib/tasks/train_hooks.ts): they stay.
      if (!kind.finalFiles.includes(e.name) && !/^checkpoint-\d+$/.test(e.name)) {
        await Deno.remove(`${ck}/${e.name}`, { recursive: true });
      }
    }
  }
  await Deno.mkdir(ck, { recursive: true });
  for (const f of kind.finalFiles) {
    if (await exists(`${tmp}/${f}`)) await Deno.rename(`${tmp}/${f}`, `${ck}/${f}`);
  }
  await removeStrays(tmp);
  const summary = await kind.summarize(tmp, config);
  await writeFileSynced(`${tmp}/summary.json`, stableJson(summary));
  await writeFileSynced(`${tmp}/env.json`, stableJson(await envInfo(req)));
  const manifest = await writeManifest(tmp);
  await publishDir(tmp, final);
  await unlinkLock(lockPath, lock);
  emit({ type: "done", how: "ran", bundle_hash: manifest.bundle_hash, summary });
}

/**
 * Build the stages a trial will ask for, without running it: the ones its kind declares for
 * its config (`TrialKind.stagesFor`), through the stage cache the trial itself gets. What a
 * cluster runs once before the trials, so that trials which share a stage do not queue on
 * its lock. Returns the stages it built or found; a stage that fails is returned as `error`
 * (the trial reports it itself when it runs). A trial whose bundle exists, or whose kind
 * declares no stages, is skipped.
 */
export async function prepareStages(
  req: TrialRequest,
  emit: (e: TrialEvent) => void,
): Promise<{ stages: string[]; skipped?: true; error?: string }> {
  const kind = await resolveTrialKind(req);
  const stages: string[] = [];
  if (!kind.stagesFor || await exists(`${req.expDir}/${req.id}`)) {
    return { stages, skipped: true };
  }
  try {
    for (const { name, config } of kind.stagesFor(req.identity.config)) {
      const r = await stageFor(kind, req)(name, config);
      stages.push(`${name}/${r.hash}`);
      emit({ type: "stage", name, hash: r.hash, cached: r.cached });
    }
  } catch (e) {
    return { stages, error: (e as Error)?.message ?? String(e) };
  }
  return { stages };
}

/**
 * The stage cache a trial's run gets: `<root>/.stages/`, keyed with the trial's code version;
 * stage runs get the trial's memo (`TrialContext.memo`), when there is one.
 */
function stageFor(kind: TrialKind, req: TrialRequest, memo?: Map<string, unknown>) {
  return async (name: string, cfg: unknown): Promise<StageResult> => {
    const def = kind.stages?.[name];
    if (!def) throw new TrialError(`task ${kind.name} has no stage "${name}"`);
    return await ensureStage(def, cfg, {
      dir: `${req.root}/.stages`,
      codeVersion: req.identity.code_version,
      threads: req.threads,
      device: req.device,
      memo,
    });
  };
}

/** Temporaries of interrupted atomic writes (`*.tmp-*`) anywhere in the tree. */
async function removeStrays(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.name.includes(".tmp-")) await Deno.remove(p, { recursive: true });
    else if (e.isDirectory) await removeStrays(p);
  }
}

async function unlinkLock(path: string | null, _lock: Deno.FsFile | null): Promise<void> {
  if (path !== null) await Deno.remove(path).catch(() => {});
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function readSummary(dir: string): Promise<TrialSummary> {
  return JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
}

async function findElsewhere(root: string, expDir: string, id: string): Promise<string | null> {
  const here = await Deno.realPath(expDir);
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory || e.name.startsWith(".")) continue;
      const d = `${root}/${e.name}`;
      if ((await Deno.realPath(d)) === here) continue;
      if (await exists(`${d}/${id}/manifest.json`)) {
        if ((await verifyBundle(`${d}/${id}`)).ok) return `${d}/${id}`;
      }
    }
  } catch { /* no results root yet */ }
  return null;
}

export function corruptBundle(
  dir: string,
  problems: { file: string; problem: string }[],
): TrialError {
  return new TrialError(
    `bundle ${dir} fails verification: ` +
      problems.map((p) => `${p.file}: ${p.problem}`).join("; ") +
      `\n    fix: delete ${dir} to run this trial again (it was changed after it was written)`,
  );
}

/** The machine's CPU model, read once: a fact about the process's machine, not a trial's. */
let cpuModel: string | null | undefined;
/** env.json: versions, device, threads, code version, git commit. No times (it is hashed). */
export async function envInfo(req: TrialRequest): Promise<Record<string, unknown>> {
  let ortVersion: string | null = null;
  try {
    const ort = await import("onnxruntime-node");
    ortVersion = ort.env.versions?.common ?? null;
  } catch { /* not loadable */ }
  if (cpuModel === undefined) {
    cpuModel = null;
    try {
      const m = /^model name\s*:\s*(.+)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"));
      cpuModel = m?.[1].trim() ?? null;
    } catch { /* not Linux */ }
  }
  return {
    code_version: req.identity.code_version,
    git_commit: req.git?.commit ?? null,
    git_dirty: req.git?.dirty ?? null,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    onnxruntime: ortVersion,
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpu: cpuModel,
    device: req.device,
    threads: req.threads,
  };
}
