/**
 * Every PPO knob in one zod schema, with its default, its allowed range and what it does.
 * Parsing fails before anything runs, with an error that names the key and the range.
 *
 * Defaults are CleanRL ppo.py's (Atari/classic-control defaults), so `parsePpoConfig({})`
 * is the configuration its CartPole benchmark uses.
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({ clip: 0.1, kl: { control: "adaptive", target: 0.01 } });
 * cfg.gamma; // 0.99
 * ```
 * @module
 */
import { z } from "zod";
import { UserError } from "../errors.ts";
import {
  ADVANTAGE_ESTIMATORS as ESTIMATOR_NAMES,
  type EstimatorFacts,
  ESTIMATORS,
  LOSS_TYPE_FACTS,
  LOSS_TYPE_NAMES,
} from "./estimators.ts";

const prob = (d: string) => z.number().min(0).max(1).describe(d);
const positive = (d: string) => z.number().positive().describe(d);
const nonneg = (d: string) => z.number().min(0).describe(d);

/**
 * The same schema field with another default, its range kept. A task's schema does not use it:
 * a task's different default is an override in its record (lib/trial/overrides.ts), and
 * tests/experiment/defaults_test.ts refuses any other second default of a config key.
 *
 * @example
 * ```ts
 * const MyPpo = PpoSchema.extend({ gamma: redefault(PpoSchema.shape.gamma, 1) });
 * ```
 */
export const redefault = <T extends z.ZodType>(s: z.ZodDefault<T>, v: z.output<T>) =>
  s.unwrap().default(v as never) as z.ZodDefault<T>;

/**
 * KL to the frozen reference policy (RLHF): how it is estimated, where it acts, and how β
 * moves. Tasks without a reference policy keep β = 0.
 */
export const KlSchema = z.object({
  estimator: z.enum(["k1", "k2", "k3", "full"]).default("k1").describe(
    "KL estimator per position: k1 = log p/q, k2 = ½(log p/q)², k3 = (q/p − 1) − log q/p " +
      "(Schulman's 'Approximating KL divergence'); full = exact Σ p log p/q over the action " +
      "distribution (language models: the vocabulary at every response position, from both " +
      "models' full log-softmax: rows × cols × vocab numbers each per rollout). For KL in the " +
      "LOSS use k2 (or full): on sampled actions the gradient of k1 vanishes in expectation, " +
      "so a k1 penalty barely holds the policy back",
  ),
  placement: z.enum(["reward", "loss"]).default("reward").describe(
    "reward: −β·KL(π‖ref) is added to each token's reward (Ziegler et al. 2019); " +
      "loss: β·KL is added to the loss",
  ),
  beta: nonneg("initial / fixed KL coefficient β").default(0),
  control: z.enum(["fixed", "adaptive", "schulman"]).default("fixed").describe(
    "fixed β; adaptive = Ziegler et al. 2019 proportional controller (target, horizon); " +
      "schulman = Schulman et al. 2017 §4 rule (β×2 if KL > 1.5·target, β/2 if < target/1.5)",
  ),
  target: positive("target KL for the adaptive controllers (nats)").default(6),
  horizon: positive("adaptive controller horizon (samples)").default(10000),
}).strict();

/**
 * The KL-penalty surrogate's penalty, β·KL(π_old‖π) in the loss (Schulman et al. 2017 §4;
 * used only when `loss = "kl-penalty"`). It is separate from `kl`, the KL to the reference
 * policy, so an RLHF run can have both: the reference KL in the reward and the penalty to
 * π_old in the surrogate. Defaults are the paper's adaptive setting (d_targ 0.01, β₀ = 1).
 */
export const PenaltySchema = z.object({
  estimator: z.enum(["k1", "k2", "k3", "full"]).default("full").describe(
    "KL(π_old‖π) estimator: full = exact Σ π_old log π_old/π over the action distribution " +
      "(the paper's); k1/k2/k3 on the sampled actions (LM tasks, which keep no full log-probs)",
  ),
  beta: nonneg("initial / fixed penalty coefficient β").default(1),
  control: z.enum(["fixed", "adaptive", "schulman"]).default("schulman").describe(
    "schulman = Schulman et al. 2017 §4 rule (β×2 if KL > 1.5·d_targ, β/2 if < d_targ/1.5); " +
      "adaptive = Ziegler et al.'s proportional controller; fixed β",
  ),
  target: positive("target KL(π_old‖π) per update, d_targ (nats)").default(0.01),
  horizon: positive("adaptive controller horizon (samples)").default(10000),
}).strict();

