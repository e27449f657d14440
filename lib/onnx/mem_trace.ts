/**
 * An opt-in memory trace for finding where a run's peak resident memory goes: with
 * `PROXIMA_MEM_TRACE=1` every {@link memTrace} call writes one line to stderr with the
 * process's resident set (VmRSS), its peak so far (VmHWM) and the change since the previous
 * line; `PROXIMA_MEM_TRACE=2` also traces every FFI session run that raised the peak by
 * 16 MB or more. Off by
 * default and never written into metrics (the numbers differ run to run). Linux only (it reads
 * /proc/self/status); elsewhere the trace prints nothing.
 *
 * @example
 * ```sh
 * PROXIMA_MEM_TRACE=1 deno run -A bench/rl.ts --worker ... 2>&1 | grep '^\[mem\]'
 * ```
 * @module
 */

/** The trace level from $PROXIMA_MEM_TRACE (0: off), read once. */
let level: number | undefined;

/** 0 (off), 1 (labelled points) or 2 (also every session run that raised the peak). */
export function memTraceLevel(): number {
  if (level === undefined) {
    let v = "";
    try {
      v = Deno.env.get("PROXIMA_MEM_TRACE") ?? "";
    } catch { /* no env permission: off */ }
    level = v === "2" ? 2 : v === "" || v === "0" ? 0 : 1;
  }
  return level;
}

/** VmRSS and VmHWM in bytes (null where /proc is unavailable). */
export function residentBytes(): { rss: number; hwm: number } | null {
  try {
    const s = Deno.readTextFileSync("/proc/self/status");
    const kb = (k: string) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
    const rss = kb("VmRSS"), hwm = kb("VmHWM");
    return Number.isFinite(rss) && Number.isFinite(hwm)
      ? { rss: rss * 1024, hwm: hwm * 1024 }
      : null;
  } catch {
    return null;
  }
}

let last = 0;
let lastHwm = 0;
const mb = (b: number) => (b / 2 ** 20).toFixed(0);

/** Write `[mem] label rss=… MB (+Δ) hwm=… MB` to stderr when the trace is on. */
export function memTrace(label: string, minLevel = 1): void {
  if (memTraceLevel() < minLevel) return;
  const r = residentBytes();
  if (!r) return;
  const d = r.rss - last;
  last = r.rss;
  lastHwm = r.hwm;
  const line = `[mem] ${label} rss=${mb(r.rss)} MB (${d >= 0 ? "+" : ""}${mb(d)}) hwm=${
    mb(r.hwm)
  } MB\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
}

/**
 * At level 2: trace `run <session>` only if the peak grew by 16 MB or more since the last
 * line. Called after every FFI run (per token while sampling): off, it builds no string.
 */
export function memTracePeak(session: string): void {
  if (memTraceLevel() < 2) return;
  const r = residentBytes();
  if (r && r.hwm >= lastHwm + 16 * 2 ** 20) memTrace(`run ${session}`, 2);
}
