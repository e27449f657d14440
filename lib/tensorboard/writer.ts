/**
 * TensorBoard event files of metrics rows: one event file per training process, one scalar
 * summary event per metrics.jsonl row.
 *
 * - The event's step is the row's `update` (1, 2, ...: one row per update); every other column
 *   holding a finite number is a scalar under its own name as the tag (`reward/total` shows up
 *   in TensorBoard's `reward` group). Nulls (a metric that does not apply) are left out.
 *   `simple_value` is a float32, so values read back are `Math.fround` of the row's.
 * - Where: `tensorboardDir(runDir)`, i.e. `<parent>/tensorboard/<run>/` beside the run folder
 *   (`results/kl/tensorboard/<trial-id>/` for the bundle `results/kl/<trial-id>/`), never in a
 *   bundle's hashed files, so `tensorboard --logdir results/kl/tensorboard` shows each trial
 *   as a run.
 * - Every event file starts with the file version and a `SessionLog` START at the first row's
 *   step. A resumed run opens a new event file whose steps restart after the checkpoint; on the
 *   START, TensorBoard's reader drops the older files' points from that step on (its "orphaned
 *   data" purge), so the curve shows each update once.
 *
 * @example
 * ```ts
 * const log = new MetricsEventLog("results/train/tensorboard/cartpole-seed1");
 * log.append({ update: 1, step: 512, loss: 0.5, kl_ref: null });
 * log.close();
 * ```
 * @module
 */
import { frameRecord, readRecords } from "./record.ts";
import { decodeEvent, encodeEvent, FILE_VERSION, type TbEvent, type TbScalar } from "./event.ts";

/** A metrics row (one update): column -> number (null: not measured). */
export type MetricsRowLike = Record<string, number | string | null | undefined>;

/** Where `--report_to` sends metrics while training. */
export type ReportTo = "none" | "tensorboard";

/** The values `--report_to` takes. */
export const REPORT_TO: readonly ReportTo[] = ["none", "tensorboard"];

/** `value` as a {@link ReportTo}, or null when it is none of them. */
export function parseReportTo(value: unknown): ReportTo | null {
  return REPORT_TO.find((r) => r === value) ?? null;
}

/** The TensorBoard log folder of a run folder: `<parent>/tensorboard/<name>`. */
export function tensorboardDir(runDir: string): string {
  const d = runDir.replace(/\/+$/, "");
  const i = d.lastIndexOf("/");
  return i < 0 ? `tensorboard/${d}` : `${d.slice(0, i) || "/"}/tensorboard/${d.slice(i + 1)}`;
}

/** The scalar summary event of one metrics row (step = `update`, or `index + 1` without one). */
export function rowEvent(row: MetricsRowLike, index: number, wallTime: number): TbEvent {
  const u = row.update;
  const step = typeof u === "number" && Number.isFinite(u) ? u : index + 1;
  const scalars: TbScalar[] = [];
  for (const [tag, v] of Object.entries(row)) {
    if (tag !== "update" && typeof v === "number" && Number.isFinite(v)) {
      scalars.push({ tag, value: v });
    }
  }
  return { wallTime, step, scalars };
}

/** The bytes of one framed event. */
export function eventRecord(e: TbEvent): Uint8Array {
  return frameRecord(encodeEvent(e));
}

/** The records that open an event file whose first row is `first`, at wall time `t`. */
function headRecords(first: TbEvent, t: number): Uint8Array[] {
  return [
    eventRecord({ wallTime: t, step: 0, fileVersion: FILE_VERSION }),
    eventRecord({ wallTime: t, step: first.step, sessionStart: true }),
  ];
}

/**
 * A whole event file for `rows` (the same records {@link MetricsEventLog} writes),
 * deterministic: the file version and session start at `wallTimes[0]`, row i at
 * `wallTimes[i + 1]` (a single number: every event at that time).
 */
