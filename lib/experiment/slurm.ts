/**
 * The Slurm executor: a sweep's trials as ONE job array on a cluster, through the same worker
 * code as a local sweep (the command it is handed; the CLI hands it `cli/trial.ts`).
 *
 * {@link submitSweep} checks the cluster before anything is submitted (sbatch, squeue, sinfo
 * and scontrol on PATH, the controller answers, the partition exists, and a probe job shows
 * that the nodes can write the results folder and run the worker), writes a submission into
 * `results/<experiment>/.slurm/<n>/` (a filesystem the nodes share):
 *
 *   trials.json        the trials to run: plan index -> the worker's request (absolute paths)
 *   trial.sh           array task k runs trial PROXIMA_TRIAL_OFFSET + k (its plan index)
 *   stages.sh          builds the stages the trials ask for, once, before the array starts
 *   submission.json    job ids, the array indices, the sbatch command lines
 *   logs/              Slurm's output: `<array-job>_<task>.log` per trial, `stages-<job>.log`
 *   exit/<index>.json  each run's exit code, written by trial.sh when the worker exits
 *
 * and submits the stages job and one `sbatch --array` that depends on it (`afterany`: if the
 * stages job dies, each trial builds what it needs itself, under the stage cache's locks).
 * Only trials without a finished bundle are submitted, so a rerun submits what failed or never
 * ran. More trials than MaxArraySize allows go in chunks (one array each, same dependency).
 *
 * Preemption: jobs are `--requeue`able and get `--signal=B:USR1@<warn>`. trial.sh passes
 * USR1 and TERM on to the worker as SIGTERM, which stops it after the current update with a checkpoint
 * (lib/ppo/stop.ts) and exits 75; after USR1 (the time limit is near) trial.sh requeues its
 * own task; after TERM (scontrol requeue, preemption, scancel) Slurm does what it was doing.
 * A requeued task resumes the trial from its checkpoint in `.tmp-<id>/`, byte for byte.
 *
 * {@link pollSubmission} tells where each trial stands, from the bundles, the worker's JSON
 * event lines in its log (the same events a local sweep reads from a worker's stdout), the
 * exit records, squeue and (when accounting is on) sacct.
 * @module
 */
import { exists } from "./bundle.ts";
import type { TrialProgress, TrialSummary } from "./kinds.ts";
import { RunnerError } from "./runner.ts";
import type { Plan, PlannedTrial } from "./spec.ts";
import type { ReportTo } from "../tensorboard/mod.ts";
import type { TrialEvent, TrialRequest } from "./trial.ts";
import { didYouMean } from "../suggest.ts";

/** Cluster resources and knobs of a Slurm submission. */
export interface SlurmOptions {
  partition?: string;
  /** Wall time per trial (HH:MM:SS, or any form sbatch accepts). */
  time?: string;
  cpusPerTask?: number;
  /** Memory per trial (sbatch --mem: 4G, 16000M, ...). */
  mem?: string;
  /** GPUs per trial: a count, or TYPE:COUNT (sbatch --gpus). */
  gpus?: string;
  /** At most K array tasks at once (`--array=...%K`). */
  arrayParallelism?: number;
  /** More sbatch arguments, as given (`--qos=high`, `--account=x`). */
  sbatchArgs?: string[];
  /** Seconds before the time limit at which Slurm warns the trial (USR1); default 120. */
  warnSeconds?: number;
  /** How long the write probe may wait for a node, in seconds; default 60 (then skipped). */
  probeSeconds?: number;
}

/** What a submission needs besides the cluster options. */
export interface SubmitOptions extends SlurmOptions {
  /** Results root; made absolute (the nodes need the same path). */
  root: string;
  threads: number;
  device: "cpu" | "cuda";
  experimentFile: string;
  git: { commit: string; dirty: boolean } | null;
  /**
   * The worker, without mode flags (e.g. `deno run -A cli/trial.ts`): trial.sh appends
   * `--slurm <submission> --index <i>`, stages.sh `--slurm-stages <submission>`.
   */
  workerCommand: string[];
  /** Messages while submitting (probe waiting, chunking). */
  log?: (line: string) => void;
  /** Where trials also send their metrics rows while training (TrialRequest.report_to). */
  reportTo?: ReportTo;
}

