/**
 * The Slurm executor: a sweep's trials as ONE job array on a cluster (./submit.ts), followed
 * by polling (./logs.ts) into the same {@link ExecutorEvent}s a local sweep gives; requeued
 * array tasks (./requeue.ts) show as `requeued` events and resume from their checkpoints.
 *
 *   submit(plan)   checks the cluster (./preflight.ts), then submits the unfinished trials; a
 *                  submission already on the cluster that covers them is followed instead
 *   events()       polls every `pollMs` until every trial of the plan has ended
 *   cancel()       scancel the submission; detach() stops following and leaves it running
 * @module
 */
import { inspectTrial, prepareExperimentDir, type TrialOutcome } from "../../runner.ts";
import type { Plan, PlannedTrial } from "../../spec.ts";
import { UserError } from "../../../errors.ts";
import { endEvent, type Executor, type ExecutorEvent, type SubmitResult } from "../executor.ts";
import { checkCluster } from "./preflight.ts";
import { cancelSubmission, submissionActive } from "./queue.ts";
import { type LogCache, pollSubmission, type StagesState, type TaskState } from "./logs.ts";
import { RequeueTracker } from "./requeue.ts";
import { latestSubmission, submitSweep } from "./submit.ts";
import type { Submission, SubmitOptions } from "./types.ts";

export * from "./types.ts";
export * from "./queue.ts";
export * from "./preflight.ts";
export * from "./scripts.ts";
export * from "./submit.ts";
export * from "./logs.ts";

/** The job ids of a submission, comma-separated. */
export const jobIds = (s: Submission): string =>
  [s.stagesJob, ...s.arrays.map((a) => a.job)].filter(Boolean).join(",");

/** A sweep on a Slurm cluster; options as {@link submitSweep}'s. */
export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  /** The submission followed (set by submit). */
  submission: Submission | null = null;
  #plan: Plan | null = null;
  #before: TrialOutcome[] = [];
  #stop: "cancelled" | "detached" | null = null;
  #wake: (() => void) | null = null;

  constructor(
    private readonly opts: SubmitOptions & {
      /** Poll interval (default 2000 ms; PROXIMA_SLURM_POLL_MS). */
      pollMs?: number;
      /** Lines always shown, even when `log` is quiet: what was submitted or followed. */
      notice?: (line: string) => void;
    },
  ) {}

  /** Why following stopped early (Ctrl-C), or null. */
  get stopped(): "cancelled" | "detached" | null {
    return this.#stop;
  }

  async submit(plan: Plan): Promise<SubmitResult> {
    this.#plan = plan;
    const o = this.opts, notice = o.notice ?? o.log ?? (() => {});
    const expDir = `${o.root}/${plan.name}`;
    const cluster = await checkCluster(o.partition);
    const { lock } = await prepareExperimentDir(o.root, plan.name);
    try {
      const prev = await latestSubmission(expDir);
      if (prev && await submissionActive(prev)) {
        const mine = new Set(Object.values(prev.trials));
        for (const t of plan.trials) {
          if (mine.has(t.id)) continue;
          const st = await inspectTrial(expDir, t.id);
          if (st.state === "done") {
            this.#before.push({
              trial: t,
              status: "skipped",
              summary: st.summary,
              bundleHash: st.bundleHash,
            });
          } else {
            throw new UserError(
              `sweep: submission ${prev.n} of ${expDir} (jobs ${jobIds(prev)}) is still ` +
                `queued or running, with other trials\n  fix: wait for it (--status), or ` +
                `cancel it (--cancel), then submit again`,
            );
          }
        }
        notice(`submission ${prev.n} (jobs ${jobIds(prev)}) is on the cluster: following it`);
        this.submission = prev;
        return { submitted: Object.keys(prev.trials).length, detachable: true };
      }
      const pending: PlannedTrial[] = [];
      for (const t of plan.trials) {
        const st = await inspectTrial(expDir, t.id);
        if (st.state === "done") {
          this.#before.push({
            trial: t,
            status: "skipped",
            summary: st.summary,
            bundleHash: st.bundleHash,
          });
        } else if (st.state === "corrupt") {
          this.#before.push({ trial: t, status: "failed", error: st.error });
        } else pending.push(t);
      }
      if (!pending.length) return { submitted: 0, detachable: true };
      const sub = await submitSweep(plan, pending, expDir, cluster, o);
      this.submission = sub;
      notice(
        `${plan.file}: submitted ${pending.length} of ${plan.trials.length} trials as array ` +
          `job ${sub.arrays.map((a) => a.job).join(", ")} (after stages job ${sub.stagesJob}) ` +
          `-> ${sub.dir}/\n  ${sub.commands.at(-1)!.join(" ")}`,
      );
      return { submitted: pending.length, detachable: true };
    } finally {
      lock.close();
    }
  }

  async *events(): AsyncIterable<ExecutorEvent> {
    const plan = this.#plan;
    if (!plan) throw new Error("SlurmExecutor: submit first");
    const ended = new Set<number>();
    for (const o of this.#before) {
      ended.add(o.trial.index);
      yield endEvent(o);
    }
    const sub = this.submission;
    if (!sub) return;
    const byIndex = new Map(plan.trials.map((t) => [t.index, t]));
    const cache: LogCache = new Map();
    const requeue = new RequeueTracker(cache);
    const pollMs = this.opts.pollMs ?? Number(Deno.env.get("PROXIMA_SLURM_POLL_MS") ?? 2000);
    let stagesSeen = "";
    for (;;) {
      const { tasks, stages } = await pollSubmission(sub, cache);
      for (const line of stagesLines(stages, stagesSeen)) yield { type: "log", line };
      stagesSeen = stages ? `${stages.state}:${stages.stages.length}` : "";
      let pendingN = 0;
      for (const task of tasks) {
        const t = byIndex.get(task.index);
        if (!t || ended.has(t.index)) continue;
        yield* requeue.events(t, task);
        if (task.state === "pending") pendingN++;
        if (task.state === "done" || task.state === "failed") {
          const o = await outcomeOf(t, task, sub.expDir);
          // Wall time as seen from here: first seen running -> seen finished (poll resolution).
          const since = requeue.since(t.index);
          if (since !== undefined) o.seconds = (performance.now() - since) / 1e3;
          ended.add(t.index);
          yield endEvent(o);
        }
      }
      yield { type: "queue", text: pendingN ? `${pendingN} pending` : "" };
      if (plan.trials.every((t) => ended.has(t.index) || !(String(t.index) in sub.trials))) {
        return;
      }
      if (this.#stop) break;
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, pollMs);
      });
      this.#wake = null;
      if (this.#stop) break;
    }
    for (const t of plan.trials) {
      if (!ended.has(t.index)) yield endEvent({ trial: t, status: "interrupted" });
    }
  }

  /**
   * The experiment's latest submission, to follow (`events()`), poll (`--status`) or cancel
   * (`--cancel`) without submitting; null when it has none.
   */
  async attach(plan: Plan): Promise<Submission | null> {
    this.#plan = plan;
    this.submission = await latestSubmission(`${this.opts.root}/${plan.name}`);
    return this.submission;
  }

  /** Where each trial of the followed submission stands (one squeue and sacct call at most). */
  async poll(): Promise<{ tasks: TaskState[]; stages: StagesState | null }> {
    if (!this.submission) throw new Error("SlurmExecutor: nothing submitted or attached");
    return await pollSubmission(this.submission);
  }

  /** scancel every job of the submission; events() then ends. */
  async cancel(): Promise<void> {
    const sub = this.submission;
    this.#stop = "cancelled";
    this.#wake?.();
    if (!sub) return;
    const r = await cancelSubmission(sub);
    if (r.code !== 0) throw new UserError(`scancel failed: ${r.stderr.trim()}`);
  }

  /** Stop following; the jobs keep running (follow them again with --status). */
  detach(): void {
    this.#stop = "detached";
    this.#wake?.();
  }
}

