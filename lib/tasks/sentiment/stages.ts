/**
 * The `sentiment` stages, each a {@link StageDef} whose output is one Hugging Face folder
 * `<stage dir>/model`, content-addressed by the stage's own config in the stage cache
 * (lib/trial/stage_cache.ts), so trials that share an SFT or reward-model config reuse it:
 * 1. `sentiment-sft`: a tiny byte-level decoder (GPT-2 by default, or `model.family: "llama"`; d=64, L=2, H=4, V=257 by default) trained on the
 *    generated corpus with lib/nn/sft.ts (response-only cross entropy; 1000 steps of 16,
 *    ~10 s on 2 cores, held-out NLL ≈ 0.52 nats/token against a corpus entropy of ≈ 0.47).
 * 2. `sentiment-rm`: the SFT trunk + a reward head, Bradley–Terry on preference pairs labelled
 *    by the gold reward (pairs with equal gold dropped; optional label noise: each training
 *    pair's label is flipped with probability `label_noise`), drawn from the corpus generator
 *    (each review misspelled once with probability `typo_rate`) or sampled from the SFT policy
 *    (two samples per opening, up to 32 tokens, whole reviews only). Its head is then rescaled
 *    so the reward has mean 0 and std 1 on the training responses (as lm-human-preferences
 *    does). Held-out preference accuracy (fresh pairs, no label noise) is recorded in the
 *    folder's config.json (`proxima_stage.held_out`): ≈ 0.93 by default.
 *
 * Instead of a stage, a trial may read a model folder or a prompts file by path
 * (`policy_path`, `reward_model_path`, `prompts_path`; lib/tasks/inputs.ts).
 *
 * @example
 * ```ts
 * const sft = await trainSentimentSft({ sft: { steps: 400 } }, { cacheDir: "results/.stages" });
 * sft.dir; // results/.stages/sentiment-sft/<hash>/model
 * ```
 * @module
 */
import { Rng } from "../../rng.ts";
import type { SessionOptions } from "../../onnx/session.ts";
import { contextLength, type DecoderConfig, hiddenSize } from "../../nn/decoder.ts";
import { initHead, REWARD_HEAD } from "../../nn/heads.ts";
import { evaluateSft } from "../../nn/sft.ts";
import { encodePairs } from "../../nn/corpus.ts";
import { BYTE_EOS_ID, byteEncode, makeByteTokenizer } from "../../nn/tokenizer.ts";
import {
  evaluatePreferences,
  loadAnyRewardModel,
  normalizeRewardHead,
  type PreferenceEval,
  RewardModelTrainer,
  saveRewardModel,
  scoreSequences,
} from "../../ppo/reward_model.ts";
import { canonicalJson as canonical } from "../../json.ts";
import type { StageDef, StageRequest } from "../../trial/contract.ts";
import { isolatable } from "../../trial/stage_process.ts";
import { localStageCache, type LocalStageOptions } from "../../trial/stage_cache.ts";
import {
  type ByteModel,
  byteSftStage,
  loadByteModel,
  loadSftStage,
  type SftStage,
  stageSession,
} from "../byte_lm.ts";
import { folderHash, inputError, loadByteModelFolder, readPromptsFile } from "../inputs.ts";
import {
  type SentimentRmStageConfig,
  SentimentRmStageSchema,
  type SentimentRunConfig,
  type SentimentRunInput,
  SentimentSftStageSchema,
} from "./schema.ts";
import {
  encodePreference,
  makeSentimentCorpus,
  makeSentimentPairs,
  samplePolicyPairs,
  SENTIMENT_TASK,
  type TextPreference,
} from "./world.ts";

/**
 * Bump when the corpus, the pairs or the stage training code changes what a stage produces:
 * it is part of every stage hash outside the runner (which uses the code version), so stale
 * cached stages are not reused.
 */
export const SENTIMENT_STAGE_VERSION = 1;

/**
 * The memo key of an SFT trunk (`TrialContext.memo`, handed to stage runs as
 * `StageContext.memo`): the SFT stage's canonical config. A trained trunk is a pure function of
 * it, so the reward-model stage reuses the trial's trunk rather than training it again.
 */
const sftMemoKey = (c: unknown) => `sentiment-sft|${canonical(c)}`;