export const PpoSchema = z.object({
  loss: z.enum(["clip", "no-clip", "kl-penalty"]).default("clip").describe(
    "surrogate objective (Schulman et al. 2017 Table 1): clip = clipped ratio; no-clip = " +
      "plain ratio·A; kl-penalty = ratio·A − β·KL(π_old‖π) with β from `penalty`",
  ),
  clip: z.number().positive().max(10).default(0.2).describe(
    "clip ε: the policy ratio is clipped to [1−ε, 1+ε]",
  ),
  clip_value: z.number().positive().nullable().default(0.2).describe(
    "value clip ε_v: the new value may move at most ε_v from the old one in the clipped " +
      "value loss; null = plain squared error",
  ),
  gamma: prob("discount γ").default(0.99),
  lambda: prob("GAE λ").default(0.95),
  lr: positive("learning rate (AdamW)").default(2.5e-4),
  lr_anneal: z.boolean().default(true).describe("anneal lr linearly to 0 over the run"),
  adam_eps: positive("Adam ε").default(1e-5),
  weight_decay: nonneg("AdamW weight decay").default(0),
  epochs: z.number().int().min(1).max(1000).default(4).describe("PPO epochs per update"),
  minibatches: z.number().int().min(1).default(4).describe("minibatches per epoch"),
  micro_batches: z.number().int().min(1).default(1).describe(
    "micro-batches per minibatch (gradient accumulation, TRL's gradient_accumulation_steps): " +
      "each runs the forward + backward alone, their gradients are summed into one clip and " +
      "one AdamW step; less memory, the same update; must divide every minibatch's rows",
  ),
  vf_coef: nonneg("value-loss coefficient").default(0.5),
  ent_coef: nonneg("entropy-bonus coefficient").default(0.01),
  max_grad_norm: positive("global gradient-norm clip").nullable().default(0.5),
  whiten_advantages: z.boolean().default(true).describe("normalise advantages per minibatch"),
  whiten_rewards: z.boolean().default(false).describe("normalise rewards per rollout"),
  target_kl: positive("stop the epochs early when approx KL (k3) exceeds this").nullable()
    .default(null),
  kl: KlSchema.default(KlSchema.parse({})),
  penalty: PenaltySchema.default(PenaltySchema.parse({})),
}).strict();

/**
 * How advantages are estimated, for language-model tasks (one response per row, groups of
 * `samples_per_prompt` consecutive responses to the same prompt). The update around it is the
 * same for all: the clipped surrogate, epochs of minibatches, the KL to the reference where
 * `ppo.kl` puts it. See lib/ppo/advantages.ts for the formulas.
 */
export const ADVANTAGE_ESTIMATORS = ESTIMATOR_NAMES as [
  AdvantageEstimator,
  ...AdvantageEstimator[],
];
export type AdvantageEstimator = keyof typeof ESTIMATORS;

/** `ppo.advantage` (LM tasks): the advantage estimator; every one but gae is critic-free. */
export const AdvantageSchema = z.enum(ADVANTAGE_ESTIMATORS).default("gae").describe(
  "advantage estimator: gae = PPO with a value model (GAE(γ, λ)); critic-free (no value " +
    "model at all): grpo = (r − group mean) / group std, loss averaged per response (Shao et " +
    "al. 2024); dr_grpo = r − group mean, loss summed over tokens / max_new_tokens (Liu et al. " +
    "2025); rloo = r − mean of the other responses to the prompt (Ahmadian et al. 2024); " +
    "reinforce_pp = reward-to-go of per-token rewards (KL in the reward), normalised over the " +
    "batch (Hu 2025). Groups are samples_per_prompt responses to one prompt; grpo, dr_grpo " +
    "and rloo need ≥ 2. Critic-free estimators normalise as their papers do, so they need " +
    "whiten_advantages false",
);

