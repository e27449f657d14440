/**
 * `sentiment`: the project's embedded RLHF task. A synthetic preference task with a HIDDEN
 * GOLD reward, small enough that the whole pipeline — SFT -> reward model -> PPO — runs on two
 * CPU cores in about a minute, and built so that reward over-optimisation is measurable: the
 * policy optimises a learned reward model, and the evaluation reports the gold score next to it.
 *
 * The world: prompts are review openings ("The movie was", ... {@link SENTIMENT_OPENINGS});
 * responses are short reviews from five templates over a fixed lexicon
 * ({@link SENTIMENT_LEXICON}: 8 positive, 8 negative, 8 neutral adjectives, 6 nouns, 4
 * adverbs), e.g. `" dull but lovely."`, `" rather odd."`, `" boring, clever music."`. Adjectives
 * are drawn uniformly from all 24, so the corpus is neutral on average (gold mean ≈ 0).
 *
 * The gold reward ({@link goldSentiment}), computed on the decoded response text:
 *
 *     gold = (#distinct positive words − #distinct negative words) / #words
 *
 * where words are the runs of letters, lower-cased. It lies in [−1, 1]: `" great."` = 1,
 * `" very great."` = 0.5, `" dull but lovely."` = 0. Two details make over-optimisation
 * visible: a repeated positive word counts once (`" great great great."` = 1/3), and any
 * non-lexicon word (a misspelling, garbage) dilutes the score. The corpus never repeats a
 * word and the reward model sees misspellings only as one-typo variants of corpus reviews, so
 * a policy that drifts far from the reference (large KL) finds text the reward model likes and
 * gold does not: with β = 0 the RM score keeps rising while gold falls back to ~0
 * (`" fufu."`, `" greod."`), the over-optimisation of Gao et al. 2022 in miniature.
 *
 * Stages, each a {@link SentimentStageDef} (the shape of lib/experiment's `StageDef`) whose
 * output is one Hugging Face folder `<stage dir>/model`, content-addressed by the stage's own
 * config, so trials that share an SFT or reward-model config reuse it — through the experiment
 * runner's stage cache (`ctx.stage`) or, without a runner, {@link localStageCache}
 * (`results/.stages/<stage>-<hash>/model`):
 * 1. `sentiment-sft`: a tiny byte-level GPT (d=64, L=2, H=4, V=257 by default) trained on the
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
 * 3. PPO (lib/tasks/lm_ppo.ts) with reward = Σ weight · component over named reward
 *    components (default: the reward model alone); the reward model and the gold score are
 *    always computed and logged per update (`rm_score`, `gold_score`, `reward/<name>`), next
 *    to the trainer's `kl_ref` and `response_length`.
 *
 * {@link runSentimentTrial} runs the three stages from one validated config
 * ({@link SentimentRunSchema}) and evaluates the policy before and after PPO on the same
 * fresh samples' prompts (RM score, gold score, KL to the reference, response length).
 *
 * @example
 * ```ts
 * const result = await runSentimentTrial({ seed: 1, updates: 20 }, "results/sentiment/s1");
 * result.before.gold_score; // ≈ 0 (the SFT policy writes neutral reviews on average)
 * result.after.gold_score;  // higher
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { Rng } from "../rng.ts";
import type { SessionOptions } from "../onnx/session.ts";
import { type GptConfig } from "../nn/gpt.ts";
import { initHead, REWARD_HEAD } from "../nn/heads.ts";
import { loadHfFolder } from "../nn/hf.ts";
import { type FloatArray, generate } from "../nn/sample.ts";
import { evaluateSft } from "../nn/sft.ts";
import { encodePairs, type TextPair } from "../nn/corpus.ts";
import {
  BYTE_EOS_ID,
  BYTE_VOCAB_SIZE,
  byteDecode,
  byteEncode,
  makeByteTokenizer,
} from "../nn/tokenizer.ts";
import { ConfigError, formatIssues, KlSchema, redefault } from "../ppo/config.ts";
import { type MetricsRow, PPO_METRIC_COLUMNS } from "../ppo/trainer.ts";
import {
  evaluatePreferences,
  loadRewardModel,
  normalizeRewardHead,
  type PreferenceEval,
  type PreferencePair,
  RewardModelTrainer,
  saveRewardModel,
  scoreSequences,
} from "../ppo/reward_model.ts";
import {
  byteGptConfig,
  fitByteSft,
  type GptModel,
  LmPpoSchema,
  saveSftStage,
  stageSession,
} from "./byte_lm.ts";
import { createLmProblem, type LmProblem, type LmTask } from "./lm_ppo.ts";
import {
  type BatchRewardFn,
  type RewardComponent,
  type RewardFn,
  rewardLmTask,
  type RewardSample,
} from "./rewards.ts";
import { exists } from "../fs.ts";
import { readLmTrial, runLmPpo, writeEvalJson } from "./trial_files.ts";
import { canonicalJson as canonical } from "../json.ts";

/** The task's name (in errors and registries). */
export const SENTIMENT_TASK = "sentiment";

/**
 * Bump when the corpus, the pairs or the stage training code changes what a stage produces:
 * it is part of every stage hash, so stale cached stages are not reused.
 */
export const SENTIMENT_STAGE_VERSION = 1;

// ---- the world -----------------------------------------------------------------

/** Review openings: the prompts. */
export const SENTIMENT_OPENINGS: readonly string[] = [
  "The movie was",
  "The film is",
  "This book was",
  "The show felt",
  "The food was",
  "The song is",
  "My trip was",
  "The game was",
];

/** The lexicon: gold counts `positive` and `negative`; the rest are neutral filler. */
export const SENTIMENT_LEXICON = {
  positive: ["good", "great", "fun", "lovely", "superb", "sweet", "clever", "joyful"],
  negative: ["bad", "dull", "awful", "boring", "weak", "poor", "messy", "bland"],
  neutral: ["long", "short", "loud", "quiet", "slow", "new", "odd", "simple"],
  nouns: ["plot", "music", "cast", "ending", "pace", "story"],
  adverbs: ["very", "quite", "rather", "fairly"],
} as const;

const POSITIVE = new Set<string>(SENTIMENT_LEXICON.positive);
const NEGATIVE = new Set<string>(SENTIMENT_LEXICON.negative);
const ADJECTIVES: readonly string[] = [
  ...SENTIMENT_LEXICON.positive,
  ...SENTIMENT_LEXICON.negative,
  ...SENTIMENT_LEXICON.neutral,
];

