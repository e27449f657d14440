/**
 * Requeues as the sweep sees them. An array task that stopped with a checkpoint (the
 * time-limit warning, `scontrol requeue`, a preemption: trial.sh in ./scripts.ts) logs a
 * `stopped` event and starts again later, logging a second `start`; a task Slurm restarted
 * without a stop logs only the second `start`. {@link RequeueTracker} turns each poll's view
 * of a task into `requeued`, `started` and `progress` events, each said once.
 * @module
 */
import type { PlannedTrial } from "../../spec.ts";
import type { ExecutorEvent } from "../executor.ts";
import type { LogCache, TaskState } from "./logs.ts";

interface Seen {
  starts: number;
  stops: number;
  /** When this process first saw the task running (performance.now()). */
  since?: number;
}

/** Per trial: how many starts and stops of its log were already reported. */
export class RequeueTracker {
  #seen = new Map<number, Seen>();

  /** `cache`: the log cache the polls fill (its events count the task's starts). */
  constructor(private readonly cache: LogCache) {}

  /** The events a poll's `task` adds to what was reported before. */
  *events(t: PlannedTrial, task: TaskState): Generator<ExecutorEvent> {
    const s = this.#seen.get(t.index) ?? { starts: 0, stops: 0 };
    this.#seen.set(t.index, s);
    const starts = this.cache.get(task.log)?.events.filter((e) => e.type === "start").length ?? 0;
    if (task.stops.length > s.stops) {
      const st = task.stops.at(-1)!;
      yield {
        type: "requeued",
        trial: t,
        what: `stopped after update ${st.update} (${st.reason}), checkpointed; requeued`,
      };
      s.stops = task.stops.length;
    }
    if (starts > s.starts && task.start && task.state !== "pending") {
      if (s.starts > 0 && task.stops.length === s.stops) {
        yield { type: "requeued", trial: t, what: "restarted by Slurm (requeued)" };
      }
      // Events not seen yet (this process joined late, or a poll caught several): the bar
      // starts where the trial is now.
      yield { type: "started", trial: t, start: task.start, at: task.progress ?? task.start };
      s.starts = starts;
    }
    if (task.progress && s.starts > 0 && task.state === "running") {
      yield { type: "progress", trial: t, progress: task.progress };
    }
    if (task.state === "running") s.since ??= performance.now();
  }

  /** When the trial was first seen running, or undefined. */
  since(index: number): number | undefined {
    return this.#seen.get(index)?.since;
  }
}
