/**
 * Stop at the next update with a checkpoint: what a sweep worker does when its scheduler asks
 * it to go (Slurm's time-limit warning signal, a requeue, a preemption). The worker's signal
 * handler calls {@link requestStop}; {@link trainPpo} (lib/ppo/trainer.ts) checks
 * {@link stopRequested} after each update, writes a run checkpoint there and throws
 * {@link StopRequested}; the requeued trial resumes from that checkpoint, bit for bit.
 *
 * @example
 * ```ts
 * Deno.addSignalListener("SIGTERM", () => {
 *   if (!requestStop("SIGTERM")) Deno.exit(75); // not training: nothing to save
 * });
 * ```
 * @module
 */

let reason: string | null = null;
let training = 0;

/**
 * Ask training to stop after the current update, with a checkpoint. Returns true when a
 * training loop is running and will honour it; false when none is (the caller may just exit:
 * everything before and after training is redone on resume).
 */
export function requestStop(why: string): boolean {
  reason ??= why;
  return training > 0;
}

/** Why a stop was requested, or null. */
export function stopRequested(): string | null {
  return reason;
}

/** Training loops mark themselves running (for {@link requestStop}'s answer). */
export function trainingStarted(): void {
  training++;
}

export function trainingEnded(): void {
  training = Math.max(0, training - 1);
}

/** Thrown by trainPpo after it checkpointed at `update` because a stop was requested. */
export class StopRequested extends Error {
  constructor(readonly update: number, readonly reason: string, readonly checkpoint: string) {
    super(`stopped after update ${update} (${reason}); checkpoint ${checkpoint}`);
    this.name = "StopRequested";
  }
}
