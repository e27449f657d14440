/**
 * The `rlvr` trial config ({@link RlvrRunSchema}): the model (byte-level, context 64), the
 * (short, on purpose) SFT stage on worked solutions, the problems (operand range, prompts per
 * update, samples per prompt: the group), critic-free PPO (GRPO by default, no KL penalty, as
 * Dr. GRPO and most RLVR recipes), the reward list (exact_match + format) and the held-out
 * evaluation (pass@1, pass@k, lengths, format rate; every k updates when asked).
 * @module
 */
import { z } from "zod";
import {
  advantageProblems,
  AdvantageSchema,
  type ConfigProblem,
  KlSchema,
  PpoSchema,
  redefault,
} from "../../ppo/config.ts";
import { GRPO } from "../../ppo/methods/mod.ts";
import { byteModelSchema, byteSftSchema, LmPpoSchema } from "../byte_lm.ts";
import { lmTrialShape } from "../lm_task.ts";
import { RewardRefSchema } from "../rewards.ts";
import { rlvrSolution } from "./corpus.ts";

/** The policy's architecture; V = 257 (byte tokenizer). */
export const RlvrModelSchema = byteModelSchema({
  min: 40,
  default: 64,
  help: "context length (prompt ≤ 8 + max_new_tokens)",
});

/** SFT stage: the worked-solution corpus and the (deliberately short) optimisation. */
export const RlvrSftSchema = byteSftSchema({
  steps: 600,
  stepsHelp: "optimizer steps (short on purpose: an imperfect starting policy RL can improve)",
  corpusHelp: "worked problems in the corpus",
});

/** {@link KlSchema} with this task's default: β = 0 (no KL penalty, as Dr. GRPO). */
export const RlvrKlSchema = KlSchema.extend({ beta: redefault(KlSchema.shape.beta, 0) });

/**
 * {@link LmPpoSchema} with this task's defaults: the critic-free GRPO estimator (advantages
 * normalised per group, so whiten_advantages off), lr 3e-4, 1 epoch of 2 minibatches, β = 0
 * (with lr 1e-3 held-out accuracy rose for 6 updates, then fell below the SFT policy's).
 */
export const RlvrPpoSchema = LmPpoSchema.extend({
  advantage: redefault(AdvantageSchema, GRPO.advantage!),
  whiten_advantages: redefault(PpoSchema.shape.whiten_advantages, false),
  lr: redefault(PpoSchema.shape.lr, 3e-4),
  epochs: redefault(PpoSchema.shape.epochs, 1),
  minibatches: redefault(PpoSchema.shape.minibatches, 2),
  kl: RlvrKlSchema.default(RlvrKlSchema.parse({})),
});

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
export const RlvrRunSchema = z.object({
  ...lmTrialShape({ updates: 30 }),
  model: RlvrModelSchema.default(RlvrModelSchema.parse({})),
  sft: RlvrSftSchema.default(RlvrSftSchema.parse({})),
  ppo: RlvrPpoSchema.default(RlvrPpoSchema.parse({})),
  max_operand: z.number().int().min(1).max(999).default(99).describe(
    "operands are drawn uniformly from [0, max_operand]",
  ),
  prompts_per_update: z.number().int().min(1).default(8).describe(
    "problems per update (batch = prompts_per_update × samples_per_prompt)",
  ),
  samples_per_prompt: z.number().int().min(1).default(8).describe(
    "responses per problem: the group of grpo, dr_grpo and rloo (≥ 2)",
  ),
  max_new_tokens: z.number().int().min(1).default(56).describe("most tokens per response"),
  rewards: z.array(RewardRefSchema).min(1).default([
    { name: "exact_match", weight: 1 },
    { name: "format", weight: 0.1 },
  ]).describe(
    "the reward: Σ weight · component (built-ins: exact_match, format — the task's pattern " +
      "unless options.pattern — length; or { module, name } of your own)",
  ),
  eval: RlvrEvalSchema.default(RlvrEvalSchema.parse({})),
}).strict();

export type RlvrRunConfig = z.infer<typeof RlvrRunSchema>;
export type RlvrRunInput = z.input<typeof RlvrRunSchema>;

/** Config of the SFT stage: the model, the sft section and the operand range. */
export const RlvrSftStageSchema = z.object({
  model: RlvrModelSchema.default(RlvrModelSchema.parse({})),
  sft: RlvrSftSchema.default(RlvrSftSchema.parse({})),
  max_operand: z.number().int().min(1).max(999).default(99),
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