/** A problem with the cluster or the submission (printed alone; exit 2). */
export class SlurmError extends RunnerError {
  constructor(message: string) {
    super(message);
    this.name = "SlurmError";
  }
}

/** One array: its job id, and the plan indices it runs (task k = trial offset + k). */
export interface SubmittedArray {
  job: string;
  offset: number;
  indices: number[];
}

/** submission.json. */
export interface Submission {
  n: number;
  /** The submission folder (absolute). */
  dir: string;
  experiment: string;
  expDir: string;
  stagesJob: string | null;
  arrays: SubmittedArray[];
  /** Plan index -> trial id, for the trials of this submission. */
  trials: Record<string, string>;
  /** The sbatch command lines, as run. */
  commands: string[][];
  /** Wall-clock time of the submission (not part of any bundle). */
  submitted: string;
}

/** trials.json: what the workers read. */
export interface SubmissionTrials {
  experiment: string;
  trials: Record<string, TrialRequest>;
}

const SLURM_COMMANDS = ["sbatch", "squeue", "scancel", "scontrol", "sinfo"] as const;
/** Exit code of a worker that stopped on request (checkpoint written): EX_TEMPFAIL. */
export const STOPPED_EXIT = 75;

/** A command's result (never throws for a non-zero exit). */
export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

const dec = new TextDecoder();

async function cmd(name: string, args: string[]): Promise<CmdResult> {
  try {
    const out = await new Deno.Command(name, { args, stdout: "piped", stderr: "piped" }).output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new SlurmError(`${name} is not on PATH; ${fixNoSlurm}`);
    }
    throw e;
  }
}

const fixNoSlurm = "fix: run the sweep on a machine with the Slurm client commands " +
  "(a login node; `module load slurm` on some clusters), or drop --executor slurm to run " +
  "the trials here (scripts/slurm_local.sh start sets up a one-node cluster for trying it)";

/** The path of `name` on PATH, or null. */
export async function onPath(
  name: string,
  path = Deno.env.get("PATH") ?? "",
): Promise<string | null> {
  for (const dir of path.split(":").filter(Boolean)) {
    try {
      const st = await Deno.stat(`${dir}/${name}`);
      if (st.isFile && (st.mode === null || (st.mode & 0o111) !== 0)) return `${dir}/${name}`;
    } catch { /* not here */ }
  }
  return null;
}

const oneLine = (s: string) => s.trim().split("\n").filter(Boolean).slice(-3).join("; ");

/** What the cluster says about itself, checked before anything is submitted. */
export interface ClusterInfo {
  partitions: string[];
  defaultPartition: string | null;
  maxArraySize: number;
}

/**
 * Check the Slurm commands, the controller and the partition; throws {@link SlurmError}
 * naming the problem and the fix.
 */
