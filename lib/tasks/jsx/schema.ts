/**
 * The `jsx` trial config ({@link JsxRunSchema}): the model (context 128), the (short) SFT
 * stage, PPO (the byte-level LM defaults with λ = 1, lr 1e-4, 2 minibatches, β = 0.05), the
 * samples per prompt, the reward list and the evaluation (with sandbox execution).
 * @module
 */
import { z } from "zod";
import { byteEncode } from "../../nn/tokenizer.ts";
import { advantageProblems, type ConfigProblem } from "../../ppo/config.ts";
import { byteModelSchema, byteSftSchema, LM_PPO_OVERRIDES, LmPpoBaseSchema } from "../byte_lm.ts";
import { LM_SAMPLING_FIELDS, lmTrialShape, rewardsField } from "../lm_task.ts";
import { type DefaultOverrides, overridesUnder, withOverrides } from "../../trial/overrides.ts";
import { JSX_PROMPTS } from "./corpus.ts";

/** The policy's architecture; V = 257 (byte tokenizer). */
const JsxModelBase = byteModelSchema({
  min: 112,
  help: "context length (prompt ≤ 30 + max_new_tokens)",
});

/** SFT stage: the corpus and the (deliberately short) optimisation. */
const JsxSftBase = byteSftSchema({
  stepsHelp: "optimizer steps (short on purpose: an imperfect starting policy)",
  corpusHelp: "pairs in the corpus",
}).extend({
  function_share: z.number().min(0).max(1).default(0.25).describe(
    "share of components written as function declarations (else arrows)",
  ),
});

/**
 * Where `jsx`'s defaults differ from the base ones: the LM tasks' PPO defaults, then λ = 1, lr
 * 1e-4, 2 minibatches, β = 0.05 (with λ = 0.95 and lr 3e-4 the policy collapsed to junk); a
 * context of 128, a short SFT (300 steps: an imperfect starting policy), 40 updates, 4
 * responses per prompt of up to 72 tokens, the jsx reward.
 */
export const JSX_OVERRIDES: DefaultOverrides = {
  ...overridesUnder("ppo", LM_PPO_OVERRIDES),
  "ppo.lambda": 1,
  "ppo.lr": 1e-4,
  "ppo.minibatches": 2,
  "ppo.kl.beta": 0.05,
  "model.n_positions": 128,
  "sft.steps": 300,
  updates: 40,
  samples_per_prompt: 4,
  max_new_tokens: 72,
  rewards: [{ name: "jsx", weight: 1 }],
};

/** A whole `jsx` trial: SFT stage, PPO, rewards, evaluation. */
const JsxRunBase = z.object({
  ...lmTrialShape(),
  model: JsxModelBase.default(JsxModelBase.parse({})),
  sft: JsxSftBase.default(JsxSftBase.parse({})),
  ppo: LmPpoBaseSchema.default(LmPpoBaseSchema.parse({})),
  samples_per_prompt: LM_SAMPLING_FIELDS.samples_per_prompt.describe(
    "responses per prompt per update (5 prompts: batch = 5 × this): the group that " +
      "ppo.advantage grpo, dr_grpo and rloo take their baseline from",
  ),
  max_new_tokens: z.number().int().min(1).max(96)
    .default(LM_SAMPLING_FIELDS.max_new_tokens.parse(undefined))
    .describe("most tokens per response"),
  rewards: rewardsField(
    "the reward: Σ weight · component (built-ins: jsx, parse, structure, length)",
  ),
  eval: z.object({
    samples_per_prompt: z.number().int().min(1).default(20).describe(
      "responses per prompt per evaluation",
    ),
    seed: z.number().int().default(12345).describe("sampling seed of every evaluation"),
    execute: z.boolean().default(true).describe(
      "run valid components in the sandbox (exec_rate)",
    ),
    timeout_ms: z.number().int().min(10).default(2000).describe(
      "sandbox time limit per component",
    ),
  }).strict().default({ samples_per_prompt: 20, seed: 12345, execute: true, timeout_ms: 2000 }),
  measure_resources: z.boolean().default(false).describe(
    "write resources.json: the training's wall time, peak RSS and the models it held (a " +
      "measurement: the bundle hash then differs between runs; results stay identical)",
  ),
}).strict();

/** {@link JsxRunBase} with this task's defaults ({@link JSX_OVERRIDES}). */
export const JsxRunSchema = withOverrides(JsxRunBase, JSX_OVERRIDES);

/** The model section, with this task's defaults. */
export const JsxModelSchema = JsxRunSchema.shape.model.unwrap();
/** The SFT section, with this task's defaults. */
export const JsxSftSchema = JsxRunSchema.shape.sft.unwrap();

export type JsxRunConfig = z.infer<typeof JsxRunSchema>;
export type JsxRunInput = z.input<typeof JsxRunSchema>;

/** Config of the SFT stage: the model and the sft sections. */
export const JsxSftStageSchema = z.object({
  model: JsxRunSchema.shape.model,
  sft: JsxRunSchema.shape.sft,
}).strict();
export type JsxSftStageConfig = z.infer<typeof JsxSftStageSchema>;

/**
 * Cross-key checks of the config: every prompt plus `max_new_tokens` must fit the context, and
 * the advantage estimator must suit the group size.
 */
export function checkJsxConfig(c: JsxRunConfig): ConfigProblem[] {
  const problems = advantageProblems(c.ppo, { samplesPerPrompt: c.samples_per_prompt });
  const longest = Math.max(...JSX_PROMPTS.map((p) => byteEncode(p).length));
  if (longest + c.max_new_tokens <= c.model.n_positions) return problems;
  return [...problems, {
    key: "max_new_tokens",
    cause: `max_new_tokens ${c.max_new_tokens} + the longest prompt (${longest} tokens) ` +
      `exceeds model.n_positions ${c.model.n_positions}`,
    fix: "lower max_new_tokens or raise model.n_positions",
  }];
}
