/**
 * The sbatch side of a submission: array specs and chunks below MaxArraySize, the resource
 * arguments, and the job scripts (trial.sh, stages.sh). trial.sh is where requeueing happens:
 * it passes Slurm's time-limit warning (USR1) and TERM on to the worker as SIGTERM (the worker
 * stops after the current update with a checkpoint and exits {@link STOPPED_EXIT}), and after
 * USR1 requeues its own array task, which resumes from that checkpoint.
 * @module
 */
import { type SlurmOptions, STOPPED_EXIT } from "./types.ts";

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

export const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

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

export function jobScript(
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