export async function checkCluster(partition?: string): Promise<ClusterInfo> {
  const missing: string[] = [];
  for (const c of SLURM_COMMANDS) if (!(await onPath(c))) missing.push(c);
  if (missing.length) {
    throw new SlurmError(
      `--executor slurm: ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not on ` +
        `PATH (nothing was submitted)\n  ${fixNoSlurm}`,
    );
  }
  const si = await cmd("sinfo", ["--noheader", "--format=%P|%a"]);
  if (si.code !== 0) {
    throw new SlurmError(
      `--executor slurm: the Slurm controller does not answer (sinfo: ${oneLine(si.stderr)}); ` +
        `nothing was submitted\n  fix: check that slurmctld is up (\`scontrol ping\`) and that ` +
        `SLURM_CONF points at the cluster's slurm.conf`,
    );
  }
  const rows = si.stdout.trim().split("\n").filter(Boolean).map((l) => l.split("|"));
  const partitions = [...new Set(rows.map(([p]) => p.replace(/\*$/, "")))];
  const def = rows.find(([p]) => p.endsWith("*"))?.[0].replace(/\*$/, "") ?? null;
  if (partition !== undefined && !partitions.includes(partition)) {
    const m = didYouMean(partition, partitions);
    throw new SlurmError(
      `--partition ${partition}: no such partition on this cluster` +
        (m ? ` (did you mean ${m}?)` : "") + `; nothing was submitted\n  fix: use one of ` +
        `${partitions.join(", ") || "(none: the cluster has no partitions)"} (see sinfo)`,
    );
  }
  if (partition === undefined && !def) {
    throw new SlurmError(
      `--executor slurm: the cluster has no default partition; nothing was submitted\n  fix: ` +
        `pass --partition (one of ${partitions.join(", ")})`,
    );
  }
  const conf = await cmd("scontrol", ["show", "config"]);
  const m = /^MaxArraySize\s*=\s*(\d+)/m.exec(conf.stdout);
  return { partitions, defaultPartition: def, maxArraySize: m ? Number(m[1]) : 1001 };
}

/** "1-5,7,9-10" for [1,2,3,4,5,7,9,10] (sorted, distinct). */
export function arraySpec(indices: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < indices.length;) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j] + 1) j++;
    out.push(i === j ? `${indices[i]}` : `${indices[i]}-${indices[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

/**
 * Plan indices -> arrays whose task ids stay below MaxArraySize: chunk c holds indices in
 * [c·(max−1)+1, (c+1)·(max−1)] with offset c·(max−1), so task k runs trial offset + k.
 */
export function chunkIndices(
  indices: number[],
  maxArraySize: number,
): { offset: number; indices: number[] }[] {
  const span = Math.max(1, maxArraySize - 1);
  const chunks = new Map<number, number[]>();
  for (const i of indices) {
    const c = Math.floor((i - 1) / span);
    if (!chunks.has(c)) chunks.set(c, []);
    chunks.get(c)!.push(i);
  }
  return [...chunks.entries()].sort(([a], [b]) => a - b)
    .map(([c, idx]) => ({ offset: c * span, indices: idx }));
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The sbatch arguments every job of a submission shares (resources, partition, extras). */
export function resourceArgs(o: SlurmOptions): string[] {
  const a: string[] = [];
  if (o.partition) a.push(`--partition=${o.partition}`);
  if (o.time) a.push(`--time=${o.time}`);
  if (o.cpusPerTask) a.push(`--cpus-per-task=${o.cpusPerTask}`);
  if (o.mem) a.push(`--mem=${o.mem}`);
  if (o.gpus) a.push(`--gpus=${o.gpus}`);
  return [...a, ...(o.sbatchArgs ?? [])];
}

function jobScript(
  kind: "trial" | "stages",
  sub: string,
  worker: string[],
  cwd: string,
  experiment: string,
): string {
  const run = [
    ...worker.map(q),
    ...(kind === "trial"
      ? ["--slurm", '"$sub"', "--index", '"$index"']
      : ["--slurm-stages", '"$sub"']),
  ].join(" ");
  const who = kind === "trial"
    ? `index=$(( \${PROXIMA_TRIAL_OFFSET:-0} + \${SLURM_ARRAY_TASK_ID:?not an array task} ))
task="\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"`
    : `index=stages
task="\${SLURM_JOB_ID}"`;
  return `#!/bin/bash
# Proxima sweep "${experiment}": ${
    kind === "trial"
      ? "array task k runs trial PROXIMA_TRIAL_OFFSET + k (its index in the plan)"
      : "builds the stages the trials ask for, once, before the array starts"
  }
