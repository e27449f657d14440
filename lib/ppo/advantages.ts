/**
 * Advantage estimators, one config choice (`ppo.advantage`) of the same PPO update. The rollout
 * is N rows × T positions (row-major), a row one response, its rewards per token (the task's
 * score at the last token, minus β·KL per token when the KL is placed in the reward); rows
 * come in groups of `groupSize` consecutive responses to the same prompt.
 *
 * - `gae`: GAE(γ, λ) with the value model's V (lib/ppo/gae.ts) — PPO.
 * - `grpo` (Shao et al. 2024, DeepSeekMath §4.1, outcome supervision): the sequence reward
 *   r_i = Σ_t r_{i,t}, normalised in its group: A_i = (r_i − mean_g r) / (std_g r + 1e-4)
 *   (std with divisor n − 1 and ε as TRL's GRPOTrainer), on every token of response i.
 * - `dr_grpo` (Liu et al. 2025, "Understanding R1-Zero-Like Training"): A_i = r_i − mean_g r,
 *   no std normalisation (and, in the loss, no per-response length normalisation).
 * - `rloo` (Ahmadian et al. 2024): the leave-one-out baseline,
 *   A_i = r_i − (Σ_{j≠i} r_j) / (k − 1) over the group of k.
 * - `reinforce_pp` (Hu 2025, REINFORCE++): the reward-to-go G_t = Σ_{s≥t} γ^{s−t} r_s of the
 *   per-token rewards (KL in the reward), normalised over the whole batch's real tokens:
 *   A = (G − mean) / (std + 1e-8).
 *
 * The critic-free estimators' `returns` are the reward-to-go G_t (diagnostics only: there is no
 * value loss). Padding positions (mask 0) get 0 everywhere.
 *
 * @example
 * ```ts
 * groupAdvantages("rloo", [1, 0, 0, 1], 2); // [1, −1, −1, 1]
 * ```
 * @module
 */
import type { AdvantageEstimator } from "./config.ts";
import { gae, maskedMoments } from "./gae.ts";

type Num = ArrayLike<number>;

/** What {@link computeAdvantages} needs: a rollout's layout, rewards and values. */
export interface AdvantageInput {
  rows: number;
  cols: number;
  /** Per-position rewards (already shaped: KL in the reward, whitened when asked). */
  rewards: Num;
  /** V(s_t) (GAE only). */
  values: Num;
  dones: Num;
  mask?: Num;
  lastValues: Num;
  gamma: number;
  lambda: number;
  /** Consecutive rows per prompt (default 1). */
  groupSize?: number;
  /**
   * Per-response reward components and their weights (the task's named rewards), for
   * `aggregation` "normalize_then_sum": the advantage is then {@link batchNormalized} of
   * {@link normalizedRewardSum}, replacing the sequence reward.
   */
  components?: { values: readonly Num[]; weights: readonly number[] };
  /** TRL's multi_objective_aggregation (default "sum_then_normalize": the rewards as given). */
  aggregation?: "sum_then_normalize" | "normalize_then_sum";
  /**
   * grpo / dr_grpo: what the group-centred rewards are divided by (TRL's scale_rewards):
   * the group's std, the whole batch's, or nothing; default grpo "group", dr_grpo "none".
   */
  scaleRewards?: "group" | "batch" | "none" | null;
}

/** ε added to GRPO's group std (TRL's GRPOTrainer). */
export const GRPO_STD_EPS = 1e-4;

/** Per row: the sum of its real positions' rewards (the sequence reward). */
export function sequenceRewards(
  rows: number,
  cols: number,
  rewards: Num,
  mask?: Num,
): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let t = 0; t < cols; t++) {
      const i = r * cols + t;
      if (!mask || mask[i]) s += rewards[i];
    }
    out[r] = s;
  }
  return out;
}

/**
 * One advantage per response from its sequence reward and its group's (`groupSize`
 * consecutive entries of `seq`). Throws when the rows do not split into groups, or when a
 * group has one response (its baseline would be itself: every advantage 0).
 */