/**
 * The hidden gold reward of a response text: (#distinct positive − #distinct negative words)
 * / #words, words = runs of letters (lower-cased); 0 for text without words. In [−1, 1].
 *
 * @example
 * ```ts
 * goldSentiment(" great."); // 1
 * goldSentiment(" dull but lovely."); // 0
 * goldSentiment(" great great great."); // 1/3: a repeated word counts once
 * ```
 */
export function goldSentiment(text: string): number {
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  if (words.length === 0) return 0;
  const pos = new Set(words.filter((w) => POSITIVE.has(w))).size;
  const neg = new Set(words.filter((w) => NEGATIVE.has(w))).size;
  return (pos - neg) / words.length;
}

/**
 * One review continuation from the templates (leading space, final period):
 * `" {a}."`, `" {adv} {a}."`, `" {a} and {a}."`, `" {a} but {a}."`, `" {a}, {a} {noun}."`,
 * adjectives uniform over all 24 (two adjectives in one review differ).
 */
export function drawReview(rng: Rng): string {
  const pick = (xs: readonly string[]) => xs[rng.int(xs.length)];
  const a = pick(ADJECTIVES);
  let b = pick(ADJECTIVES);
  while (b === a) b = pick(ADJECTIVES);
  switch (rng.int(5)) {
    case 0:
      return ` ${a}.`;
    case 1:
      return ` ${pick(SENTIMENT_LEXICON.adverbs)} ${a}.`;
    case 2:
      return ` ${a} and ${b}.`;
    case 3:
      return ` ${a} but ${b}.`;
    default:
      return ` ${a}, ${b} ${pick(SENTIMENT_LEXICON.nouns)}.`;
  }
}

/**
 * The SFT corpus: `size` (opening, review) pairs drawn with replacement, deterministic in
 * `seed` (the "shipped" corpus is this generator).
 *
 * @example
 * ```ts
 * makeSentimentCorpus({ seed: 1, size: 2 }); // [{ prompt: "The song is", response: " odd but fun." }, ...]
 * ```
 */
export function makeSentimentCorpus(opts: { seed: number; size: number }): TextPair[] {
  const rng = new Rng(opts.seed);
  return Array.from({ length: opts.size }, () => ({
    prompt: SENTIMENT_OPENINGS[rng.int(SENTIMENT_OPENINGS.length)],
    response: drawReview(rng),
  }));
}

/** A preference pair as text, with both gold scores. */
export interface TextPreference {
  prompt: string;
  chosen: string;
  rejected: string;
  goldChosen: number;
  goldRejected: number;
  /** True when label noise swapped chosen and rejected (the gold prefers `rejected`). */
  flipped: boolean;
}

/** Tokens of a text preference: the responses end with EOS, as the policy's do. */
export function encodePreference(p: TextPreference): PreferencePair {
  return {
    prompt: byteEncode(p.prompt),
    chosen: [...byteEncode(p.chosen), BYTE_EOS_ID],
    rejected: [...byteEncode(p.rejected), BYTE_EOS_ID],
  };
}

/** Order two responses by gold (higher = chosen) and apply label noise; null on a tie. */
function labelPair(
  prompt: string,
  a: string,
  b: string,
  labelNoise: number,
  rng: Rng,
): TextPreference | null {
  const ga = goldSentiment(a), gb = goldSentiment(b);
  if (ga === gb) return null;
  const [c, r, gc, gr] = ga > gb ? [a, b, ga, gb] : [b, a, gb, ga];
  const flipped = labelNoise > 0 && rng.uniform() < labelNoise;
  return flipped
    ? { prompt, chosen: r, rejected: c, goldChosen: gr, goldRejected: gc, flipped }
    : { prompt, chosen: c, rejected: r, goldChosen: gc, goldRejected: gr, flipped };
}

const LEXICON_WORDS = new Set<string>(Object.values(SENTIMENT_LEXICON).flat());

/**
 * The text with one typo in one word of ≥ 3 letters (a letter deleted, doubled or replaced),
 * chosen so the word leaves the lexicon: `" great."` -> `" graet."`-like misspellings, which
 * gold scores as neutral words. Text without such a word is returned unchanged.
 */
export function addTypo(text: string, rng: Rng): string {
  const words = [...text.matchAll(/[a-z]{3,}/g)];
  if (words.length === 0) return text;
  const m = words[rng.int(words.length)], w = m[0];
  for (let tries = 0; tries < 20; tries++) {
    const i = rng.int(w.length), kind = rng.int(3);
    const letter = String.fromCharCode(97 + rng.int(26));
    const typo = kind === 0
      ? w.slice(0, i) + w.slice(i + 1)
      : kind === 1
      ? w.slice(0, i + 1) + w[i] + w.slice(i + 1)
      : w.slice(0, i) + letter + w.slice(i + 1);
    if (typo !== w && !LEXICON_WORDS.has(typo)) {
      return text.slice(0, m.index) + typo + text.slice(m.index! + w.length);
    }
  }
  return text;
}

/**
 * Preference pairs from the corpus generator: per pair, an opening and two reviews with
 * different gold scores; the higher is chosen, then flipped with probability `labelNoise`.
 * Each review gets one typo ({@link addTypo}) with probability `typoRate` first, so the reward
 * model sees misspelled (neutral) words too. Deterministic in `seed`.
 */
export function makeSentimentPairs(
  opts: { seed: number; count: number; labelNoise?: number; typoRate?: number },
): TextPreference[] {
  const rng = new Rng(opts.seed);
  const typo = opts.typoRate ?? 0;
  const review = () => {
    const r = drawReview(rng);
    return typo > 0 && rng.uniform() < typo ? addTypo(r, rng) : r;
  };
  const out: TextPreference[] = [];
  while (out.length < opts.count) {
    const prompt = SENTIMENT_OPENINGS[rng.int(SENTIMENT_OPENINGS.length)];
    const p = labelPair(prompt, review(), review(), opts.labelNoise ?? 0, rng);
    if (p) out.push(p);
  }
  return out;
}

/**
 * Preference pairs sampled from a policy: two responses per opening (plain sampling), labelled
 * by gold as {@link makeSentimentPairs}; ties (including identical responses) are dropped.
 */
