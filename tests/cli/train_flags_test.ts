import assert from "node:assert/strict";
import { flagsToConfig, LM_FLAG_ALIASES } from "../../cli/train.ts";
import { parseSentimentConfig, SentimentRunSchema } from "../../lib/tasks/sentiment/mod.ts";
import { ConfigError } from "../../lib/ppo/config.ts";

Deno.test("train --task sentiment: the issue's flag names map onto config keys", () => {
  const { config, run } = flagsToConfig(
    [
      "--task",
      "sentiment",
      "--model",
      "m/policy",
      "--reward-model",
      "m/rm",
      "--prompts",
      "p.txt",
      "--lr",
      "1e-4",
      "--batch-size",
      "16",
      "--ppo-epochs",
      "3",
      "--kl-coef",
      "0.2",
      "--adaptive-kl",
      "--kl-target",
      "4",
      "--target-kl",
      "0.5",
      "--out",
      "o",
      "--save-steps",
      "5",
      "--seed",
      "7",
      "--model.n_embd",
      "32",
    ],
    SentimentRunSchema,
    LM_FLAG_ALIASES,
  );
  assert.deepEqual(run, { task: "sentiment", out: "o" });
  const c = parseSentimentConfig(config);
  assert.equal(c.policy_path, "m/policy");
  assert.equal(c.reward_model_path, "m/rm");
  assert.equal(c.prompts_path, "p.txt");
  assert.equal(c.ppo.lr, 1e-4);
  assert.equal(c.batch, 16);
  assert.equal(c.ppo.epochs, 3);
  assert.equal(c.ppo.kl.beta, 0.2);
  assert.equal(c.ppo.kl.control, "adaptive");
  assert.equal(c.ppo.kl.target, 4);
  assert.equal(c.ppo.target_kl, 0.5);
  assert.equal(c.checkpoint_every, 5);
  assert.equal(c.seed, 7);
  assert.equal(c.model.n_embd, 32);
});

Deno.test("train --task sentiment: a switch given a value is refused", () => {
  assert.throws(
    () => flagsToConfig(["--adaptive-kl=yes"], SentimentRunSchema, LM_FLAG_ALIASES),
    (e: unknown) => e instanceof ConfigError && /--adaptive-kl is a switch/.test(e.message),
  );
});
