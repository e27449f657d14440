/**
 * What one trial owns while it runs, in place of module state: its compiled sessions, the
 * stage outputs it keeps in memory, its stop token, its phase timer (a benchmark's). The trial runner (lib/experiment/trial.ts)
 * makes one per trial, hands it to the kind's `run` (`TrialRunContext.trial`) and disposes it
 * when the trial ends, however it ends: the sessions are freed (ORT arenas and thread pools),
 * the memo is emptied, and any later use of them fails loudly. So two trials in one process
 * (tests, `deno task train` loops, an in-process executor) share nothing by accident, and a
 * process that runs trials one after another does not keep the old ones' sessions alive.
 *
 * A kind's run passes `trial.sessions` down in its session options (`SessionOptions.sessions`,
 * lib/onnx/session.ts): every compile beneath it (trainer, sampler, scorer) caches there.
 *
 * Measured (2 loaded cores, RSS after each trial, GC forced): three CartPole-v1 trials of
 * widths 1024, 1536, 2048 in one process held 246, 430, 620 MB with the former process-wide
 * session cache and 233, 164, 509 MB with a context per trial. Three same-shape sentiment
 * trials, which shared their sessions before, stay at 225-317 MB (280-296 MB before).
 *
 * @example
 * ```ts
 * await using trial = new TrialContext({ label: "trial 3f2a" });
 * await kind.run(config, outDir, { ...ctx, trial });
 * // here trial.sessions is disposed and trial.memo empty
 * ```
 * @module
 */
import { SessionCache } from "../onnx/session_cache.ts";
import { StopToken } from "../ppo/stop.ts";
import type { PhaseTimer } from "../ppo/phase_times.ts";

/** Options of a {@link TrialContext}. */
export interface TrialContextOptions {
  /** Names the trial in messages ("trial 3f2a…"). */
  label?: string;
  /** The trial's stop token (a worker's signal handler requests it); default: a new one. */
  stop?: StopToken;
  /** Wall time per phase of each update, for a benchmark; absent: nothing is timed. */
  phases?: PhaseTimer;
}

/** One trial's resources: made by the runner, passed down, disposed at the trial's end. */
export class TrialContext {
  /** The trial's compiled sessions (pass as `SessionOptions.sessions`). */
  readonly sessions: SessionCache;
  /**
   * Stage outputs the trial keeps in memory by a key their owner chooses (a trained SFT
   * trunk, which the reward-model stage would otherwise train again): a pure function of the
   * key, so reusing one cannot change a result.
   */
  readonly memo: Map<string, unknown> = new Map();
  /** A stop request for the trial's training (lib/ppo/stop.ts). */
  readonly stop: StopToken;
  /** Wall time per phase (lib/ppo/phase_times.ts), when a benchmark asked for it. */
  readonly phases?: PhaseTimer;
  readonly label: string;
  #disposed = false;

  constructor(opts: TrialContextOptions = {}) {
    this.label = opts.label ?? "trial";
    this.sessions = new SessionCache(this.label);
    this.stop = opts.stop ?? new StopToken();
    if (opts.phases) this.phases = opts.phases;
  }

  /** Whether the trial ended ({@link dispose} was called). */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Free the trial's sessions and forget its memo. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.memo.clear();
    await this.sessions.dispose();
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