/** The SFT stage: a tiny decoder trained on the generated corpus, saved to `<outDir>/model`. */
export const sentimentSftStage = byteSftStage({
  name: "sentiment-sft",
  description: "sentiment: SFT of the starting policy on the generated review corpus",
  schema: SentimentSftStageSchema,
  version: SENTIMENT_STAGE_VERSION,
  corpus: (_c, seed, size) => makeSentimentCorpus({ seed, size }),
  onFit: (c, m, ctx) => ctx.memo?.set(sftMemoKey(c), m),
});

/**
 * The reward-model stage's preference pairs: training pairs from `reward_model.seed`, held-out
 * pairs from a second stream with no label noise and no pair that also occurs in training,
 * drawn from the corpus generator or sampled from the SFT policy (`reward_model.source`).
 * DPO trains on the same pairs.
 */
export async function sentimentPreferencePairs(
  r: SentimentRmStageConfig["reward_model"],
  sft: ByteModel,
  session: SessionOptions,
): Promise<{ train: TextPreference[]; heldOut: TextPreference[] }> {
  const draw = (seed: number, count: number, labelNoise: number) =>
    r.source === "corpus"
      ? Promise.resolve(makeSentimentPairs({ seed, count, labelNoise, typoRate: r.typo_rate }))
      : samplePolicyPairs(sft, { seed, count, labelNoise, maxNewTokens: 32, session });
  const train = await draw(r.seed, r.pairs, r.label_noise);
  const key = (p: TextPreference) => `${p.prompt}\u0000${p.chosen}\u0000${p.rejected}`;
  const seen = new Set(train.map(key));
  const heldOut = (await draw(r.seed + 1_000_003, r.held_out * 2, 0))
    .filter((p) => !seen.has(key(p))).slice(0, r.held_out);
  return { train, heldOut };
}

/**
 * Train a reward model for a stage config (its SFT trunk from the trial's memo, or trained
 * again).
 */
async function fitRewardModel(
  c: SentimentRmStageConfig,
  session: SessionOptions,
  memo?: Map<string, unknown>,
) {
  const sftKey = sftMemoKey({ model: c.model, sft: c.sft });
  let sft = memo?.get(sftKey) as ByteModel | undefined;
  if (!sft) {
    sft = await sentimentSftStage.fit({ model: c.model, sft: c.sft }, session);
    memo?.set(sftKey, sft);
  }
  const { cfg } = sft;
  const r = c.reward_model;
  const { train, heldOut } = await sentimentPreferencePairs(r, sft, session);

  const rng = new Rng(r.seed);
  const init = {
    ...sft.params,
    ...initHead(hiddenSize(cfg), rng, "float32", { name: REWARD_HEAD }),
  };
  const trainer = await RewardModelTrainer.create(cfg, init, {
    session,
    hparams: { lr: r.lr, weight_decay: r.weight_decay, max_grad_norm: r.max_grad_norm },
  });
  const trainPairs = train.map(encodePreference);
  await trainer.fit(trainPairs, { steps: r.steps, batchSize: r.batch_size, rng });
  let params: Record<string, Float32Array | Float64Array> = Object.fromEntries(
    Object.entries(trainer.params()).map(([n, v]) => [n, Float32Array.from(v)]),
  );
  // Normalise on the training responses (chosen and rejected alike).
  let normalization = { mean: 0, std: 1 };
  if (r.normalize) {
    const seqs = trainPairs.flatMap((p) => [
      [...p.prompt, ...p.chosen],
      [...p.prompt, ...p.rejected],
    ]);
    const s = await scoreSequences({ cfg, params }, seqs, { session });
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    const std = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / s.length);
    normalization = { mean, std };
    params = { ...params, ...normalizeRewardHead(params, mean, std) };
  }
  const held = await evaluatePreferences({ cfg, params }, heldOut.map(encodePreference), {
    session,
  });
  return { cfg, params, heldOut: held, normalization };
}

/**
 * The reward-model stage: the SFT trunk + a reward head, Bradley–Terry on gold-labelled pairs,
 * held-out accuracy on fresh pairs (recorded in the folder's config.json), saved to
 * `<outDir>/model` with {@link saveRewardModel}.
 */
