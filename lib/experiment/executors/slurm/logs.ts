/**
 * Where a submission's trials stand: the worker's JSON event lines in each array task's Slurm
 * log (read incrementally: the same events a local sweep reads from a worker's stdout), the
 * exit records trial.sh writes, the bundles, squeue and (when accounting is on) sacct.
 * @module
 */
import { exists } from "../../bundle.ts";
import type { TrialProgress, TrialSummary } from "../../kinds.ts";
import type { TrialEvent } from "../../trial.ts";
import { accountingStates, dec, jobStates, PENDING, RUNNING } from "./queue.ts";
import { STOPPED_EXIT, type Submission } from "./types.ts";

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
