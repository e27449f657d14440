/**
 * RLHF on your own model: a β sweep of the `lm` task over a Hugging Face folder. Point it at
 * a downloaded instruct model, its reward model and your prompts (env vars, or edit the paths):
 *
 *     PROXIMA_MODEL=models/qwen2.5-0.5b-instruct PROXIMA_RM=models/my-rm \
 *       PROXIMA_PROMPTS=data/prompts.jsonl deno task sweep experiments/lm.ts
 *
 * Without them it uses the tiny random Qwen3 pair `deno run -A scripts/tiny_models.ts`
 * writes (real Qwen3 tokenizer and chat template, random weights): the pipeline end to end in
 * a minute, numbers without meaning.
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

const env = (k: string, d: string) => Deno.env.get(k) ?? d;

/** The fix printed when an input folder or file is missing: its variable, or the script. */
const help = (variable: string, what: string) =>
  `set ${variable} to ${what}, or run \`deno run -A scripts/tiny_models.ts\` to write the ` +
  "tiny models/ this file uses without PROXIMA_MODEL, PROXIMA_RM and PROXIMA_PROMPTS";

export default defineExperiment({
  name: "lm",
  task: "lm",
  base: {
    policy: env("PROXIMA_MODEL", "models/tiny-qwen3"),
    reward_model: env("PROXIMA_RM", "models/tiny-qwen3-rm"),
    prompts: env("PROXIMA_PROMPTS", "models/prompts.jsonl"),
    updates: 5,
    batch: 8,
    max_new_tokens: 24,
    lora: { r: 16, alpha: 32 },
    value_model: "from_reward_model",
    missing_eos_penalty: 1,
    ppo: { lr: 1e-4, kl: { control: "fixed", placement: "reward" } },
  },
  sweep: grid({ "ppo.kl.beta": [0.01, 0.05, 0.2], seed: [1, 2] }),
  metrics: ["reward", "kl", "rm_score"],
  inputHelp: {
    policy: help("PROXIMA_MODEL", "your policy's Hugging Face folder"),
    reward_model: help("PROXIMA_RM", "your reward model's folder"),
    prompts: help("PROXIMA_PROMPTS", "your prompts file (.txt, .jsonl or .parquet)"),
  },
});
