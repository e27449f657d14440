/**
 * `deno task sweep FILE --executor slurm [...]`, `--status`, `--cancel`: a sweep as one Slurm
 * job array (lib/experiment/slurm.ts), with the same plan, the same worker, the same bundles,
 * the same progress bars and the same summary table as a local sweep.
 * @module
 */
import type { ParseArgsOptionsConfig } from "node:util";
import type { ReportTo } from "../lib/tensorboard/mod.ts";
import {
  cancelSubmission,
  checkCluster,
  formatTable,
  gitInfo,
  inspectTrial,
  latestSubmission,
  type LogCache,
  type Plan,
  type PlannedTrial,
  pollSubmission,
  prepareExperimentDir,
  type SlurmOptions,
  type StagesState,
  type Submission,
  submissionActive,
  submitSweep,
  type TaskState,
  type TrialOutcome,
} from "../lib/experiment/mod.ts";
import { UsageError } from "./run_flags.ts";
import { slurmWorkerCommand } from "./trial.ts";
import { fmtSwept, makeProgress, pointLabel, printResults, short } from "./sweep_ui.ts";

export const SLURM_HELP = `
Slurm (the trials as one job array on a cluster; the results folder must be on a filesystem
the nodes share):
  --executor local|slurm   where the trials run (default local)
  --partition P            partition (default: the cluster's default)
  --time HH:MM:SS          wall time per trial
  --cpus-per-task N        CPUs per trial (default: --threads)
  --mem SIZE               memory per trial (e.g. 8G)
  --gpus N                 GPUs per trial (with --device cuda)
  --array-parallelism K    at most K trials at once
  --sbatch-arg=ARG         one more sbatch argument, e.g. --sbatch-arg=--qos=high (repeatable)
  --warn-seconds S         Slurm warns a trial S seconds before its time limit; it checkpoints
                           and requeues itself (default 120)
  --probe-seconds S        how long the check that the nodes can write the results folder may
                           wait for a node (default 60)
  --detach                 submit and return; follow with --status
  --status                 where the experiment's latest submission stands
  --cancel                 scancel the experiment's latest submission
Only unfinished trials are submitted: run the same command again after a failure to submit just
those. Ctrl-C while waiting asks whether to scancel the jobs (no: they keep running).`;

export const SLURM_FLAGS = {
  executor: { type: "string" },
  partition: { type: "string" },
  time: { type: "string" },
  "cpus-per-task": { type: "string" },
  mem: { type: "string" },
  gpus: { type: "string" },
  "array-parallelism": { type: "string" },
  "sbatch-arg": { type: "string", multiple: true },
  "warn-seconds": { type: "string" },
  "probe-seconds": { type: "string" },
  detach: { type: "boolean" },
  status: { type: "boolean" },
  cancel: { type: "boolean" },
} as const satisfies ParseArgsOptionsConfig;

/** `--sbatch-arg --qos=high` -> `--sbatch-arg=--qos=high` (its value starts with a dash). */
export function joinSbatchArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--sbatch-arg" && i + 1 < args.length) out.push(`--sbatch-arg=${args[++i]}`);
    else out.push(args[i]);
  }
  return out;
}

/** The Slurm side of the sweep flags. */
export interface SlurmFlags {
  mode: "submit" | "status" | "cancel";
  detach: boolean;
  options: SlurmOptions;
}

