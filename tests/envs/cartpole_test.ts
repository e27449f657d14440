import assert from "node:assert/strict";
import { CARTPOLE_SPEC, CartPoleVecEnv } from "../../lib/envs/mod.ts";
import { checkTransitions, loadFixture, replayFixture, STATE_TOL } from "./fixture_util.ts";

/** Exposes the bare physics step for fixture comparison of terminal states. */
class Probe extends CartPoleVecEnv {
  raw = (s: Float64Array, a: number) => this.advance(s, 0, a);
}

const fx = loadFixture("cartpole");

Deno.test("cartpole: fixture comes from Gymnasium 1.3.0 and covers every ending", () => {
  assert.equal(fx.env_id, "CartPole-v1");
  assert.equal(fx.gymnasium, "1.3.0");
  const names = fx.scenarios.map((s) => s.name);
  assert.deepEqual(names, [
    "truncated",
    "positive_angle",
    "right_edge",
    "left_edge",
    "negative_angle",
  ]);
  const last = (i: number) => fx.scenarios[i].states.at(-1)!;
  const thr = 12 * 2 * Math.PI / 360;
  assert.equal(fx.scenarios[0].truncated.at(-1), true);
  assert.equal(fx.scenarios[0].actions.length, 500);
  assert.ok(last(1)[2] > thr);
  assert.ok(last(2)[0] > 2.4);
  assert.ok(last(3)[0] < -2.4);
  assert.ok(last(4)[2] < -thr);
});

Deno.test("cartpole: every transition matches Gymnasium (≥99% bit-identical), terminal ones too", () => {
  const { steps, exact } = checkTransitions(fx, new Probe(1).raw);
  assert.equal(steps, 627);
  // All 627 are bit-identical today; allow for glibc's rare 1-ulp sin/cos (see fixture_util.ts).
  assert.ok(exact >= 0.99 * steps, `only ${exact}/${steps} transitions bit-identical`);
});

Deno.test("cartpole: vectorised replay matches Gymnasium (state, obs, reward, flags, episodes)", () => {
  const total = fx.scenarios.reduce((a, s) => a + s.actions.length, 0);
  const make = (n: number) => new CartPoleVecEnv(n);
  assert.equal(replayFixture(fx, make, { resync: true, tol: STATE_TOL }), total);
  // CartPole is not chaotic over these horizons: running free (no resync) stays on Gymnasium's
  // trajectory too, with identical actions' consequences, flags and episode ends.
  assert.equal(replayFixture(fx, make, { resync: false, tol: 1e-9 }), total);
});

Deno.test("cartpole: spec matches the Gymnasium registry", () => {
  assert.deepEqual(CARTPOLE_SPEC, {
    id: "CartPole-v1",
    obsSize: 4,
    numActions: 2,
    maxEpisodeSteps: 500,
    rewardThreshold: 475,
    stateSize: 4,
  });
});

Deno.test("cartpole: reward is 1 on every step, the terminating one included", () => {
  const env = new CartPoleVecEnv(1);
  env.reset(3);
  let n = 0;
  for (;;) {
    const r = env.step([1]);
    n++;
    assert.equal(r.rewards[0], 1);
    if (r.terminated[0]) {
      assert.deepEqual(r.episodes, [
        { env: 0, return: n, length: n, terminated: true, truncated: false },
      ]);
      break;
    }
    assert.ok(n < 100, "always pushing right must topple the pole quickly");
  }
});

Deno.test("cartpole: a balanced pole is truncated at exactly 500 steps", () => {
  const env = new CartPoleVecEnv(2);
  env.reset(0);
  env.setState(0, [0, 0, 0, 0]);
  env.setState(1, [0.01, 0, -0.01, 0]);
  const obs = env.step([0, 0]).obs; // step 1; the buffer is reused, so it tracks later steps
  for (let t = 2; t <= 500; t++) {
    const a = [0, 1].map((i) => {
      const o = obs.subarray(i * 4, i * 4 + 4);
      return o[2] + 0.5 * o[3] + 0.01 * o[0] + 0.1 * o[1] > 0 ? 1 : 0;
    });
    const r = env.step(a);
    if (t < 500) {
      assert.deepEqual([...r.terminated, ...r.truncated], [0, 0, 0, 0], `step ${t}`);
    } else {
      assert.deepEqual([...r.terminated], [0, 0]);
      assert.deepEqual([...r.truncated], [1, 1]);
      assert.deepEqual(r.episodes, [
        { env: 0, return: 500, length: 500, terminated: false, truncated: true },
        { env: 1, return: 500, length: 500, terminated: false, truncated: true },
      ]);
      // The truncated obs is in finalObs; obs already holds fresh reset rows.
      for (let j = 0; j < 8; j++) assert.ok(Math.abs(r.obs[j]) <= Math.fround(0.05));
      assert.ok(r.finalObs.some((v, j) => v !== r.obs[j]));
    }
  }
});

Deno.test("cartpole: termination thresholds are strict: |x| > 2.4, |theta| > 12 degrees", () => {
  const thr = 12 * 2 * Math.PI / 360;
  const up = (v: number) => v + Math.abs(v) * 2 ** -52; // next double away from 0 (v != 0)
  const env = new CartPoleVecEnv(1);
  env.reset(0);
  // With zero velocities Euler leaves x and theta unchanged for one step, so the stored value
  // is exactly the one tested.
  const cases: [number[], number][] = [
    [[2.4, 0, 0, 0], 0],
    [[up(2.4), 0, 0, 0], 1],
    [[-2.4, 0, 0, 0], 0],
    [[-up(2.4), 0, 0, 0], 1],
    [[0, 0, thr, 0], 0],
    [[0, 0, up(thr), 0], 1],
    [[0, 0, -thr, 0], 0],
    [[0, 0, -up(thr), 0], 1],
  ];
  for (const [state, want] of cases) {
    env.setState(0, state);
    const r = env.step([0]);
    assert.equal(r.terminated[0], want, `state ${state}`);
    if (!want) assert.equal(env.getState(0)[state[0] ? 0 : 2], state[state[0] ? 0 : 2]);
  }
});
