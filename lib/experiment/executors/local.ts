/**
 * The local executor: the plan's trials in `jobs` worker processes on this machine
 * ({@link runPlan} in ../runner.ts), as an {@link Executor}.
 * @module
 */
import { type RunOptions, runPlan } from "../runner.ts";
import type { Plan } from "../spec.ts";
import {
  endEvent,
  EventQueue,
  type Executor,
  type ExecutorEvent,
  type SubmitResult,
} from "./executor.ts";

/** Local worker processes; options as {@link runPlan}'s, less the abort signal (cancel). */
export class LocalExecutor implements Executor {
  readonly name = "local";
  #queue = new EventQueue<ExecutorEvent>();
  #abort = new AbortController();
  #started = false;

  constructor(private readonly opts: Omit<RunOptions, "signal">) {}

  submit(plan: Plan): Promise<SubmitResult> {
    if (this.#started) throw new Error("LocalExecutor: submit once per executor");
    this.#started = true;
    const q = this.#queue;
    runPlan(plan, { ...this.opts, signal: this.#abort.signal }, {
      onTrialStart: (trial, start) => q.push({ type: "started", trial, start }),
      onTrialProgress: (trial, progress) => q.push({ type: "progress", trial, progress }),
      onTrialStage: (trial, s) => q.push({ type: "stage", trial, ...s }),
      onTrialEnd: (o) => q.push(endEvent(o)),
    }).then(() => q.end(), (e) => q.fail(e));
    return Promise.resolve({ submitted: plan.trials.length, detachable: false });
  }

  events(): AsyncIterable<ExecutorEvent> {
    return this.#queue;
  }

  /** Kill the workers (SIGKILL: they resume from their last checkpoint on the next sweep). */
  cancel(): Promise<void> {
    this.#abort.abort();
    return Promise.resolve();
  }

  /** Whether {@link cancel} was called. */
  get cancelled(): boolean {
    return this.#abort.signal.aborted;
  }
}
