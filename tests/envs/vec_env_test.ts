import assert from "node:assert/strict";
import {
  ENV_IDS,
  envSpec,
  type EnvStepResult,
  makeVecEnv,
  resolveEnvId,
  type VecEnv,
} from "../../lib/envs/mod.ts";
import { Rng } from "../../lib/rng.ts";

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Deep copy of a EnvStepResult (its buffers are reused by the env). */
function snapshot(r: EnvStepResult) {
  return {
    obs: Array.from(bytes(r.obs)),
    finalObs: Array.from(bytes(r.finalObs)),
    rewards: Array.from(bytes(r.rewards)),
    terminated: Array.from(r.terminated),
    truncated: Array.from(r.truncated),
    episodes: r.episodes.map((e) => ({ ...e })),
  };
}

/** Deterministic actions, independent of the env (so two envs can be fed the same stream). */
function actionStream(env: VecEnv, seed: number) {
  const rng = new Rng(seed);
  const a = new Int32Array(env.num);
  return () => {
    for (let i = 0; i < env.num; i++) a[i] = rng.int(env.spec.numActions);
    return a;
  };
}

for (const id of ENV_IDS) {
  Deno.test(`${id}: seeded reset is deterministic; seeds and sub-envs differ`, () => {
    const a = makeVecEnv(id, 4), b = makeVecEnv(id, 4), c = makeVecEnv(id, 4);
    const oa = bytes(a.reset(123)).slice();
    assert.deepEqual(bytes(b.reset(123)), oa);
    assert.deepEqual(a.state(), b.state());
    assert.notDeepEqual(bytes(c.reset(124)), oa);
    const k = a.spec.obsSize;
    const rows = new Set(
      Array.from({ length: 4 }, (_, i) => a.obs.subarray(i * k, i * k + k).join()),
    );
    assert.equal(rows.size, 4, "sub-envs must start in different states");
    // Gymnasium vector semantics: sub-env i is seeded with seed + i.
    const single = makeVecEnv(id, 1);
    for (let i = 0; i < 4; i++) {
      single.reset(123 + i);
      assert.deepEqual(single.getState(0), a.getState(i), `sub-env ${i}`);
    }
  });

  Deno.test(`${id}: reset() without a seed continues each sub-env's generator`, () => {
    const env = makeVecEnv(id, 3);
    assert.throws(() => env.reset(), /needs a seed/);
    assert.throws(() => env.step([0, 0, 0]), /reset/);
    const first = bytes(env.reset(5)).slice();
    const second = bytes(env.reset()).slice();
    assert.notDeepEqual(second, first);
    const again = makeVecEnv(id, 3);
    again.reset(5);
    assert.deepEqual(bytes(again.reset()), second);
  });

  Deno.test(`${id}: reset obs within Gymnasium's start distribution`, () => {
    const env = makeVecEnv(id, 256);
    const obs = env.reset(9);
    const k = env.spec.obsSize;
    for (let i = 0; i < env.num; i++) {
      const s = env.getState(i), o = obs.subarray(i * k, i * k + k);
      if (id === "CartPole-v1") {
        for (const v of s) assert.ok(v >= -0.05 && v < 0.05, `state ${v}`);
        assert.deepEqual([...o], s.map(Math.fround));
      } else {
        for (const v of s) assert.ok(Math.abs(v) <= Math.fround(0.1), `state ${v}`);
        assert.ok(o[0] >= Math.fround(Math.cos(0.1)) && o[0] <= 1 && o[2] <= 1);
        for (const j of [1, 3, 4, 5]) assert.ok(Math.abs(o[j]) <= Math.fround(0.1));
      }
    }
    // The draws cover the interval (not, say, stuck at one end).
    const xs = Array.from({ length: env.num }, (_, i) => env.getState(i)[0]);
    const lim = id === "CartPole-v1" ? 0.05 : 0.1;
    assert.ok(Math.min(...xs) < -0.8 * lim && Math.max(...xs) > 0.8 * lim);
  });

  Deno.test(`${id}: same-step autoreset, finalObs and episode records`, () => {
    const num = 3, seed = 77;
    const env = makeVecEnv(id, num);
    const k = env.spec.obsSize;
    env.reset(seed);
    // Shadow generators: each reset consumes exactly four uniform draws from the sub-env's Rng.
    const shadow = Array.from({ length: num }, (_, i) => new Rng(seed + i));
    const draw = (rng: Rng) => {
      const lo = id === "CartPole-v1" ? -0.05 : -0.1, hi = -lo;
      const v = [0, 1, 2, 3].map(() => lo + (hi - lo) * rng.uniform());
      return id === "CartPole-v1" ? v : v.map(Math.fround);
    };
    shadow.forEach((rng, i) => assert.deepEqual(env.getState(i), draw(rng)));
    // Acrobot needs a swing-up controller to finish episodes in reasonable time.
    const policy = (obs: Float32Array, i: number) =>
      id === "CartPole-v1" ? 1 : (obs[i * k + 5] > 0 ? 2 : 0);
    const ret = new Float64Array(num), len = new Int32Array(num);
    let ended = 0;
    let obs = env.obs;
    for (let t = 0; t < 3000 && ended < 6; t++) {
      const actions = Array.from({ length: num }, (_, i) => policy(obs, i));
      const r = env.step(actions);
      obs = r.obs;
      for (let i = 0; i < num; i++) {
        ret[i] += r.rewards[i];
        len[i]++;
        const row = (a: Float32Array) => Array.from(a.subarray(i * k, i * k + k));
        const ep = r.episodes.find((e) => e.env === i);
        if (r.terminated[i] || r.truncated[i]) {
          ended++;
          assert.deepEqual(ep, {
            env: i,
            return: ret[i],
            length: len[i],
            terminated: r.terminated[i] === 1,
            truncated: r.truncated[i] === 1,
          });
          if (id === "CartPole-v1") {
            assert.equal(ep!.return, ep!.length); // +1 per step, terminal step included
            const [x, , theta] = row(r.finalObs);
            assert.ok(Math.abs(x) > 2.4 || Math.abs(theta) > 12 * 2 * Math.PI / 360);
          } else {
            assert.equal(ep!.return, -(ep!.length - 1)); // 0 on the terminal step
            const [c1, s1, c2, s2] = row(r.finalObs);
            // -cos(t1) - cos(t1 + t2) > 1, via the angle-sum identity on the obs (float32).
            assert.ok(-c1 - (c1 * c2 - s1 * s2) > 1 - 1e-5);
          }
          // The returned obs row is already the next episode's first obs, from the env's Rng.
          const s = env.getState(i);
          assert.deepEqual(s, draw(shadow[i]));
          assert.notDeepEqual(row(r.obs), row(r.finalObs));
          ret[i] = 0;
          len[i] = 0;
        } else {
          assert.equal(ep, undefined);
          assert.deepEqual(row(r.obs), row(r.finalObs));
        }
      }
      assert.equal(
        r.episodes.length,
        [...r.terminated].filter((v, i) => v || r.truncated[i]).length,
      );
    }
    assert.ok(ended >= 6, `only ${ended} episodes ended`);
  });

  Deno.test(`${id}: state()/load() through JSON continues bit for bit`, () => {
    const total = id === "CartPole-v1" ? 200 : 700, at = 77;
    const a = makeVecEnv(id, 4);
    a.reset(2024);
    const actA = actionStream(a, 99);
    const refOut: ReturnType<typeof snapshot>[] = [];
    let saved = "";
    for (let t = 0; t < total; t++) {
      if (t === at) saved = JSON.stringify(a.state());
      refOut.push(snapshot(a.step(actA())));
    }
    const refFinal = JSON.stringify(a.state());
    // Replay the action stream up to the snapshot so the restored env gets the same actions.
    const actB = actionStream(a, 99);
    for (let t = 0; t < at; t++) actB();
    // Restore into an env that has its own history (other seed, steps taken), not a blank one.
    const b = makeVecEnv(id, 4);
    b.reset(1);
    for (let t = 0; t < 30; t++) b.step(actionStream(b, t)());
    b.load(JSON.parse(saved));
    let episodes = 0;
    for (let t = at; t < total; t++) {
      const out = snapshot(b.step(actB()));
      assert.deepEqual(out, refOut[t], `step ${t}`);
      episodes += out.episodes.length;
    }
    assert.equal(JSON.stringify(b.state()), refFinal);
    assert.ok(episodes > 0, "the continuation must cross an autoreset (exercises the Rng state)");
  });

  Deno.test(`${id}: load() rejects another env, size or a malformed state`, () => {
    const env = makeVecEnv(id, 2);
    env.reset(1);
    const st = env.state();
    const other = ENV_IDS.find((x) => x !== id)!;
    assert.throws(() => makeVecEnv(other, 2).load(st), /cannot load env state/);
    assert.throws(() => makeVecEnv(id, 3).load(st), /2 sub-envs/);
    assert.throws(() => makeVecEnv(id, 2).load({ ...st, physics: [[1, 2]] }), /physics/);
    assert.throws(() => makeVecEnv(id, 2).load(null), /not an object/);
    const fresh = makeVecEnv(id, 2);
    fresh.load(st);
    assert.deepEqual(fresh.state(), st);
    assert.deepEqual(bytes(fresh.obs), bytes(env.obs));
  });

  Deno.test(`${id}: bad actions throw without stepping anything; buffers are reused`, () => {
    const env = makeVecEnv(id, 2);
    const obs = env.reset(3);
    const before = JSON.stringify(env.state());
    const n = env.spec.numActions;
    for (const bad of [[0, n], [0, -1], [0, 0.5], [0, NaN]]) {
      assert.throws(() => env.step(bad), /invalid action/);
    }
    assert.throws(() => env.step([0]), /expected 2 actions/);
    assert.equal(JSON.stringify(env.state()), before);
    const r1 = env.step(new Int32Array([0, n - 1]));
    const r2 = env.step([n - 1, 0]);
    assert.equal(r1.obs, obs, "step() returns the reset() buffer");
    assert.equal(r2.obs, r1.obs);
    assert.equal(r2.rewards, r1.rewards);
  });
}