/** A finished task as the summary table's outcome. */
async function outcomeOf(t: PlannedTrial, task: TaskState, expDir: string): Promise<TrialOutcome> {
  const resumedFrom = task.start?.resumed ? task.start.done : undefined;
  if (task.state === "done") {
    const st = await inspectTrial(expDir, t.id);
    if (st.state === "done") {
      return {
        trial: t,
        status: task.how === "existing" ? "skipped" : task.how === "reused" ? "reused" : "done",
        summary: st.summary,
        bundleHash: st.bundleHash,
        resumedFrom,
      };
    }
    return { trial: t, status: "failed", error: st.state === "corrupt" ? st.error : "no bundle" };
  }
  const cause = task.error ??
    `array task ${task.job} ended (${task.reason ?? "failed"}) without a bundle`;
  return {
    trial: t,
    status: "failed",
    resumedFrom,
    error: `${cause}\n    Slurm log: ${task.log}\n    fix: see the log; run the sweep again ` +
      `to submit the unfinished trials (a failure that repeats is a bug in the task)`,
  };
}

/** What changed in the stages job since `before`, as lines for the user. */
function stagesLines(s: StagesState | null, before: string): string[] {
  if (!s) return [];
  const now = `${s.state}:${s.stages.length}`;
  if (now === before) return [];
  const out: string[] = [];
  const built = s.stages.filter((x) => !x.cached).map((x) => `${x.name} ${x.hash}`);
  if (s.state === "running" && !before.startsWith("running")) {
    out.push(`stages job ${s.job}: running`);
  }
  if (s.state === "done") {
    out.push(
      `stages job ${s.job}: done (${
        built.length ? `built ${built.join(", ")}` : "every stage was cached"
      })`,
    );
  } else if (s.state === "failed") {
    out.push(
      `stages job ${s.job}: FAILED (${s.reason ?? "?"}); the trials build their stages ` +
        `themselves. Slurm log: ${s.log}`,
    );
  }
  return out;
}
