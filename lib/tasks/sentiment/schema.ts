/**
 * The `sentiment` trial config ({@link SentimentRunSchema}): the model, the SFT and
 * reward-model stages, PPO (the byte-level LM defaults with β = 0.1), the value model and
 * LoRA, the reward list, the evaluation, and inputs given by path instead of stages.
 *
 * @example
 * ```ts
 * const c = SENTIMENT_KIND.parse({ ppo: { kl: { beta: 0.05 } } });
 * c.sft.steps; // 1000
 * ```
 * @module
 */
import { z } from "zod";
import { advantageProblems, type ConfigProblem } from "../../ppo/config.ts";
import { KtoSchema } from "../../ppo/offline/kto.ts";
import { DpoSchema } from "../../ppo/dpo.ts";
import { byteModelSchema, byteSftSchema, LM_PPO_OVERRIDES, LmPpoBaseSchema } from "../byte_lm.ts";
import { dpoProblems } from "../../ppo/dpo_losses.ts";
import { LM_SAMPLING_FIELDS, lmTrialShape, rewardsField } from "../lm_task.ts";
import { type DefaultOverrides, overridesUnder, withOverrides } from "../../trial/overrides.ts";

/** The policy's (and reward model's) architecture; V = 257 (byte tokenizer). */
export const SentimentModelSchema = byteModelSchema({ min: 48, help: "context length" });

/** SFT stage: the corpus and the optimisation. */
export const SentimentSftSchema = byteSftSchema({
  stepsHelp: "optimizer steps",
  corpusHelp: "reviews in the corpus",
});

