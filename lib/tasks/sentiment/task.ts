/**
 * `sentiment`: the project's embedded RLHF task. A synthetic preference task with a HIDDEN
 * GOLD reward, small enough that the whole pipeline — SFT -> reward model -> PPO — runs on two
 * CPU cores in about a minute, and built so that reward over-optimisation is measurable: the
 * policy optimises a learned reward model, and the evaluation reports the gold score next to it.
 *
 * The world (world.ts): prompts are review openings ("The movie was", ...
 * {@link SENTIMENT_OPENINGS}); responses are short reviews from five templates over a fixed
 * lexicon (8 positive, 8 negative, 8 neutral adjectives, 6 nouns, 4 adverbs), e.g.
 * `" dull but lovely."`, `" rather odd."`, `" boring, clever music."`. Adjectives are drawn
 * uniformly from all 24, so the corpus is neutral on average (gold mean ≈ 0).
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
 * Stages (stages.ts): `sentiment-sft` (a tiny byte-level GPT on the generated corpus) and
 * `sentiment-rm` (its trunk + a reward head, Bradley–Terry on gold-labelled pairs), then PPO
 * (lib/ppo/lm_problem.ts) with reward = Σ weight · component over named reward components
 * (rewards.ts; default: the reward model alone); the reward model and the gold score are
 * always computed and logged per update (`rm_score`, `gold_score`, `reward/<name>`), next to
 * the trainer's `kl_ref` and `response_length`.
 *
 * {@link SENTIMENT_KIND} (built by `defineLmTask`) runs the three stages from one validated
 * config ({@link SentimentRunSchema}) and evaluates the policy before and after PPO on the same
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
import type { SessionOptions } from "../../onnx/session.ts";
import { contextLength, type DecoderConfig, loraDefaults, trunkShapes } from "../../nn/decoder.ts";
import type { LoraConfig } from "../../nn/lora.ts";
import type { FloatArray } from "../../nn/sample.ts";
import { BYTE_EOS_ID } from "../../nn/tokenizer.ts";
import { scoreSequences } from "../../ppo/reward_model.ts";
import {
  byteDecoderConfig,
  decodeByteText,
  sampleForEval,
  saveBytePolicy,
  type SftStage,
} from "../byte_lm.ts";
import { createLmProblem, type LmProblem } from "../../ppo/lm_problem.ts";
import {
  createOfflineProblem,
  type LmPolicyView,
  type OfflineLmProblem,
  type OfflineMethod,
} from "../../ppo/offline/problem.ts";
import { runStagesInChildProcess } from "../../trial/stage_process.ts";
import { defineLmTask, type LmTrialResult } from "../lm_task.ts";
import type { LmMemoryInput } from "../memory.ts";
import { isCriticFree } from "../../ppo/config.ts";
import type { RewardComponent, UserReward } from "../rewards.ts";
import { loadUserRewards, rewardInputs } from "../reward_modules.ts";
import {
  checkSentimentConfig,
  SENTIMENT_OVERRIDES,
  type SentimentRunConfig,
  type SentimentRunInput,
  SentimentRunSchema,
} from "./schema.ts";
import {
  checkPromptLengths,
  loadSentimentPolicy,
  loadSentimentRewardModel,
  readSentimentPrompts,
  type RewardModelStage,
  SENTIMENT_STAGE_VERSION,
  SENTIMENT_STAGES,
  sentimentPreferencePairs,
  sentimentStagesFor,
  trainSentimentRewardModel,
  trainSentimentSft,
} from "./stages.ts";
import { sentimentPrompts, sentimentRewards, sentimentTask } from "./rewards.ts";
import { encodePreference, goldSentiment, SENTIMENT_OPENINGS, SENTIMENT_TASK } from "./world.ts";

/** What {@link evaluateSentimentPolicy} reports. */
export interface SentimentEval {
  /** Mean reward-model score of the samples. */
  rm_score: number;
  /** Mean gold score of the samples. */
  gold_score: number;
  /** Mean KL(π‖π_ref) per response (exact over the vocabulary, summed over its tokens). */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Share of responses that ended with EOS. */
  eos_rate: number;
  /** The first few samples, decoded. */
  examples: { prompt: string; response: string; rm: number; gold: number }[];
  /**
   * DPO trials: held-out preference accuracy (the reward model's held-out pairs) of the
   * policy's implicit reward β·log π/π_ref (ties ½) and of its log-likelihood.
   */
  preference?: { implicit: number; likelihood: number };
}