/**
 * How a policy-gradient loss turns per-token ratios and advantages into one number: the loss
 * types of TRL 1.13's GRPOTrainer (`GRPOConfig.loss_type`), plus `token` (PPO's masked mean
 * over the minibatch's real tokens). With one process and no gradient accumulation, TRL's
 * `bnpo`, `dapo`, `cispo` and `vespo` normalise by the same token count as `token`.
 */
export const LOSS_TYPES = LOSS_TYPE_NAMES as [LossType, ...LossType[]];
export type LossType = keyof typeof LOSS_TYPE_FACTS;

/** `ppo.sapo`: SAPO's soft-gate temperatures (TRL's sapo_temperature_pos / _neg). */
export const SapoSchema = z.object({
  temperature_pos: positive("τ for positive advantages").default(1),
  temperature_neg: positive("τ for negative advantages").default(1.05),
}).strict();

/** `ppo.vespo`: VESPO's gamma weighting φ(w) = e^λ·w^k·e^{−λw} (TRL's vespo_* keys). */
export const VespoSchema = z.object({
  k_pos: nonneg("k for advantages ≥ 0").default(2),
  lambda_pos: nonneg("λ for advantages ≥ 0").default(3),
  k_neg: nonneg("k for advantages < 0").default(3),
  lambda_neg: nonneg("λ for advantages < 0").default(2),
}).strict();

/**
 * `ppo.entropy`: how the entropy coefficient (`ppo.ent_coef`) moves. `adaptive` is Skywork-OR1's
 * adaptive entropy control (He et al. 2025, "Skywork Open Reasoner 1 Technical Report",
 * arXiv:2505.22312, "Adaptive Entropy Control"): after each update with mean entropy e, the coefficient c moves by
 * Δ toward holding e at the target (c ← max(0, c + Δ) when e < target, max(0, c − Δ) when e >
 * target), and the entropy bonus acts only while e ≤ target (the next update's loss uses c when
 * e ≤ target, 0 otherwise). `ppo.ent_coef` is c's start.
 */
export const EntropyControlSchema = z.object({
  control: z.enum(["fixed", "adaptive"]).default("fixed").describe(
    "fixed = ppo.ent_coef throughout; adaptive = Skywork-OR1's adaptive entropy control " +
      "(He et al. 2025): the coefficient rises by delta while the entropy is below " +
      "target, falls by delta above it (never below 0), and acts only at or below the target",
  ),
  target: positive("target entropy per token (nats; Skywork-OR1's tgt-ent)").default(0.2),
  delta: positive("the coefficient's step per update (Skywork-OR1's Δ)").default(0.005),
}).strict();

/**
 * The policy-gradient loss keys of language-model tasks (TRL 1.13 GRPOConfig's names and
 * meanings), spread into an LM task's PPO schema. Their defaults leave PPO's loss as it was.
 */
