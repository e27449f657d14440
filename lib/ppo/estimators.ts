/**
 * The advantage estimators of LM tasks (`ppo.advantage`) and the loss types of TRL 1.13's
 * GRPOTrainer (`ppo.loss_type`) as data: what each needs and implies, read by config parsing
 * and checks (config.ts) and the train step (train_step.ts), so that no module outside the
 * records (lib/ppo/methods), these tables and the formulas (advantages.ts, policy_loss.ts)
 * switches on their names.
 *
 * @example
 * ```ts
 * ESTIMATORS.grpo.grouped; // true: groups of ≥ 2 responses to one prompt
 * ESTIMATORS.dr_grpo.lossType; // "dr_grpo": its loss aggregation when ppo.loss_type is null
 * ```
 * @module
 */

/** What an advantage estimator is, as the config checks and the train step need it. */
export interface EstimatorFacts {
  /** Holds a value model (GAE); every other estimator is critic-free. */
  critic: boolean;
  /** Its baseline is the other responses to the same prompt (groups of ≥ 2). */
  grouped: boolean;
  /** How it normalises its advantages itself (the whitening refusal says it); null: it does not claim to. */
  normalises: string | null;
  /** It centres rewards in their group and can scale them (`ppo.scale_rewards`, GDPO). */
  scalesRewards: boolean;
  /** The loss aggregation it uses when `ppo.loss_type` is null. */
  lossType: "token" | "grpo" | "dr_grpo";
}

/** Every estimator (see advantages.ts for the formulas and their papers). */
export const ESTIMATORS = {
  gae: { critic: true, grouped: false, normalises: null, scalesRewards: false, lossType: "token" },
  grpo: {
    critic: false,
    grouped: true,
    normalises: "per group",
    scalesRewards: true,
    lossType: "grpo",
  },
  dr_grpo: {
    critic: false,
    grouped: true,
    normalises: "not at all: that is the point of it",
    scalesRewards: true,
    lossType: "dr_grpo",
  },
  rloo: {
    critic: false,
    grouped: true,
    normalises: "not at all: that is the point of it",
    scalesRewards: false,
    lossType: "token",
  },
  reinforce_pp: {
    critic: false,
    grouped: false,
    normalises: "over the batch",
    scalesRewards: false,
    lossType: "token",
  },
} as const satisfies Record<string, EstimatorFacts>;

/** The estimators' names, in their table's order. */
export const ADVANTAGE_ESTIMATORS = Object.keys(ESTIMATORS) as (keyof typeof ESTIMATORS)[];

/**
 * The loss types (TRL 1.13 GRPOConfig.loss_type, plus `token`: PPO's masked mean over the
 * minibatch's real tokens). `plain`: PPO's own clipped surrogate with only the reduction
 * changed (with one process and no gradient accumulation, TRL's bnpo and dapo normalise by the
 * same token count as token); the others build their own per-token objective (policy_loss.ts).
 * `clipHigh`: it caps its ratio at `epsilon_high` even when no clip-higher is asked for.
 */
export const LOSS_TYPE_FACTS = {
  token: { plain: true, clipHigh: false },
  grpo: { plain: true, clipHigh: false },
  dr_grpo: { plain: true, clipHigh: false },
  dapo: { plain: true, clipHigh: false },
  bnpo: { plain: true, clipHigh: false },
  cispo: { plain: false, clipHigh: true },
  sapo: { plain: false, clipHigh: false },
  luspo: { plain: false, clipHigh: false },
  vespo: { plain: false, clipHigh: false },
} as const satisfies Record<string, { plain: boolean; clipHigh: boolean }>;

/** The loss types' names, in their table's order. */
export const LOSS_TYPE_NAMES = Object.keys(LOSS_TYPE_FACTS) as (keyof typeof LOSS_TYPE_FACTS)[];