# through the same worker as a local sweep. Written by deno task sweep --executor slurm.
set -u
sub=${q(sub)}
${who}
echo "proxima: $index, job $task on $(hostname), restart \${SLURM_RESTART_COUNT:-0}" >&2
cd ${q(cwd)} || exit 1
${run} &
child=$!
sig=""
# Slurm's warning (--signal=B:USR1@...) and SIGTERM (requeue, preemption, scancel) reach the
# worker as SIGTERM (a SIGUSR1 would open V8's inspector): it stops after the current update
# with a checkpoint and exits ${STOPPED_EXIT}.
trap 'sig=USR1; kill -TERM $child 2>/dev/null' USR1
trap 'sig=TERM; kill -TERM $child 2>/dev/null' TERM
while kill -0 $child 2>/dev/null; do wait $child; done
wait $child
rc=$?
mkdir -p "$sub/exit"
printf '{"index":"%s","job":"%s","rc":%d,"signal":"%s","restart":%d}\\n' \\
  "$index" "$task" "$rc" "$sig" "\${SLURM_RESTART_COUNT:-0}" >"$sub/exit/$index.json.tmp-$$" &&
  mv -f "$sub/exit/$index.json.tmp-$$" "$sub/exit/$index.json"
if [ "$rc" = ${STOPPED_EXIT} ] && [ "$sig" = USR1 ]; then
  echo "proxima: time limit near: checkpointed; requeueing $task" >&2
  scontrol requeue "$task"
fi
exit $rc
`;
}

function probeScript(sub: string, worker: string[], cwd: string): string {
  const files = [worker[0], ...worker.filter((w) => w.endsWith(".ts"))];
  return `#!/bin/bash
