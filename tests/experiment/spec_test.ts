/**
 * Sweep combinators, trial identity and planning, in-process (no trial runs).
 */
import assert from "node:assert/strict";
import {
  canonicalJson,
  concat,
  defineExperiment,
  expandSweep,
  grid,
  intUniform,
  logUniform,
  planExperiment,
  points,
  random,
  sha256Hex,
  uniform,
  zip,
} from "../../lib/experiment/mod.ts";
import { codeVersion } from "../../lib/experiment/code_version.ts";
import { CODE_VERSION } from "./helpers.ts";

const plan = (input: Parameters<typeof defineExperiment>[0], overrides?: Record<string, unknown>) =>
  planExperiment(defineExperiment(input), { file: "x.ts", codeVersion: CODE_VERSION, overrides });

Deno.test("grid: cartesian product, first key outermost; nested sweeps multiply", () => {
  assert.deepEqual(expandSweep(grid({ a: [1, 2], b: ["x", "y"] })), [
    { a: 1, b: "x" },
    { a: 1, b: "y" },
    { a: 2, b: "x" },
    { a: 2, b: "y" },
  ]);
  const g = grid(zip({ a: [1, 2], b: [3, 4] }), { c: [5, 6, 7] });
  assert.equal(expandSweep(g).length, 6);
  assert.deepEqual(expandSweep(g)[5], { a: 2, b: 4, c: 7 });
});

Deno.test("zip pairs element-wise; concat and points list trials", () => {
  assert.deepEqual(expandSweep(zip({ a: [1, 2], b: [3, 4] })), [{ a: 1, b: 3 }, { a: 2, b: 4 }]);
  assert.deepEqual(expandSweep(zip(grid({ a: [1, 2] }), points([{ b: 1 }, { b: 2 }]))), [
    { a: 1, b: 1 },
    { a: 2, b: 2 },
  ]);
  assert.deepEqual(expandSweep(concat(grid({ a: [1] }), points([{ a: 2, b: 0 }]))), [
    { a: 1 },
    { a: 2, b: 0 },
  ]);
});

Deno.test("random({ n, seed }): same seed -> same trial list; another seed -> another list", () => {
  const space = {
    "ppo.lr": logUniform(1e-5, 1e-2),
    "ppo.clip": uniform(0.1, 0.3),
    "ppo.epochs": intUniform(1, 10),
    "ppo.loss": ["clip", "kl-penalty"],
    envs: 4,
  };
  const a = expandSweep(random({ n: 16, seed: 7, ...space }));
  const b = expandSweep(random({ n: 16, seed: 7, ...space }));
  const c = expandSweep(random({ n: 16, seed: 8, ...space }));
  assert.equal(a.length, 16);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const p of a) {
    assert.ok((p["ppo.lr"] as number) >= 1e-5 && (p["ppo.lr"] as number) < 1e-2);
    assert.ok((p["ppo.clip"] as number) >= 0.1 && (p["ppo.clip"] as number) < 0.3);
    assert.ok(Number.isInteger(p["ppo.epochs"]) && (p["ppo.epochs"] as number) <= 10);
    assert.ok(["clip", "kl-penalty"].includes(p["ppo.loss"] as string));
    assert.equal(p.envs, 4);
  }
  // Key order of the space does not matter (keys are drawn in sorted order).
  const reversed = Object.fromEntries(Object.entries(space).reverse());
  assert.deepEqual(expandSweep(random({ n: 16, seed: 7, ...reversed })), a);
  // The same holds for the planned trials (ids included).
  const ids = (seed: number) =>
    plan({
      name: "r",
      task: "CartPole-v1",
      base: { total_steps: 2048, steps: 32 },
      // (random's `seed` seeds the draw; trial seeds are swept beside it)
      sweep: grid(random({ n: 5, seed, "ppo.lr": logUniform(1e-4, 1e-2) }), { seed: [1, 2] }),
    }).trials.map((t) => t.id);
  assert.deepEqual(ids(3), ids(3));
  assert.notDeepEqual(ids(3), ids(4));
});

