/**
 * Wall time per phase of a PPO update (generation, scoring, training), for benchmarks: a
 * {@link PhaseTimer} the bench makes and hands down (the trial's context → the LM problem's and
 * the trainer's `phases` option); without one nothing is timed. Never written into
 * metrics.jsonl (timings differ run to run; the metrics bytes must not). No module state: two
 * trials in one process time themselves apart.
 *
 * @example
 * ```ts
 * const phases = new PhaseTimer();
 * const t = phases.clock();
 * await rollout();
 * phases.add("generation", t);
 * phases.take(); // { generation: 812.4 } (ms), and the sums start again at 0
 * ```
 * @module
 */

import { memTrace } from "../onnx/mem_trace.ts";

/** The phases an update is split into. */
export type PhaseName = "generation" | "scoring" | "training";

/** Sums of wall time per phase (ms) since the last {@link PhaseTimer.take}. */
export class PhaseTimer {
  #sums: Partial<Record<PhaseName, number>> = {};

  /** A phase's start time (ms). */
  clock(): number {
    return performance.now();
  }

  /** Add the wall time since `since` (from {@link clock}) to a phase. */
  add(name: PhaseName, since: number): void {
    this.#sums[name] = (this.#sums[name] ?? 0) + performance.now() - since;
    memTrace(`phase ${name} end`);
  }

  /** The sums since the last call (ms per phase), and start again from zero. */
  take(): Partial<Record<PhaseName, number>> {
    const out = this.#sums;
    this.#sums = {};
    return out;
  }
}
