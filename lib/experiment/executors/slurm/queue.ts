/**
 * Talking to Slurm: running its commands (a missing one is a {@link SlurmError} naming the
 * fix), sbatch, scancel, and squeue / sacct polling of job states.
 * @module
 */
import { SlurmError, type Submission } from "./types.ts";

export const SLURM_COMMANDS = ["sbatch", "squeue", "scancel", "scontrol", "sinfo"] as const;

/** A command's result (never throws for a non-zero exit). */
export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const dec = new TextDecoder();

export async function cmd(name: string, args: string[]): Promise<CmdResult> {
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

export const fixNoSlurm = "fix: run the sweep on a machine with the Slurm client commands " +
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

export const oneLine = (s: string) => s.trim().split("\n").filter(Boolean).slice(-3).join("; ");

export async function sbatch(args: string[], commands: string[][]): Promise<string> {
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
export async function jobStates(
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
export async function accountingStates(ids: string[]): Promise<Map<string, string>> {
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

export const PENDING = new Set([
  "PENDING",
  "CONFIGURING",
  "REQUEUED",
  "REQUEUE_HOLD",
  "REQUEUE_FED",
  "RESIZING",
  "SUSPENDED",
  "STOPPED",
]);
export const RUNNING = new Set(["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"]);

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

/** Cancel every job of a submission. */
export async function cancelSubmission(sub: Submission): Promise<CmdResult> {
  const ids = [sub.stagesJob, ...sub.arrays.map((a) => a.job)].filter((x): x is string => !!x);
  return await cmd("scancel", ids);
}