# Proxima: can a node write the results folder and run the worker?
f=${q(sub)}/probe/$SLURM_JOB_ID
{
  echo "node $(hostname)"
  cd ${q(cwd)} 2>/dev/null || echo "problem: cannot cd to ${cwd}"
${files.map((p) => `  [ -r ${q(p)} ] || echo "problem: cannot read ${p}"`).join("\n")}
} >"$f.tmp" && mv -f "$f.tmp" "$f"
`;
}

async function sbatch(args: string[], commands: string[][]): Promise<string> {
  commands.push(["sbatch", ...args]);
  const r = await cmd("sbatch", args);
  if (r.code !== 0) {
    throw new SlurmError(
      `sbatch refused the job: ${oneLine(r.stderr) || `exit ${r.code}`}\n  command: sbatch ${
        args.join(" ")
      }\n  fix: correct the resources or --sbatch-arg flags it names`,
    );
  }
  const id = r.stdout.trim().split(";")[0];
  if (!/^\d+$/.test(id)) throw new SlurmError(`sbatch: unexpected answer "${r.stdout.trim()}"`);
  return id;
}

/**
 * squeue's view of jobs (array tasks one by one, finished ones while slurmctld remembers
 * them): id -> state; null when squeue itself failed (the controller did not answer).
 */
async function jobStates(
  ids: string[],
): Promise<Map<string, { state: string; reason: string }> | null> {
  const out = new Map<string, { state: string; reason: string }>();
  if (!ids.length) return out;
  const r = await cmd("squeue", [
    "--noheader",
    "--array",
    "--states=all",
    `--jobs=${ids.join(",")}`,
    "--format=%i|%T|%r",
  ]);
  if (r.code !== 0) return /Invalid job id/i.test(r.stderr) ? out : null; // all purged / no answer
  for (const line of r.stdout.split("\n")) {
    const [id, state, reason] = line.trim().split("|");
    if (id && state) out.set(id, { state, reason: reason ?? "" });
  }
  return out;
}

/** sacct's view (accounting on): job id -> state; empty when accounting is off. */
async function accountingStates(ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!ids.length || !(await onPath("sacct"))) return out;
  const r = await cmd("sacct", [
    "--noheader",
    "--parsable2",
    "--allocations",
    `--jobs=${ids.join(",")}`,
    "--format=JobID,State",
  ]);
  if (r.code !== 0) return out;
  for (const line of r.stdout.split("\n")) {
    const [id, state] = line.trim().split("|");
    if (id && state) out.set(id, state.split(" ")[0]);
  }
  return out;
}

const PENDING = new Set([
  "PENDING",
  "CONFIGURING",
  "REQUEUED",
  "REQUEUE_HOLD",
  "REQUEUE_FED",
  "RESIZING",
  "SUSPENDED",
  "STOPPED",
]);
const RUNNING = new Set(["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"]);

/** Whether any job of the submission is still pending or running. */
export async function submissionActive(sub: Submission): Promise<boolean> {
  const ids = [sub.stagesJob, ...sub.arrays.map((a) => a.job)].filter((x): x is string => !!x);
  const q = await jobStates(ids);
  if (!q) return true; // no answer: assume it is
  for (const { state } of q.values()) {
    if (PENDING.has(state) || RUNNING.has(state)) return true;
  }
  return false;
}

/** The submissions of an experiment folder, newest last. */
export async function listSubmissions(expDir: string): Promise<Submission[]> {
  const out: Submission[] = [];
  try {
    for await (const e of Deno.readDir(`${expDir}/.slurm`)) {
      if (!e.isDirectory || !/^\d+$/.test(e.name)) continue;
      try {
        out.push(JSON.parse(await Deno.readTextFile(`${expDir}/.slurm/${e.name}/submission.json`)));
      } catch { /* being written, or a failed submission */ }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.n - b.n);
}

/** The newest submission of an experiment folder, or null. */
export async function latestSubmission(expDir: string): Promise<Submission | null> {
  return (await listSubmissions(expDir)).at(-1) ?? null;
}

async function newSubmissionDir(expDir: string): Promise<{ n: number; dir: string }> {
  await Deno.mkdir(`${expDir}/.slurm`, { recursive: true });
  let n = 1;
  for await (const e of Deno.readDir(`${expDir}/.slurm`)) {
    if (/^\d+$/.test(e.name)) n = Math.max(n, Number(e.name) + 1);
  }
  for (;; n++) {
    try {
      await Deno.mkdir(`${expDir}/.slurm/${n}`);
      return { n, dir: `${expDir}/.slurm/${n}` };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Submit a probe job like the trials' (same partition and sbatch arguments) that writes a
 * file into the submission folder, and wait for it: the nodes must be able to write the
 * results folder (Slurm writes the logs there too) and read the worker. A probe still pending
 * after `probeSeconds` is cancelled and the check skipped (a busy queue).
 */
async function probeNodes(
  sub: string,
  expDir: string,
  o: SubmitOptions,
  common: string[],
  commands: string[][],
): Promise<void> {
  await Deno.mkdir(`${sub}/probe`, { recursive: true });
  await Deno.writeTextFile(`${sub}/probe.sh`, probeScript(sub, o.workerCommand, Deno.cwd()));
  const id = await sbatch([
    "--parsable",
    "--job-name=proxima-probe",
    "--output=/dev/null",
    "--time=00:02:00",
    ...common,
    `${sub}/probe.sh`,
  ], commands);
  const limit = Date.now() + (o.probeSeconds ?? 60) * 1000;
  let told = false;
  for (;;) {
    const text = await Deno.readTextFile(`${sub}/probe/${id}`).catch(() => null);
    if (text !== null) {
      const problems = text.split("\n").filter((l) => l.startsWith("problem: "));
      const node = /^node (.*)$/m.exec(text)?.[1] ?? "?";
      if (problems.length) {
        throw new SlurmError(
          `--executor slurm: node ${node} cannot run the worker: ${
            problems.map((p) => p.slice(9)).join("; ")
          }; nothing was submitted\n  fix: run the sweep from a folder the nodes share ` +
            `(the repository and the deno binary must be at the same paths there)`,
        );
      }
      return;
    }
    const q = await jobStates([id]);
    const st = q?.get(id)?.state;
    if (q && (!st || (!PENDING.has(st) && !RUNNING.has(st)))) {
      // Ended (or purged) without writing: give the shared filesystem a moment to show it.
      await sleep(1000);
      if (await exists(`${sub}/probe/${id}`)) continue;
      throw new SlurmError(
        `--executor slurm: the nodes cannot write the results folder ${expDir} (probe job ` +
          `${id} ended ${st ?? "and left the queue"} without writing ${sub}/probe/); ` +
          `nothing was submitted\n  fix: pass --results <a folder on a filesystem the compute ` +
          `nodes mount read-write> (not /tmp or a local disk), or let the job's user write it`,
      );
    }
    if (Date.now() > limit) {
      await cmd("scancel", [id]);
      o.log?.(
        `slurm: the write probe (job ${id}) is still ${st?.toLowerCase() ?? "queued"} after ` +
          `${o.probeSeconds ?? 60} s: submitting without it`,
      );
      return;
    }
    if (
      !told && st && PENDING.has(st) && Date.now() > limit - (o.probeSeconds ?? 60) * 1000 + 3000
    ) {
      told = true;
      o.log?.(`slurm: waiting for the write probe (job ${id}) to run ...`);
    }
    await sleep(300);
  }
}