export const LmLossShape = {
  loss_type: z.enum(LOSS_TYPES).nullable().default(null).describe(
    "loss aggregation / objective (TRL GRPOConfig.loss_type): token = masked mean over the " +
      "minibatch's tokens (PPO); grpo = mean over responses of each response's token mean; " +
      "dr_grpo = token sum / (responses × max_new_tokens); dapo, bnpo = token mean; cispo = " +
      "−sg(min(ratio, epsilon_high))·A·log π; sapo = soft sigmoid gate, response-mean; luspo = " +
      "token sum per response, mean over responses; vespo = −sg(φ(w_seq))·A·log π; null = the " +
      "advantage estimator's own (grpo: grpo, dr_grpo: dr_grpo, others: token)",
  ),
  importance_sampling_level: z.enum(["token", "sequence"]).default("token").describe(
    "token = one ratio per token (PPO, GRPO); sequence = exp(mean over the response's tokens " +
      "of log π/π_old) for every token of it (GSPO, Zheng et al. 2025)",
  ),
  epsilon_high: z.number().positive().nullable().default(null).describe(
    "upper clip: ratios are clipped to [1 − clip, 1 + epsilon_high] (DAPO's clip-higher); " +
      "cispo caps its ratio weight at epsilon_high itself; null = clip",
  ),
  delta: z.number().gt(1).nullable().default(null).describe(
    "two-sided clipping (INTELLECT-2): the unclipped ratio is also capped at delta; null = off",
  ),
  scale_rewards: z.enum(["group", "batch", "none"]).nullable().default(null).describe(
    "GRPO's reward scaling (TRL): group = divide by the group's std, batch = by the batch's, " +
      "none = not at all (Dr. GRPO); null = the estimator's own (grpo: group, dr_grpo: none)",
  ),
  reward_aggregation: z.enum(["sum_then_normalize", "normalize_then_sum"]).default(
    "sum_then_normalize",
  ).describe(
    "several reward components (TRL's multi_objective_aggregation): sum_then_normalize = " +
      "the weighted sum is the reward; normalize_then_sum = each component normalised in its " +
      "group, then summed and normalised over the batch (GDPO); grpo / dr_grpo only",
  ),
  top_entropy_quantile: z.number().gt(0).max(1).default(1).describe(
    "train only on the tokens whose entropy is in this top share of the minibatch's tokens " +
      "(TRL's top_entropy_quantile, Wang et al. 2025 '80/20'); 1 = every token",
  ),
  dynamic_sampling: z.number().int().min(1).nullable().default(null).describe(
    "DAPO's dynamic sampling: sample up to this many batches of fresh prompts per update, " +
      "keeping the groups whose scores differ until they fill the batch (all-equal groups fill " +
      "what is left); null = off",
  ),
  overlong_cache: z.number().int().min(1).nullable().default(null).describe(
    "DAPO's soft overlong punishment: a response longer than max_new_tokens − overlong_cache " +
      "loses up to 1 from its score, linearly to −1 at max_new_tokens (TRL's " +
      "get_soft_overlong_punishment); null = off",
  ),
  mask_truncated_completions: z.boolean().default(false).describe(
    "leave responses cut at max_new_tokens (no EOS) out of the loss; they are still scored " +
      "and count in their group's baseline (TRL's; DAPO's overlong filtering)",
  ),
  sapo: SapoSchema.default(SapoSchema.parse({})),
  vespo: VespoSchema.default(VespoSchema.parse({})),
  // TR-DPO's reference-model sync (Gorbatovski et al. 2024), as TRL 1.13 GRPOConfig names it.
  sync_ref_model: z.boolean().default(false).describe(
    "move the reference toward the policy every ref_model_sync_steps optimizer steps: " +
      "ref ← α·policy + (1 − α)·ref with α = ref_model_mixup_alpha (TR-DPO, Gorbatovski et " +
      "al. 2024; TRL's SyncRefModelCallback). Needs a reference (β > 0) and full fine-tuning " +
      "(with LoRA the reference is the frozen base: refused, as TRL does)",
  ),
  ref_model_mixup_alpha: prob("α of the reference sync (TRL's ref_model_mixup_alpha)").default(
    0.6,
  ),
  ref_model_sync_steps: z.number().int().min(1).default(512).describe(
    "optimizer steps between reference syncs (TRL's ref_model_sync_steps); the sync is made " +
      "after the update in which such a step falls",
  ),
  entropy: EntropyControlSchema.default(EntropyControlSchema.parse({})),
};

/**
 * {@link KlSchema} for language models: adds TRL's importance-sampling correction of the KL
 * in the loss (`use_bias_correction_kl`).
 */
export const LmKlBaseSchema = KlSchema.extend({
  bias_correction: z.boolean().default(false).describe(
    "multiply the per-token KL in the loss by the importance ratio π/π_old (TRL's " +
      "use_bias_correction_kl, its default)",
  ),
});

export type KlConfig = z.infer<typeof KlSchema>;
export type PenaltyConfig = z.infer<typeof PenaltySchema>;
/** The LM-only loss keys ({@link LmLossShape}) as parsed. */
export type LmLossConfig = z.infer<z.ZodObject<typeof LmLossShape>>;

/**
 * A parsed PPO config; `advantage` and the {@link LmLossShape} keys exist in LM tasks'
 * schemas (absent = "gae" and PPO's loss), `kl.bias_correction` in theirs too.
 */
