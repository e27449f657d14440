/**
 * The vectorised-environment interface shared by every env in `lib/envs/`, plus the generic
 * implementation ({@link ClassicVecEnv}) the classic-control envs build on.
 *
 * Semantics follow Gymnasium (v1.3.0) single envs wrapped in `TimeLimit`, vectorised with
 * same-step autoreset (gymnasium 0.2x `SyncVectorEnv` / CleanRL `ppo.py`, Gymnasium 1.x
 * `AutoresetMode.SAME_STEP`): when an env terminates or truncates, the observation row returned
 * by that very `step()` is already the first observation of its next episode, and the observation
 * the episode actually ended on is in `finalObs`.
 *
 * All randomness comes from one {@link Rng} per sub-env (seeded from `seed + i` through
 * `new Rng(seed + i)`, like Gymnasium's `vec_env.reset(seed=seed)`), so runs are reproducible and
 * checkpointable.
 *
 * @example
 * ```ts
 * import { makeVecEnv } from "./mod.ts";
 * const env = makeVecEnv("CartPole-v1", 4);
 * let obs = env.reset(42); // Float32Array [4 * 4], reused by later calls
 * for (let t = 0; t < 1000; t++) {
 *   const actions = new Int32Array(env.num).fill(t % 2);
 *   const r = env.step(actions);
 *   obs = r.obs; // rows of finished envs already hold their next episode's reset obs
 *   for (const ep of r.episodes) console.log(ep.env, ep.return, ep.length);
 * }
 * const snap = JSON.stringify(env.state()); // later: env.load(JSON.parse(snap))
 * ```
 * @module
 */
import { Rng } from "../rng.ts";

/** Static description of an environment (mirrors the Gymnasium registry entry). */
export interface EnvSpec {
  /** Gymnasium id, e.g. `"CartPole-v1"`. */
  readonly id: string;
  /** Length of one observation row (float32). */
  readonly obsSize: number;
  /** Discrete actions are the integers `0 .. numActions-1`. */
  readonly numActions: number;
  /** `TimeLimit`: an episode is truncated when its step count reaches this. */
  readonly maxEpisodeSteps: number;
  /** Gymnasium's "solved" return, for reporting only. */
  readonly rewardThreshold?: number;
  /** Length of the float64 physics state (`env.unwrapped.state` in Gymnasium). */
  readonly stateSize: number;
}

/** One episode that ended during a `step()`. */
export interface EpisodeRecord {
  /** Sub-env index. */
  readonly env: number;
  /** Undiscounted sum of the episode's rewards (float64). */
  readonly return: number;
  /** Number of steps in the episode. */
  readonly length: number;
  /** True if it ended by termination (it can also be truncated on the same step). */
  readonly terminated: boolean;
  /** True if it hit the time limit. */
  readonly truncated: boolean;
}

/**
 * What `step()` returns. The typed arrays (and the `episodes` array) are owned by the env and
 * OVERWRITTEN by the next `step()` / `reset()`: copy whatever you need to keep.
 */
export interface EnvStepResult {
  /** `[num * obsSize]`; a finished env's row is already its next episode's reset obs. */
  readonly obs: Float32Array;
  /**
   * `[num * obsSize]`: the observation each env's step actually produced. Equal to `obs` for envs
   * still running; for envs that finished this step it is the terminal/truncated observation
   * (Gymnasium's `info["final_obs"]`), e.g. to bootstrap V(s_T) on truncation.
   */
  readonly finalObs: Float32Array;
  /** `[num]` reward of this step (float64, as Gymnasium returns Python floats). */
  readonly rewards: Float64Array;
  /** `[num]` 1 where the episode terminated this step. */
  readonly terminated: Uint8Array;
  /** `[num]` 1 where the episode was truncated by the time limit this step. */
  readonly truncated: Uint8Array;
  /**
   * Episodes that ended this step (empty on most steps), in env order. The array is reused and
   * cleared by the next call; the record objects themselves are fresh and safe to keep.
   */
  readonly episodes: readonly EpisodeRecord[];
}