export async function samplePolicyPairs(
  policy: { cfg: GptConfig; params: Record<string, FloatArray> },
  opts: {
    seed: number;
    count: number;
    labelNoise?: number;
    maxNewTokens: number;
    session?: SessionOptions;
  },
): Promise<TextPreference[]> {
  const rng = new Rng(opts.seed);
  const out: TextPreference[] = [];
  const chunk = 64; // pairs per generate call
  for (let round = 0; out.length < opts.count; round++) {
    if (round > 50 + opts.count) {
      throw new Error(
        `samplePolicyPairs: the policy gave only ${out.length} untied pairs of ${opts.count}`,
      );
    }
    const prompts = Array.from(
      { length: chunk },
      (_, k) => SENTIMENT_OPENINGS[(round * chunk + k) % SENTIMENT_OPENINGS.length],
    );
    const gen = await generate(policy, prompts.flatMap((p) => [byteEncode(p), byteEncode(p)]), {
      maxNewTokens: opts.maxNewTokens,
      eosTokenId: BYTE_EOS_ID,
      padTokenId: BYTE_EOS_ID,
      rng,
      session: opts.session,
    });
    for (let k = 0; k < chunk && out.length < opts.count; k++) {
      if (!gen.ended[2 * k] || !gen.ended[2 * k + 1]) continue; // keep whole reviews only
      const [a, b] = [0, 1].map((j) => decodeText(gen.responses[2 * k + j]));
      const p = labelPair(prompts[k], a, b, opts.labelNoise ?? 0, rng);
      if (p) out.push(p);
    }
  }
  return out;
}

/** Token ids -> text, special tokens (EOS) dropped. */
function decodeText(ids: number[]): string {
  return byteDecode(ids, { skipSpecialTokens: true });
}

// ---- config --------------------------------------------------------------------

/** The policy's (and reward model's) architecture; V = 257 (byte tokenizer). */
export const SentimentModelSchema = z.object({
  n_embd: z.number().int().min(8).default(64).describe("model width d"),
  n_layer: z.number().int().min(1).default(2).describe("transformer blocks"),
  n_head: z.number().int().min(1).default(4).describe("attention heads (must divide d)"),
  n_positions: z.number().int().min(48).default(64).describe("context length"),
}).strict();

/** SFT stage: the corpus and the optimisation. */
export const SentimentSftSchema = z.object({
  seed: z.number().int().default(1).describe("init and batch order"),
  corpus_seed: z.number().int().default(1).describe("seed of the generated corpus"),
  corpus_size: z.number().int().min(16).default(4000).describe("reviews in the corpus"),
  steps: z.number().int().min(0).default(1000).describe("optimizer steps"),
  batch_size: z.number().int().min(1).default(16).describe("examples per step"),
  lr: z.number().positive().default(3e-3).describe("AdamW learning rate"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: z.number().positive().default(1).describe("gradient-norm clip"),
}).strict();

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

/** {@link KlSchema} with this task's defaults (β = 0.1, fixed, in the reward). */
export const SentimentKlSchema = KlSchema.extend({
  beta: redefault(KlSchema.shape.beta, 0.1),
});

/** {@link LmPpoSchema} (the byte-level LM defaults) with this task's reference KL: β = 0.1. */
export const SentimentPpoSchema = LmPpoSchema.extend({
  kl: SentimentKlSchema.default(SentimentKlSchema.parse({})),
});

/** One weighted reward term by name: built-in (`rm`, `gold`, `length`, `eos`) or user-given. */
export const RewardRefSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/).describe("reward component name"),
  weight: z.number().describe("its weight in the sum (0 = logged only)"),
}).strict();

/** A whole `sentiment` trial: stages, PPO, rewards, evaluation. */
export const SentimentRunSchema = z.object({
  seed: z.number().int().default(1).describe(
    "PPO trial seed (value head, sampling, minibatches)",
  ),
  model: SentimentModelSchema.default(SentimentModelSchema.parse({})),
  sft: SentimentSftSchema.default(SentimentSftSchema.parse({})),
  reward_model: SentimentRewardModelSchema.default(SentimentRewardModelSchema.parse({})),
  ppo: SentimentPpoSchema.default(SentimentPpoSchema.parse({})),
  value_model: z.enum(["shared", "separate"]).default("shared").describe(
    "value model: a head on the policy's trunk (shared) or its own GPT trunk, a copy of the " +
      "SFT policy (separate)",
  ),
  lora: z.object({
    r: z.number().int().min(0).default(0).describe("LoRA rank (0: off, full fine-tuning)"),
    alpha: z.number().positive().default(16).describe(
      "LoRA scale numerator (update = alpha/r·A@B)",
    ),
    targets: z.array(z.string().min(1)).min(1).default([
      "attn.c_attn",
      "attn.c_proj",
      "mlp.c_fc",
      "mlp.c_proj",
    ]).describe("weights that get adapters (suffixes of GPT-2 weight names)"),
  }).strict().default({
    r: 0,
    alpha: 16,
    targets: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
  }).describe("LoRA on the policy and a separate value model (base weights frozen)"),
  updates: z.number().int().min(1).default(20).describe("PPO updates"),
  batch: z.number().int().min(1).default(32).describe("prompts (responses) per update"),
  max_new_tokens: z.number().int().min(1).default(32).describe("most tokens per response"),
  rewards: z.array(RewardRefSchema).min(1).default([{ name: "rm", weight: 1 }]).describe(
    "the reward: Σ weight · component",
  ),
  eval: z.object({
    samples: z.number().int().min(1).default(128).describe("responses per evaluation"),
    seed: z.number().int().default(12345).describe("sampling seed of every evaluation"),
  }).strict().default({ samples: 128, seed: 12345 }),
  checkpoint_every: z.number().int().min(0).default(0).describe(
    "checkpoint every k updates (0: only the final state)",
  ),
  policy_path: z.string().min(1).nullable().default(null).describe(
    "Hugging Face folder of the starting policy (GPT-2 layout, Proxima's byte tokenizer); " +
      "null: train the SFT stage (sft.* keys)",
  ),
  reward_model_path: z.string().min(1).nullable().default(null).describe(
    "reward-model folder (a GPT-2 folder + r_head.* tensors, as saveRewardModel writes); " +
      "null: train the reward-model stage (reward_model.* keys)",
  ),
  prompts_path: z.string().min(1).nullable().default(null).describe(
    "text file of prompts, one per line, used in turn by PPO and the evaluations; " +
      "null: the built-in review openings",
  ),
}).strict();

export type SentimentRunConfig = z.infer<typeof SentimentRunSchema>;
export type SentimentRunInput = z.input<typeof SentimentRunSchema>;

/** Parse and default a trial config; throws {@link ConfigError} naming every bad key. */
export function parseSentimentConfig(input: unknown): SentimentRunConfig {
  const r = SentimentRunSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, input, "sentiment config"));
  return r.data;
}

/** The GptConfig of a model section. */
export const sentimentGptConfig: (m: SentimentRunConfig["model"]) => GptConfig = byteGptConfig;

// ---- stages --------------------------------------------------------------------

