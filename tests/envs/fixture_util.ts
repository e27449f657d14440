/**
 * Replay of the Gymnasium reference fixtures (tests/envs/fixtures/*.json, written by
 * make_fixtures.py with the real Gymnasium 1.3.0 package). Tests only read the committed JSON.
 *
 * Why tolerances and not pure bit equality: Gymnasium's arithmetic is float64 like ours and in the
 * same order, but numpy's `np.cos/np.sin` and the scalar `x**2` (which calls `pow`) come from the
 * platform libm. glibc's are not correctly rounded (measured here: ~0.1-0.3% of sin/cos results
 * and ~0.1% of pow(x, 2) results are 1 ulp off), while V8's Math.cos/sin matched the correctly
 * rounded value on every sample we tried and `x * x` is exact-rounded by IEEE. So a transition
 * occasionally differs in the last bit. We therefore check each transition starting from
 * Gymnasium's own previous state (errors cannot compound), require a near-ulp tolerance, and
 * require that almost all transitions are bit-identical.
 * @module
 */
import assert from "node:assert/strict";
import type { VecEnv } from "../../lib/envs/mod.ts";

/** One recorded Gymnasium episode. */
export interface Scenario {
  name: string;
  init_state: number[];
  actions: number[];
  states: number[][];
  obs: number[][];
  rewards: number[];
  terminated: boolean[];
  truncated: boolean[];
}

/** A fixture file. */
export interface Fixture {
  env_id: string;
  gymnasium: string;
  numpy: string;
  scenarios: Scenario[];
}

/** Load a fixture next to this file. */
export function loadFixture(name: string): Fixture {
  const url = new URL(`./fixtures/${name}.json`, import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url)) as Fixture;
}

/** Float64 state tolerance: a few ulps of an O(1) quantity (far tighter than 1e-12 relative). */
export const STATE_TOL = 1e-14;
/** Float32 observation tolerance: one float32 ulp of an O(1) quantity. */
export const OBS_TOL = 2 ** -23;

/**
 * Assert `|actual - expected| <= tol * max(1, |expected|)` elementwise (tol 0: bitwise, so -0 and
 * +0 differ). Returns whether every element was bit-identical.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): boolean {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let exact = true;
  for (let j = 0; j < expected.length; j++) {
    const a = actual[j], e = expected[j];
    if (Object.is(a, e)) continue;
    exact = false;
    const err = Math.abs(a - e) / Math.max(1, Math.abs(e));
    if (!(err <= tol)) assert.fail(`${what}[${j}]: got ${a}, Gymnasium ${e} (scaled err ${err})`);
  }
  return exact;
}

/**
 * Every recorded transition through the bare physics (`advance(state, action) -> terminated`, no
 * autoreset, so terminal steps are covered), each starting from Gymnasium's previous state.
 * Returns how many transitions there were and how many were bit-identical.
 */
export function checkTransitions(
  fx: Fixture,
  advance: (s: Float64Array, action: number) => boolean,
): { steps: number; exact: number } {
  let steps = 0, exact = 0;
  for (const sc of fx.scenarios) {
    sc.actions.forEach((a, t) => {
      const s = Float64Array.from(t === 0 ? sc.init_state : sc.states[t - 1]);
      const term = advance(s, a);
      const where = `${fx.env_id}/${sc.name} step ${t + 1}`;
      steps++;
      if (assertClose(s, sc.states[t], STATE_TOL, `${where}: state`)) exact++;
      assert.equal(term, sc.terminated[t], `${where}: terminated`);
    });
  }
  return { steps, exact };
}

/**
 * Replay every scenario of a fixture at once, scenario k in sub-env k of one VecEnv (so sub-env
 * offsets, flags, autoreset and episode records are exercised), comparing each step with
 * Gymnasium. With `resync`, each sub-env is put back on Gymnasium's previous state before every
 * step (`setState` leaves the episode counters alone); without, the env runs free and
 * `tol` bounds the accumulated drift. Returns the number of compared steps.
 */
export function replayFixture(
  fx: Fixture,
  make: (num: number) => VecEnv,
  opts: { resync: boolean; tol: number },
): number {
  const n = fx.scenarios.length;
  const env = make(n);
  assert.equal(env.spec.id, fx.env_id);
  env.reset(0);
  fx.scenarios.forEach((sc, k) => env.setState(k, sc.init_state));
  const longest = Math.max(...fx.scenarios.map((sc) => sc.actions.length));
  const returns = new Float64Array(n);
  let compared = 0;
  const k = env.spec.obsSize;
  for (let t = 0; t < longest; t++) {
    if (opts.resync && t > 0) {
      fx.scenarios.forEach((sc, i) => t < sc.actions.length && env.setState(i, sc.states[t - 1]));
    }
    // Finished scenarios keep stepping (autoreset) with action 0; their rows are not compared.
    const actions = fx.scenarios.map((sc) => t < sc.actions.length ? sc.actions[t] : 0);
    const r = env.step(actions);
    fx.scenarios.forEach((sc, i) => {
      if (t >= sc.actions.length) return;
      const where = `${fx.env_id}/${sc.name} step ${t + 1}`;
      const done = sc.terminated[t] || sc.truncated[t];
      assert.equal(r.rewards[i], sc.rewards[t], `${where}: reward`);
      assert.equal(r.terminated[i], sc.terminated[t] ? 1 : 0, `${where}: terminated`);
      assert.equal(r.truncated[i], sc.truncated[t] ? 1 : 0, `${where}: truncated`);
      // finalObs is the observation Gymnasium's step returned (the terminal one at episode end).
      const obsTol = Math.max(OBS_TOL, opts.tol);
      assertClose(r.finalObs.subarray(i * k, i * k + k), sc.obs[t], obsTol, `${where}: obs`);
      returns[i] += sc.rewards[t];
      const ep = r.episodes.find((e) => e.env === i);
      if (done) {
        assert.deepEqual(ep, {
          env: i,
          return: returns[i],
          length: t + 1,
          terminated: sc.terminated[t],
          truncated: sc.truncated[t],
        }, `${where}: episode record`);
      } else {
        assert.equal(ep, undefined, `${where}: no episode record`);
        // Mid-episode, the physics state and obs continue the Gymnasium trajectory.
        assertClose(env.getState(i), sc.states[t], opts.tol, `${where}: state`);
        assertClose(r.obs.subarray(i * k, i * k + k), sc.obs[t], obsTol, `${where}: obs row`);
      }
      compared++;
    });
  }
  return compared;
}