/** Validate the Slurm flags; null for a local sweep. */
export function slurmFlags(values: Record<string, unknown>): SlurmFlags | null {
  const v = values as Record<string, string | boolean | string[] | undefined>;
  const executor = (v.executor as string | undefined) ?? "local";
  if (executor !== "local" && executor !== "slurm") {
    throw new UsageError(`sweep: --executor must be local or slurm (got "${executor}")`);
  }
  const mode = v.status ? "status" : v.cancel ? "cancel" : "submit";
  if (v.status && v.cancel) throw new UsageError("sweep: --status or --cancel, not both");
  const slurmOnly = [
    "partition",
    "time",
    "cpus-per-task",
    "mem",
    "gpus",
    "array-parallelism",
    "sbatch-arg",
    "warn-seconds",
    "probe-seconds",
    "detach",
  ];
  if (executor === "local" && mode === "submit") {
    const given = slurmOnly.filter((k) => v[k] !== undefined);
    if (given.length) {
      throw new UsageError(
        `sweep: --${given[0]} is a Slurm flag; add --executor slurm (or drop it)`,
      );
    }
    return null;
  }
  const int = (name: string, min = 1): number | undefined => {
    const raw = v[name] as string | undefined;
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new UsageError(
        `sweep: --${name} must be ${min === 0 ? "a non-negative" : "a positive"} integer ` +
          `(got "${raw}")`,
      );
    }
    return n;
  };
  const time = v.time as string | undefined;
  if (
    time !== undefined &&
    !/^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?)$/.test(time)
  ) {
    throw new UsageError(
      `sweep: --time must be a Slurm time (HH:MM:SS, MM, D-HH:MM:SS; got "${time}")`,
    );
  }
  const mem = v.mem as string | undefined;
  if (mem !== undefined && !/^\d+[KMGT]?B?$/i.test(mem)) {
    throw new UsageError(`sweep: --mem must be a size like 8G or 16000M (got "${mem}")`);
  }
  const gpus = v.gpus as string | undefined;
  if (gpus !== undefined && !/^([A-Za-z0-9_-]+:)?[1-9]\d*$/.test(gpus)) {
    throw new UsageError(`sweep: --gpus must be a count, or TYPE:COUNT (got "${gpus}")`);
  }
  const partition = v.partition as string | undefined;
  if (partition !== undefined && !/^[A-Za-z0-9_.,-]+$/.test(partition)) {
    throw new UsageError(`sweep: --partition "${partition}" is not a partition name`);
  }
  return {
    mode,
    detach: Boolean(v.detach),
    options: {
      partition,
      time,
      cpusPerTask: int("cpus-per-task"),
      mem,
      gpus,
      arrayParallelism: int("array-parallelism"),
      sbatchArgs: (v["sbatch-arg"] as string[] | undefined) ?? [],
      warnSeconds: int("warn-seconds") ?? 120,
      probeSeconds: int("probe-seconds", 0) ?? 60,
    },
  };
}

