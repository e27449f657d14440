/**
 * Submitting to Slurm: a sweep's trials as ONE job array on a cluster, through the same worker
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
 * {@link pollSubmission} (./logs.ts) tells where each trial stands, from the bundles, the worker's JSON
 * event lines in its log (the same events a local sweep reads from a worker's stdout), the
 * exit records, squeue and (when accounting is on) sacct.
 * @module
 */
import type { Plan, PlannedTrial } from "../../spec.ts";
import type { TrialRequest } from "../../trial.ts";
import { cmd, sbatch } from "./queue.ts";
import type { ClusterInfo } from "./preflight.ts";
import { probeNodes } from "./preflight.ts";
import { arraySpec, chunkIndices, jobScript, resourceArgs } from "./scripts.ts";
import {
  SlurmError,
  type Submission,
  type SubmissionTrials,
  type SubmitOptions,
  type SubmittedArray,
} from "./types.ts";

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

/** Read a submission's trials.json (the worker's side). */
export async function readSubmissionTrials(dir: string): Promise<SubmissionTrials> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/trials.json`));
  } catch (e) {
    throw new SlurmError(`${dir}/trials.json: ${(e as Error).message}`);
  }
}
