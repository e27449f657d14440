/**
 * The `rlvr` trial config ({@link RlvrRunSchema}): the model (byte-level, context 64), the
 * (short, on purpose) SFT stage on worked solutions, the problems (operand range, prompts per
 * update, samples per prompt: the group), critic-free PPO (GRPO by default, no KL penalty, as
 * Dr. GRPO and most RLVR recipes), the reward list (exact_match + format) and the held-out
 * evaluation (pass@1, pass@k, lengths, format rate; every k updates when asked).
 * @module
 */
import { z } from "zod";
import { advantageProblems, type ConfigProblem, KlSchema } from "../../ppo/config.ts";
import { GRPO } from "../../ppo/methods/mod.ts";
import { byteModelSchema, byteSftSchema, LM_PPO_OVERRIDES, LmPpoBaseSchema } from "../byte_lm.ts";
import { LM_SAMPLING_FIELDS, lmTrialShape, rewardsField } from "../lm_task.ts";
import { type DefaultOverrides, overridesUnder, withOverrides } from "../../trial/overrides.ts";
import { rlvrSolution } from "./corpus.ts";

/** The policy's architecture; V = 257 (byte tokenizer). */
const RlvrModelBase = byteModelSchema({
  min: 40,
  help: "context length (prompt ≤ 8 + max_new_tokens)",
});

/** SFT stage: the worked-solution corpus and the (deliberately short) optimisation. */
const RlvrSftBase = byteSftSchema({
  stepsHelp: "optimizer steps (short on purpose: an imperfect starting policy RL can improve)",
  corpusHelp: "worked problems in the corpus",
});

/**
 * `rlvr`'s PPO section: {@link LmPpoBaseSchema} with the plain {@link KlSchema} (no
 * `kl.bias_correction`; β = 0, no KL penalty, as Dr. GRPO).
 */
const RlvrPpoBaseSchema = LmPpoBaseSchema.extend({
  kl: KlSchema.default(KlSchema.parse({})),
});

/**
 * Where `rlvr`'s defaults differ from the base ones: the LM tasks' PPO defaults, then the
 * critic-free GRPO estimator (advantages normalised per group, so whiten_advantages off), lr
 * 3e-4, 1 epoch of 2 minibatches (with lr 1e-3 held-out accuracy rose for 6 updates, then fell
 * below the SFT policy's); a short SFT (600 steps), 30 updates, groups of 8 responses of up to
 * 56 tokens, exact_match + 0.1 format as the reward.
 */
export const RLVR_OVERRIDES: DefaultOverrides = {
  ...overridesUnder("ppo", LM_PPO_OVERRIDES),
  "ppo.advantage": GRPO.advantage!,
  "ppo.whiten_advantages": false,
  "ppo.epochs": 1,
  "ppo.minibatches": 2,
  "sft.steps": 600,
  updates: 30,
  samples_per_prompt: 8,
  max_new_tokens: 56,
  rewards: [{ name: "exact_match", weight: 1 }, { name: "format", weight: 0.1 }],
};

/** The held-out evaluation. */
export const RlvrEvalSchema = z.object({
  problems: z.number().int().min(1).default(64).describe("held-out problems per evaluation"),
  k: z.number().int().min(1).default(4).describe(
    "samples per problem (pass@k; pass@1 averages them)",
  ),
  seed: z.number().int().default(12345).describe("problems and sampling seed of every evaluation"),
  every: z.number().int().min(0).default(0).describe(
    "also evaluate every k updates, into metrics.jsonl as eval/<name> (0: before and after only)",
  ),
}).strict();

/** A whole `rlvr` trial: SFT stage, critic-free RL on verifiable rewards, evaluation. */
const RlvrRunBase = z.object({
  ...lmTrialShape(),
  model: RlvrModelBase.default(RlvrModelBase.parse({})),
  sft: RlvrSftBase.default(RlvrSftBase.parse({})),
  ppo: RlvrPpoBaseSchema.default(RlvrPpoBaseSchema.parse({})),
  max_operand: z.number().int().min(1).max(999).default(99).describe(
    "operands are drawn uniformly from [0, max_operand]",
  ),
  prompts_per_update: z.number().int().min(1).default(8).describe(
    "problems per update (batch = prompts_per_update × samples_per_prompt)",
  ),
  samples_per_prompt: LM_SAMPLING_FIELDS.samples_per_prompt.describe(
    "responses per problem: the group of grpo, dr_grpo and rloo (≥ 2)",
  ),
  max_new_tokens: LM_SAMPLING_FIELDS.max_new_tokens,
  rewards: rewardsField(
    "the reward: Σ weight · component (built-ins: exact_match, format — the task's pattern " +
      "unless options.pattern — length; or { module, name } of your own)",
  ),
  eval: RlvrEvalSchema.default(RlvrEvalSchema.parse({})),
}).strict();

/** {@link RlvrRunBase} with this task's defaults ({@link RLVR_OVERRIDES}). */
export const RlvrRunSchema = withOverrides(RlvrRunBase, RLVR_OVERRIDES);

/** The model section, with this task's defaults. */
export const RlvrModelSchema = RlvrRunSchema.shape.model.unwrap();
/** The SFT section, with this task's defaults. */
export const RlvrSftSchema = RlvrRunSchema.shape.sft.unwrap();

export type RlvrRunConfig = z.infer<typeof RlvrRunSchema>;
export type RlvrRunInput = z.input<typeof RlvrRunSchema>;

/** Config of the SFT stage: the model, the sft section and the operand range. */
export const RlvrSftStageSchema = z.object({
  model: RlvrRunSchema.shape.model,
  sft: RlvrRunSchema.shape.sft,
  max_operand: RlvrRunSchema.shape.max_operand,
}).strict();
export type RlvrSftStageConfig = z.infer<typeof RlvrSftStageSchema>;

/**
 * Cross-key checks: the estimator against the group; the longest prompt + response, and the
 * longest worked solution (SFT), in the context.
 */
export function checkRlvrConfig(c: RlvrRunConfig): ConfigProblem[] {
  const problems = advantageProblems(c.ppo, { samplesPerPrompt: c.samples_per_prompt });
  const longest = 2 * String(c.max_operand).length + 2;
  const m = c.max_operand, worked = longest + rlvrSolution(m, m).length + 1; // + EOS
  if (worked > c.model.n_positions) {
    problems.push({
      key: "model.n_positions",
      cause: `the longest worked solution (${m}+${m}=, ${worked} tokens with EOS) exceeds ` +
        `model.n_positions ${c.model.n_positions}`,
      fix: `raise model.n_positions to ${worked} or more, or lower max_operand`,
    });
  }
  if (longest + c.max_new_tokens > c.model.n_positions) {
    problems.push({
      key: "max_new_tokens",
      cause: `max_new_tokens ${c.max_new_tokens} + the longest prompt (${longest} tokens) ` +
        `exceeds model.n_positions ${c.model.n_positions}`,
      fix: "lower max_new_tokens or raise model.n_positions",
    });
  }
  return problems;
}
