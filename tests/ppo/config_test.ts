/** Config validation: defaults, and bad values named with their allowed range before anything runs. */
import assert from "node:assert/strict";
import { ConfigError, describePpoConfig, parsePpoConfig } from "../../lib/ppo/config.ts";
import { parseEnvRunConfig } from "../../lib/envs/run.ts";
import { flagsToConfig } from "../../cli/train.ts";

Deno.test("defaults are CleanRL ppo.py's", () => {
  const c = parsePpoConfig({});
  assert.equal(c.clip, 0.2);
  assert.equal(c.gamma, 0.99);
  assert.equal(c.lambda, 0.95);
  assert.equal(c.lr, 2.5e-4);
  assert.equal(c.epochs, 4);
  assert.equal(c.minibatches, 4);
  assert.equal(c.ent_coef, 0.01);
  assert.equal(c.vf_coef, 0.5);
  assert.equal(c.max_grad_norm, 0.5);
  assert.equal(c.kl.estimator, "k1");
  assert.equal(c.loss, "clip");
});

const bad: [string, unknown, RegExp][] = [
  ["negative clip", { clip: -0.1 }, /ppo\.clip: must be > 0 \(got -0\.1\)/],
  ["λ > 1", { lambda: 1.5 }, /ppo\.lambda: must be ≤ 1 \(got 1\.5\)/],
  ["γ < 0", { gamma: -1 }, /ppo\.gamma: must be ≥ 0/],
  [
    "unknown estimator",
    { kl: { estimator: "k4" } },
    /ppo\.kl\.estimator: must be one of "k1", "k2", "k3", "full" \(got "k4"\)/,
  ],
  ["NaN lr", { lr: NaN }, /ppo\.lr: must be a finite number \(got NaN\)/],
  ["infinite lr", { lr: Infinity }, /ppo\.lr: must be a finite number/],
  ["string epochs", { epochs: "4" }, /ppo\.epochs: must be a finite number \(got "4"\)/],
  ["fractional epochs", { epochs: 2.5 }, /ppo\.epochs/],
  ["unknown key", { clp: 0.2 }, /ppo\.clp: unknown key/],
  ["unknown loss", { loss: "trpo" }, /ppo\.loss: must be one of "clip", "no-clip", "kl-penalty"/],
  ["negative beta", { kl: { beta: -1 } }, /ppo\.kl\.beta: must be ≥ 0/],
];
for (const [name, input, re] of bad) {
  Deno.test(`bad config: ${name}`, () => {
    assert.throws(() => parsePpoConfig(input), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  });
}

Deno.test("several bad keys are all reported at once", () => {
  assert.throws(() => parsePpoConfig({ clip: -1, lambda: 2 }), /ppo\.clip[\s\S]*ppo\.lambda/);
});

Deno.test("env run config: unknown env, too few steps, bad nested ppo key", () => {
  assert.throws(
    () => parseEnvRunConfig({ env: "pong" }),
    /env: Unknown env id "pong"; known: CartPole-v1/,
  );
  assert.throws(
    () => parseEnvRunConfig({ env: "cartpole", total_steps: 100 }),
    /total_steps \(100\) is less than one rollout \(envs·steps = 512\)/,
  );
  assert.throws(
    () => parseEnvRunConfig({ env: "cartpole", ppo: { clip: 0 } }),
    /ppo\.clip: must be > 0/,
  );
  assert.equal(parseEnvRunConfig({ env: "acrobot" }).envs, 4);
});

Deno.test("train flags map onto config keys (top-level, ppo.*, shorthand, nested)", () => {
  const { config, run } = flagsToConfig([
    "--env",
    "cartpole",
    "--total-steps",
    "1000",
    "--ppo.clip",
    "0.1",
    "--gamma=0.9",
    "--kl.estimator",
    "k3",
    "--clip-value",
    "null",
    "--hidden",
    "[32,32]",
    "--resume",
    "--out",
    "/tmp/x",
  ]);
  assert.deepEqual(config, {
    env: "cartpole",
    total_steps: 1000,
    hidden: [32, 32],
    ppo: { clip: 0.1, gamma: 0.9, kl: { estimator: "k3" }, clip_value: null },
  });
  assert.deepEqual(run, { resume: true, out: "/tmp/x" });
  const cfg = parseEnvRunConfig(config);
  assert.equal(cfg.ppo.clip_value, null);
  assert.throws(
    () => parseEnvRunConfig(flagsToConfig(["--env", "cartpole", "--lambda", "2"]).config),
    /ppo\.lambda: must be ≤ 1 \(got 2\)/,
  );
});

Deno.test("every knob is documented", () => {
  const doc = describePpoConfig();
  for (const k of ["ppo.clip=", "ppo.kl.horizon=", "ppo.target_kl=", "ppo.whiten_rewards="]) {
    assert.ok(doc.some((l) => l.startsWith(k) && l.length > k.length + 8), k);
  }
});

Deno.test("train flags for --task sentiment map onto the sentiment schema", async () => {
  const { SentimentRunSchema, parseSentimentConfig } = await import(
    "../../lib/tasks/sentiment/mod.ts"
  );
  const args = ["--task", "sentiment", "--updates", "3", "--kl.beta", "0.2", "--batch=8"];
  const { config, run } = flagsToConfig(args, SentimentRunSchema);
  assert.deepEqual(run, { task: "sentiment" });
  const cfg = parseSentimentConfig(config);
  assert.equal(cfg.updates, 3);
  assert.equal(cfg.batch, 8);
  assert.equal(cfg.ppo.kl.beta, 0.2);
  assert.throws(
    () => parseSentimentConfig(flagsToConfig(["--lambda", "2"], SentimentRunSchema).config),
    /ppo\.lambda: must be ≤ 1 \(got 2\)/,
  );
});
