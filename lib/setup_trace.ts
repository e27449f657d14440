/**
 * An opt-in timing trace of a process's set-up (what it spends before its first step): with
 * `PROXIMA_SETUP_TRACE=1` every traced piece writes one line to stderr,
 *
 *     setup-trace   1234 ms  +  56.7 ms  compile: toModelBytes train_step
 *
 * (the time since the process started, the piece's own time, its label). Off (the default) it
 * costs one boolean test per piece. Stderr only: never in a bundle's files or metrics, so a
 * traced run's results are the untraced run's bytes.
 *
 * @example
 * ```ts
 * const bytes = traced("serialise decode", () => g.toModelBytes());
 * const s = await tracedAsync("session decode", () => FfiSession.create(bytes, o));
 * ```
 * @module
 */

/** Whether the trace is on ($PROXIMA_SETUP_TRACE=1; read once; off without env permission). */
export const SETUP_TRACE: boolean = (() => {
  try {
    return Deno.env.get("PROXIMA_SETUP_TRACE") === "1";
  } catch {
    return false; // no --allow-env: the trace stays off
  }
})();

const encoder = new TextEncoder();

/** Write one trace line: `ms` the piece's own time (omitted for a point in time). */
export function traceLine(label: string, ms?: number): void {
  if (!SETUP_TRACE) return;
  const at = performance.now().toFixed(0).padStart(7);
  const own = ms === undefined ? "".padStart(10) : `+${ms.toFixed(1).padStart(8)} ms`;
  Deno.stderr.writeSync(encoder.encode(`setup-trace ${at} ms ${own}  ${label}\n`));
}

/** Run `fn`, tracing its time under `label`. */
export function traced<T>(label: string, fn: () => T): T {
  if (!SETUP_TRACE) return fn();
  const t0 = performance.now();
  const out = fn();
  traceLine(label, performance.now() - t0);
  return out;
}

/** Await `fn`, tracing its time (from the call to its settling) under `label`. */
export async function tracedAsync<T>(label: string, fn: () => Promise<T>): Promise<T> {
  if (!SETUP_TRACE) return await fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    traceLine(label, performance.now() - t0);
  }
}