Deno.test("canonical JSON sorts keys at every level; trial ids ignore how a config is written", () => {
  assert.equal(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }), '{"a":[2,{"c":4,"d":3}],"b":1}');
  assert.equal(sha256Hex("abc").slice(0, 8), "ba7816bf");
  const a = plan({
    name: "a",
    task: "CartPole-v1",
    base: { ppo: { lr: 0.0001, clip: 0.2 }, total_steps: 2048 },
    sweep: grid({ seed: [1] }),
  });
  const b = plan({
    name: "b",
    task: "cartpole", // an alias: the identity records the canonical task name
    base: { total_steps: 2048, "ppo.clip": 0.2 },
    sweep: grid({ "ppo.lr": [1e-4], seed: [1] }),
  });
  assert.equal(a.trials[0].id, b.trials[0].id);
  assert.equal(a.trials[0].identity.task, "CartPole-v1");
  // Every default is in the identity: the resolved config, not what was written.
  assert.equal((a.trials[0].identity.config.ppo as Record<string, unknown>).gamma, 0.99);
  // A different code version is a different trial.
  const c = planExperiment(
    defineExperiment({
      name: "a",
      task: "CartPole-v1",
      base: { ppo: { lr: 0.0001 }, total_steps: 2048 },
      sweep: grid({ seed: [1] }),
    }),
    { file: "x.ts", codeVersion: "other" },
  );
  assert.notEqual(c.trials[0].id, a.trials[0].id);
});

Deno.test("plan: dotted keys at any depth, overrides win, swept keys listed in order", () => {
  const p = plan({
    name: "kl",
    task: "CartPole-v1",
    base: { total_steps: 100_000, ppo: { loss: "kl-penalty" } },
    sweep: grid({ "ppo.kl.beta": [0.3, 1], seed: [1, 2], "ppo.gamma": [0.9] }),
  }, { total_steps: 2048, steps: 32 });
  assert.equal(p.trials.length, 4);
  assert.deepEqual(p.sweptKeys, ["ppo.kl.beta", "seed", "ppo.gamma"]);
  const cfg = p.trials[3].identity.config as Record<
    string,
    Record<string, Record<string, unknown>>
  >;
  assert.equal(cfg.ppo.kl.beta, 1);
  assert.equal(cfg.ppo.gamma, 0.9);
  assert.equal(cfg.ppo.loss, "kl-penalty");
  assert.equal(cfg.total_steps, 2048 as unknown);
  assert.deepEqual(p.trials[0].work, { total: 16, unit: "updates", steps: 128 });
  assert.deepEqual(p.metrics, ["return"]);
});

Deno.test("code version: stable hash of lib/, cli/ and deno.lock (or PROXIMA_CODE_VERSION)", async () => {
  const pinned = Deno.env.get("PROXIMA_CODE_VERSION");
  if (pinned) {
    assert.equal(await codeVersion(), pinned);
    return;
  }
  const a = await codeVersion(), b = await codeVersion();
  assert.match(a, /^[0-9a-f]{16}$/);
  // (Equal unless someone edits lib/ or cli/ between the two reads.)
  assert.ok(a === b || /^[0-9a-f]{16}$/.test(b));
});

Deno.test("the sentiment task is registered: its config keys validate like any task's", () => {
  const p = plan({
    name: "s",
    task: "sentiment",
    base: {},
    sweep: grid({ "ppo.kl.beta": [0.05, 0.1], seed: [1] }),
    metrics: ["gold_score"],
  });
  assert.equal(p.trials.length, 2);
  assert.equal(p.kind.name, "sentiment");
  assert.ok(p.kind.stages && Object.keys(p.kind.stages).length >= 2);
  assert.throws(
    () => plan({ name: "s", task: "sentiment", sweep: grid({ "ppo.kl.betta": [0.1] }) }),
    /did you mean "ppo\.kl\.beta"/,
  );
});