export type PpoConfig =
  & z.infer<typeof PpoSchema>
  & { advantage?: AdvantageEstimator; kl: { bias_correction?: boolean } }
  & Partial<LmLossConfig>;

/** True for an estimator without a value model (every one but GAE). */
export function isCriticFree(cfg: Pick<PpoConfig, "advantage">): boolean {
  return cfg.advantage !== undefined && !ESTIMATORS[cfg.advantage].critic;
}

/** Estimators whose baseline is the other responses to the same prompt (groups of ≥ 2). */
export const GROUP_ESTIMATORS: readonly AdvantageEstimator[] = ADVANTAGE_ESTIMATORS.filter((e) =>
  ESTIMATORS[e].grouped
);

/** Estimators that centre rewards in their group and scale them (scale_rewards, GDPO). */
const SCALING = ADVANTAGE_ESTIMATORS.filter((e) => ESTIMATORS[e].scalesRewards);
const scalingNames = SCALING.map((e) => JSON.stringify(e));

/** A config problem found after parsing: the key, what is wrong, and the fix. */
export interface ConfigProblem {
  key: string;
  cause: string;
  fix: string;
}

/**
 * What a language-model PPO problem cannot run, found when the experiment is planned: the
 * kl-penalty surrogate's exact KL(π_old‖π) would need every position's full-vocabulary
 * log-probs under π_old kept from the rollout (the reference KL's exact estimator is computed).
 */
export function lmPpoProblems(ppo: Pick<PpoConfig, "loss" | "penalty">): ConfigProblem[] {
  if (ppo.loss !== "kl-penalty" || ppo.penalty.estimator !== "full") return [];
  return [{
    key: "ppo.penalty.estimator",
    cause: 'ppo.penalty.estimator "full" is not supported for language models (it would keep ' +
      "rows × cols × vocab log-probs of π_old for every update)",
    fix: 'use "k3" (the default for LM tasks), "k2" or "k1"',
  }];
}

/**
 * Cross-key checks of an LM task's PPO section against its group size and value model: what a
 * task's `check` returns so that planning refuses the experiment before any trial starts.
 *
 * @example
 * ```ts
 * advantageProblems({ advantage: "grpo", whiten_advantages: false }, { samplesPerPrompt: 1 });
 * // [{ key: "samples_per_prompt", cause: 'ppo.advantage "grpo" needs ≥ 2 responses per prompt …', fix: … }]
 * ```
 */
