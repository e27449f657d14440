/**
 * What the byte-level LM tasks (`sentiment`, `jsx`) share: their PPO defaults, the GPT config
 * of a model section, and the SFT stage (fit a tiny GPT on (prompt, response) pairs, then save
 * it as a Hugging Face folder that records the stage).
 *
 * @example
 * ```ts
 * const m = await fitByteSft(byteGptConfig(c.model), c.sft, corpus, heldOut, {});
 * await saveSftStage(`${outDir}/model`, m, { stage: "my-sft", version: 1, config: c });
 * ```
 * @module
 */
import type { SessionOptions } from "../onnx/session.ts";
import { type GptConfig, initGpt } from "../nn/gpt.ts";
import { saveHfFolder } from "../nn/hf.ts";
import { evaluateSft, SftTrainer } from "../nn/sft.ts";
import { encodePairs, type TextPair } from "../nn/corpus.ts";
import { BYTE_EOS_ID, BYTE_VOCAB_SIZE, makeByteTokenizer } from "../nn/tokenizer.ts";
import { LmPenaltySchema, PpoSchema, redefault } from "../ppo/config.ts";
import { Rng } from "../rng.ts";

/**
 * {@link PpoSchema} (every key, same ranges) with defaults for the tiny byte-level LMs: γ = 1
 * (one score at EOS, no discount), lr 3e-4 without annealing, 2 PPO epochs, vf_coef 0.1, no
 * entropy bonus, grad clip 1, the k3 estimator for a kl-penalty surrogate. Each task extends
 * it with its own reference-KL defaults (and anything else it tuned).
 *
 * Why vf_coef 0.1 and 2 epochs: the value head shares the policy's trunk, so the value loss
 * moves the policy whatever the reward says; with CleanRL's 0.5 and 4 epochs that drift alone
 * took the policy ~2.5 nats from the reference in 20 updates even at β = 0.5–1, flattening the
 * β -> KL relation. With these defaults (3 PPO seeds × 2 SFT seeds) final KL fell
 * monotonically over β = 0, 0.1, 0.5 (e.g. 13.4 / 4.6 / 1.2 nats) on `sentiment`.
 */
export const LmPpoSchema = PpoSchema.extend({
  gamma: redefault(PpoSchema.shape.gamma, 1),
  lambda: redefault(PpoSchema.shape.lambda, 0.95),
  lr: redefault(PpoSchema.shape.lr, 3e-4),
  lr_anneal: redefault(PpoSchema.shape.lr_anneal, false),
  epochs: redefault(PpoSchema.shape.epochs, 2),
  vf_coef: redefault(PpoSchema.shape.vf_coef, 0.1),
  ent_coef: redefault(PpoSchema.shape.ent_coef, 0),
  max_grad_norm: redefault(PpoSchema.shape.max_grad_norm, 1),
  penalty: LmPenaltySchema.default(LmPenaltySchema.parse({})),
});

/** A model section of a byte-level LM task's config. */
export interface ByteModelSection {
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
}

/** The GptConfig of a model section (byte vocabulary). */
export function byteGptConfig(m: ByteModelSection): GptConfig {
  return {
    vocabSize: BYTE_VOCAB_SIZE,
    nPositions: m.n_positions,
    nEmbd: m.n_embd,
    nLayer: m.n_layer,
    nHead: m.n_head,
  };
}

/** Session options of a stage run (the experiment runner passes threads and device). */
export function stageSession(ctx: { threads?: number; device?: SessionOptions["device"] }) {
  const s: SessionOptions = {};
  if (ctx.threads !== undefined) s.threads = ctx.threads;
  if (ctx.device !== undefined) s.device = ctx.device;
  return s;
}

/** A policy in memory: GPT config and params. */
export interface GptModel {
  cfg: GptConfig;
  params: Record<string, Float32Array | Float64Array>;
}

/** The SFT section keys {@link fitByteSft} reads. */
export interface ByteSftSection {
  seed: number;
  steps: number;
  batch_size: number;
  lr: number;
  weight_decay: number;
  max_grad_norm: number;
}

/**
 * Fit a freshly initialised GPT (drawn from `Rng(s.seed)`) on `corpus` with the SFT trainer
 * and measure its mean NLL per response token on `heldOut`. Deterministic in its inputs.
 */
export async function fitByteSft(
  cfg: GptConfig,
  s: ByteSftSection,
  corpus: readonly TextPair[],
  heldOut: readonly TextPair[],
  session: SessionOptions,
): Promise<GptModel & { heldOutNll: number }> {
  const rng = new Rng(s.seed);
  const sft = await SftTrainer.create(cfg, initGpt(cfg, rng, "float32"), {
    session,
    hparams: { lr: s.lr, weight_decay: s.weight_decay, max_grad_norm: s.max_grad_norm },
  });
  await sft.fit(encodePairs(corpus), { steps: s.steps, batchSize: s.batch_size, rng });
  const params = Object.fromEntries(
    Object.entries(sft.params()).map(([n, v]) => [n, Float32Array.from(v)]),
  );
  const { meanNll } = await evaluateSft({ cfg, params }, encodePairs(heldOut), { session });
  return { cfg, params, heldOutNll: meanNll };
}

/**
 * Save an SFT policy as a Hugging Face folder (byte tokenizer, EOS = pad) whose config.json
 * records the stage that made it (`proxima_stage`: name, version, config, held-out NLL).
 */
export async function saveSftStage(
  dir: string,
  m: GptModel & { heldOutNll: number },
  stage: { stage: string; version: number; config: unknown },
): Promise<void> {
  await saveHfFolder(
    dir,
    m.cfg,
    m.params,
    makeByteTokenizer({ modelMaxLength: m.cfg.nPositions }),
    {
      config: {
        eos_token_id: BYTE_EOS_ID,
        pad_token_id: BYTE_EOS_ID,
        proxima_stage: { ...stage, held_out_nll: m.heldOutNll },
      },
    },
  );
}
