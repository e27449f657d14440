/**
 * The `lm` task's config: the user's own Hugging Face policy, reward model (or preference
 * data to train one, or named reward functions), prompts and sampling, with PPO's keys. Paths
 * are hashed into the trial id by planning (`inputs`), so an edited folder is a new trial.
 * @module
 */
import { z } from "zod";
import { advantageProblems } from "../../ppo/config.ts";
import { DpoSchema } from "../../ppo/dpo.ts";
import { dpoProblems } from "../../ppo/dpo_losses.ts";
import { KtoSchema } from "../../ppo/offline/kto.ts";
import { LM_PPO_OVERRIDES, LmPpoBaseSchema } from "../byte_lm.ts";
import { LM_SAMPLING_FIELDS, lmTrialShape, rewardsField } from "../lm_task.ts";
import { type DefaultOverrides, overridesUnder, withOverrides } from "../../trial/overrides.ts";

/** The task's name. */
export const LM_TASK = "lm";

const path = (help: string) => z.string().min(1).describe(help);

/** Training of the reward-model stage from `reward_model_data` (Bradley–Terry). */
export const LmRewardTrainSchema = z.object({
  seed: z.number().int().default(1).describe("head init and batch order"),
  steps: z.number().int().min(1).default(100).describe("optimizer steps"),
  batch_size: z.number().int().min(1).default(8).describe("pairs per step"),
  lr: z.number().positive().default(1e-4).describe("AdamW learning rate"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: z.number().positive().default(1).describe("gradient-norm clip"),
}).strict();

/**
 * Where `lm`'s defaults differ from the base ones: the LM tasks' PPO defaults and β = 0.05
 * (fixed, in the reward).
 */
export const LM_OVERRIDES: DefaultOverrides = {
  ...overridesUnder("ppo", LM_PPO_OVERRIDES),
  "ppo.kl.beta": 0.05,
};

const LmRunBase = z.object({
  ...lmTrialShape(),
  policy: path("Hugging Face folder of the policy (config.json, weights, tokenizer.json)"),
  reward_model: z.string().min(1).nullable().default(null).describe(
    "reward model folder: a Hub *ForSequenceClassification (num_labels 1) or one Proxima saved; " +
      "null: reward_model_data trains one, or only named reward functions are used",
  ),
  reward_model_data: z.string().min(1).nullable().default(null).describe(
    "preference pairs (.jsonl: prompt, chosen, rejected) that train a reward model on the " +
      "policy's trunk as a cached stage (when reward_model is null)",
  ),
  reward_model_train: LmRewardTrainSchema.default(LmRewardTrainSchema.parse({})),
  reward_input: z.enum(["tokens", "text"]).default("tokens").describe(
    "what the reward model reads: the policy's token ids (same tokenizer required) or the " +
      "decoded text re-encoded with its own tokenizer",
  ),
  rewards: rewardsField(
    'the reward, Σ weight · component: "rm" (the reward model), "length" (response tokens), ' +
      '"missing_eos", the verifiable "exact_match", "format", "code_tests" (on the prompt ' +
      'row\'s answer / tests columns), or your own function: { module: "rewards/math.ts", ' +
      'name: "exact", weight: 1 } (deno task train: --reward_fn rewards/math.ts:exact:1)',
  ),
  missing_eos_penalty: z.number().min(0).nullable().default(null).describe(
    "subtracted from the reward of a response that did not end with EOS (TRL's)",
  ),
  value_model: z.enum(["shared", "from_policy", "from_reward_model"]).default("shared").describe(
    "value model: a head on the policy's trunk, its own copy of the policy, or the reward " +
      "model's trunk with its score head (as TRL)",
  ),
  lora: z.object({
    r: z.number().int().min(0).default(0).describe("LoRA rank (0: off, full fine-tuning)"),
    alpha: z.number().positive().default(16).describe("LoRA scale numerator (alpha/r)"),
    targets: z.array(z.string().min(1)).min(1).nullable().default(null).describe(
      "weights that get adapters (suffixes such as q_proj); null: the family's projections",
    ),
  }).strict().default({ r: 0, alpha: 16, targets: null }),
  prompts: path("prompt set: .txt (one per line), .jsonl (prompt or messages), .parquet"),
  chat_template: z.boolean().default(true).describe(
    "render plain prompts as a user turn with the tokenizer's chat template (when it has one)",
  ),
  batch: LM_SAMPLING_FIELDS.batch,
  samples_per_prompt: LM_SAMPLING_FIELDS.samples_per_prompt,
  max_new_tokens: LM_SAMPLING_FIELDS.max_new_tokens,
  temperature: z.number().positive().default(1).describe("sampling temperature"),
  top_p: z.number().gt(0).max(1).default(1).describe("nucleus sampling (1: off)"),
  top_k: z.number().int().min(0).default(0).describe("top-k sampling (0: off)"),
  stop: z.array(z.string().min(1)).default([]).describe(
    "strings that end a response (each must be one token of the policy's tokenizer)",
  ),
  eval: z.object({
    prompts: z.string().min(1).nullable().default(null).describe(
      "evaluation prompt set (null: the training prompts)",
    ),
    samples: LM_SAMPLING_FIELDS.eval_samples,
    seed: z.number().int().default(12345).describe("sampling seed of every evaluation"),
  }).strict().default({ prompts: null, samples: 16, seed: 12345 }),
  ppo: LmPpoBaseSchema.default(LmPpoBaseSchema.parse({})),
  // Offline methods (lib/ppo/offline): the user's data instead of rollouts.
  algorithm: z.enum(["ppo", "dpo", "kto"]).default("ppo").describe(
    "ppo: online RL from sampled responses (ppo.*, any advantage estimator); dpo: offline " +
      "DPO and TRL's other DPO loss types (dpo.*) on `preferences`; kto: offline KTO (kto.*) " +
      "on unpaired `examples`. The prompts are then the evaluation's only",
  ),
  preferences: z.string().min(1).nullable().default(null).describe(
    'algorithm "dpo": preference pairs (.jsonl rows {prompt, chosen, rejected}; prompt a ' +
      'string or a chat "messages" list, rendered as the prompts are), batch / 2 pairs per update',
  ),
  examples: z.string().min(1).nullable().default(null).describe(
    'algorithm "kto": unpaired examples (.jsonl rows {prompt, completion, label: true|false}), ' +
      "batch examples per update",
  ),
  dpo: DpoSchema.default(DpoSchema.parse({})),
  kto: KtoSchema.default(KtoSchema.parse({})),
}).strict();

/** {@link LmRunBase} with this task's defaults ({@link LM_OVERRIDES}). */
export const LmRunSchema = withOverrides(LmRunBase, LM_OVERRIDES);

export type LmRunConfig = z.infer<typeof LmRunSchema>;
export type LmRunInput = z.input<typeof LmRunSchema>;

/** Cross-key problems (before anything is read). */
export function checkLmConfig(c: LmRunConfig): { key: string; cause: string; fix: string }[] {
  // The estimator against the group size, the batch and the value model (as every LM task).
  const out: { key: string; cause: string; fix: string }[] = advantageProblems(c.ppo, {
    samplesPerPrompt: c.samples_per_prompt,
    batch: { key: "batch", value: c.batch },
    valueModel: { key: "value_model", value: c.value_model },
    lora: c.lora.r > 0 ? "lora.r" : null,
  });
  out.push(...offlineProblems(c));
  const usesRm = c.rewards.some((r) => r.name === "rm" && !r.module);
  // Offline methods need no reward: without a reward model their evaluation reports none.
  const online = c.algorithm === "ppo";
  if (online && usesRm && c.reward_model === null && c.reward_model_data === null) {
    out.push({
      key: "rewards",
      cause:
        'the reward "rm" needs a reward model, and reward_model and reward_model_data are null',
      fix:
        "set reward_model (a folder) or reward_model_data (preference .jsonl), or use other rewards",
    });
  }
  if (
    c.value_model === "from_reward_model" && c.reward_model === null && c.reward_model_data === null
  ) {
    out.push({
      key: "value_model",
      cause: '"from_reward_model" without a reward model',
      fix: 'set reward_model, or value_model "shared" / "from_policy"',
    });
  }
  if (c.reward_model !== null && c.reward_model_data !== null) {
    out.push({
      key: "reward_model_data",
      cause: "both reward_model and reward_model_data are set",
      fix: "keep one: a trained reward model folder, or the data to train one",
    });
  }
  return out;
}

/** What an offline method's config cannot run: its data file, the batch, LoRA. */
function offlineProblems(c: LmRunConfig): { key: string; cause: string; fix: string }[] {
  const out: { key: string; cause: string; fix: string }[] = [];
  const data = { dpo: "preferences", kto: "examples" } as const;
  for (const [algorithm, key] of Object.entries(data)) {
    const given = c[key as "preferences" | "examples"] !== null;
    if (c.algorithm === algorithm && !given) {
      out.push({
        key,
        cause: `algorithm "${algorithm}" trains on ${key}, and ${key} is null`,
        fix: `give --${key} data.jsonl (${
          key === "preferences"
            ? "rows {prompt, chosen, rejected}"
            : "rows {prompt, completion, label}"
        })`,
      });
    } else if (c.algorithm !== algorithm && given) {
      out.push({
        key,
        cause: `${key} is read by algorithm "${algorithm}" only, and algorithm is "${c.algorithm}"`,
        fix: `set --method ${algorithm === "dpo" ? "dpo (or ipo)" : "kto"}, or remove ${key}`,
      });
    }
  }
  if (c.algorithm === "ppo") return out;
  if (c.algorithm === "dpo") {
    out.push(...dpoProblems(c.dpo));
    if (c.batch % 2 !== 0) {
      out.push({
        key: "batch",
        cause: `algorithm "dpo" trains on batch / 2 preference pairs per update, and batch is ` +
          `${c.batch}`,
        fix: `use an even batch, e.g. ${c.batch + 1}`,
      });
    }
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
