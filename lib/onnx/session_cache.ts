/**
 * A cache of compiled sessions (and of what is built around them: decode steps, evaluation
 * graphs) with an owner and an end. A trial makes one (lib/trial/context.ts), hands it down in
 * its session options (`SessionOptions.sessions`), and disposes it when the trial ends: the
 * sessions' ORT arenas and thread pools are freed then, so two trials in one process (tests,
 * `deno task train` loops, an in-process executor) share no session and a finished trial keeps
 * no memory alive.
 *
 * Code that runs outside any trial (a bench, `deno task generate`, a unit test calling a
 * library function) and passes no cache gets {@link processSessions}, which lives as long as
 * the process.
 *
 * @example
 * ```ts
 * await using sessions = new SessionCache();
 * const s = await compile(graph, { threads: 2, sessions });
 * sessions.size; // 1
 * // leaving the block disposes it: s.run(...) now throws "released"
 * ```
 * @module
 */

/** One memoised value and how to free it. */
interface Entry {
  value: Promise<unknown>;
  release?: (v: unknown) => void | Promise<void>;
}

/** Memoised values by key, each freed (if it says how) when the cache is disposed. */
export class SessionCache {
  #entries = new Map<string, Entry>();
  #disposed = false;

  /** A name for messages ("trial 3f2a…", "process"). */
  constructor(readonly label = "sessions") {}

  /**
   * The value for `key`, made by `make` on first use; a failed make is forgotten (the next call
   * tries again). `release` frees the value when the cache is disposed.
   */
  memo<T>(
    key: string,
    make: () => Promise<T>,
    release?: (v: T) => void | Promise<void>,
  ): Promise<T> {
    if (this.#disposed) {
      return Promise.reject(
        new Error(`${this.label}: used after it was disposed (its trial ended)`),
      );
    }
    const hit = this.#entries.get(key);
    if (hit) return hit.value as Promise<T>;
    const value = make();
    value.catch(() => {
      if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
    });
    this.#entries.set(key, { value, release: release as Entry["release"] });
    return value;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** The keys held now (for tests and diagnostics). */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether {@link dispose} was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Free every entry (in reverse order of creation: what was built on a session goes before
   * it) and refuse new ones. Entries whose make failed are skipped. Idempotent.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const entries = [...this.#entries.values()].reverse();
    this.#entries.clear();
    for (const e of entries) {
      const v = await e.value.catch(() => undefined);
      if (v !== undefined && e.release) await e.release(v);
    }
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /**
   * Not part of any key: session options are memo keys through `JSON.stringify(opts)` (sft.ts,
   * reward_model.ts, gpt_decoder.ts), and which cache holds a session changes nothing it computes.
   */
  toJSON(): undefined {
    return undefined;
  }
}

/**
 * The cache of code that runs outside a trial and passes none. Process-wide on purpose: a
 * session is a pure function of its graph and options (weights are graph inputs; a session with
 * weights compiled in is never cached), so sharing one cannot change a result; only its memory
 * outlives its user, which for a bench or a one-shot command is the process anyway. Trials
 * never use it (tests/trial/context_test.ts checks that a trial leaves it untouched).
 */
export const processSessions: SessionCache = new SessionCache("process");
