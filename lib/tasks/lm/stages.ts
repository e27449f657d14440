/**
 * The `lm` task's one stage, `lm-reward-model`: a reward model trained from the user's
 * preference pairs (`reward_model_data`) on the policy's trunk with a fresh scalar head,
 * Bradley–Terry, saved as a reward model folder (a transformers classifier for Llama-family
 * trunks). Content-addressed by the policy folder's and the data file's hashes and the
 * training settings, so every trial and sweep that shares them reuses one folder.
 * @module
 */
import { z } from "zod";
import { hiddenSize, trunkShapes } from "../../nn/decoder.ts";
import { initHead, REWARD_HEAD } from "../../nn/heads.ts";
import type { FloatArray } from "../../nn/sample.ts";
import {
  type PreferencePair,
  RewardModelTrainer,
  saveRewardModel,
} from "../../ppo/reward_model.ts";
import { Rng } from "../../rng.ts";
import type { StageDef, StageRequest } from "../../trial/contract.ts";
import { folderHash } from "../inputs.ts";
import { readPreferencePairs } from "./data.ts";
import { loadLmPolicy } from "./inputs.ts";
import { LmRewardTrainSchema, type LmRunConfig } from "./schema.ts";

/** The stage's name. */
export const LM_RM_STAGE = "lm-reward-model";
/** Bump when the stage's training changes what it produces. */
export const LM_STAGE_VERSION = 1;

export const LmRewardStageSchema = z.object({
  policy: z.string().min(1),
  /** Content hashes: the stage's identity follows the files, not only their paths. */
  policy_hash: z.string(),
  data: z.string().min(1),
  data_hash: z.string(),
  train: LmRewardTrainSchema,
}).strict();
export type LmRewardStageConfig = z.infer<typeof LmRewardStageSchema>;

/** The pairs as token ids: the prompt as the tokenizer encodes text, completions appended. */
function tokenizePairs(
  rows: { prompt: string; chosen: string; rejected: string }[],
  tok: { encode(t: string, o?: { addSpecialTokens?: boolean }): number[] },
): PreferencePair[] {
  return rows.map((r) => ({
    prompt: tok.encode(r.prompt),
    chosen: tok.encode(r.chosen, { addSpecialTokens: false }),
    rejected: tok.encode(r.rejected, { addSpecialTokens: false }),
  }));
}

export const LM_STAGES: Record<string, StageDef> = {
  [LM_RM_STAGE]: {
    name: LM_RM_STAGE,
    description: "reward model from preference pairs on the policy's trunk (Bradley–Terry)",
    schema: LmRewardStageSchema,
    async run(config: unknown, outDir: string, ctx) {
      const c = LmRewardStageSchema.parse(config);
      const policy = await loadLmPolicy("policy", c.policy);
      const pairs = tokenizePairs(
        await readPreferencePairs("lm", "reward_model_data", c.data),
        policy.tokenizer,
      );
      const rng = new Rng(c.train.seed);
      const init: Record<string, FloatArray> = {};
      for (const n of Object.keys(trunkShapes(policy.cfg))) init[n] = policy.params[n];
      Object.assign(
        init,
        initHead(hiddenSize(policy.cfg), rng, "float32", { name: REWARD_HEAD }),
      );
      const trainer = await RewardModelTrainer.create(policy.cfg, init, {
        padTokenId: policy.tokenizer.padId,
        session: { threads: ctx.threads, device: ctx.device, sessions: ctx.sessions },
        flatParams: false,
      });
      await trainer.fit(pairs, {
        steps: c.train.steps,
        batchSize: c.train.batch_size,
        rng,
        hparams: {
          lr: c.train.lr,
          weight_decay: c.train.weight_decay,
          max_grad_norm: c.train.max_grad_norm,
        },
      });
      const params = Object.fromEntries(
        Object.entries(trainer.trainer.params()).map(([n, a]) => [n, Float32Array.from(a)]),
      );
      await saveRewardModel(`${outDir}/model`, { cfg: policy.cfg, params }, {
        tokenizer: Object.fromEntries(
          Object.entries(policy.tokenizerFiles)
            .filter(([f]) => f.endsWith(".json"))
            .map(([f, b]) => [f, JSON.parse(new TextDecoder().decode(b))]),
        ),
        padTokenId: policy.tokenizer.padId,
      });
    },
  },
};

/** The reward-model stage's config for a trial config (policy and data by content hash). */
export function lmRmStageConfig(c: LmRunConfig): LmRewardStageConfig {
  return {
    policy: c.policy,
    policy_hash: folderHash(c.policy),
    data: c.reward_model_data!,
    data_hash: folderHash(c.reward_model_data!),
    train: c.reward_model_train,
  };
}

/** The stages an `lm` trial asks for: the reward model, when trained from preference pairs. */
export function lmStagesFor(c: LmRunConfig): StageRequest[] {
  return c.reward_model === null && c.reward_model_data !== null
    ? [{ name: LM_RM_STAGE, config: lmRmStageConfig(c) }]
    : [];
}