/** Reward-model stage: where its preference pairs come from and the optimisation. */
export const SentimentRewardModelSchema = z.object({
  seed: z.number().int().default(1).describe("head init, pair draws and batch order"),
  source: z.enum(["corpus", "policy"]).default("corpus").describe(
    "pairs from the corpus generator, or sampled from the SFT policy",
  ),
  pairs: z.number().int().min(8).default(2000).describe("training pairs"),
  held_out: z.number().int().min(8).default(500).describe("held-out pairs (accuracy)"),
  label_noise: z.number().min(0).max(0.49).default(0).describe(
    "probability of flipping a training pair's label (held-out pairs are never flipped)",
  ),
  typo_rate: z.number().min(0).max(1).default(0.2).describe(
    "corpus pairs: probability that a review gets one misspelled (so neutral) word",
  ),
  steps: z.number().int().min(0).default(400).describe("optimizer steps"),
  batch_size: z.number().int().min(1).default(32).describe("pairs per step"),
  lr: z.number().positive().default(1e-3).describe("AdamW learning rate"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: z.number().positive().default(1).describe("gradient-norm clip"),
  normalize: z.boolean().default(true).describe(
    "rescale the head so rewards have mean 0, std 1 on the training responses",
  ),
}).strict();

/**
 * Where `sentiment`'s defaults differ from the base ones (every other key has its schema's
 * default): the LM tasks' PPO defaults, β = 0.1 (fixed, in the reward), 20 updates, 32
 * responses per update, 128 responses per evaluation.
 */
export const SENTIMENT_OVERRIDES: DefaultOverrides = {
  ...overridesUnder("ppo", LM_PPO_OVERRIDES),
  "ppo.kl.beta": 0.1,
  updates: 20,
  batch: 32,
  "eval.samples": 128,
};

/**
 * The `algorithm` values of a sentiment trial: online PPO (and the critic-free estimators
 * through `ppo.advantage`), or an offline method on the reward model's preference pairs. The
 * methods report reads the offline ones from here (lib/report/methods.ts).
 */
export const SENTIMENT_ALGORITHMS = ["ppo", "dpo", "kto"] as const;

/** A whole `sentiment` trial: stages, PPO, rewards, evaluation. */
const SentimentRunBase = z.object({
  ...lmTrialShape(),
  model: SentimentModelSchema.default(SentimentModelSchema.parse({})),
  sft: SentimentSftSchema.default(SentimentSftSchema.parse({})),
  reward_model: SentimentRewardModelSchema.default(SentimentRewardModelSchema.parse({})),
  algorithm: z.enum(SENTIMENT_ALGORITHMS).default("ppo").describe(
    "ppo: online RL with the reward model (ppo.*; ppo.advantage picks PPO's GAE or a " +
      "critic-free estimator); dpo: offline DPO/IPO (dpo.*) on the reward model's preference " +
      "pairs with the frozen SFT policy as reference, batch / 2 pairs per update (the same " +
      "responses per update as PPO's batch); kto: offline KTO (kto.*) on the same pairs " +
      "unpaired (chosen desirable, rejected undesirable), batch examples per update",
  ),
  ppo: LmPpoBaseSchema.default(LmPpoBaseSchema.parse({})),
  dpo: DpoSchema.default(DpoSchema.parse({})),
  kto: KtoSchema.default(KtoSchema.parse({})),
  value_model: z.enum(["shared", "separate"]).default("shared").describe(
    "value model: a head on the policy's trunk (shared) or its own trunk, a copy of the " +
      "SFT policy (separate)",
  ),
  lora: z.object({
    r: z.number().int().min(0).default(0).describe("LoRA rank (0: off, full fine-tuning)"),
    alpha: z.number().positive().default(16).describe(
      "LoRA scale numerator (update = alpha/r·A@B)",
    ),
    targets: z.array(z.string().min(1)).min(1).nullable().default(null).describe(
      "weights that get adapters (suffixes of weight names); null: the policy family's " +
        "(GPT-2: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj; Llama: self_attn.q/k/v/o_proj, " +
        "mlp.gate/up/down_proj)",
    ),
  }).strict().default({ r: 0, alpha: 16, targets: null }).describe(
    "LoRA on the policy and a separate value model (base weights frozen)",
  ),
  batch: LM_SAMPLING_FIELDS.batch,
  samples_per_prompt: LM_SAMPLING_FIELDS.samples_per_prompt.describe(
    "responses sampled per prompt in a rollout: the group that ppo.advantage grpo, dr_grpo and " +
      "rloo take their baseline from (≥ 2 for those)",
  ),
  max_new_tokens: LM_SAMPLING_FIELDS.max_new_tokens,
  rewards: rewardsField("the reward: Σ weight · component"),
  eval: z.object({
    samples: LM_SAMPLING_FIELDS.eval_samples,
    seed: z.number().int().default(12345).describe("sampling seed of every evaluation"),
  }).strict().default({ samples: 16, seed: 12345 }),
  policy_path: z.string().min(1).nullable().default(null).describe(
    "Hugging Face folder of the starting policy (GPT-2 or Llama family, Proxima's byte " +
      "tokenizer); " +
      "null: train the SFT stage (sft.* keys)",
  ),
  reward_model_path: z.string().min(1).nullable().default(null).describe(
    "reward-model folder (as saveRewardModel writes: a GPT-2 folder + r_head.* tensors, or a " +
      "Llama-family *ForSequenceClassification folder); " +
      "null: train the reward-model stage (reward_model.* keys)",
  ),
  prompts_path: z.string().min(1).nullable().default(null).describe(
    "text file of prompts, one per line, used in turn by PPO and the evaluations; " +
      "null: the built-in review openings",
  ),
  measure_resources: z.boolean().default(false).describe(
    "write resources.json: the training's wall time, peak RSS and the models it held (a " +
      "measurement: the bundle hash then differs between runs; results stay identical)",
  ),
}).strict();

/** {@link SentimentRunBase} with this task's defaults ({@link SENTIMENT_OVERRIDES}). */
export const SentimentRunSchema = withOverrides(SentimentRunBase, SENTIMENT_OVERRIDES);

export type SentimentRunConfig = z.infer<typeof SentimentRunSchema>;

/** Cross-key checks: the advantage estimator against the group size, batch and value model. */
export function checkSentimentConfig(c: SentimentRunConfig): ConfigProblem[] {
  if (c.algorithm !== "ppo") {
    const out: ConfigProblem[] = c.algorithm === "dpo" ? dpoProblems(c.dpo) : [];
    if (c.algorithm === "dpo" && c.batch % 2) {
      out.push({
        key: "batch",
        cause: `algorithm "dpo" trains on batch / 2 preference pairs per update, and batch is ` +
          `${c.batch} (odd)`,
        fix: `set batch to an even number (e.g. ${c.batch + 1})`,
      });
    }
    if (c.lora.r > 0) {
      out.push({
        key: "lora.r",
        cause: `algorithm "${c.algorithm}" trains every weight of the policy (no LoRA adapters)`,
        fix: "set lora.r to 0",
      });
    }
    return out;
  }
  return advantageProblems(c.ppo, {
    samplesPerPrompt: c.samples_per_prompt,
    batch: { key: "batch", value: c.batch },
    valueModel: { key: "value_model", value: c.value_model },
    lora: c.lora.r > 0 ? "lora.r" : null,
  });
}
export type SentimentRunInput = z.input<typeof SentimentRunSchema>;

/** Config of the SFT stage: the model and the sft sections. */
export const SentimentSftStageSchema = z.object({
  model: SentimentRunSchema.shape.model,
  sft: SentimentRunSchema.shape.sft,
}).strict();
/** Config of the reward-model stage: what its SFT trunk is, and the reward_model section. */
export const SentimentRmStageSchema = SentimentSftStageSchema.extend({
  reward_model: SentimentRunSchema.shape.reward_model,
}).strict();
export type SentimentSftStageConfig = z.infer<typeof SentimentSftStageSchema>;
export type SentimentRmStageConfig = z.infer<typeof SentimentRmStageSchema>;