/**
 * Submit the plan's unfinished trials (those without a finished bundle; `pending` lists
 * them) as one stages job and one job array (chunks beyond MaxArraySize). Returns the
 * submission; throws {@link SlurmError} before anything is submitted when the cluster or the
 * results folder will not do.
 */
export async function submitSweep(
  plan: Plan,
  pending: PlannedTrial[],
  expDir: string,
  cluster: ClusterInfo,
  o: SubmitOptions,
): Promise<Submission> {
  const root = await Deno.realPath(o.root);
  expDir = await Deno.realPath(expDir);
  const { n, dir } = await newSubmissionDir(expDir);
  const commands: string[][] = [];
  const submitted: string[] = [];
  try {
    const common = resourceArgs(o);
    await probeNodes(dir, expDir, o, common, commands);

    const trials: Record<string, TrialRequest> = {};
    for (const t of pending) {
      trials[t.index] = {
        id: t.id,
        identity: t.identity,
        expDir,
        root,
        experimentFile: o.experimentFile,
        threads: o.threads,
        device: o.device,
        git: o.git,
        ...(o.reportTo && o.reportTo !== "none" ? { report_to: o.reportTo } : {}),
      };
    }
    const list: SubmissionTrials = { experiment: plan.name, trials };
    await Deno.writeTextFile(`${dir}/trials.json`, JSON.stringify(list, null, 1) + "\n");
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    await Deno.mkdir(`${dir}/exit`, { recursive: true });
    const cwd = Deno.cwd();
    await Deno.writeTextFile(
      `${dir}/trial.sh`,
      jobScript("trial", dir, o.workerCommand, cwd, plan.name),
    );
    await Deno.writeTextFile(
      `${dir}/stages.sh`,
      jobScript("stages", dir, o.workerCommand, cwd, plan.name),
    );
    const shared = [
      "--parsable",
      "--requeue",
      "--open-mode=append",
      `--chdir=${cwd}`,
      `--signal=B:USR1@${o.warnSeconds ?? 120}`,
      ...common,
    ];
    const stagesJob = await sbatch([
      `--job-name=proxima-${plan.name}-stages`,
      `--output=${dir}/logs/stages-%j.log`,
      ...shared,
      `${dir}/stages.sh`,
    ], commands);
    submitted.push(stagesJob);
    const arrays: SubmittedArray[] = [];
    const chunks = chunkIndices(pending.map((t) => t.index), cluster.maxArraySize);
    if (chunks.length > 1) {
      o.log?.(
        `slurm: ${pending.length} trials in ${chunks.length} arrays (MaxArraySize ${cluster.maxArraySize})`,
      );
    }
    for (const c of chunks) {
      const spec = arraySpec(c.indices.map((i) => i - c.offset)) +
        (o.arrayParallelism ? `%${o.arrayParallelism}` : "");
      const job = await sbatch([
        `--job-name=proxima-${plan.name}`,
        `--array=${spec}`,
        `--output=${dir}/logs/%A_%a.log`,
        `--dependency=afterany:${stagesJob}`,
        `--export=ALL,PROXIMA_TRIAL_OFFSET=${c.offset}`,
        ...shared,
        `${dir}/trial.sh`,
      ], commands);
      submitted.push(job);
      arrays.push({ job, offset: c.offset, indices: c.indices });
    }
    const sub: Submission = {
      n,
      dir,
      experiment: plan.name,
      expDir,
      stagesJob,
      arrays,
      trials: Object.fromEntries(pending.map((t) => [String(t.index), t.id])),
      commands,
      submitted: new Date().toISOString(),
    };
    await Deno.writeTextFile(`${dir}/submission.json`, JSON.stringify(sub, null, 1) + "\n");
    return sub;
  } catch (e) {
    if (submitted.length) await cmd("scancel", submitted).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Cancel every job of a submission. */
export async function cancelSubmission(sub: Submission): Promise<CmdResult> {
  const ids = [sub.stagesJob, ...sub.arrays.map((a) => a.job)].filter((x): x is string => !!x);
  return await cmd("scancel", ids);
}

/** Where one trial of a submission stands. */
export interface TaskState {
  index: number;
  id: string;
  state: "pending" | "running" | "done" | "failed";
  /** Slurm's reason (pending) or state name (failed), when it gave one. */
  reason?: string;
  /** `<array-job>_<task>`. */
  job: string;
  /** Slurm's log of this array task. */
  log: string;
  /** From the worker's events: its latest start and progress. */
  start?: { done: number; total: number; resumed: boolean };
  progress?: TrialProgress;
  /** Times it stopped on request (a requeue, a time limit) and the update it saved. */
  stops: { update: number; reason: string }[];
  how?: "ran" | "existing" | "reused";
  summary?: TrialSummary;
  bundleHash?: string;
  error?: string;
}

/** The stages job. */
export interface StagesState {
  job: string;
  state: "pending" | "running" | "done" | "failed";
  reason?: string;
  log: string;
  /** Stages it built or found (name/hash, cached). */
  stages: { name: string; hash: string; cached: boolean }[];
}

/** Incremental log reading: path -> bytes consumed and the events seen so far. */
export type LogCache = Map<string, { offset: number; rest: string; events: TrialEvent[] }>;

async function readEvents(path: string, cache: LogCache): Promise<TrialEvent[]> {
  let c = cache.get(path);
  if (!c) cache.set(path, c = { offset: 0, rest: "", events: [] });
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path);
  } catch {
    return c.events;
  }
  try {
    const size = (await f.stat()).size;
    if (size < c.offset) c.offset = 0, c.rest = "", c.events = [];
    if (size > c.offset) {
      await f.seek(c.offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - c.offset);
      let got = 0;
      while (got < buf.length) {
        const k = await f.read(buf.subarray(got));
        if (k === null) break;
        got += k;
      }
      c.offset += got;
      const text = c.rest + dec.decode(buf.subarray(0, got));
      const lines = text.split("\n");
      c.rest = lines.pop() ?? "";
      for (const l of lines) {
        if (!l.startsWith('{"type"')) continue;
        try {
          c.events.push(JSON.parse(l));
        } catch { /* a stray line */ }
      }
    }
  } finally {
    f.close();
  }
  return c.events;
}

