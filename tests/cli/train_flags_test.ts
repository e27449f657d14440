import assert from "node:assert/strict";
import { flagsToConfig, LM_FLAG_ALIASES } from "../../cli/train.ts";
import { parseSentimentConfig, SentimentRunSchema } from "../../lib/tasks/sentiment/mod.ts";
import { LM_KIND, LmRunSchema } from "../../lib/tasks/lm/mod.ts";
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
  // --save-steps is TRL's save_steps (checkpoint-N/ folders), not the resumable checkpoints.
  assert.equal(c.save_steps, 5);
  assert.equal(c.checkpoint_every, 0);
  assert.equal(c.seed, 7);
  assert.equal(c.model.n_embd, 32);
});

Deno.test("train --task sentiment: a switch given a value is refused", () => {
  assert.throws(
    () => flagsToConfig(["--adaptive-kl=yes"], SentimentRunSchema, LM_FLAG_ALIASES),
    (e: unknown) => e instanceof ConfigError && /--adaptive-kl is a switch/.test(e.message),
  );
});

Deno.test("train --task lm: TRL's flag names, dashes or underscores, map onto the lm config", () => {
  const { config, run } = flagsToConfig(
    [
      "--model_name",
      "m/qwen",
      "--reward_model_path",
      "m/rm",
      "--prompts_file",
      "p.jsonl",
      "--learning_rate",
      "2e-5",
      "--batch_size",
      "16",
      "--num_epochs",
      "3",
      "--kl_coef",
      "0.1",
      "--output_dir",
      "out/qwen",
      "--save_steps",
      "5",
      "--save_total_limit",
      "2",
      "--eval_steps",
      "4",
      "--logging_steps",
      "3",
      "--lora.r",
      "16",
    ],
    LmRunSchema,
    LM_FLAG_ALIASES,
  );
  assert.deepEqual(run, { out: "out/qwen" });
  const c = LM_KIND.parse(config);
  assert.equal(c.policy, "m/qwen");
  assert.equal(c.reward_model, "m/rm");
  assert.equal(c.prompts, "p.jsonl");
  assert.equal(c.ppo.lr, 2e-5);
  assert.equal(c.batch, 16);
  assert.equal(c.ppo.epochs, 3);
  assert.equal(c.ppo.kl.beta, 0.1);
  assert.equal(c.save_steps, 5);
  assert.equal(c.save_total_limit, 2);
  assert.equal(c.eval_steps, 4);
  assert.equal(c.logging_steps, 3);
  assert.equal(c.lora.r, 16);
  // --ppo_epochs is the same key as --num_epochs.
  const { config: c2 } = flagsToConfig(["--ppo-epochs", "2"], LmRunSchema, LM_FLAG_ALIASES);
  assert.deepEqual(c2, { ppo: { epochs: 2 } });
});

Deno.test("train: an unknown flag is refused with did-you-mean and the fix", () => {
  for (
    const [flag, want] of [
      [
        "--learning_rat",
        /unknown flag --learning_rat \(did you mean --learning-rate\?\)\n {2}fix: write --learning-rate/,
      ],
      ["--output-dri", /unknown flag --output-dri \(did you mean --output-dir\?\)/],
      ["--zzzzzz", /unknown flag --zzzzzz\n {2}fix: see deno task train/],
    ] as const
  ) {
    assert.throws(
      () => flagsToConfig(["--task", "lm", flag, "1"], LmRunSchema, LM_FLAG_ALIASES),
      (e: Error) => e instanceof ConfigError && want.test(e.message),
      flag,
    );
  }
});