export function advantageProblems(
  ppo:
    & Pick<PpoConfig, "advantage" | "whiten_advantages">
    & Partial<
      Pick<
        PpoConfig,
        | "loss"
        | "penalty"
        | "scale_rewards"
        | "loss_type"
        | "importance_sampling_level"
        | "reward_aggregation"
        | "top_entropy_quantile"
        | "kl"
        | "sync_ref_model"
      >
    >
    & Partial<Pick<PpoConfig, "epsilon_high" | "delta">>,
  o: {
    /** Responses per prompt (the group size). */
    samplesPerPrompt: number;
    /** Responses per update, when the task has such a key (must be a multiple of the group). */
    batch?: { key: string; value: number };
    /** The task's value-model key and value, when it has one ("shared" is the default head). */
    valueModel?: { key: string; value: string };
    /** The task's LoRA key when adapters are on (the reference is then the frozen base). */
    lora?: string | null;
  },
): ConfigProblem[] {
  const adv: AdvantageEstimator = ppo.advantage ?? "gae";
  const facts: EstimatorFacts = ESTIMATORS[adv];
  const out: ConfigProblem[] = ppo.loss && ppo.penalty
    ? lmPpoProblems({ loss: ppo.loss, penalty: ppo.penalty })
    : [];
  const k = o.samplesPerPrompt;
  if (GROUP_ESTIMATORS.includes(adv) && k < 2) {
    out.push({
      key: "samples_per_prompt",
      cause: `ppo.advantage "${adv}" needs groups of at least 2 responses per prompt, and ` +
        `samples_per_prompt is ${k}: a group of one is its own baseline, so every advantage ` +
        `would be 0`,
      fix: "set samples_per_prompt to 2 or more (e.g. 4)",
    });
  }
  if (o.batch && o.batch.value % k !== 0) {
    out.push({
      key: o.batch.key,
      cause: `${o.batch.key} ${o.batch.value} is not a multiple of samples_per_prompt ${k} ` +
        `(each prompt is sampled samples_per_prompt times in a rollout)`,
      fix: `set ${o.batch.key} to a multiple of ${k} (e.g. ${
        Math.max(k, o.batch.value - (o.batch.value % k))
      })`,
    });
  }
  if (facts.normalises !== null && ppo.whiten_advantages) {
    out.push({
      key: "ppo.whiten_advantages",
      cause: `ppo.advantage "${adv}" normalises its advantages itself (${facts.normalises}); ` +
        "whitening them again per minibatch would change the estimator",
      fix: "set ppo.whiten_advantages to false",
    });
  }
  if (ppo.scale_rewards != null && !facts.scalesRewards) {
    out.push({
      key: "ppo.scale_rewards",
      cause: `ppo.scale_rewards "${ppo.scale_rewards}" scales group-centred rewards, and ` +
        `ppo.advantage "${adv}" has none`,
      fix: `set ppo.scale_rewards to null, or ppo.advantage to ${scalingNames.join(" / ")}`,
    });
  }
  if (ppo.reward_aggregation === "normalize_then_sum") {
    if (!facts.scalesRewards) {
      out.push({
        key: "ppo.reward_aggregation",
        cause: `ppo.reward_aggregation "normalize_then_sum" normalises each reward component ` +
          `in its group, and ppo.advantage "${adv}" has no groups of that kind`,
        fix: `set ppo.advantage to ${scalingNames.join(" (or ")}${
          SCALING.length > 1 ? ")" : ""
        }, or reward_aggregation to "sum_then_normalize"`,
      });
    } else if (ppo.kl && ppo.kl.placement === "reward" && ppo.kl.beta > 0) {
      out.push({
        key: "ppo.reward_aggregation",
        cause: 'ppo.reward_aggregation "normalize_then_sum" replaces each response\'s reward by ' +
          `its normalised components, so the KL placed in the reward (β ${ppo.kl.beta}) would ` +
          "be dropped",
        fix: 'set ppo.kl.placement to "loss" (as GRPO does), or ppo.kl.beta to 0',
      });
    }
  }
  const variant = (ppo.loss_type != null && !LOSS_TYPE_FACTS[ppo.loss_type].plain) ||
    (ppo.importance_sampling_level ?? "token") !== "token" || ppo.epsilon_high != null ||
    (ppo.top_entropy_quantile ?? 1) < 1 ||
    ppo.delta != null;
  if (variant && ppo.loss !== undefined && ppo.loss !== "clip") {
    out.push({
      key: "ppo.loss",
      cause: `ppo.loss "${ppo.loss}" is PPO's own surrogate; ppo.loss_type, ` +
        "ppo.importance_sampling_level, ppo.epsilon_high and ppo.delta change the clipped one",
      fix: 'set ppo.loss to "clip", or leave those keys at their defaults',
    });
  }
  out.push(...refSyncProblems(ppo, o.lora ?? null));
  if (!facts.critic && o.valueModel && o.valueModel.value !== "shared") {
    out.push({
      key: o.valueModel.key,
      cause: `ppo.advantage "${adv}" is critic-free and holds no value model, so ` +
        `${o.valueModel.key} "${o.valueModel.value}" has nothing to build`,
      fix:
        `leave ${o.valueModel.key} at "shared" (ignored without a critic) or use ppo.advantage "${
          ADVANTAGE_ESTIMATORS.find((e) => ESTIMATORS[e].critic)
        }"`,
    });
  }
  return out;
}

/**
 * What `ppo.sync_ref_model` cannot run, as TRL 1.13's GRPOTrainer refuses it: with LoRA (the
 * reference is the adapters' frozen base, which the policy shares: TRL raises for a PEFT
 * model) and without a KL term (β 0 with control fixed: the reference is never used).
 */
