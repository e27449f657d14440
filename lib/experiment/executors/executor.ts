/**
 * Executors: where a sweep's trials run. The sweep command (cli/sweep.ts) follows every
 * executor the same way: {@link Executor.submit} the plan, consume {@link Executor.events}
 * into the progress bars and the summary table, {@link Executor.cancel} on Ctrl-C.
 *
 * Two executors exist: local worker processes (./local.ts) and a Slurm job array
 * (./slurm/mod.ts). Both run the same worker (cli/trial.ts → `executeTrial`), so a trial's
 * bundle is the same bytes wherever it ran.
 *
 * A new executor (Ray, Kubernetes, ...) is one file implementing {@link Executor}:
 * - `submit(plan)`: lock or claim `<root>/<plan.name>/`, find the trials whose bundle is
 *   already there (`inspectTrial`; report them as `done` events with status "skipped"), and
 *   start the worker (`cli/trial.ts --stdin` reads a `TrialRequest` line; its stdout is JSON
 *   `TrialEvent` lines) for each of the others wherever it runs them; throw a `UserError`
 *   naming the problem and the fix before anything starts when it cannot.
 * - `events()`: translate what the workers report into {@link ExecutorEvent}s, one `done` or
 *   `failed` per trial of the plan, and end when every trial has one.
 * - `cancel()`: stop the trials (unfinished ones end as `failed` events with status
 *   "interrupted"; they resume from their checkpoints on the next sweep).
 * @module
 */
import type { TrialProgress } from "../kinds.ts";
import type { TrialOutcome } from "../runner.ts";
import type { Plan, PlannedTrial } from "../spec.ts";

/** Where a trial starts: the update it resumes from, of how many. */
export interface TrialStart {
  done: number;
  total: number;
  resumed: boolean;
}

/**
 * What an executor reports, in the order it learns it. `started` and `progress` feed the
 * progress bars; `done` (status done, skipped or reused) and `failed` (status failed or
 * interrupted) carry the {@link TrialOutcome} the summary table prints.
 */
export type ExecutorEvent =
  | {
    type: "started";
    trial: PlannedTrial;
    start: TrialStart;
    /** Where the trial already is, when the executor saw it late (a cluster poll). */
    at?: TrialProgress;
  }
  | { type: "progress"; trial: PlannedTrial; progress: TrialProgress }
  | { type: "stage"; trial?: PlannedTrial; name: string; hash: string; cached: boolean }
  /** A running trial stopped with a checkpoint and went back to a queue (`what` says why). */
  | { type: "requeued"; trial: PlannedTrial; what: string }
  /** The executor's queue, in a few words ("3 pending"; "" when empty). */
  | { type: "queue"; text: string }
  /** A line for the user (a cluster's stage job finished, a submission was followed). */
  | { type: "log"; line: string }
  | { type: "done"; outcome: TrialOutcome }
  | { type: "failed"; outcome: TrialOutcome };

/** What {@link Executor.submit} reports back. */
export interface SubmitResult {
  /** Trials it will run (the others were finished already). */
  submitted: number;
  /** Submitted jobs live on without this process (a cluster); false for local processes. */
  detachable: boolean;
}

/** One shape for every place trials run. */
export interface Executor {
  /** "local", "slurm", ... (messages). */
  readonly name: string;
  /** Start the plan's unfinished trials; throws before anything starts when it cannot. */
  submit(plan: Plan): Promise<SubmitResult>;
  /** The trials' events until each trial of the plan has ended (`done` or `failed`). */
  events(): AsyncIterable<ExecutorEvent>;
  /** Stop the trials; `events()` then ends with the unfinished ones interrupted. */
  cancel(): Promise<void>;
}

/** `done` for a finished outcome, `failed` for a failed or interrupted one. */
export function endEvent(o: TrialOutcome): ExecutorEvent {
  return o.status === "failed" || o.status === "interrupted"
    ? { type: "failed", outcome: o }
    : { type: "done", outcome: o };
}

/**
 * A push-to-pull queue: producers `push` events, `end` or `fail` it; one consumer iterates.
 * What an executor built on callbacks (worker pipes, timers) turns into `events()`.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #wake: (() => void) | null = null;
  #ended = false;
  #error: unknown = null;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  fail(e: unknown): void {
    this.#error = e ?? new Error("executor failed");
    this.end();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.#items.length) yield this.#items.shift()!;
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = null;
    }
  }
}