/** A batch of `num` independent copies of one environment, stepped in lockstep. */
export interface VecEnv {
  readonly spec: EnvSpec;
  readonly num: number;
  /**
   * The current observations `[num * obsSize]`: the buffer `reset()` and `step()` return, kept up
   * to date by them and by `load()` / `setState()`. Overwritten in place; copy to keep.
   */
  readonly obs: Float32Array;
  /**
   * Start a new episode in every sub-env and return the obs `[num * obsSize]` (the same buffer
   * `step()` returns as `obs`; overwritten by later calls). With `seed`, sub-env `i` is re-seeded
   * with `new Rng(seed + i)` (Gymnasium's `reset(seed=seed)` on a vector env); without, each
   * sub-env keeps drawing from its current generator (an error if the env was never seeded).
   */
  reset(seed?: number): Float32Array;
  /**
   * Step every sub-env with integer actions in `[0, numActions)`; same-step autoreset.
   * Returned buffers are reused: see {@link EnvStepResult}.
   */
  step(actions: ArrayLike<number>): EnvStepResult;
  /**
   * Exact, JSON-serialisable snapshot: physics state (float64 numbers; JSON round-trips doubles
   * exactly), step counters, running episode returns, and each sub-env's Rng state. After
   * `load(JSON.parse(JSON.stringify(env.state())))` into an env of the same id and size, stepping
   * is bit-identical to the uninterrupted env. The snapshot covers the env, not the last
   * `EnvStepResult` buffers.
   */
  state(): VecEnvState;
  /** Restore a snapshot from `state()`; throws if the id or `num` differs or it is malformed. */
  load(state: unknown): void;
  /**
   * Test/debug hook, like assigning `env.unwrapped.state` in Gymnasium: overwrite sub-env `env`'s
   * float64 physics state (length `spec.stateSize`) and refresh its row of `obs`. Step counters and
   * the running return are left alone. Requires a prior `reset()`.
   */
  setState(env: number, state: ArrayLike<number>): void;
  /** A copy of sub-env `env`'s float64 physics state. */
  getState(env: number): number[];
}

/** The JSON shape of {@link VecEnv.state}. */
export interface VecEnvState {
  id: string;
  num: number;
  /** Per sub-env: physics state, `stateSize` float64 numbers. */
  physics: number[][];
  /** Per sub-env: steps taken in the current episode. */
  steps: number[];
  /** Per sub-env: reward summed over the current episode. */
  returns: number[];
  /** Per sub-env: `Rng.state()`; null before the first `reset()`. */
  rngs: number[][] | null;
}

/**
 * Shared machinery for small float64 simulators: buffers, TimeLimit, same-step autoreset,
 * episode bookkeeping, seeding and checkpoints. A subclass supplies only the physics of one
 * sub-env, reading and writing its state in `s` at offset `o` (`o = i * stateSize`).
 */
export abstract class ClassicVecEnv implements VecEnv {
  readonly obs: Float32Array;
  readonly finalObs: Float32Array;
  readonly rewards: Float64Array;
  readonly terminated: Uint8Array;
  readonly truncated: Uint8Array;
  readonly episodes: EpisodeRecord[] = [];
  /** Physics state of all sub-envs, `[num * stateSize]` float64. */
  protected readonly s: Float64Array;
  private readonly steps: Int32Array;
  private readonly returns: Float64Array;
  private rngs: Rng[] | null = null;
  private readonly result: EnvStepResult;

  constructor(readonly spec: EnvSpec, readonly num: number) {
    if (!Number.isInteger(num) || num < 1) {
      throw new RangeError(`${spec.id}: num must be a positive integer, got ${num}`);
    }
    this.obs = new Float32Array(num * spec.obsSize);
    this.finalObs = new Float32Array(num * spec.obsSize);
    this.rewards = new Float64Array(num);
    this.terminated = new Uint8Array(num);
    this.truncated = new Uint8Array(num);
    this.s = new Float64Array(num * spec.stateSize);
    this.steps = new Int32Array(num);
    this.returns = new Float64Array(num);
    this.result = {
      obs: this.obs,
      finalObs: this.finalObs,
      rewards: this.rewards,
      terminated: this.terminated,
      truncated: this.truncated,
      episodes: this.episodes,
    };
  }

  /** Draw a fresh start state (Gymnasium's `reset()` body) into `s[o ..]`. */
  protected abstract initState(rng: Rng, s: Float64Array, o: number): void;
  /** Advance one step with `action`; return whether the episode terminated. */
  protected abstract advance(s: Float64Array, o: number, action: number): boolean;
  /** Reward of a step, given whether it terminated. */
  protected abstract reward(terminated: boolean): number;
  /** Write the float32 observation of state `s[o ..]` into `out[p ..]`. */
  protected abstract observe(s: Float64Array, o: number, out: Float32Array, p: number): void;