async function readExit(sub: Submission, index: string) {
  try {
    return JSON.parse(await Deno.readTextFile(`${sub.dir}/exit/${index}.json`)) as {
      job: string;
      rc: number;
      signal: string;
      restart: number;
    };
  } catch {
    return null;
  }
}

/** The array job and task of a plan index in a submission. */
export function taskOf(sub: Submission, index: number): { job: string; log: string } {
  const a = sub.arrays.find((x) => x.indices.includes(index));
  if (!a) throw new Error(`trial ${index} is not in submission ${sub.n}`);
  const k = index - a.offset;
  return { job: `${a.job}_${k}`, log: `${sub.dir}/logs/${a.job}_${k}.log` };
}

/** Where every trial of a submission stands (one squeue call, one sacct call at most). */
export async function pollSubmission(
  sub: Submission,
  cache: LogCache = new Map(),
): Promise<{ tasks: TaskState[]; stages: StagesState | null }> {
  const ids = [sub.stagesJob, ...sub.arrays.map((a) => a.job)].filter((x): x is string => !!x);
  const q = await jobStates(ids);
  let acct: Map<string, string> | null = null;
  /** Slurm's state of a job or array task; undefined: unknown (squeue did not answer). */
  const slurmState = async (job: string): Promise<string | null | undefined> => {
    if (!q) return undefined;
    const s = q.get(job)?.state;
    if (s) return s;
    acct ??= await accountingStates(ids);
    return acct.get(job) ?? null;
  };

  let stages: StagesState | null = null;
  if (sub.stagesJob) {
    const job = sub.stagesJob;
    const log = `${sub.dir}/logs/stages-${job}.log`;
    const events = await readEvents(log, cache);
    const st = await slurmState(job);
    const ex = await readExit(sub, "stages");
    const state: StagesState["state"] = st === undefined || (st && PENDING.has(st))
      ? (ex ? (ex.rc === 0 ? "done" : "failed") : "pending")
      : st && RUNNING.has(st)
      ? "running"
      : ex
      ? (ex.rc === 0 ? "done" : "failed")
      : st === "COMPLETED"
      ? "done"
      : "failed";
    stages = {
      job,
      state,
      reason: state === "pending"
        ? q?.get(job)?.reason
        : state === "failed"
        ? (st ?? `exit code ${ex?.rc}`)
        : undefined,
      log,
      stages: events.filter((e): e is Extract<TrialEvent, { type: "stage" }> => e.type === "stage")
        .map(({ name, hash, cached }) => ({ name, hash, cached })),
    };
  }

  const tasks: TaskState[] = [];
  for (const [key, id] of Object.entries(sub.trials)) {
    const index = Number(key);
    const { job, log } = taskOf(sub, index);
    const events = await readEvents(log, cache);
    const t: TaskState = { index, id, state: "pending", job, log, stops: [] };
    for (const e of events) {
      if (e.type === "start") {
        t.start = { done: e.done, total: e.total, resumed: e.resumed };
        t.progress = { done: e.done, total: e.total };
      } else if (e.type === "progress") t.progress = e;
      else if (e.type === "stopped") t.stops.push({ update: e.update, reason: e.reason });
      else if (e.type === "done") {
        t.how = e.how, t.summary = e.summary, t.bundleHash = e.bundle_hash;
      } else if (e.type === "error") t.error = e.message;
    }
    const st = await slurmState(job);
    const done = await exists(`${sub.expDir}/${id}/manifest.json`);
    if (st && PENDING.has(st)) t.state = "pending", t.reason = q?.get(job)?.reason;
    else if (st && RUNNING.has(st)) t.state = "running";
    else if (done) t.state = "done";
    else {
      const ex = await readExit(sub, key);
      if (st === undefined) {
        t.state = ex && ex.rc !== STOPPED_EXIT ? "failed" : "pending";
        t.reason = ex ? `exit code ${ex.rc}` : "squeue did not answer";
      } else if (st === null && !ex) {
        // Slurm does not know it (purged) and it left no exit record: killed outright.
        t.state = "failed", t.reason = "left the queue without an exit record";
      } else {
        t.state = "failed";
        t.reason = st && st !== "COMPLETED" ? st : `exit code ${ex?.rc}`;
      }
    }
    if (t.state !== "failed") delete t.error;
    tasks.push(t);
  }
  return { tasks, stages };
}

/** Read a submission's trials.json (the worker's side). */
export async function readSubmissionTrials(dir: string): Promise<SubmissionTrials> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/trials.json`));
  } catch (e) {
    throw new SlurmError(`${dir}/trials.json: ${(e as Error).message}`);
  }
}
