/**
 * The sweep runner: runs a {@link Plan}'s trials in `jobs` parallel worker processes (the
 * command it is handed, one process per trial, progress as JSON lines on its stdout; the CLI
 * hands it `cli/trial.ts`), skipping trials whose
 * bundle is already there and verifies, resuming interrupted ones from their checkpoints.
 *
 * Workers get their request as one JSON line on stdin and keep stdin open: when the sweep
 * dies (even by SIGKILL) the pipe closes and they exit. A sweep holds `.sweep.lock` in the
 * experiment folder, so two sweeps never run one experiment folder at once. A failed trial
 * does not stop the others.
 * @module
 */
import { exists, verifyBundle } from "./bundle.ts";
import type { TrialProgress, TrialSummary } from "./kinds.ts";
import { lockTry, unlockRemove } from "../lock.ts";
import type { Plan, PlannedTrial } from "./spec.ts";
import type { ReportTo } from "../tensorboard/mod.ts";
import { corruptBundle, type TrialEvent, type TrialRequest } from "./trial.ts";
import { UserError } from "../errors.ts";
import { childEnv } from "../child_env.ts";

export interface RunOptions {
  /** Results root (default "results"); bundles go to `<root>/<experiment>/<trial-id>/`. */
  root: string;
  jobs: number;
  /** ORT intra-op threads per trial. */
  threads: number;
  device: "cpu" | "cuda";
  /** The experiment file (workers take a trial kind it defines from its default export). */
  experimentFile?: string;
  git: { commit: string; dirty: boolean } | null;
  /** Abort = Ctrl-C: workers are killed, unfinished trials are reported as interrupted. */
  signal?: AbortSignal;
  /**
   * The worker process to start per trial (e.g. `deno run -A cli/trial.ts --stdin`): it reads
   * a {@link TrialRequest} as the first line of its stdin, runs it with `executeTrial`, reports
   * {@link TrialEvent}s as JSON lines on its stdout, and exits when its stdin closes.
   */
  workerCommand: string[];
  /** Where trials also send their metrics rows while training (TrialRequest.report_to). */
  reportTo?: ReportTo;
}

export type TrialStatus = "done" | "skipped" | "reused" | "failed" | "interrupted";

export interface TrialOutcome {
  trial: PlannedTrial;
  status: TrialStatus;
  summary?: TrialSummary;
  bundleHash?: string;
  error?: string;
  /** Wall time of this invocation's work on the trial (not in any bundle). */
  seconds?: number;
  /** Update the trial resumed from (0 = from scratch). */
  resumedFrom?: number;
}

export interface RunnerEvents {
  onTrialStart?(t: PlannedTrial, info: { done: number; total: number; resumed: boolean }): void;
  onTrialProgress?(t: PlannedTrial, p: TrialProgress): void;
  onTrialStage?(t: PlannedTrial, s: { name: string; hash: string; cached: boolean }): void;
  onTrialEnd?(o: TrialOutcome): void;
}

/** Setup problems that stop a sweep before any trial (results folder, lock). */
export class RunnerError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "RunnerError";
  }
}

/** Where a trial stands on disk. */
export type TrialState =
  | { state: "done"; bundleHash: string; summary: TrialSummary }
  | { state: "corrupt"; error: string }
  | { state: "partial"; update: number | null }
  | { state: "new" };

/** Inspect a trial's bundle / work folder (verifies a finished bundle). */
export async function inspectTrial(expDir: string, id: string): Promise<TrialState> {
  const final = `${expDir}/${id}`, tmp = `${expDir}/.tmp-${id}`;
  if (await exists(final)) {
    const v = await verifyBundle(final);
    if (!v.ok) return { state: "corrupt", error: corruptBundle(final, v.problems).message };
    try {
      const summary = JSON.parse(await Deno.readTextFile(`${final}/summary.json`));
      return { state: "done", bundleHash: v.bundleHash!, summary };
    } catch (e) {
      return { state: "corrupt", error: `${final}/summary.json: ${(e as Error).message}` };
    }
  }
  if (await exists(tmp)) {
    const latest = await Deno.readTextFile(`${tmp}/checkpoints/LATEST`).catch(() => null);
    const m = latest ? /update-(\d+)/.exec(latest) : null;
    return { state: "partial", update: m ? Number(m[1]) : null };
  }
  return { state: "new" };
}

