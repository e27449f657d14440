/**
 * Checks before anything is submitted: the Slurm commands are on PATH, the controller answers,
 * the partition exists, and a probe job shows that the nodes can write the results folder and
 * run the worker.
 * @module
 */
import { exists } from "../../bundle.ts";
import { didYouMean } from "../../../suggest.ts";
import { SlurmError, type SubmitOptions } from "./types.ts";
import {
  cmd,
  fixNoSlurm,
  jobStates,
  oneLine,
  onPath,
  PENDING,
  RUNNING,
  sbatch,
  SLURM_COMMANDS,
} from "./queue.ts";
import { q } from "./scripts.ts";

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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Submit a probe job like the trials' (same partition and sbatch arguments) that writes a
 * file into the submission folder, and wait for it: the nodes must be able to write the
 * results folder (Slurm writes the logs there too) and read the worker. A probe still pending
 * after `probeSeconds` is cancelled and the check skipped (a busy queue).
 */
export async function probeNodes(
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