/** Session options of a stage run (the experiment runner passes threads and device). */
export interface SentimentStageContext {
  threads?: number;
  device?: "cpu" | "cuda";
}

/**
 * A cacheable stage, shaped like lib/experiment's `StageDef` (structurally; this layer does not
 * import it): `run` writes the stage's outputs into `outDir` — here one Hugging Face folder,
 * `<outDir>/model` — and nothing else.
 */
export interface SentimentStageDef<C> {
  name: string;
  description: string;
  schema: z.ZodType<C>;
  run(config: C, outDir: string, ctx: SentimentStageContext): Promise<void>;
}

/**
 * Where a stage's output folder comes from: `(name, config) -> { dir }` with the stage's
 * outputs in `dir` (the runner's `ctx.stage`, or {@link localStageCache}).
 */
export type SentimentStageFn = (
  name: string,
  config: unknown,
) => Promise<{ dir: string; hash: string; cached: boolean }>;

/** Config of the SFT stage: the model and the sft sections. */
export const SentimentSftStageSchema = z.object({
  model: SentimentModelSchema.default(SentimentModelSchema.parse({})),
  sft: SentimentSftSchema.default(SentimentSftSchema.parse({})),
}).strict();
/** Config of the reward-model stage: what its SFT trunk is, and the reward_model section. */
export const SentimentRmStageSchema = SentimentSftStageSchema.extend({
  reward_model: SentimentRewardModelSchema.default(SentimentRewardModelSchema.parse({})),
}).strict();
export type SentimentSftStageConfig = z.infer<typeof SentimentSftStageSchema>;
export type SentimentRmStageConfig = z.infer<typeof SentimentRmStageSchema>;

/** Content hash (16 hex) of a stage's identity. */
export function sentimentStageHash(identity: unknown): string {
  return createHash("sha256").update(canonical(identity)).digest("hex").slice(0, 16);
}

const sessionOf = stageSession;

/** SFT models trained or loaded in this process, by canonical stage config (the RM stage's trunk). */
const sftMemo = new Map<string, GptModel>();

/** Train the SFT policy of a stage config in memory (deterministic in the config). */
async function fitSft(
  c: SentimentSftStageConfig,
  session: SessionOptions,
): Promise<GptModel & { heldOutNll: number }> {
  const cfg = sentimentGptConfig(c.model);
  const s = c.sft;
  const corpus = makeSentimentCorpus({ seed: s.corpus_seed, size: s.corpus_size });
  // Held-out reviews from a second stream (the corpus is a distribution, not a list).
  const heldOut = makeSentimentCorpus({ seed: s.corpus_seed + 1_000_003, size: 256 });
  return await fitByteSft(cfg, s, corpus, heldOut, session);
}

/** The SFT stage: a tiny GPT trained on the generated corpus, saved to `<outDir>/model`. */
export const sentimentSftStage: SentimentStageDef<SentimentSftStageConfig> = {
  name: "sentiment-sft",
  description: "sentiment: SFT of the starting policy on the generated review corpus",
  schema: SentimentSftStageSchema,
  async run(config, outDir, ctx) {
    const c = SentimentSftStageSchema.parse(config);
    const m = await fitSft(c, sessionOf(ctx));
    sftMemo.set(canonical(c), m);
    await saveSftStage(`${outDir}/model`, m, {
      stage: "sentiment-sft",
      version: SENTIMENT_STAGE_VERSION,
      config: c,
    });
  },
};

