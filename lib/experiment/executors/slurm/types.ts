/**
 * The Slurm executor's records: the cluster options of a submission, submission.json (job ids,
 * array indices) and trials.json (what the workers read), and its error type.
 * @module
 */
import { RunnerError } from "../../runner.ts";
import type { ReportTo } from "../../../tensorboard/mod.ts";
import type { TrialRequest } from "../../trial.ts";

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

/** Exit code of a worker that stopped on request (checkpoint written): EX_TEMPFAIL. */
export const STOPPED_EXIT = 75;