  reset(seed?: number): Float32Array {
    if (seed !== undefined) {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`${this.spec.id}: bad seed ${seed}`);
      this.rngs = Array.from({ length: this.num }, (_, i) => new Rng(seed + i));
    } else if (this.rngs === null) {
      throw new Error(`${this.spec.id}: the first reset() needs a seed`);
    }
    for (let i = 0; i < this.num; i++) this.resetOne(i);
    this.finalObs.set(this.obs);
    this.rewards.fill(0);
    this.terminated.fill(0);
    this.truncated.fill(0);
    this.episodes.length = 0;
    return this.obs;
  }

  step(actions: ArrayLike<number>): EnvStepResult {
    const { num, spec, s, obs, finalObs } = this;
    if (this.rngs === null) throw new Error(`${spec.id}: call reset(seed) before step()`);
    if (actions.length !== num) {
      throw new RangeError(`${spec.id}: expected ${num} actions, got ${actions.length}`);
    }
    // Validate everything first so a bad action cannot leave the batch half-stepped.
    for (let i = 0; i < num; i++) {
      const a = actions[i];
      if (!Number.isInteger(a) || a < 0 || a >= spec.numActions) {
        throw new RangeError(
          `${spec.id}: env ${i}: invalid action ${a} (want an integer 0..${spec.numActions - 1})`,
        );
      }
    }
    const n = spec.stateSize, k = spec.obsSize;
    this.episodes.length = 0;
    for (let i = 0; i < num; i++) {
      const term = this.advance(s, i * n, actions[i]);
      const r = this.reward(term);
      // TimeLimit: truncated once the step count reaches the limit, even on a terminating step.
      const len = ++this.steps[i];
      const trunc = len >= spec.maxEpisodeSteps;
      const ret = (this.returns[i] += r);
      this.rewards[i] = r;
      this.terminated[i] = term ? 1 : 0;
      this.truncated[i] = trunc ? 1 : 0;
      // The step's own observation goes to finalObs; obs gets the same row unless the episode
      // ended, in which case the reset below overwrites it (same-step autoreset).
      const p = i * k;
      this.observe(s, i * n, finalObs, p);
      for (let j = 0; j < k; j++) obs[p + j] = finalObs[p + j];
      if (term || trunc) {
        this.episodes.push({
          env: i,
          return: ret,
          length: len,
          terminated: term,
          truncated: trunc,
        });
        this.resetOne(i);
      }
    }
    return this.result;
  }

  state(): VecEnvState {
    const n = this.spec.stateSize;
    return {
      id: this.spec.id,
      num: this.num,
      physics: Array.from(
        { length: this.num },
        (_, i) => Array.from(this.s.subarray(i * n, i * n + n)),
      ),
      steps: Array.from(this.steps),
      returns: Array.from(this.returns),
      rngs: this.rngs === null ? null : this.rngs.map((r) => r.state()),
    };
  }

  load(state: unknown): void {
    const st = state as VecEnvState;
    const id = this.spec.id, n = this.spec.stateSize;
    const bad = (why: string) => new Error(`${id}: cannot load env state: ${why}`);
    if (typeof st !== "object" || st === null) throw bad("not an object");
    if (st.id !== id) throw bad(`it is for ${JSON.stringify(st.id)}`);
    if (st.num !== this.num) throw bad(`it has ${st.num} sub-envs, this env has ${this.num}`);
    const isNums = (a: unknown, len: number) =>
      Array.isArray(a) && a.length === len && a.every((v) => typeof v === "number");
    if (
      !Array.isArray(st.physics) || st.physics.length !== this.num ||
      !st.physics.every((p) => isNums(p, n))
    ) throw bad("physics");
    if (!isNums(st.steps, this.num) || !isNums(st.returns, this.num)) throw bad("steps/returns");
    if (
      st.rngs !== null &&
      (!Array.isArray(st.rngs) || st.rngs.length !== this.num ||
        !st.rngs.every((r) => isNums(r, 4)))
    ) throw bad("rngs");
    st.physics.forEach((p, i) => this.s.set(p, i * n));
    this.steps.set(st.steps);
    this.returns.set(st.returns);
    this.rngs = st.rngs === null ? null : st.rngs.map((r) => new Rng(r));
    // (-0 and NaN never arise from reset/step, so JSON's number format loses nothing here.)
    // Observations are a pure function of the physics state, so rebuild them.
    for (let i = 0; i < this.num; i++) this.observe(this.s, i * n, this.obs, i * this.spec.obsSize);
    this.finalObs.set(this.obs);
  }

  setState(env: number, state: ArrayLike<number>): void {
    const n = this.spec.stateSize;
    this.checkEnv(env);
    if (this.rngs === null) throw new Error(`${this.spec.id}: call reset(seed) before setState()`);
    if (state.length !== n) {
      throw new RangeError(`${this.spec.id}: state needs ${n} numbers, got ${state.length}`);
    }
    for (let j = 0; j < n; j++) this.s[env * n + j] = state[j];
    this.observe(this.s, env * n, this.obs, env * this.spec.obsSize);
  }

  getState(env: number): number[] {
    const n = this.spec.stateSize;
    this.checkEnv(env);
    return Array.from(this.s.subarray(env * n, env * n + n));
  }

  private checkEnv(env: number): void {
    if (!Number.isInteger(env) || env < 0 || env >= this.num) {
      throw new RangeError(`${this.spec.id}: env index ${env} out of range [0, ${this.num})`);
    }
  }

  private resetOne(i: number): void {
    const n = this.spec.stateSize;
    this.initState(this.rngs![i], this.s, i * n);
    this.steps[i] = 0;
    this.returns[i] = 0;
    this.observe(this.s, i * n, this.obs, i * this.spec.obsSize);
  }
}
