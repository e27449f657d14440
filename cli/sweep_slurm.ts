/**
 * `deno task sweep FILE --executor slurm [...]`, `--status`, `--cancel`: a sweep as one Slurm
 * job array (the Slurm executor, lib/experiment/executors/slurm/), followed like a local
 * sweep (cli/sweep_follow.ts), with the same plan, the same worker, the same bundles,
 * the same progress bars and the same summary table as a local sweep.
 * @module
 */
import type { ParseArgsOptionsConfig } from "node:util";
import type { ReportTo } from "../lib/tensorboard/mod.ts";
import {
  formatTable,
  gitInfo,
  inspectTrial,
  jobIds,
  type Plan,
  SlurmExecutor,
  type SlurmOptions,
} from "../lib/experiment/mod.ts";
import { UsageError } from "./run_flags.ts";
import { slurmWorkerCommand } from "./trial.ts";
import { fmtSwept, pointLabel, printResults, short } from "./sweep_ui.ts";
import { follow } from "./sweep_follow.ts";

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

/**
 * `--executor slurm`, `--status`, `--cancel`. A submission is followed like any executor
 * (cli/sweep_follow.ts); Ctrl-C asks whether to scancel. Returns the exit status.
 */
export async function slurmMain(plan: Plan, f: MainFlags): Promise<number> {
  const expDir = `${f.results}/${plan.name}`;
  const o = f.slurm.options;
  const ex = new SlurmExecutor({
    ...o,
    cpusPerTask: o.cpusPerTask ?? f.threads,
    root: f.results,
    threads: f.threads,
    device: f.device,
    experimentFile: f.experimentFile,
    git: await gitInfo(),
    workerCommand: slurmWorkerCommand(),
    log: (s: string) => f.quiet || console.error(s),
    notice: (s: string) => console.error(s),
    reportTo: f.reportTo,
  });
  if (f.slurm.mode === "status") return await status(plan, expDir, ex);
  if (f.slurm.mode === "cancel") {
    const sub = await ex.attach(plan);
    if (!sub) {
      console.log(`${expDir}: no Slurm submission to cancel`);
      return 0;
    }
    try {
      await ex.cancel();
    } catch (e) {
      console.log((e as Error).message);
      return 1;
    }
    console.log(
      `cancelled submission ${sub.n} (jobs ${jobIds(sub)}); run the sweep again to resume`,
    );
    return 0;
  }
  const { submitted } = await ex.submit(plan);
  const sub = ex.submission;
  if (!sub && !submitted) console.error(`${plan.file}: every trial is finished; nothing to submit`);
  if (sub && f.slurm.detach) {
    console.log(
      `submission ${sub.n}: jobs ${jobIds(sub)}; logs in ${sub.dir}/logs/\n` +
        `follow it:  deno task sweep ${plan.file} --status${rootFlag(f.results)}\n` +
        `cancel it:  deno task sweep ${plan.file} --cancel${rootFlag(f.results)}`,
    );
    return 0;
  }
  const r = await follow(plan, ex, {
    quiet: f.quiet,
    onInterrupt: (ui) => askCancel(ex, ui),
  });
  const code = printResults(plan, r.outcomes, f.results, sub ? r.seconds : 0, r.interrupted);
  if (sub && ex.stopped === "detached") {
    console.log(
      `the jobs keep running (${jobIds(sub)}): deno task sweep ${plan.file} --status${
        rootFlag(f.results)
      }`,
    );
  }
  return code;
}

const rootFlag = (root: string) => (root === "results" ? "" : ` --results ${root}`);

/** Ctrl-C while following: on a terminal ask whether to scancel; otherwise leave the jobs. */
async function askCancel(
  ex: SlurmExecutor,
  ui: { log(s: string): void; stop(): void },
): Promise<void> {
  const sub = ex.submission;
  if (!sub) return await ex.cancel();
  if (Deno.stdin.isTerminal()) {
    ui.stop();
    const a = prompt(`\nCancel the submission's jobs (${jobIds(sub)}) with scancel? [y/N]`);
    if (a && /^y(es)?$/i.test(a.trim())) {
      await ex.cancel();
      console.error("cancelled");
      return;
    }
    return ex.detach();
  }
  ui.log(
    `interrupted: the jobs keep running; to stop them: scancel ${jobIds(sub).replaceAll(",", " ")}`,
  );
  ex.detach();
}

/** `--status`: one look at the latest submission (and the bundles on disk). */
async function status(plan: Plan, expDir: string, ex: SlurmExecutor): Promise<number> {
  const sub = await ex.attach(plan);
  if (!sub) {
    console.log(`${expDir}: no Slurm submission (deno task sweep ${plan.file} --executor slurm)`);
    return 0;
  }
  const { tasks, stages } = await ex.poll();
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
