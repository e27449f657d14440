/**
 * Stop at the next update with a checkpoint: what a sweep worker does when its scheduler asks
 * it to go (Slurm's time-limit warning signal, a requeue, a preemption). The worker makes a
 * {@link StopToken} and passes it down (`executeTrial` → the trial's run context → the task's
 * run options → {@link trainPpo}'s `stop`); its signal handler calls
 * {@link StopToken.request}; trainPpo (lib/ppo/trainer.ts) reads {@link StopToken.reason}
 * after each update, writes a run checkpoint there and throws {@link StopRequested}; the
 * requeued trial resumes from that checkpoint, bit for bit. No process-wide state: two
 * trials in one process each have their own token.
 *
 * @example
 * ```ts
 * const stop = new StopToken();
 * Deno.addSignalListener("SIGTERM", () => {
 *   if (!stop.request("SIGTERM")) Deno.exit(75); // not training: nothing to save
 * });
 * await trainPpo(problem, { ...opts, stop });
 * ```
 * @module
 */

/** A request to stop training after the current update, passed down to the trainer. */
export class StopToken {
  #reason: string | null = null;
  #training = 0;

  /**
   * Ask training to stop after the current update, with a checkpoint. Returns true when a
   * training loop holding this token is running and will honour it; false when none is (the
   * caller may just exit: everything before and after training is redone on resume).
   */
  request(why: string): boolean {
    this.#reason ??= why;
    return this.#training > 0;
  }

  /** Why a stop was requested, or null. */
  get reason(): string | null {
    return this.#reason;
  }

  /** A training loop marks itself running (for {@link request}'s answer); call the result when it ends. */
  training(): () => void {
    this.#training++;
    let left = false;
    return () => {
      if (!left) this.#training--, left = true;
    };
  }
}

/** Thrown by trainPpo after it checkpointed at `update` because a stop was requested. */
export class StopRequested extends Error {
  constructor(readonly update: number, readonly reason: string, readonly checkpoint: string) {
    super(`stopped after update ${update} (${reason}); checkpoint ${checkpoint}`);
    this.name = "StopRequested";
  }
}
