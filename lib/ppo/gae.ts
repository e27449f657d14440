/**
 * Advantages and returns for a rollout laid out as N rows × T positions (row-major): a row is
 * one environment's stream of steps, or one response's tokens. Positions whose mask is 0
 * (padding) are transparent: they get advantage 0 and return 0 and do not break the
 * recursion between the real positions around them.
 *
 * @example
 * ```ts
 * const { advantages, returns } = gae({
 *   rows: 1, cols: 3, rewards: [0, 0, 1], values: [0.5, 0.5, 0.5], dones: [0, 0, 1],
 *   lastValues: [0], gamma: 1, lambda: 0.95,
 * });
 * ```
 * @module
 */

type Num = ArrayLike<number>;

export interface GaeInput {
  rows: number;
  cols: number;
  rewards: Num;
  /** V(s_t) from the rollout (old values). */
  values: Num;
  /** 1 where the episode ended at this position (terminated or truncated, as CleanRL does). */
  dones: Num;
  /** 1 = a real position, 0 = padding (default: all real). */
  mask?: Num;
  /** V of the state after each row's last position (bootstrap; 0 when episodes end there). */
  lastValues: Num;
  gamma: number;
  lambda: number;
}

/**
 * Generalised advantage estimation (Schulman et al. 2016):
 * δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t,  A_t = δ_t + γλ·(1 − done_t)·A_{t+1},
 * returns R_t = A_t + V_t (the value target, as CleanRL and TRL use).
 */
export function gae(x: GaeInput): { advantages: Float64Array; returns: Float64Array } {
  const { rows, cols, rewards, values, dones, mask, lastValues, gamma, lambda } = x;
  const n = rows * cols;
  for (const [k, a] of Object.entries({ rewards, values, dones, ...(mask ? { mask } : {}) })) {
    if (a.length !== n) throw new Error(`gae: ${k} has ${a.length} entries, expected ${n}`);
  }
  const advantages = new Float64Array(n), returns = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    let nextValue = lastValues[r], nextAdv = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = r * cols + t;
      if (mask && !mask[i]) continue; // padding: skipped, the recursion passes over it
      const notDone = 1 - dones[i];
      const delta = rewards[i] + gamma * nextValue * notDone - values[i];
      nextAdv = delta + gamma * lambda * notDone * nextAdv;
      advantages[i] = nextAdv;
      returns[i] = nextAdv + values[i];
      nextValue = values[i];
    }
  }
  return { advantages, returns };
}

/** Mean and unbiased std (n − 1, as torch.std) over positions with mask 1. */
export function maskedMoments(x: Num, mask?: Num): { mean: number; std: number; count: number } {
  let sum = 0, count = 0;
  for (let i = 0; i < x.length; i++) if (!mask || mask[i]) sum += x[i], count++;
  const mean = count ? sum / count : 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) if (!mask || mask[i]) ss += (x[i] - mean) ** 2;
  return { mean, std: count > 1 ? Math.sqrt(ss / (count - 1)) : 0, count };
}

/**
 * Whitening: (x − mean) / (std + 1e-8) over the real positions (CleanRL's advantage
 * normalisation). `shiftMean: false` only rescales (reward whitening keeps the sign of the
 * mean, as TRL does). Padding positions come out 0.
 */
export function whiten(x: Num, mask?: Num, shiftMean = true): Float64Array {
  const { mean, std } = maskedMoments(x, mask);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    if (!mask || mask[i]) out[i] = (x[i] - (shiftMean ? mean : 0)) / (std + 1e-8);
  }
  return out;
}

/**
 * Explained variance 1 − Var[R − V] / Var[R] (population variances, as CleanRL's np.var):
 * 1 = the value function predicts returns perfectly, ≤ 0 = no better than a constant.
 * NaN when the returns have no variance.
 */
export function explainedVariance(values: Num, returns: Num, mask?: Num): number {
  const diff = Array.from(returns, (r, i) => r - values[i]);
  const pop = (a: Num) => {
    const { std, count } = maskedMoments(a, mask);
    return count > 1 ? std * std * (count - 1) / count : 0;
  };
  const varR = pop(returns);
  return varR === 0 ? NaN : 1 - pop(diff) / varR;
}