/**
 * Sample `samples` responses (openings in turn, plain sampling from `new Rng(seed)`) from the
 * problem's current policy and report RM score, gold score and KL to the reference — the same
 * prompts and seed before and after PPO.
 */
export async function evaluateSentimentPolicy(
  problem: LmPolicyView,
  rm: { cfg: DecoderConfig; params: Record<string, FloatArray> },
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
  const { gen, texts, kl, responseLength, eosRate } = await sampleForEval(problem, prompts, opts);
  const rmScores = await scoreSequences(
    rm,
    gen.responses.map((r, i) => [...prompts[i], ...r]),
    { session: opts.session },
  );
  const gold = texts.map(goldSentiment);
  const n = gen.rows;
  return {
    rm_score: rmScores.reduce((a, b) => a + b, 0) / n,
    gold_score: gold.reduce((a, b) => a + b, 0) / n,
    kl,
    response_length: responseLength,
    eos_rate: eosRate,
    examples: texts.slice(0, 8).map((t, i) => ({
      prompt: decodeByteText(prompts[i]),
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

/**
 * The LoRA settings of a trial for the policy's family ({@link loraDefaults}: GPT-2's Conv1D
 * layout and targets, or the Llama family's Linear layout and q/k/v/o/gate/up/down), with the
 * config's `targets` when it names any.
 */
export function sentimentLora(
  l: SentimentRunConfig["lora"],
  cfg: DecoderConfig,
): LoraConfig {
  return {
    r: l.r,
    alpha: l.alpha,
    ...loraDefaults(cfg),
    ...(l.targets ? { targets: l.targets } : {}),
  };
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
    samplesPerPrompt: c.samples_per_prompt,
    maxNewTokens: c.max_new_tokens,
    eosTokenId: BYTE_EOS_ID,
    padTokenId: BYTE_EOS_ID,
    init: sft.params,
    valueModel: c.value_model,
    lora: sentimentLora(c.lora, sft.cfg),
    device: opts.session?.device,
    threads: opts.session?.threads,
    sessions: opts.session?.sessions,
  });
}

/**
 * The offline problem of a trial (`algorithm: "dpo"` or `"kto"`): the SFT policy and its frozen
 * copy, trained on the reward model's training pairs in order (DPO: `batch / 2` pairs per
 * update; KTO: the same pairs unpaired, chosen desirable and rejected undesirable, `batch`
 * examples per update: the same responses per update), its held-out pairs for the preference
 * accuracy.
 */
export async function createSentimentDpoProblem(
  c: SentimentRunConfig,
  sft: SftStage,
  opts: { session?: SessionOptions } = {},
): Promise<OfflineLmProblem> {
  const { train, heldOut } = await sentimentPreferencePairs(
    c.reward_model,
    sft,
    opts.session ?? {},
  );
  const pairs = train.map(encodePreference);
  const method: OfflineMethod = c.algorithm === "kto"
    ? {
      name: "kto",
      cfg: c.kto,
      examples: pairs.flatMap((p) => [
        { prompt: p.prompt, completion: p.chosen, label: true },
        { prompt: p.prompt, completion: p.rejected, label: false },
      ]),
      perUpdate: c.batch,
      heldOut: heldOut.map(encodePreference),
    }
    : {
      name: "dpo",
      cfg: c.dpo,
      pairs,
      pairsPerUpdate: c.batch / 2,
      heldOut: heldOut.map(encodePreference),
    };
  return await createOfflineProblem({
    model: sft.cfg,
    init: sft.params,
    method,
    seed: c.seed,
    device: opts.session?.device,
    threads: opts.session?.threads,
    sessions: opts.session?.sessions,
  });
}

const paramCount = (params: Record<string, ArrayLike<number>>) =>
  Object.values(params).reduce((a, v) => a + v.length, 0);

/**
 * The peak-memory estimate's input of a trial (lib/tasks/memory.ts): the model of the config's
 * model section, `batch` responses in `ppo.minibatches` minibatches of at most `n_positions`
 * tokens, LoRA, and a separate value trunk (a copy of the policy's).
 */
export function sentimentMemory(c: SentimentRunConfig): LmMemoryInput {
  const model = byteDecoderConfig(c.model);
  const separate = c.algorithm === "ppo" && c.value_model === "separate";
  return {
    model,
    batch: c.batch,
    minibatches: c.ppo.minibatches,
    microBatches: c.ppo.micro_batches,
    seqLen: c.model.n_positions,
    lora: c.lora.r > 0 ? sentimentLora(c.lora, model) : undefined,
    criticFree: c.algorithm === "ppo" && isCriticFree(c.ppo),
    exactKl: c.algorithm === "ppo" && c.ppo.kl.estimator === "full",
    valueParams: separate
      ? Object.values(trunkShapes(model)).reduce(
        (a, { shape }) => a + shape.reduce((x, y) => x * y, 1),
        0,
      )
      : 0,
  };
}

/** What a `sentiment` trial records besides its evaluations (eval.json). */
export interface SentimentRecord {
  sft: { hash: string; held_out_nll: number };
  reward_model: { hash: string; held_out_accuracy: number; held_out_loss: number };
}

/** A trial's PPO problem with the stages and prompts behind it. */
export interface SentimentSetup {
  problem: LmProblem | OfflineLmProblem;
  sft: SftStage;
  rm: RewardModelStage;
  prompts: readonly string[];
  record: SentimentRecord;
}

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
 * The `sentiment` task: its trial function (`SENTIMENT_KIND.trial`) and trial kind. Named
 * metrics: `rm_score`, `gold_score`, `kl`, `response_length` (after PPO), `rm_score_before`,
 * `gold_score_before`, `rm_accuracy`.
 */
export const SENTIMENT_KIND = defineLmTask<
  SentimentRunConfig,
  SentimentSetup,
  SentimentEval,
  SentimentRunInput
>({
  name: SENTIMENT_TASK,
  description: "RLHF on synthetic reviews: SFT -> reward model -> PPO; RM score vs hidden gold",
  schema: SentimentRunSchema,
  overrides: SENTIMENT_OVERRIDES,
  check: checkSentimentConfig,
  inputs: (c) =>
    (["policy_path", "reward_model_path", "prompts_path"] as const).flatMap(
      (key): { key: string; path: string }[] => {
        const path = c[key];
        return path === null ? [] : [{ key, path }];
      },
    ).concat(rewardInputs(c.rewards)), // the user's reward modules: hashed into the trial id
  stages: SENTIMENT_STAGES,
  stagesFor: sentimentStagesFor,
  stageVersion: SENTIMENT_STAGE_VERSION,
  samples: (c) => c.batch,
  memory: (c) => sentimentMemory(c),
  memoryKeys: { batch: "batch", minibatches: "ppo.minibatches", seqLen: "model.n_positions" },
  async problem(c, ctx) {
    // A trial that measures its own memory builds missing stages in a child process.
    runStagesInChildProcess(c.measure_resources);
    // Fail on unknown reward names (and modules) before any stage runs.
    const user = {
      ...ctx.rewards,
      ...await loadUserRewards(SENTIMENT_TASK, c.rewards, ["rm", "gold", "length", "eos"]),
    };
    const dummyRm = { cfg: byteDecoderConfig(c.model), params: {} };
    sentimentRewards(c.rewards, dummyRm, { maxNewTokens: c.max_new_tokens, userRewards: user });
    // Inputs given by path are read (and checked) before anything trains.
    const prompts = c.prompts_path === null
      ? SENTIMENT_OPENINGS
      : await readSentimentPrompts(c.prompts_path);
    const sft = c.policy_path === null
      ? await trainSentimentSft(c, ctx)
      : await loadSentimentPolicy(c.policy_path, { session: ctx.session });
    const rm = c.reward_model_path === null
      ? await trainSentimentRewardModel(c, ctx)
      : await loadSentimentRewardModel(c.reward_model_path, c, { session: ctx.session });
    checkPromptLengths(prompts, c, contextLength(sft.cfg));
    let problem: LmProblem | OfflineLmProblem;
    if (c.algorithm !== "ppo") {
      // Offline: policy and reference only (the reward model scores the evaluations).
      problem = await createSentimentDpoProblem(c, sft, { session: ctx.session });
    } else {
      problem = await createSentimentProblem(c, sft, rm, {
        userRewards: user,
        session: ctx.session,
        prompts,
      });
      problem.models = { ...problem.models, reward_model: paramCount(rm.params) };
    }
    return {
      problem,
      sft,
      rm,
      prompts,
      record: {
        sft: { hash: sft.hash, held_out_nll: sft.heldOutNll },
        reward_model: {
          hash: rm.hash,
          held_out_accuracy: rm.heldOut.accuracy,
          held_out_loss: rm.heldOut.loss,
        },
      },
    };
  },
  async evaluate(setup, c, ctx) {
    const e = await evaluateSentimentPolicy(setup.problem, setup.rm, {
      samples: c.eval.samples,
      seed: c.eval.seed,
      maxNewTokens: c.max_new_tokens,
      session: ctx.session,
      prompts: setup.prompts,
    });
    const accuracy = "offline" in setup.problem ? setup.problem.preferenceAccuracy : undefined;
    return accuracy ? { ...e, preference: await accuracy() } : e;
  },
  // save_steps' checkpoint-N/: the policy with the byte tokenizer.
  savePretrained: (setup, _c, dir) => saveBytePolicy(dir, setup.problem),
  summary: (e) => ({
    rm_score: e.after.rm_score,
    gold_score: e.after.gold_score,
    kl: e.after.kl,
    response_length: e.after.response_length,
    rm_score_before: e.before.rm_score,
    gold_score_before: e.before.gold_score,
    rm_accuracy: e.reward_model.held_out_accuracy,
    ...(e.after.preference && e.before.preference
      ? {
        pref_accuracy: e.after.preference.implicit,
        pref_accuracy_before: e.before.preference.implicit,
        likelihood_accuracy: e.after.preference.likelihood,
        likelihood_accuracy_before: e.before.preference.likelihood,
      }
      : {}),
  }),
  progress: { rm: "rm_score", gold: "gold_score", kl: "kl_ref" },
  metrics: {
    named: {
      rm_score: "mean reward-model score of the evaluation samples after PPO",
      gold_score: "mean hidden gold score of the evaluation samples after PPO",
      kl: "KL(π‖π_ref) per response of the evaluation samples after PPO (nats)",
      response_length: "mean response length after PPO (tokens)",
      rm_score_before: "mean reward-model score of the SFT policy",
      gold_score_before: "mean gold score of the SFT policy",
      rm_accuracy: "held-out preference accuracy of the reward model",
      pref_accuracy: "DPO: held-out preference accuracy of the implicit reward β·log π/π_ref",
      pref_accuracy_before: "the same for the SFT policy (½: its implicit reward is 0)",
      likelihood_accuracy: "DPO: held-out share of pairs where log π(chosen) > log π(rejected)",
      likelihood_accuracy_before: "the same for the SFT policy",
    },
    columns: [
      ...SENTIMENT_METRIC_COLUMNS,
      "reward/rm",
      "reward/gold",
      "accuracy",
      "margin",
      "chosen_reward",
      "rejected_reward",
    ],
  },
});

/** What a trial returns (see `defineLmTask`). */
export type SentimentTrialResult = LmTrialResult<SentimentRecord, SentimentEval>;

/** The kind's parse, trial and summary functions (see `defineLmTask`) under the task's names. */
export const {
  parse: parseSentimentConfig,
  trial: runSentimentTrial,
  summarize: summarizeSentimentTrial,
} = SENTIMENT_KIND;