export function groupAdvantages(
  estimator: "grpo" | "dr_grpo" | "rloo",
  seq: Num,
  groupSize: number,
  scale?: "group" | "batch" | "none" | null,
): Float64Array {
  const k = groupSize, n = seq.length;
  if (!Number.isInteger(k) || k < 2) {
    throw new RangeError(
      `ppo.advantage "${estimator}": groups need at least 2 responses per prompt ` +
        `(samples_per_prompt = ${k}); fix: set samples_per_prompt to 2 or more`,
    );
  }
  if (n % k !== 0) {
    throw new RangeError(
      `ppo.advantage "${estimator}": ${n} responses do not split into groups of ${k}`,
    );
  }
  const out = new Float64Array(n);
  const how = scale ?? (estimator === "grpo" ? "group" : "none");
  // TRL's "batch" scale: the std (n − 1) of every reward in the batch.
  let batchStd = 0;
  if (estimator !== "rloo" && how === "batch") {
    let s = 0;
    for (let i = 0; i < n; i++) s += seq[i];
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (seq[i] - s / n) ** 2;
    batchStd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  }
  for (let g = 0; g < n; g += k) {
    let sum = 0;
    for (let i = g; i < g + k; i++) sum += seq[i];
    const mean = sum / k;
    let ss = 0;
    for (let i = g; i < g + k; i++) ss += (seq[i] - mean) ** 2;
    const std = Math.sqrt(ss / (k - 1));
    for (let i = g; i < g + k; i++) {
      if (estimator === "rloo") out[i] = seq[i] - (sum - seq[i]) / (k - 1);
      else if (how === "group") out[i] = (seq[i] - mean) / (std + GRPO_STD_EPS);
      else if (how === "batch") out[i] = (seq[i] - mean) / (batchStd + GRPO_STD_EPS);
      else out[i] = seq[i] - mean;
    }
  }
  return out;
}

/**
 * Per response: Σ_k w_k·(r_k − mean_g r_k) / (std_g r_k + 1e-4), each reward component
 * normalised in its group first (TRL's multi_objective_aggregation "normalize_then_sum",
 * GDPO). `components[k][i]` is component k of response i; groups are `groupSize` consecutive
 * responses; std with divisor n − 1.
 */
export function normalizedRewardSum(
  components: readonly Num[],
  weights: readonly number[],
  groupSize: number,
): Float64Array {
  if (components.length !== weights.length) {
    throw new RangeError(`${components.length} reward components for ${weights.length} weights`);
  }
  const n = components[0]?.length ?? 0, k = groupSize;
  if (!Number.isInteger(k) || k < 2 || n % k !== 0) {
    throw new RangeError(`normalize_then_sum: ${n} responses do not split into groups of ${k} ≥ 2`);
  }
  const out = new Float64Array(n);
  components.forEach((r, c) => {
    for (let g = 0; g < n; g += k) {
      let s = 0;
      for (let i = g; i < g + k; i++) s += r[i];
      const mean = s / k;
      let ss = 0;
      for (let i = g; i < g + k; i++) ss += (r[i] - mean) ** 2;
      const std = Math.sqrt(ss / (k - 1));
      for (let i = g; i < g + k; i++) out[i] += weights[c] * ((r[i] - mean) / (std + GRPO_STD_EPS));
    }
  });
  return out;
}

/** (x − mean) / (std + 1e-4) over the whole batch (std with divisor n − 1): TRL's last step of normalize_then_sum. */
export function batchNormalized(x: Num): Float64Array {
  const n = x.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i];
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (x[i] - mean) ** 2;
  const std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) / (std + GRPO_STD_EPS);
  return out;
}

/** Per position: the discounted reward-to-go G_t = r_t + γ·G_{t+1} over each row's real positions. */
export function rewardToGo(
  rows: number,
  cols: number,
  rewards: Num,
  gamma: number,
  mask?: Num,
): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let next = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = r * cols + t;
      if (mask && !mask[i]) continue;
      next = rewards[i] + gamma * next;
      out[i] = next;
    }
  }
  return out;
}

/**
 * Advantages and returns for the estimator `estimator` (see the module doc). `gae` is
 * exactly {@link gae}; the others ignore `values`, `lambda` and `lastValues`.
 */
export function computeAdvantages(
  estimator: AdvantageEstimator,
  x: AdvantageInput,
): { advantages: Float64Array; returns: Float64Array } {
  if (estimator === "gae") return gae(x);
  const { rows, cols, rewards, mask } = x;
  const returns = rewardToGo(rows, cols, rewards, x.gamma, mask);
  const advantages = new Float64Array(rows * cols);
  if (estimator === "reinforce_pp") {
    const { mean, std } = maskedMoments(returns, mask);
    for (let i = 0; i < advantages.length; i++) {
      if (!mask || mask[i]) advantages[i] = (returns[i] - mean) / (std + 1e-8);
    }
    return { advantages, returns };
  }
  let perRow: Float64Array;
  if (x.aggregation === "normalize_then_sum") {
    if (!x.components) {
      throw new Error(
        'ppo.reward_aggregation "normalize_then_sum" needs the reward components (a task ' +
          "whose rewards are named components)",
      );
    }
    perRow = batchNormalized(
      normalizedRewardSum(x.components.values, x.components.weights, x.groupSize ?? 1),
    );
  } else {
    const seq = sequenceRewards(rows, cols, rewards, mask);
    perRow = groupAdvantages(estimator, seq, x.groupSize ?? 1, x.scaleRewards);
  }
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < cols; t++) {
      const i = r * cols + t;
      if (!mask || mask[i]) advantages[i] = perRow[r];
    }
  }
  return { advantages, returns };
}
