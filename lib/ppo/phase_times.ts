/**
 * Wall time per phase of a PPO update (generation, scoring, training), for benchmarks: off by
 * default, switched on by the bench that reads it ({@link timePhases}), and never written into
 * metrics.jsonl (timings differ run to run; the metrics bytes must not). The update code marks
 * a phase with {@link phaseClock} / {@link phaseAdd}; the bench takes the sums after each
 * update with {@link takePhaseTimes}.
 *
 * @example
 * ```ts
 * timePhases(true);
 * const t = phaseClock();
 * await rollout();
 * phaseAdd("generation", t);
 * takePhaseTimes(); // { generation: 812.4 } (ms), and the sums start again at 0
 * ```
 * @module
 */

/** The phases an update is split into. */
export type PhaseName = "generation" | "scoring" | "training";

let enabled = false;
let sums: Partial<Record<PhaseName, number>> = {};

/** Switch the recording on (a bench) or off (the default). */
export function timePhases(on: boolean): void {
  enabled = on;
  sums = {};
}

/** A phase's start time (ms), or 0 when recording is off. */
export function phaseClock(): number {
  return enabled ? performance.now() : 0;
}

/** Add the wall time since `since` (from {@link phaseClock}) to a phase. */
export function phaseAdd(name: PhaseName, since: number): void {
  if (!enabled) return;
  sums[name] = (sums[name] ?? 0) + performance.now() - since;
}

/** The sums since the last call (ms per phase), and start again from zero. */
export function takePhaseTimes(): Partial<Record<PhaseName, number>> {
  const out = sums;
  sums = {};
  return out;
}