export const sentimentRewardModelStage: StageDef<SentimentRmStageConfig> = {
  name: "sentiment-rm",
  description: "sentiment: reward model (Bradley–Terry on pairs labelled by the gold reward)",
  schema: SentimentRmStageSchema,
  async run(config, outDir, ctx) {
    const c = SentimentRmStageSchema.parse(config);
    const m = await fitRewardModel(c, stageSession(ctx), ctx.memo);
    await saveRewardModel(`${outDir}/model`, m, {
      tokenizer: makeByteTokenizer({ modelMaxLength: contextLength(m.cfg) }),
      config: {
        eos_token_id: BYTE_EOS_ID,
        pad_token_id: BYTE_EOS_ID,
        proxima_stage: {
          stage: "sentiment-rm",
          version: SENTIMENT_STAGE_VERSION,
          config: c,
          held_out: m.heldOut,
          normalization: m.normalization,
        },
      },
    });
  },
};

/**
 * The task's stages by name (for the stage cache); in a child process while a trial measures
 * its resources (lib/trial/stage_process.ts).
 */
export const SENTIMENT_STAGES: Record<string, StageDef> = {
  [sentimentSftStage.name]: isolatable(sentimentSftStage, import.meta.url, "SENTIMENT_STAGES"),
  [sentimentRewardModelStage.name]: isolatable(
    sentimentRewardModelStage,
    import.meta.url,
    "SENTIMENT_STAGES",
  ),
};

/** Options shared by the stage functions. */
export interface SentimentStageOptions extends LocalStageOptions {
  /** Progress lines. */
  log?: (line: string) => void;
}

/** The stage folders of `opts` (the runner's, or the local cache). */
const stageFn = (opts: SentimentStageOptions) =>
  localStageCache(
    { name: SENTIMENT_TASK, stages: SENTIMENT_STAGES, stageVersion: SENTIMENT_STAGE_VERSION },
    opts,
  );

/**
 * The starting policy: the SFT stage's folder (trained on the first call for a config, reused
 * after), loaded.
 */
export async function trainSentimentSft(
  input: Partial<Pick<SentimentRunInput, "model" | "sft">> = {},
  opts: SentimentStageOptions = {},
): Promise<SftStage> {
  const c = SentimentSftStageSchema.parse({ model: input.model, sft: input.sft });
  const sft = await loadSftStage(stageFn(opts), sentimentSftStage.name, c, { log: opts.log });
  opts.stageMemo?.set(sftMemoKey(c), { cfg: sft.cfg, params: sft.params });
  return sft;
}

/** A trained (or cached) reward model. */
export interface RewardModelStage {
  /** Its Hugging Face folder (`<stage folder>/model`). */
  dir: string;
  hash: string;
  cfg: DecoderConfig;
  /** Trunk + `r_head.*` (normalised when asked), float32. Read-only by convention. */
  params: Record<string, Float32Array | Float64Array>;
  /** Held-out preference accuracy and loss (never label-flipped pairs). */
  heldOut: PreferenceEval;
  /** Reward mean/std on the training responses before normalisation. */
  normalization: { mean: number; std: number };
  cached: boolean;
}

/**
 * The reward model: the reward-model stage's folder (trained on the first call for a config,
 * reused after), loaded.
 */
export async function trainSentimentRewardModel(
  input: Partial<Pick<SentimentRunInput, "model" | "sft" | "reward_model">> = {},
  opts: SentimentStageOptions = {},
): Promise<RewardModelStage> {
  const c = SentimentRmStageSchema.parse({
    model: input.model,
    sft: input.sft,
    reward_model: input.reward_model,
  });
  // The SFT stage first (cached after its first run): it also puts the trunk in the memo, so
  // the reward-model stage does not train it again (a call without the trial's memo gets one of
  // its own for the two stages).
  opts = { ...opts, stageMemo: opts.stageMemo ?? new Map() };
  await trainSentimentSft(c, { ...opts, log: undefined });
  const t0 = performance.now();
  const r = await stageFn(opts)(sentimentRewardModelStage.name, c);
  const dir = `${r.dir}/model`;
  const f = await loadAnyRewardModel(dir);
  const meta = f.config.proxima_stage as {
    held_out: PreferenceEval;
    normalization: { mean: number; std: number };
  };
  opts.log?.(
    `reward model: ${
      r.cached ? "cached" : `trained in ${((performance.now() - t0) / 1e3).toFixed(1)} s`
    }, held-out accuracy ${meta.held_out.accuracy.toFixed(3)} (${meta.held_out.pairs} ` +
      `pairs): ${dir}`,
  );
  return {
    dir,
    hash: r.hash,
    cfg: f.cfg,
    params: f.params,
    heldOut: meta.held_out,
    normalization: meta.normalization,
    cached: r.cached,
  };
}

