/**
 * Live reading of unfinished trials for the dashboard, strictly read-only: a trial that runs
 * works in `results/<experiment>/.tmp-<id>/` and appends one line per update to its
 * `metrics.jsonl`; {@link MetricsTail} reads only the bytes added since the last read (whole
 * lines only, so a half-written row is never parsed), and starts over when the file shrank
 * (a resumed trial cuts it back to its checkpoint).
 *
 * Whether a work folder is still being worked on is read from the kernel's lock table: the
 * trial's worker holds an flock on `.lock-<id>` while it runs ({@link ../../lock.ts}), and
 * Linux lists held locks by inode in /proc/locks. Reading that file takes no lock and writes
 * nothing (taking the lock ourselves would create files in results/ and could stall a sweep).
 * Where /proc/locks cannot be read (not Linux, a cluster node's lock), a work folder whose
 * files changed in the last {@link RECENT_MS} counts as running.
 * @module
 */
import type { MetricsRow } from "../bundles.ts";

/** A work folder whose newest file is younger than this counts as running without a lock table. */
export const RECENT_MS = 120_000;

/** Incremental reader of one growing metrics.jsonl. */
export class MetricsTail {
  /** Every complete row read so far. */
  rows: MetricsRow[] = [];
  /** Byte offset after the last complete line read. */
  #offset = 0;
  /** Bumped when the file shrank and the rows were read again from the start. */
  generation = 0;

  constructor(readonly path: string) {}

  /**
   * Read what was appended since the last call: null when nothing changed, else the index of
   * the first new row (rows before it are unchanged) and whether the rows were read again from
   * the start because the file shrank or went (then {@link generation} was bumped). A missing
   * file reads as no rows.
   */
  async poll(): Promise<{ from: number; reset: boolean } | null> {
    let size = 0;
    try {
      size = (await Deno.stat(this.path)).size;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    let reset = false;
    if (size < this.#offset || (size === 0 && this.rows.length > 0)) {
      this.rows = [];
      this.#offset = 0;
      this.generation++;
      reset = true;
    }
    if (size === this.#offset) return reset ? { from: 0, reset } : null;
    const bytes = await readFrom(this.path, this.#offset, size);
    const end = bytes.lastIndexOf(0x0a);
    if (end < 0) return reset ? { from: 0, reset } : null;
    const first = this.rows.length;
    for (const line of new TextDecoder().decode(bytes.subarray(0, end + 1)).split("\n")) {
      if (!line.trim()) continue;
      try {
        const row = JSON.parse(line);
        if (row !== null && typeof row === "object" && !Array.isArray(row)) {
          this.rows.push(row as MetricsRow);
        }
      } catch {
        // A corrupt line: verification of the finished bundle reports it; the dashboard
        // shows the rows it can read.
      }
    }
    this.#offset += end + 1;
    return reset || this.rows.length > first ? { from: reset ? 0 : first, reset } : null;
  }
}

/** Bytes [from, to) of a file (fewer if it shrank meanwhile). */
async function readFrom(path: string, from: number, to: number): Promise<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  await f.seek(from, Deno.SeekMode.Start);
  const buf = new Uint8Array(to - from);
  let got = 0;
  while (got < buf.length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * Inodes of the files someone holds an flock/POSIX lock on (Linux /proc/locks), or null when
 * the table cannot be read.
 */
export async function heldLockInodes(): Promise<Set<number> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile("/proc/locks");
  } catch {
    return null;
  }
  const out = new Set<number>();
  // "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF": the 6th field is major:minor:inode.
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    const dev = f.find((x) => /^[0-9a-f]+:[0-9a-f]+:\d+$/i.test(x));
    if (dev) out.add(Number(dev.split(":")[2]));
  }
  return out;
}

/** How an unfinished trial stands. */
export type LiveStatus = "running" | "stopped";

/**
 * Whether the trial in `expDir/.tmp-<id>` is being worked on: its `.lock-<id>` is held (per
 * {@link heldLockInodes}), or without a lock table, its files changed recently.
 */
export async function liveStatus(
  expDir: string,
  id: string,
  held: Set<number> | null,
  now = Date.now(),
): Promise<LiveStatus> {
  if (held) {
    const st = await Deno.stat(`${expDir}/.lock-${id}`).catch(() => null);
    if (st?.ino != null && held.has(st.ino)) return "running";
    if (st) return "stopped";
  }
  let newest = 0;
  for (const f of ["metrics.jsonl", "config.json", "stages.json"]) {
    const st = await Deno.stat(`${expDir}/.tmp-${id}/${f}`).catch(() => null);
    newest = Math.max(newest, st?.mtime?.getTime() ?? 0);
  }
  return now - newest < RECENT_MS ? "running" : "stopped";
}