Deno.test("registry: ids, short names, specs and a clear error for unknown ids", () => {
  assert.deepEqual([...ENV_IDS], ["CartPole-v1", "Acrobot-v1"]);
  assert.equal(resolveEnvId("cartpole"), "CartPole-v1");
  assert.equal(resolveEnvId("Acrobot"), "Acrobot-v1");
  assert.equal(resolveEnvId("Acrobot-v1"), "Acrobot-v1");
  assert.equal(makeVecEnv("acrobot", 3).spec.id, "Acrobot-v1");
  assert.equal(makeVecEnv("CartPole-v1", 2).num, 2);
  assert.equal(envSpec("cartpole").obsSize, 4);
  assert.equal(envSpec("acrobot").numActions, 3);
  assert.throws(
    () => makeVecEnv("MountainCar-v0", 1),
    (e: Error) =>
      e.message.includes('"MountainCar-v0"') && e.message.includes("CartPole-v1") &&
      e.message.includes("Acrobot-v1") && e.message.includes("cartpole"),
  );
  assert.throws(() => makeVecEnv("CartPole-v0", 1), /Unknown env id "CartPole-v0"/);
  assert.throws(() => makeVecEnv("cartpole", 0), /positive integer/);
});

Deno.test("Rng(seed): consecutive seeds give independent-looking first draws; state round-trips", () => {
  const N = 2000;
  const first = Array.from({ length: N }, (_, s) => new Rng(s).uniform());
  const mean = first.reduce((a, b) => a + b, 0) / N;
  assert.ok(Math.abs(mean - 0.5) < 0.03, `mean of first draws ${mean}`);
  const bins = new Array(10).fill(0);
  for (const u of first) bins[Math.floor(u * 10)]++;
  for (const c of bins) assert.ok(c > N / 10 * 0.7 && c < N / 10 * 1.3, `bins ${bins}`);
  let corr = 0;
  for (let s = 0; s + 1 < N; s++) corr += (first[s] - 0.5) * (first[s + 1] - 0.5) * 12;
  assert.ok(Math.abs(corr / (N - 1)) < 0.1, `neighbour correlation ${corr / (N - 1)}`);
  const r = new Rng(2 ** 40 + 3);
  r.uniform();
  const copy = new Rng(r.state());
  assert.deepEqual([r.uniform(), r.int(7)], [copy.uniform(), copy.int(7)]);
  assert.notDeepEqual(new Rng(2 ** 40 + 3).state(), new Rng(3).state());
  assert.throws(() => new Rng(1.5), /safe integer/);
});