export function refSyncProblems(
  ppo: Partial<Pick<PpoConfig, "sync_ref_model" | "kl">>,
  loraKey: string | null,
): ConfigProblem[] {
  if (!ppo.sync_ref_model) return [];
  const out: ConfigProblem[] = [];
  if (loraKey !== null) {
    out.push({
      key: "ppo.sync_ref_model",
      cause: `ppo.sync_ref_model mixes the policy into the reference, and with ${loraKey} set ` +
        "the reference is the adapters' frozen base, shared with the policy (TRL refuses " +
        "sync_ref_model for PEFT models too)",
      fix: `set ppo.sync_ref_model to false, or turn ${loraKey} off (full fine-tuning)`,
    });
  }
  if (ppo.kl && ppo.kl.beta === 0 && ppo.kl.control === "fixed") {
    out.push({
      key: "ppo.sync_ref_model",
      cause: "ppo.sync_ref_model syncs the reference, and ppo.kl.beta is 0 (control fixed): " +
        "the reference is never used, so there is nothing to sync (TRL refuses this too)",
      fix: "set ppo.kl.beta above 0, or ppo.sync_ref_model to false",
    });
  }
  return out;
}

/** Thrown for an invalid config; the message lists every bad key with its allowed range. */
export class ConfigError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Turn zod issues into one message per key, each naming the key (dotted path), what was
 * given, and what is allowed.
 */
export function formatIssues(
  issues: z.core.$ZodIssue[],
  input: unknown,
  where = "config",
  prefix = "",
): string {
  const lines = issues.map((i) => {
    if (i.code === "unrecognized_keys") {
      const base = [prefix, ...i.path.map(String)].filter(Boolean).join(".");
      return i.keys.map((k) => `  ${base ? base + "." : ""}${k}: unknown key`).join("\n");
    }
    const key = [prefix, ...i.path.map(String)].filter(Boolean).join(".");
    const given = i.path.reduce<unknown>(
      (o, p) => (o && typeof o === "object" ? (o as Record<string, unknown>)[p as string] : o),
      input,
    );
    let allowed = i.message;
    if (i.code === "too_small") {
      allowed = `must be ${i.inclusive ? "≥" : ">"} ${i.minimum}`;
    } else if (i.code === "too_big") allowed = `must be ${i.inclusive ? "≤" : "<"} ${i.maximum}`;
    else if (i.code === "invalid_value") {
      allowed = `must be one of ${i.values.map((v) => JSON.stringify(v)).join(", ")}`;
    } else if (i.code === "invalid_type") {
      allowed = `must be a finite ${i.expected}`;
    }
    return `  ${key}: ${allowed} (got ${fmtValue(given)})`;
  });
  return `${where}: invalid value${lines.length > 1 ? "s" : ""}\n${lines.join("\n")}`;
}

function fmtValue(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (v === undefined) return "nothing";
  return JSON.stringify(v);
}

/** Parse and default a PPO config; throws {@link ConfigError} naming every bad key. */
export function parsePpoConfig(input: unknown, where = "ppo config"): PpoConfig {
  const r = PpoSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, input, where, "ppo"));
  return r.data;
}

/** One line of documentation per key: `ppo.clip  0.2  clip ε: ...` (for --help). */
export function describePpoConfig(): string[] {
  const rows: string[] = [];
  const walk = (schema: z.ZodObject, defaults: Record<string, unknown>, path: string) => {
    for (const [k, s] of Object.entries(schema.shape)) {
      const inner = unwrap(s as z.ZodType);
      if (inner instanceof z.ZodObject) {
        walk(inner, defaults[k] as Record<string, unknown>, `${path}.${k}`);
      } else {
        const desc = (s as z.ZodType).description ?? inner.description ?? "";
        rows.push(`${path}.${k}=${JSON.stringify(defaults[k])}  ${desc}`);
      }
    }
  };
  walk(PpoSchema, PpoSchema.parse({}) as Record<string, unknown>, "ppo");
  return rows;
}

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s as z.ZodType & { unwrap?: () => z.ZodType };
  while (
    cur instanceof z.ZodDefault || cur instanceof z.ZodNullable || cur instanceof z.ZodOptional
  ) {
    cur = (cur as unknown as { unwrap: () => z.ZodType }).unwrap() as typeof cur;
  }
  return cur;
}