/** Create and lock the experiment folder; errors name the folder and the fix. */
export async function prepareExperimentDir(
  root: string,
  name: string,
): Promise<{ expDir: string; lock: Deno.FsFile }> {
  const expDir = `${root.replace(/\/+$/, "")}/${name}`;
  try {
    await Deno.mkdir(expDir, { recursive: true });
    const probe = `${expDir}/.write-test-${Deno.pid}`;
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (e) {
    throw new RunnerError(
      `results folder ${expDir} is not writable (${(e as Error).message}); ` +
        `fix: pass --results <a writable folder>, or fix the permissions of ${root}`,
    );
  }
  const lockPath = `${expDir}/.sweep.lock`;
  const lock = await lockTry(lockPath);
  if (!lock) {
    const pid = (await Deno.readTextFile(lockPath).catch(() => "")).trim();
    throw new RunnerError(
      `another sweep${pid ? ` (pid ${pid})` : ""} is running on ${expDir}; ` +
        `fix: wait for it to finish or stop it, then run again (it resumes where they stopped)`,
    );
  }
  await lock.truncate(0);
  await lock.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return { expDir, lock };
}

/** Run every trial of the plan; resolves when all have finished, failed or been interrupted. */
export async function runPlan(
  plan: Plan,
  opts: RunOptions,
  events: RunnerEvents = {},
): Promise<TrialOutcome[]> {
  const { expDir, lock } = await prepareExperimentDir(opts.root, plan.name);
  try {
    const outcomes = new Map<number, TrialOutcome>();
    const end = (o: TrialOutcome) => {
      outcomes.set(o.trial.index, o);
      events.onTrialEnd?.(o);
    };
    const queue: PlannedTrial[] = [];
    for (const t of plan.trials) {
      const st = await inspectTrial(expDir, t.id);
      if (st.state === "done") {
        end({ trial: t, status: "skipped", summary: st.summary, bundleHash: st.bundleHash });
      } else if (st.state === "corrupt") end({ trial: t, status: "failed", error: st.error });
      else queue.push(t);
    }
    const cmd = opts.workerCommand;
    if (!cmd.length) throw new RunnerError("runPlan: workerCommand is empty");
    const running = new Set<Deno.ChildProcess>();
    const onAbort = () => {
      for (const c of running) {
        try {
          c.kill("SIGKILL");
        } catch { /* already gone */ }
      }
    };
    opts.signal?.addEventListener("abort", onAbort);
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        if (opts.signal?.aborted) {
          end({ trial: t, status: "interrupted" });
          continue;
        }
        end(await runOne(t));
      }
    };
    const runOne = async (t: PlannedTrial): Promise<TrialOutcome> => {
      const req: TrialRequest = {
        id: t.id,
        identity: t.identity,
        expDir,
        root: opts.root,
        experimentFile: opts.experimentFile,
        threads: opts.threads,
        device: opts.device,
        git: opts.git,
        ...(opts.reportTo && opts.reportTo !== "none" ? { report_to: opts.reportTo } : {}),
      };
      const t0 = performance.now();
      const child = new Deno.Command(cmd[0], {
        args: cmd.slice(1),
        env: childEnv(), // huge pages for the trial's big allocations (lib/child_env.ts)
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      running.add(child);
      const stdin = child.stdin.getWriter();
      stdin.write(new TextEncoder().encode(JSON.stringify(req) + "\n")).catch(() => {});
      const stderr = new Response(child.stderr).text();
      let done: Extract<TrialEvent, { type: "done" }> | null = null;
      let error: Extract<TrialEvent, { type: "error" }> | null = null;
      let resumedFrom: number | undefined;
      let buf = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line.startsWith("{")) continue;
          let ev: TrialEvent;
          try {
            ev = JSON.parse(line);
          } catch {
            continue;
          }
          if (ev.type === "start") {
            resumedFrom = ev.done;
            events.onTrialStart?.(t, ev);
          } else if (ev.type === "progress") events.onTrialProgress?.(t, ev);
          else if (ev.type === "stage") events.onTrialStage?.(t, ev);
          else if (ev.type === "done") done = ev;
          else if (ev.type === "error") error = ev;
        }
      }
      const status = await child.status;
      running.delete(child);
      await stdin.close().catch(() => {});
      const errText = await stderr;
      const seconds = (performance.now() - t0) / 1e3;
      if (done) {
        return {
          trial: t,
          status: done.how === "ran" ? "done" : done.how === "reused" ? "reused" : "skipped",
          summary: done.summary,
          bundleHash: done.bundle_hash,
          seconds,
          resumedFrom,
        };
      }
      // Ctrl-C on a terminal reaches the workers too (same process group): a worker that died of
      // SIGINT/SIGTERM was interrupted, even if this process has not seen its own signal yet.
      const interrupted = opts.signal?.aborted || status.signal === "SIGINT" ||
        status.signal === "SIGTERM";
      if (interrupted) return { trial: t, status: "interrupted", seconds, resumedFrom };
      const stack = errText.trim().split("\n").filter((l) => l.trim()).slice(0, 6)
        .join("\n      ");
      const retry = `the work folder ${expDir}/.tmp-${t.id} is kept, and the next sweep ` +
        `retries this trial from its last checkpoint; if it fails the same way, the task ` +
        `${t.identity.task} has a bug`;
      return {
        trial: t,
        status: "failed",
        seconds,
        error: error?.known
          ? error.message
          : `${error?.message ?? `worker exited with ${status.signal ?? `code ${status.code}`}`}` +
            `\n    fix: ${retry}${stack ? `\n    worker stderr:\n      ${stack}` : ""}`,
      };
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, worker));
    opts.signal?.removeEventListener("abort", onAbort);
    return plan.trials.map((t) => outcomes.get(t.index)!);
  } finally {
    // Removed while held: a sweep that waits on it retries on the path (lib/lock.ts).
    await unlockRemove(`${expDir}/.sweep.lock`, lock);
  }
}