export function eventFileBytes(rows: readonly MetricsRowLike[], wallTimes: number | number[]) {
  const at = (i: number) => typeof wallTimes === "number" ? wallTimes : wallTimes[i];
  const events = rows.map((r, i) => rowEvent(r, i, at(i + 1)));
  const parts = events.length
    ? headRecords(events[0], at(0))
    : [eventRecord({ wallTime: at(0), step: 0, fileVersion: FILE_VERSION })];
  for (const e of events) parts.push(eventRecord(e));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, off), off += p.length;
  return out;
}

/** The conventional event-file name: `events.out.tfevents.<seconds>.<host>.<pid>`. */
export function eventFileName(wallTime: number, host = hostName(), pid = Deno.pid): string {
  return `events.out.tfevents.${Math.floor(wallTime)}.${host}.${pid}`;
}

function hostName(): string {
  try {
    return Deno.hostname().replace(/[^A-Za-z0-9._-]/g, "_") || "localhost";
  } catch {
    return "localhost";
  }
}

/**
 * Appends metrics rows to a new event file in `dir` as they come, each row one record written
 * whole with one synchronous write (TensorBoard reads the file while it grows). The folder and
 * file are created at the first row, so a run that never trains leaves nothing.
 */
export class MetricsEventLog {
  #file: Deno.FsFile | null = null;
  #index = 0;
  #failed = false;
  /** The event file, once the first row created it. */
  path: string | null = null;

  constructor(
    readonly dir: string,
    readonly now: () => number = () => Date.now() / 1e3,
    readonly onError: (e: Error) => void = (e) =>
      console.error(`warning: TensorBoard log ${dir}: ${e.message}; training goes on without it`),
  ) {}

  /**
   * Append one row (its scalars at the current wall time). A failure to write (a full disk)
   * is reported once through `onError` and ends the log, not the training.
   */
  append(row: MetricsRowLike): void {
    if (this.#failed) return;
    try {
      const t = this.now();
      const e = rowEvent(row, this.#index++, t);
      if (!this.#file) {
        Deno.mkdirSync(this.dir, { recursive: true });
        let name = eventFileName(t);
        // Two logs opened by one process in one second get distinct files.
        for (let k = 1; exists(`${this.dir}/${name}`); k++) name = `${eventFileName(t)}.${k}`;
        this.path = `${this.dir}/${name}`;
        this.#file = Deno.openSync(this.path, { write: true, createNew: true });
        for (const r of headRecords(e, t)) writeAllSync(this.#file, r);
      }
      writeAllSync(this.#file, eventRecord(e));
    } catch (err) {
      this.#failed = true;
      this.onError(err as Error);
    }
  }

  /** Close the file (rows appended later open a new one). */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function writeAllSync(f: Deno.FsFile, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += f.writeSync(bytes.subarray(off));
}

/** The events of an event file's bytes (CRCs checked). */
export function decodeEventFile(bytes: Uint8Array, name?: string): TbEvent[] {
  return readRecords(bytes, name).map(decodeEvent);
}

/** One scalar point read back from event files. */
export interface ScalarPoint {
  tag: string;
  step: number;
  value: number;
  wallTime: number;
}

/**
 * The scalar points of the event files in `dir` as TensorBoard shows them: files in name order
 * (as TensorBoard reads them), points in file order, and at each session START the points
 * read so far from that step on dropped (a resumed run's second file replaces them).
 */
export async function readScalars(dir: string): Promise<ScalarPoint[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.includes("tfevents")) names.push(e.name);
  }
  let out: ScalarPoint[] = [];
  for (const n of names.sort()) {
    const path = `${dir}/${n}`;
    for (const e of decodeEventFile(await Deno.readFile(path), path)) {
      if (e.sessionStart) out = out.filter((p) => p.step < e.step);
      for (const s of e.scalars ?? []) {
        out.push({ tag: s.tag, step: e.step, value: s.value, wallTime: e.wallTime });
      }
    }
  }
  return out;
}