/** Train a reward model for a stage config (its SFT trunk from memory, or trained again). */
async function fitRewardModel(c: SentimentRmStageConfig, session: SessionOptions) {
  const sftKey = canonical({ model: c.model, sft: c.sft });
  let sft = sftMemo.get(sftKey);
  if (!sft) {
    sft = await fitSft({ model: c.model, sft: c.sft }, session);
    sftMemo.set(sftKey, sft);
  }
  const { cfg } = sft;
  const r = c.reward_model;
  // Pairs: training from seed, held-out from a second stream, no label noise on held-out, and
  // no held-out pair that also occurs in training.
  const draw = (seed: number, count: number, labelNoise: number) =>
    r.source === "corpus"
      ? Promise.resolve(makeSentimentPairs({ seed, count, labelNoise, typoRate: r.typo_rate }))
      : samplePolicyPairs(sft, { seed, count, labelNoise, maxNewTokens: 32, session });
  const train = await draw(r.seed, r.pairs, r.label_noise);
  const key = (p: TextPreference) => `${p.prompt}\u0000${p.chosen}\u0000${p.rejected}`;
  const seen = new Set(train.map(key));
  const heldOut = (await draw(r.seed + 1_000_003, r.held_out * 2, 0))
    .filter((p) => !seen.has(key(p))).slice(0, r.held_out);

  const rng = new Rng(r.seed);
  const init = { ...sft.params, ...initHead(cfg.nEmbd, rng, "float32", { name: REWARD_HEAD }) };
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
export const sentimentRewardModelStage: SentimentStageDef<SentimentRmStageConfig> = {
  name: "sentiment-rm",
  description: "sentiment: reward model (Bradley–Terry on pairs labelled by the gold reward)",
  schema: SentimentRmStageSchema,
  async run(config, outDir, ctx) {
    const c = SentimentRmStageSchema.parse(config);
    const m = await fitRewardModel(c, sessionOf(ctx));
    await saveRewardModel(`${outDir}/model`, m, {
      tokenizer: makeByteTokenizer({ modelMaxLength: m.cfg.nPositions }),
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

/** The task's stages by name (for the experiment runner's stage cache). */
export const SENTIMENT_STAGES = {
  [sentimentSftStage.name]: sentimentSftStage,
  [sentimentRewardModelStage.name]: sentimentRewardModelStage,
} as Record<string, SentimentStageDef<unknown>>;

/**
 * A stage cache without the experiment runner: stage `name` with `config` lives in
 * `<cacheDir>/<name>-<hash>` (hash of name, parsed config and {@link SENTIMENT_STAGE_VERSION}),
 * written in a `.tmp-` sibling and renamed whole, so a folder that exists is complete; a later
 * call with the same config reuses it.
 */
export function localStageCache(
  cacheDir = "results/.stages",
  ctx: SentimentStageContext = {},
  task: {
    name: string;
    stages: Record<string, SentimentStageDef<unknown>>;
    version: number;
  } = { name: SENTIMENT_TASK, stages: SENTIMENT_STAGES, version: SENTIMENT_STAGE_VERSION },
): SentimentStageFn {
  return async (name, config) => {
    const def = task.stages[name];
    if (!def) throw new Error(`${task.name}: no stage "${name}"`);
    const parsed = def.schema.parse(config);
    const hash = sentimentStageHash({ stage: name, version: task.version, config: parsed });
    const dir = `${cacheDir}/${name}-${hash}`;
    if (await exists(dir)) return { dir, hash, cached: true };
    await Deno.mkdir(cacheDir, { recursive: true });
    const tmp = `${dir}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(tmp);
    try {
      await def.run(parsed, tmp, ctx);
      await Deno.rename(tmp, dir);
    } catch (e) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      if (await exists(dir)) return { dir, hash, cached: true }; // a concurrent writer won
      throw e;
    }
    return { dir, hash, cached: false };
  };
}

/** Options shared by the stage functions. */
export interface SentimentStageOptions {
  /** Stage folders from here (e.g. the experiment runner's `ctx.stage`); default {@link localStageCache}. */
  stage?: SentimentStageFn;
  /** Cache folder of the default {@link localStageCache} (default `results/.stages`). */
  cacheDir?: string;
  /** Session options (device, threads). */
  session?: SessionOptions;
  /** Progress lines. */
  log?: (line: string) => void;
}

const stageFn = (opts: SentimentStageOptions): SentimentStageFn =>
  opts.stage ??
    localStageCache(opts.cacheDir, {
      threads: opts.session?.threads,
      device: opts.session?.device,
    });

/** A trained (or cached) SFT policy. */
export interface SftStage {
  /** Its Hugging Face folder (`<stage folder>/model`). */
  dir: string;
  /** The stage folder's content hash. */
  hash: string;
  cfg: GptConfig;
  params: Record<string, Float32Array | Float64Array>;
  /** Held-out mean NLL per response token (nats). */
  heldOutNll: number;
  /** True when the stage folder was reused. */
  cached: boolean;
}

/**
 * The starting policy: the SFT stage's folder (trained on the first call for a config, reused
 * after), loaded.
 *
 * @example
 * ```ts
 * const sft = await trainSentimentSft({ sft: { steps: 400 } }, { cacheDir: "results/.stages" });
 * sft.dir; // results/.stages/sentiment-sft-<hash>/model
 * ```
 */
export async function trainSentimentSft(
  input: Partial<Pick<SentimentRunInput, "model" | "sft">> = {},
  opts: SentimentStageOptions = {},
): Promise<SftStage> {
  const c = SentimentSftStageSchema.parse({ model: input.model, sft: input.sft });
  const t0 = performance.now();
  const r = await stageFn(opts)(sentimentSftStage.name, c);
  const dir = `${r.dir}/model`;
  const f = await loadHfFolder(dir);
  const meta = f.config.proxima_stage as { held_out_nll: number };
  sftMemo.set(canonical(c), { cfg: f.cfg, params: f.params });
  opts.log?.(
    `sft: ${r.cached ? "cached" : `trained in ${((performance.now() - t0) / 1e3).toFixed(1)} s`}` +
      `, held-out NLL ${meta.held_out_nll.toFixed(3)} nats/token: ${dir}`,
  );
  return {
    dir,
    hash: r.hash,
    cfg: f.cfg,
    params: f.params,
    heldOutNll: meta.held_out_nll,
    cached: r.cached,
  };
}

/** A trained (or cached) reward model. */
export interface RewardModelStage {
  /** Its Hugging Face folder (`<stage folder>/model`). */
  dir: string;
  hash: string;
  cfg: GptConfig;
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
  // The SFT stage first (cached after its first run): it also puts the trunk in memory, so
  // the reward-model stage does not train it again.
  await trainSentimentSft(c, { ...opts, log: undefined });
  const t0 = performance.now();
  const r = await stageFn(opts)(sentimentRewardModelStage.name, c);
  const dir = `${r.dir}/model`;
  const f = await loadRewardModel(dir);
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

/** An input folder or file that cannot be used: names the config key, the path and a fix. */
function inputError(key: string, path: string, cause: string, fix: string): ConfigError {
  return new ConfigError(`sentiment config: ${key}: ${path}: ${cause}\n  fix: ${fix}`);
}

/** Content hash of a folder's regular files (relative path, size, bytes; sorted). */
async function folderHash(dir: string): Promise<string> {
  const h = createHash("sha256");
  const names = (await Array.fromAsync(Deno.readDir(dir)))
    .filter((e) => e.isFile && !e.name.startsWith(".")).map((e) => e.name).sort();
  for (const n of names) {
    const bytes = await Deno.readFile(`${dir}/${n}`);
    h.update(`${n}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest("hex").slice(0, 16);
}

/** Load a model folder for `key`, turning every failure into an error naming the key. */
async function loadInputFolder<T>(
  key: string,
  dir: string,
  load: (dir: string) => Promise<T & { cfg: GptConfig; tokenizer?: Record<string, unknown> }>,
): Promise<T & { cfg: GptConfig }> {
  const st = await Deno.stat(dir).catch(() => null);
  if (!st) {
    throw inputError(
      key,
      dir,
      "no such folder",
      "check the path, or set it to null to train this stage",
    );
  }
  if (!st.isDirectory) {
    throw inputError(
      key,
      dir,
      "is a file, not a model folder",
      "point at the folder holding config.json and model.safetensors",
    );
  }
  let f;
  try {
    f = await load(dir);
  } catch (e) {
    throw inputError(
      key,
      dir,
      (e as Error).message,
      "re-save the folder with saveHfFolder / saveRewardModel (Proxima writes them in results/.stages/*/model)",
    );
  }
  const tok = f.tokenizer?.["tokenizer.json"] as { model?: { vocab?: unknown } } | undefined;
  const byteVocab = (makeByteTokenizer()["tokenizer.json"] as { model: { vocab: unknown } }).model
    .vocab;
  if (!tok) {
    throw inputError(
      key,
      dir,
      "no tokenizer.json: the sentiment task reads bytes with Proxima's byte tokenizer",
      "save the folder with makeByteTokenizer()'s files (saveHfFolder's tokenizer argument)",
    );
  }
  if (canonical(tok.model?.vocab ?? null) !== canonical(byteVocab)) {
    throw inputError(
      key,
      dir,
      "tokenizer.json is not Proxima's byte tokenizer (its vocabulary differs)",
      "use a model trained with the byte tokenizer (lib/nn/tokenizer.ts)",
    );
  }
  if (f.cfg.vocabSize !== BYTE_VOCAB_SIZE) {
    throw inputError(
      key,
      dir,
      `config.json vocab_size is ${f.cfg.vocabSize}, the byte tokenizer has ${BYTE_VOCAB_SIZE}`,
      "use a model trained with the byte tokenizer (lib/nn/tokenizer.ts)",
    );
  }
  return f;
}

/**
 * A starting policy from a Hugging Face folder (`policy_path`) in place of the SFT stage. It
 * must use Proxima's byte tokenizer; its held-out NLL is measured on the default corpus's
 * held-out reviews, so it is comparable with a trained SFT stage's.
 */
export async function loadSentimentPolicy(
  dir: string,
  opts: { session?: SessionOptions } = {},
): Promise<SftStage> {
  const f = await loadInputFolder("policy_path", dir, (d) => loadHfFolder(d));
  const heldOut = makeSentimentCorpus({ seed: 1 + 1_000_003, size: 256 });
  const { meanNll } = await evaluateSft({ cfg: f.cfg, params: f.params }, encodePairs(heldOut), {
    session: opts.session,
  });
  return {
    dir,
    hash: await folderHash(dir),
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
  const f = await loadInputFolder("reward_model_path", dir, (d) => loadRewardModel(d));
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
    hash: await folderHash(dir),
    cfg: f.cfg,
    params: f.params,
    heldOut,
    normalization: meta.normalization ?? { mean: 0, std: 1 },
    cached: true,
  };
}

/** Prompts from a text file (`prompts_path`): one per line, blank lines skipped. */
export async function readSentimentPrompts(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw inputError(
        "prompts_path",
        path,
        "no such file",
        "check the path, or set it to null for the built-in openings",
      );
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw inputError(
        "prompts_path",
        path,
        "is a folder",
        "point at a text file with one prompt per line",
      );
    }
    throw inputError(
      "prompts_path",
      path,
      `cannot read: ${(e as Error).message}`,
      "check the permissions and that the file is UTF-8 text",
    );
  }
  const prompts = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (prompts.length === 0) {
    throw inputError(
      "prompts_path",
      path,
      "has no prompts (every line is blank)",
      "write one prompt per line",
    );
  }
  return prompts;
}

/** Every prompt plus `max_new_tokens` must fit the policy's context. */
function checkPromptLengths(prompts: readonly string[], c: SentimentRunConfig, nPositions: number) {
  prompts.forEach((p, i) => {
    const n = byteEncode(p).length;
    if (n < 1 || n + c.max_new_tokens > nPositions) {
      throw inputError(
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

// ---- rewards and the PPO task -------------------------------------------------------

/** A reward model as a batched reward component's function (prompt ++ response, one call). */
export function rewardModelReward(
  rm: { cfg: GptConfig; params: Record<string, FloatArray> },
  session?: SessionOptions,
): BatchRewardFn {
  return async (samples) =>
    await scoreSequences(rm, samples.map((s) => [...s.prompt, ...s.response]), { session });
}

/**
 * Built-in reward functions by name: `gold` (the hidden gold score; for ablations and
 * monitoring), `length` (response tokens / max_new_tokens, a length bonus or — with a negative
 * weight — penalty), `eos` (1 when the response ended with EOS, 0 when it was cut).
 * `rm` (the reward model) needs the model, so it is built by {@link sentimentRewards}.
 */
export function builtinSentimentRewards(maxNewTokens: number): Record<string, RewardFn> {
  return {
    gold: (s) => goldSentiment(s.text),
    length: (s) => s.response.length / maxNewTokens,
    eos: (s) => (s.ended ? 1 : 0),
  };
}

/** A user reward: a per-sample function, or `{ fn }` / `{ batch }`. */
export type UserReward = RewardFn | { fn: RewardFn } | { batch: BatchRewardFn };

/**
 * The reward components of a config's `rewards` list, resolved against the built-ins and
 * `userRewards`; `rm` and `gold` are added with weight 0 when absent, so both are always
 * logged. Throws (before anything runs) on an unknown name, listing the known ones.
 */
export function sentimentRewards(
  refs: readonly { name: string; weight: number }[],
  rm: { cfg: GptConfig; params: Record<string, FloatArray> },
  opts: {
    maxNewTokens: number;
    userRewards?: Record<string, UserReward>;
    session?: SessionOptions;
  },
): RewardComponent[] {
  const builtins = builtinSentimentRewards(opts.maxNewTokens);
  const resolve = (name: string, weight: number): RewardComponent => {
    if (name === "rm") return { name, weight, batch: rewardModelReward(rm, opts.session) };
    const u = opts.userRewards?.[name];
    if (u) return typeof u === "function" ? { name, weight, fn: u } : { name, weight, ...u };
    if (builtins[name]) return { name, weight, fn: builtins[name] };
    throw new Error(
      `task "${SENTIMENT_TASK}": unknown reward "${name}" (known: ${
        ["rm", ...Object.keys(builtins), ...Object.keys(opts.userRewards ?? {})].join(", ")
      })`,
    );
  };
  const out = refs.map((r) => resolve(r.name, r.weight));
  for (const name of ["rm", "gold"]) {
    if (!refs.some((r) => r.name === name)) out.push(resolve(name, 0));
  }
  return out;
}

/** The prompts: the openings in turn, from the problem's cursor. */
function sentimentPrompts(
  n: number,
  index: number,
  openings: readonly string[] = SENTIMENT_OPENINGS,
): number[][] {
  return Array.from(
    { length: n },
    (_, k) => byteEncode(openings[(index + k) % openings.length]),
  );
}

/**
 * The `sentiment` LmTask: openings in turn as prompts, reward = Σ weight · component; metrics
 * `rm_score`, `gold_score` and `reward/<name>` per component.
 */
export function sentimentTask(
  rewards: readonly RewardComponent[],
  prompts: readonly string[] = SENTIMENT_OPENINGS,
): LmTask {
  return rewardLmTask({
    name: SENTIMENT_TASK,
    prompts: (n, index) => sentimentPrompts(n, index, prompts),
    rewards,
    decode: decodeText,
    eosTokenId: BYTE_EOS_ID,
    metrics: (v) => {
      const mean = (a?: Float64Array) =>
        a ? a.reduce((s, x) => s + x, 0) / Math.max(1, a.length) : NaN;
      return { rm_score: mean(v.parts.rm), gold_score: mean(v.parts.gold) };
    },
  });
}

/** What {@link evaluateSentimentPolicy} reports. */
export interface SentimentEval {
  /** Mean reward-model score of the samples. */
  rm_score: number;
  /** Mean gold score of the samples. */
  gold_score: number;
  /** Mean KL(π‖π_ref) per response (Σ_t log π − log π_ref over its tokens, k1). */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Share of responses that ended with EOS. */
  eos_rate: number;
  /** The first few samples, decoded. */
  examples: { prompt: string; response: string; rm: number; gold: number }[];
}

/**
 * Sample `samples` responses (openings in turn, plain sampling from `new Rng(seed)`) from the
 * problem's current policy and report RM score, gold score and KL to the reference — the same
 * prompts and seed before and after PPO.
 */
export async function evaluateSentimentPolicy(
  problem: LmProblem,
  rm: { cfg: GptConfig; params: Record<string, FloatArray> },
  opts: {
    samples: number;
    seed: number;
    maxNewTokens: number;
    session?: SessionOptions;
    /** Prompt texts used in turn (default {@link SENTIMENT_OPENINGS}). */
    prompts?: readonly string[];
  },
): Promise<SentimentEval> {
  const prompts = sentimentPrompts(opts.samples, 0, opts.prompts);
  const policy = problem.policyParams();
  const gen = await generate({ cfg: problem.model, params: policy }, prompts, {
    maxNewTokens: opts.maxNewTokens,
    eosTokenId: BYTE_EOS_ID,
    padTokenId: BYTE_EOS_ID,
    rng: new Rng(opts.seed),
    session: opts.session,
  });
  const ref = await problem.rescore(problem.reference, gen);
  let kl = 0, len = 0;
  for (let i = 0; i < gen.rows * gen.cols; i++) {
    if (gen.mask[i]) kl += gen.logp[i] - ref.logp[i], len++;
  }
  const rmScores = await scoreSequences(
    rm,
    gen.responses.map((r, i) => [...prompts[i], ...r]),
    { session: opts.session },
  );
  const texts = gen.responses.map(decodeText);
  const gold = texts.map(goldSentiment);
  const n = gen.rows;
  return {
    rm_score: rmScores.reduce((a, b) => a + b, 0) / n,
    gold_score: gold.reduce((a, b) => a + b, 0) / n,
    kl: kl / n,
    response_length: len / n,
    eos_rate: gen.ended.reduce((a, b) => a + b, 0) / n,
    examples: texts.slice(0, 8).map((t, i) => ({
      prompt: decodeText(prompts[i]),
      response: t,
      rm: rmScores[i],
      gold: gold[i],
    })),
  };
}

/** Options of {@link createSentimentProblem}. */
export interface SentimentProblemOptions {
  /** Reward components (default: {@link sentimentRewards} of the config's `rewards`). */
  rewards?: RewardComponent[];
  /** User reward functions the config's `rewards` may name. */
  userRewards?: Record<string, UserReward>;
  session?: SessionOptions;
  /** Prompt texts used in turn (default {@link SENTIMENT_OPENINGS}). */
  prompts?: readonly string[];
}

/** The PPO problem of a trial: the SFT policy (+ value head), its frozen copy, the rewards. */
export async function createSentimentProblem(
  c: SentimentRunConfig,
  sft: SftStage,
  rm: RewardModelStage,
  opts: SentimentProblemOptions = {},
): Promise<LmProblem> {
  const rewards = opts.rewards ?? sentimentRewards(c.rewards, rm, {
    maxNewTokens: c.max_new_tokens,
    userRewards: opts.userRewards,
    session: opts.session,
  });
  return await createLmProblem({
    model: sft.cfg,
    task: sentimentTask(rewards, opts.prompts),
    cfg: c.ppo,
    seed: c.seed,
    batch: c.batch,
    maxNewTokens: c.max_new_tokens,
    eosTokenId: BYTE_EOS_ID,
    padTokenId: BYTE_EOS_ID,
    init: sft.params,
    valueModel: c.value_model,
    lora: c.lora,
    device: opts.session?.device,
    threads: opts.session?.threads,
  });
}

// ---- a whole trial -----------------------------------------------------------------

/** Options of {@link runSentimentTrial} (none of them changes the results). */
export interface SentimentTrialOptions extends SentimentStageOptions {
  /** Continue from the newest checkpoint in outDir (a finished trial is only re-evaluated). */
  resume?: boolean;
  /** After each PPO update, with its metrics row. */
  onUpdate?: (row: MetricsRow, update: number) => void;
  /** Once before the first PPO update, with the update it starts from. */
  onStart?: (startUpdate: number) => void;
  /** User reward functions the config's `rewards` may name (besides rm, gold, length, eos). */
  rewards?: Record<string, UserReward>;
  /** Called once the PPO problem exists, before any update (tests, notebooks). */
  onProblem?: (problem: LmProblem, stages: { sft: SftStage; rm: RewardModelStage }) => void;
}

/** What {@link runSentimentTrial} returns (also written to `<outDir>/eval.json`, minus `last`). */
export interface SentimentTrialResult {
  task: typeof SENTIMENT_TASK;
  sft: { dir: string; hash: string; held_out_nll: number; cached: boolean };
  reward_model: {
    dir: string;
    hash: string;
    held_out_accuracy: number;
    held_out_loss: number;
    cached: boolean;
  };
  /** The SFT policy (= the reference), before PPO. */
  before: SentimentEval;
  /** The policy after PPO. */
  after: SentimentEval;
  /** The last PPO metrics row. */
  last: MetricsRow;
}

/**
 * One `sentiment` trial: SFT and reward-model stages (cached in `cacheDir`), PPO into
 * `outDir` (`metrics.jsonl`, `checkpoints/`, `final.safetensors`, via trainPpo), and the
 * before/after evaluation (`eval.json`). A reward function that throws or returns a non-finite
 * value stops the trial with a {@link RewardError} naming the task and the sample, and the
 * trial's outputs in `outDir` are removed (nothing partial is left).
 *
 * @example
 * ```ts
 * const r = await runSentimentTrial({ seed: 2, ppo: { kl: { beta: 0.1 } } }, "results/s/2", {
 *   resume: true,
 *   onUpdate: (row) => console.log(row.update, row.rm_score, row.gold_score, row.kl_ref),
 * });
 * ```
 */
export async function runSentimentTrial(
  config: SentimentRunInput | SentimentRunConfig,
  outDir: string,
  opts: SentimentTrialOptions = {},
): Promise<SentimentTrialResult> {
  const c = parseSentimentConfig(config);
  // Fail on unknown reward names before any stage runs.
  const dummyRm = { cfg: sentimentGptConfig(c.model), params: {} };
  sentimentRewards(c.rewards, dummyRm, {
    maxNewTokens: c.max_new_tokens,
    userRewards: opts.rewards,
  });
  // Inputs given by path are read (and checked) before anything trains.
  const prompts = c.prompts_path === null
    ? SENTIMENT_OPENINGS
    : await readSentimentPrompts(c.prompts_path);
  const sft = c.policy_path === null
    ? await trainSentimentSft(c, opts)
    : await loadSentimentPolicy(c.policy_path, { session: opts.session });
  const rm = c.reward_model_path === null
    ? await trainSentimentRewardModel(c, opts)
    : await loadSentimentRewardModel(c.reward_model_path, c, { session: opts.session });
  checkPromptLengths(prompts, c, sft.cfg.nPositions);
  const problem = await createSentimentProblem(c, sft, rm, {
    userRewards: opts.rewards,
    session: opts.session,
    prompts,
  });
  const evalOpts = {
    samples: c.eval.samples,
    seed: c.eval.seed,
    maxNewTokens: c.max_new_tokens,
    session: opts.session,
    prompts,
  };
  opts.onProblem?.(problem, { sft, rm });
  const { before, after, last } = await runLmPpo(
    problem,
    c,
    outDir,
    opts,
    () => evaluateSentimentPolicy(problem, rm, evalOpts),
  );
  const result: SentimentTrialResult = {
    task: SENTIMENT_TASK,
    sft: { dir: sft.dir, hash: sft.hash, held_out_nll: sft.heldOutNll, cached: sft.cached },
    reward_model: {
      dir: rm.dir,
      hash: rm.hash,
      held_out_accuracy: rm.heldOut.accuracy,
      held_out_loss: rm.heldOut.loss,
      cached: rm.cached,
    },
    before,
    after,
    last,
  };
  // eval.json is part of the result bundle, so it must not depend on where the stage cache
  // lives or on whether a stage was cached (a concurrent trial may have trained it): the
  // stages' content hashes identify them.
  const { last: _, ...rest } = result;
  const saved = {
    ...rest,
    sft: { hash: result.sft.hash, held_out_nll: result.sft.held_out_nll },
    reward_model: {
      hash: result.reward_model.hash,
      held_out_accuracy: result.reward_model.held_out_accuracy,
      held_out_loss: result.reward_model.held_out_loss,
    },
  };
  await writeEvalJson(outDir, saved);
  return result;
}

export type { RewardSample };

/**
 * Files that hold a finished trial's final state (trainPpo's `final.safetensors`, then
 * `eval.json`): when both exist the trial is done.
 */
export const SENTIMENT_FINAL_FILES: readonly string[] = ["final.safetensors", "eval.json"];

/** Columns this task adds to trainPpo's metrics.jsonl rows (besides `reward/<name>`). */
export const SENTIMENT_METRIC_COLUMNS: readonly string[] = [
  "score_mean",
  "rm_score",
  "gold_score",
  "response_length",
  "eos_rate",
  "logp_gap",
  "reward/total",
];

/**
 * Summary of a finished trial folder (deterministic, no times): named metrics from
 * `eval.json` (looked up in outDir, then outDir/checkpoints), the last metrics row and the
 * column means over the run.
 * Named metrics: `rm_score`, `gold_score`, `kl`, `response_length` (after PPO),
 * `rm_score_before`, `gold_score_before`, `rm_accuracy`.
 */
export async function summarizeSentimentTrial(outDir: string): Promise<{
  metrics: Record<string, number | null>;
  last?: MetricsRow;
  mean: Record<string, number | null>;
}> {
  const { evaluation: e, last, mean } = await readLmTrial<Omit<SentimentTrialResult, "last">>(
    outDir,
  );
  return {
    metrics: {
      rm_score: e.after.rm_score,
      gold_score: e.after.gold_score,
      kl: e.after.kl,
      response_length: e.after.response_length,
      rm_score_before: e.before.rm_score,
      gold_score_before: e.before.gold_score,
      rm_accuracy: e.reward_model.held_out_accuracy,
    },
    ...(last ? { last } : {}),
    mean,
  };
}

/** What the experiment runner passes a trial kind's `run` (lib/experiment's TrialRunContext). */
export interface SentimentRunContext {
  resume: boolean;
  threads: number;
  device: "cpu" | "cuda";
  onProgress(
    p: { done: number; total: number; step?: number; info?: Record<string, number | null> },
  ): void;
  stage(name: string, config: unknown): Promise<{ dir: string; hash: string; cached: boolean }>;
}

/**
 * The `sentiment` task as a trial kind, in the shape of lib/experiment's `TrialKind` (this
 * layer does not import it): `registerTrialKind(SENTIMENT_TRIAL_KIND)` makes
 * `task: "sentiment"` available to experiment files, with the SFT and reward-model stages in
 * the runner's stage cache.
 */
export const SENTIMENT_TRIAL_KIND = {
  name: SENTIMENT_TASK,
  aliases: [] as string[],
  description: "RLHF on synthetic reviews: SFT -> reward model -> PPO; RM score vs hidden gold",
  schema: SentimentRunSchema,
  work: (c: SentimentRunConfig) => ({
    total: c.updates,
    unit: "updates",
    steps: c.batch, // samples per update
  }),
  inputs: (c: SentimentRunConfig) =>
    (["policy_path", "reward_model_path", "prompts_path"] as const)
      .filter((k) => c[k] !== null)
      .map((k) => ({ key: k, path: c[k] as string })),
  finalFiles: [...SENTIMENT_FINAL_FILES],
  async run(config: SentimentRunConfig, outDir: string, ctx: SentimentRunContext): Promise<void> {
    const per = config.batch;
    await runSentimentTrial(config, outDir, {
      resume: ctx.resume,
      stage: ctx.stage,
      session: { threads: ctx.threads, device: ctx.device },
      onStart: (u) => ctx.onProgress({ done: u, total: config.updates, step: u * per }),
      onUpdate: (row, u) =>
        ctx.onProgress({
          done: u,
          total: config.updates,
          step: u * per,
          info: { rm: row.rm_score, gold: row.gold_score, kl: row.kl_ref },
        }),
    });
  },
  summarize: (outDir: string) => summarizeSentimentTrial(outDir),
  metricNames: {
    named: {
      rm_score: "mean reward-model score of the evaluation samples after PPO",
      gold_score: "mean hidden gold score of the evaluation samples after PPO",
      kl: "KL(π‖π_ref) per response of the evaluation samples after PPO (nats)",
      response_length: "mean response length after PPO (tokens)",
      rm_score_before: "mean reward-model score of the SFT policy",
      gold_score_before: "mean gold score of the SFT policy",
      rm_accuracy: "held-out preference accuracy of the reward model",
    },
    columns: [
      ...PPO_METRIC_COLUMNS,
      ...SENTIMENT_METRIC_COLUMNS,
      "reward/rm",
      "reward/gold",
    ],
  },
  stages: SENTIMENT_STAGES,
};