// ---- inputs given by path (policy_path, reward_model_path, prompts_path) -------------

/**
 * A starting policy from a Hugging Face folder (`policy_path`) in place of the SFT stage. It
 * must use Proxima's byte tokenizer; its held-out NLL is measured on the default corpus's
 * held-out reviews, so it is comparable with a trained SFT stage's.
 */
export async function loadSentimentPolicy(
  dir: string,
  opts: { session?: SessionOptions } = {},
): Promise<SftStage> {
  const f = await loadByteModelFolder(SENTIMENT_TASK, "policy_path", dir, (d) => loadByteModel(d));
  const heldOut = makeSentimentCorpus({ seed: 1 + 1_000_003, size: 256 });
  const { meanNll } = await evaluateSft({ cfg: f.cfg, params: f.params }, encodePairs(heldOut), {
    session: opts.session,
  });
  return {
    dir,
    hash: folderHash(dir),
    cfg: f.cfg,
    params: f.params,
    heldOutNll: meanNll,
    cached: true,
  };
}

/**
 * A reward model from a folder (`reward_model_path`) in place of the reward-model stage, its
 * held-out accuracy measured on fresh gold-labelled pairs (the `reward_model.held_out` count,
 * drawn as the stage draws them).
 */
export async function loadSentimentRewardModel(
  dir: string,
  c: SentimentRunConfig,
  opts: { session?: SessionOptions } = {},
): Promise<RewardModelStage> {
  const f = await loadByteModelFolder(
    SENTIMENT_TASK,
    "reward_model_path",
    dir,
    (d) => loadAnyRewardModel(d),
  );
  const r = c.reward_model;
  const pairs = makeSentimentPairs({
    seed: r.seed + 1_000_003,
    count: r.held_out,
    typoRate: r.typo_rate,
  });
  const heldOut = await evaluatePreferences(
    { cfg: f.cfg, params: f.params },
    pairs.map(encodePreference),
    { session: opts.session },
  );
  const meta = (f.config.proxima_stage ?? {}) as { normalization?: { mean: number; std: number } };
  return {
    dir,
    hash: folderHash(dir),
    cfg: f.cfg,
    params: f.params,
    heldOut,
    normalization: meta.normalization ?? { mean: 0, std: 1 },
    cached: true,
  };
}

/** Prompts from a text file (`prompts_path`): one per line, blank lines skipped. */
export function readSentimentPrompts(path: string): Promise<string[]> {
  return readPromptsFile(SENTIMENT_TASK, "prompts_path", path);
}

/** Every prompt plus `max_new_tokens` must fit the policy's context. */
export function checkPromptLengths(
  prompts: readonly string[],
  c: SentimentRunConfig,
  nPositions: number,
): void {
  prompts.forEach((p, i) => {
    const n = byteEncode(p).length;
    if (n < 1 || n + c.max_new_tokens > nPositions) {
      throw inputError(
        SENTIMENT_TASK,
        "prompts_path",
        c.prompts_path ?? "(built-in openings)",
        `prompt on line ${i + 1} is ${n} bytes; with max_new_tokens ${c.max_new_tokens} ` +
          `it needs ${n + c.max_new_tokens} positions, the policy has ${nPositions}`,
        `shorten the prompt to at most ${
          nPositions - c.max_new_tokens
        } bytes or lower max_new_tokens`,
      );
    }
  });
}

/**
 * The stages a `sentiment` trial asks for ({@link trainSentimentSft}'s and
 * {@link trainSentimentRewardModel}'s): the SFT policy unless `policy_path` gives one, the
 * reward model (which starts from the SFT trunk) unless `reward_model_path` does.
 */
export function sentimentStagesFor(c: SentimentRunConfig): StageRequest[] {
  const out: StageRequest[] = [];
  if (c.policy_path === null || c.reward_model_path === null) {
    out.push({
      name: sentimentSftStage.name,
      config: SentimentSftStageSchema.parse({ model: c.model, sft: c.sft }),
    });
  }
  if (c.reward_model_path === null) {
    out.push({
      name: sentimentRewardModelStage.name,
      config: SentimentRmStageSchema.parse({
        model: c.model,
        sft: c.sft,
        reward_model: c.reward_model,
      }),
    });
  }
  return out;
}