interface MainFlags {
  results: string;
  threads: number;
  device: "cpu" | "cuda";
  quiet: boolean;
  experimentFile: string;
  slurm: SlurmFlags;
  reportTo?: ReportTo;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POLL_MS = Number(Deno.env.get("PROXIMA_SLURM_POLL_MS") ?? 2000);

/** `--executor slurm`, `--status`, `--cancel`. Returns the exit status. */
export async function slurmMain(plan: Plan, f: MainFlags): Promise<number> {
  const expDir = `${f.results}/${plan.name}`;
  if (f.slurm.mode === "status") return await status(plan, expDir);
  if (f.slurm.mode === "cancel") {
    const sub = await latestSubmission(expDir);
    if (!sub) {
      console.log(`${expDir}: no Slurm submission to cancel`);
      return 0;
    }
    const r = await cancelSubmission(sub);
    console.log(
      r.code === 0
        ? `cancelled submission ${sub.n} (jobs ${jobIds(sub)}); run the sweep again to resume`
        : `scancel failed: ${r.stderr.trim()}`,
    );
    return r.code === 0 ? 0 : 1;
  }

  const o = f.slurm.options;
  const cluster = await checkCluster(o.partition);
  const { lock } = await prepareExperimentDir(f.results, plan.name);
  let sub: Submission;
  const outcomes = new Map<number, TrialOutcome>();
  try {
    const prev = await latestSubmission(expDir);
    if (prev && await submissionActive(prev)) {
      lock.close();
      const mine = new Set(Object.values(prev.trials));
      let covered = true;
      for (const t of plan.trials) {
        if (!mine.has(t.id) && (await inspectTrial(expDir, t.id)).state !== "done") covered = false;
      }
      if (covered) {
        console.error(
          `submission ${prev.n} (jobs ${jobIds(prev)}) is on the cluster: following it`,
        );
        return await follow(plan, prev, f, new Map(), performance.now());
      }
      throw new UsageError(
        `sweep: submission ${prev.n} of ${expDir} (jobs ${jobIds(prev)}) is still queued or ` +
          `running, with other trials\n  fix: wait for it (--status), or cancel it (--cancel), ` +
          `then submit again`,
      );
    }
    const pending: PlannedTrial[] = [];
    for (const t of plan.trials) {
      const st = await inspectTrial(expDir, t.id);
      if (st.state === "done") {
        outcomes.set(t.index, {
          trial: t,
          status: "skipped",
          summary: st.summary,
          bundleHash: st.bundleHash,
        });
      } else if (st.state === "corrupt") {
        outcomes.set(t.index, { trial: t, status: "failed", error: st.error });
      } else pending.push(t);
    }
    if (!pending.length) {
      lock.close();
      console.error(`${plan.file}: every trial is finished; nothing to submit`);
      return printResults(
        plan,
        plan.trials.map((t) => outcomes.get(t.index)!),
        f.results,
        0,
        false,
      );
    }
    const log = (s: string) => f.quiet || console.error(s);
    sub = await submitSweep(plan, pending, expDir, cluster, {
      ...o,
      cpusPerTask: o.cpusPerTask ?? f.threads,
      root: f.results,
      threads: f.threads,
      device: f.device,
      experimentFile: f.experimentFile,
      git: await gitInfo(),
      workerCommand: slurmWorkerCommand(),
      log,
      reportTo: f.reportTo,
    });
  } catch (e) {
    try {
      lock.close();
    } catch { /* closed above */ }
    throw e;
  }
  lock.close();
  const arrays = sub.arrays.map((a) => a.job).join(", ");
  console.error(
    `${plan.file}: submitted ${Object.keys(sub.trials).length} of ${plan.trials.length} ` +
      `trials as array job ${arrays} (after stages job ${sub.stagesJob}) -> ${sub.dir}/\n` +
      `  ${sub.commands.at(-1)!.join(" ")}`,
  );
  if (f.slurm.detach) {
    console.log(
      `submission ${sub.n}: jobs ${jobIds(sub)}; logs in ${sub.dir}/logs/\n` +
        `follow it:  deno task sweep ${plan.file} --status${rootFlag(f.results)}\n` +
        `cancel it:  deno task sweep ${plan.file} --cancel${rootFlag(f.results)}`,
    );
    return 0;
  }
  return await follow(plan, sub, f, outcomes, performance.now());
}

const rootFlag = (root: string) => (root === "results" ? "" : ` --results ${root}`);
const jobIds = (s: Submission) =>
  [s.stagesJob, ...s.arrays.map((a) => a.job)].filter(Boolean).join(",");

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

/** Wait for a submission, with the local sweep's progress display; then the summary table. */
async function follow(
  plan: Plan,
  sub: Submission,
  f: MainFlags,
  outcomes: Map<number, TrialOutcome>,
  t0: number,
): Promise<number> {
  const byIndex = new Map(plan.trials.map((t) => [t.index, t]));
  const ui = makeProgress(plan, f.quiet);
  for (const o of outcomes.values()) ui.end(o);
  const cache: LogCache = new Map();
  const seen = new Map<
    number,
    { starts: number; stops: number; state: string; since?: number }
  >();
  let stagesSeen = "";
  let interrupt = 0;
  const onSignal = () => {
    if (interrupt++ > 0) Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let left: "cancelled" | "detached" | null = null;
  try {
    for (;;) {
      const { tasks, stages } = await pollSubmission(sub, cache);
      showStages(stages, stagesSeen, ui.log);
      stagesSeen = stages ? `${stages.state}:${stages.stages.length}` : "";
      let pendingN = 0;
      for (const task of tasks) {
        const t = byIndex.get(task.index);
        if (!t || outcomes.has(t.index)) continue;
        const s = seen.get(t.index) ?? { starts: 0, stops: 0, state: "" };
        seen.set(t.index, s);
        const starts = cache.get(task.log)?.events.filter((e) => e.type === "start").length ?? 0;
        if (task.stops.length > s.stops) {
          const st = task.stops.at(-1)!;
          ui.requeued(
            t,
            `stopped after update ${st.update} (${st.reason}), checkpointed; requeued`,
          );
          s.stops = task.stops.length;
        }
        if (starts > s.starts && task.start && task.state !== "pending") {
          if (s.starts > 0 && task.stops.length === s.stops) {
            ui.requeued(t, "restarted by Slurm (requeued)");
          }
          // Events the follower had not seen yet (it joined late, or a poll caught several):
          // the bar starts where the trial is now.
          ui.start(t, task.start, task.progress ?? task.start);
          s.starts = starts;
        }
        if (task.progress && s.starts > 0 && task.state === "running") {
          ui.progress(t, task.progress);
        }
        if (task.state === "pending") pendingN++;
        if (task.state === "running") s.since ??= performance.now();
        if (task.state === "done" || task.state === "failed") {
          const o = await outcomeOf(t, task, sub.expDir);
          // Wall time as seen from here: first seen running -> seen finished (poll resolution).
          if (s.since !== undefined) o.seconds = (performance.now() - s.since) / 1e3;
          outcomes.set(t.index, o);
          ui.end(o);
        }
        s.state = task.state;
      }
      ui.queue(pendingN ? `${pendingN} pending` : "");
      if (plan.trials.every((t) => outcomes.has(t.index) || !(String(t.index) in sub.trials))) {
        break;
      }
      if (interrupt) {
        left = await askCancel(sub, ui);
        if (left) break;
        interrupt = 0;
      }
      for (let w = 0; w < POLL_MS && !interrupt; w += 100) await sleep(100);
    }
  } finally {
    ui.stop();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const secs = (performance.now() - t0) / 1e3;
  if (left) {
    for (const t of plan.trials) {
      if (!outcomes.has(t.index)) outcomes.set(t.index, { trial: t, status: "interrupted" });
    }
  }
  const all = plan.trials.map((t) =>
    outcomes.get(t.index) ?? { trial: t, status: "interrupted" as const }
  );
  const code = printResults(plan, all, f.results, secs, left !== null);
  if (left === "detached") {
    console.log(
      `the jobs keep running (${jobIds(sub)}): deno task sweep ${plan.file} --status${
        rootFlag(f.results)
      }`,
    );
  }
  return code;
}

/** Ctrl-C while following: on a terminal ask whether to scancel; otherwise leave the jobs. */
async function askCancel(
  sub: Submission,
  ui: { log(s: string): void; stop(): void },
): Promise<"cancelled" | "detached" | null> {
  if (Deno.stdin.isTerminal()) {
    ui.stop();
    const a = prompt(`\nCancel the submission's jobs (${jobIds(sub)}) with scancel? [y/N]`);
    if (a && /^y(es)?$/i.test(a.trim())) {
      const r = await cancelSubmission(sub);
      console.error(r.code === 0 ? "cancelled" : `scancel failed: ${r.stderr.trim()}`);
      return "cancelled";
    }
    return "detached";
  }
  ui.log(
    `interrupted: the jobs keep running; to stop them: scancel ${jobIds(sub).replaceAll(",", " ")}`,
  );
  return "detached";
}

function showStages(s: StagesState | null, before: string, log: (l: string) => void): void {
  if (!s) return;
  const now = `${s.state}:${s.stages.length}`;
  if (now === before) return;
  const built = s.stages.filter((x) => !x.cached).map((x) => `${x.name} ${x.hash}`);
  if (s.state === "running" && !before.startsWith("running")) {
    log(`stages job ${s.job}: running`);
  }
  if (s.state === "done") {
    log(
      `stages job ${s.job}: done (${
        built.length ? `built ${built.join(", ")}` : "every stage was cached"
      })`,
    );
  } else if (s.state === "failed") {
    log(
      `stages job ${s.job}: FAILED (${s.reason ?? "?"}); the trials build their stages ` +
        `themselves. Slurm log: ${s.log}`,
    );
  }
}

/** `--status`: one look at the latest submission (and the bundles on disk). */
async function status(plan: Plan, expDir: string): Promise<number> {
  const sub = await latestSubmission(expDir);
  if (!sub) {
    console.log(`${expDir}: no Slurm submission (deno task sweep ${plan.file} --executor slurm)`);
    return 0;
  }
  const { tasks, stages } = await pollSubmission(sub);
  const byIndex = new Map(tasks.map((t) => [t.index, t]));
  const rows: string[][] = [];
  const counts: Record<string, number> = {};
  for (const t of plan.trials) {
    const task = byIndex.get(t.index);
    let state: string, where = "-";
    if (task) {
      state = task.state;
      if (task.state === "pending" && task.reason && task.reason !== "None") {
        state += ` (${task.reason})`;
      }
      if (task.state === "running" && task.progress) {
        state += ` ${task.progress.done}/${task.progress.total} ${t.work.unit}`;
      }
      if (task.stops.length) state += `, requeued ${task.stops.length}x`;
      where = `${task.job}  ${task.log}`;
      counts[task.state] = (counts[task.state] ?? 0) + 1;
    } else {
      const st = await inspectTrial(expDir, t.id);
      state = st.state === "done" ? "done (before this submission)" : `${st.state} (not submitted)`;
      counts[st.state === "done" ? "done" : "not submitted"] =
        (counts[st.state === "done" ? "done" : "not submitted"] ?? 0) + 1;
    }
    rows.push([
      String(t.index),
      short(t.id),
      ...plan.sweptKeys.map((k) => fmtSwept(t.point[k])),
      state,
      where,
    ]);
  }
  console.log(
    `${expDir}: submission ${sub.n} (${sub.submitted}), array ${
      sub.arrays.map((a) => a.job).join(", ")
    }` + (stages ? `, stages job ${stages.job} ${stages.state}` : ""),
  );
  console.log(formatTable(["#", "trial", ...plan.sweptKeys, "state", "job / log"], rows));
  console.log(Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", "));
  for (const task of tasks.filter((t) => t.state === "failed")) {
    const t = plan.trials.find((x) => x.index === task.index);
    console.log(
      `\ntrial ${task.index} ${task.id}${t ? ` (${pointLabel(t.point)})` : ""} failed: ${
        task.error?.split("\n")[0] ?? task.reason ?? "?"
      }\n  Slurm log: ${task.log}`,
    );
  }
  if (stages?.state === "failed") console.log(`\nstages job failed; Slurm log: ${stages.log}`);
  return 0;
}
