/**
 * PPO updates in Proxima against the same updates computed by PyTorch as CleanRL's ppo.py
 * computes them (fixtures/cleanrl_update.json, from make_cleanrl_update.py): the same params,
 * rollout and minibatch permutations go in through the real trainPpo and the CartPole train
 * step for 3 updates; the params after 48 Adam steps and each update's logged statistics must
 * match. This pins GAE with episode ends and bootstraps, per-minibatch advantage
 * normalisation, both clips, the entropy bonus, the loss weights, global grad clipping, Adam
 * (its state and step count across updates) and the lr annealing to CleanRL's arithmetic.
 */
import assert from "node:assert/strict";
import { makeVecEnv } from "../../lib/envs/mod.ts";
import { createEnvProblem } from "../../lib/envs/ppo.ts";
import { tensor } from "../../lib/onnx/session.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { type PpoProblem, readMetrics, type Rollout, trainPpo } from "../../lib/ppo/trainer.ts";
import type { Rng } from "../../lib/rng.ts";

interface Fixture {
  envs: number;
  steps: number;
  hidden: number[];
  params_before: Record<string, number[]>;
  params_after: Record<string, number[]>;
  rollout: Record<string, number[]>;
  perms: number[][];
  updates: number;
  means: Record<string, number>[];
  episodes_ended: number;
}

const fx: Fixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/cleanrl_update.json", import.meta.url)),
);

Deno.test("PPO updates equal CleanRL ppo.py's in PyTorch (params after 3 updates, each update's logged means)", async () => {
  const N = fx.envs, T = fx.steps, n = N * T;
  assert.ok(fx.episodes_ended > 0, "the fixture's rollout should end episodes");
  // CleanRL's defaults except lr (the fixture's 1e-2 makes both clips act).
  const cfg = parsePpoConfig({ lr: 1e-2 });
  const env = makeVecEnv("CartPole-v1", N);
  const base = await createEnvProblem({
    env,
    steps: T,
    cfg,
    seed: 1,
    hidden: fx.hidden,
    threads: 1,
  });
  const live = base.trainer.params();
  for (const [name, values] of Object.entries(fx.params_before)) live[name].set(values);

  const r = fx.rollout;
  const roll: Rollout = {
    rows: N,
    cols: T,
    rewards: Float64Array.from(r.rewards),
    values: Float64Array.from(r.values),
    actions: Int32Array.from(r.actions),
    logp: Float64Array.from(r.logp),
    dones: Uint8Array.from(r.dones),
    lastValues: Float64Array.from(r.last_values),
    exampleSize: 1,
    samples: n,
    steps: n,
    episodes: [],
  };
  const obsSize = r.obs.length / n;
  const problem: PpoProblem = {
    cfg,
    trainer: base.trainer,
    rollout: () => Promise.resolve(roll),
    inputs: (_roll, idx) => ({
      obs: tensor(
        "float32",
        [idx.length, obsSize],
        Float32Array.from(idx.flatMap((i) => r.obs.slice(i * obsSize, (i + 1) * obsSize))),
      ),
      actions: tensor("int64", [idx.length], BigInt64Array.from(idx, (i) => BigInt(r.actions[i]))),
    }),
    state: () => null,
    load: () => {},
  };
  // The trainer's only draws in an update are the epoch permutations: replay PyTorch's.
  const perms = [...fx.perms];
  const rng = { permutation: () => perms.shift()! } as unknown as Rng;

  const out = await Deno.makeTempDir({ prefix: "proxima-cleanrl-update-" });
  try {
    await trainPpo(problem, { updates: fx.updates, seed: 1, rng, outDir: out });
    assert.equal(perms.length, 0, "every epoch's permutation was used");
    const rows = await readMetrics(out);
    assert.equal(rows.length, fx.updates);

    // Params: float32 in both; different summation orders leave differences far below the
    // updates themselves (48 steps of up to lr = 1e-2 each).
    let worst = 0, moved = 0;
    for (const [name, want] of Object.entries(fx.params_after)) {
      const got = base.trainer.params()[name];
      want.forEach((w, i) => {
        worst = Math.max(worst, Math.abs(got[i] - w));
        moved = Math.max(moved, Math.abs(w - fx.params_before[name][i]));
      });
    }
    assert.ok(moved > 0.05, `the update moved params by only ${moved}`);
    assert.ok(worst < 2e-6, `params differ from PyTorch's by up to ${worst}`);

    fx.means.forEach((means, u) => {
      for (const [k, want] of Object.entries(means)) {
        const got = Number(rows[u][k]);
        const tol = 1e-5 * Math.max(1, Math.abs(want)) + (k.startsWith("approx_kl") ? 1e-7 : 0);
        assert.ok(
          Math.abs(got - want) <= tol,
          `update ${u + 1} ${k}: Proxima ${got}, PyTorch ${want}`,
        );
      }
    });
    assert.ok(fx.means.every((m) => m.clipfrac > 0), "the fixture should exercise the ratio clip");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
