/**
 * The per-token policy-gradient objectives of TRL 1.13's GRPOTrainer (`_compute_loss`) as graph
 * builders, and the reductions of its loss types. Checked against TRL's own code on fixed
 * inputs (tests/fixtures/trl, tests/ppo/trl_losses_test.ts).
 *
 * With logr = log π − log π_old per token, the importance weight is w = exp(logr) ("token"
 * level) or w = exp(Σ_t logr·m / max(Σ_t m, 1)) for every token of the response ("sequence"
 * level, GSPO). Per token, with advantage A:
 *
 * - clipped (PPO, grpo, dr_grpo, dapo, bnpo, luspo): −min(w'·A, clip(w, 1 − ε, 1 + ε_high)·A),
 *   w' = min(w, δ) under two-sided clipping, else w;
 * - cispo: −sg(min(w, ε_high))·A·log π;
 * - sapo: −σ(τ·(w − 1))·4/τ·A, τ = τ₊ for A > 0 else τ₋;
 * - vespo: −sg(φ)·A·log π, φ = exp(λ + k·log w_s − λ·w_s), w_s = exp(clamp(Σ_t clamp(logr, ±20)·m,
 *   log 1e-8, 20)), (k, λ) by the sign of A.
 *
 * Reductions ({@link LossAggregation}): "token" = Σ x·m / max(Σ m, 1) (token, dapo, bnpo, cispo,
 * vespo: with one process, no gradient accumulation and one optimizer step per minibatch TRL's
 * normalisers of dapo / cispo / vespo are this token count); "sequence" = mean over responses of
 * Σ_t x·m / max(Σ_t m, 1) (grpo, sapo); `{ tokens: L }` = Σ x·m / (B·L) (dr_grpo); "sum" = mean
 * over responses of Σ_t x·m (luspo).
 *
 * @example
 * ```ts
 * const { perToken, weight } = policyTerms(g, { lossType: "grpo", level: "token" }, logp, oldLogp, adv, mask, hp);
 * const loss = reduce(g, "sequence", mask)(perToken);
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { LossType } from "./config.ts";

/** How per-token terms of a `[B, T]` minibatch (or `[B]` positions) become one number. */
export type LossAggregation = "token" | "sequence" | "sum" | { tokens: number };

/** The policy objective's options (what the config picks). */
export interface PolicyObjective {
  /** Loss type (default "token": PPO's clipped surrogate, token mean). */
  lossType?: LossType;
  /** Importance-ratio level (default "token"). */
  level?: "token" | "sequence";
  /** Clip the ratio at 1 + hp.clip_high instead of 1 + hp.clip (cispo: cap at hp.clip_high). */
  clipHigh?: boolean;
  /** Two-sided clipping: cap the unclipped ratio at hp.delta. */
  delta?: boolean;
  /** PPO's no-clip surrogate (−w·A). */
  noClip?: boolean;
  /**
   * Keep the policy loss (and the entropy bonus) only on the tokens whose entropy is in the
   * top `topEntropyQuantile` share of the minibatch's real tokens (TRL's top_entropy_quantile;
   * 1 = every token).
   */
  topEntropyQuantile?: number;
}

/** Scalar hyperparameters the objectives read (graph inputs); only those the options use. */
export interface PolicyHparams {
  clip: Value;
  clip_high?: Value;
  delta?: Value;
  sapo_temperature_pos?: Value;
  sapo_temperature_neg?: Value;
  vespo_k_pos?: Value;
  vespo_lambda_pos?: Value;
  vespo_k_neg?: Value;
  vespo_lambda_neg?: Value;
}

/** The reduction a loss type uses (`maxTokens`: dr_grpo's token budget). */
export function lossTypeAggregation(lossType: LossType, maxTokens?: number): LossAggregation {
  if (lossType === "grpo" || lossType === "sapo") return "sequence";
  if (lossType === "luspo") return "sum";
  if (lossType === "dr_grpo") {
    if (!(maxTokens !== undefined && maxTokens > 0)) {
      throw new Error('ppo: loss_type "dr_grpo" needs the token budget (maxTokens)');
    }
    return { tokens: maxTokens };
  }
  return "token";
}

/** The graph hyperparameters (name -> default) a loss type and its options need beyond ε. */
export function objectiveHparams(
  o: PolicyObjective,
  cfg: {
    clip: number;
    epsilon_high?: number | null;
    delta?: number | null;
    sapo?: { temperature_pos: number; temperature_neg: number };
    vespo?: { k_pos: number; lambda_pos: number; k_neg: number; lambda_neg: number };
  },
): Record<string, number> {
  const out: Record<string, number> = {};
  if (o.clipHigh) out.clip_high = cfg.epsilon_high ?? cfg.clip;
  if (o.delta) out.delta = cfg.delta!;
  if (o.lossType === "sapo") {
    out.sapo_temperature_pos = cfg.sapo?.temperature_pos ?? 1;
    out.sapo_temperature_neg = cfg.sapo?.temperature_neg ?? 1.05;
  }
  if (o.lossType === "vespo") {
    const v = cfg.vespo ?? { k_pos: 2, lambda_pos: 3, k_neg: 3, lambda_neg: 2 };
    Object.assign(out, {
      vespo_k_pos: v.k_pos,
      vespo_lambda_pos: v.lambda_pos,
      vespo_k_neg: v.k_neg,
      vespo_lambda_neg: v.lambda_neg,
    });
  }
  return out;
}

const need = (v: Value | undefined, name: string): Value => {
  if (!v) throw new Error(`ppo: the policy objective needs the hyperparameter input ${name}`);
  return v;
};

/**
 * Per-token policy loss (before masking) and the importance weight w (`[B, T]`, or `[B, 1]`
 * at sequence level) that the KL's bias correction multiplies by.
 */
export function policyTerms(
  g: Graph,
  o: PolicyObjective,
  logp: Value,
  oldLogp: Value,
  advantages: Value,
  mask: Value,
  hp: PolicyHparams,
): { perToken: Value; weight: Value; logratio: Value } {
  const type = o.lossType ?? "token";
  const logratio = g.sub(logp, oldLogp);
  let logw = logratio;
  if (o.level === "sequence") {
    if (mask.rank !== 2) throw new Error("ppo: sequence-level ratios need [B, T] positions");
    logw = g.div(
      g.reduceSum(g.mul(logratio, mask), [1], true),
      g.max(g.reduceSum(mask, [1], true), 1),
    );
  }
  const w = g.exp(logw);
  const A = advantages;
  const hi = o.clipHigh ? need(hp.clip_high, "clip_high") : hp.clip;
  let perToken: Value;
  if (type === "cispo") {
    perToken = g.neg(g.mul(g.mul(g.stopGradient(g.min(w, hi)), A), logp));
  } else if (type === "sapo") {
    const tau = g.where(
      g.greater(A, 0),
      need(hp.sapo_temperature_pos, "sapo_temperature_pos"),
      need(hp.sapo_temperature_neg, "sapo_temperature_neg"),
    );
    const soft = g.div(g.mul(g.sigmoid(g.mul(tau, g.sub(w, 1))), 4), tau);
    perToken = g.neg(g.mul(soft, A));
  } else if (type === "vespo") {
    if (mask.rank !== 2) throw new Error('ppo: loss_type "vespo" needs [B, T] positions');
    const lower = Math.log(1e-8);
    const seq = g.reduceSum(g.mul(g.clip(logratio, -20, 20), mask), [1], true);
    const logWs = g.clip(seq, lower, 20);
    const nonneg = g.greaterOrEqual(A, 0);
    const k = g.where(nonneg, need(hp.vespo_k_pos, "vespo_k_pos"), need(hp.vespo_k_neg, "k"));
    const lam = g.max(
      g.where(
        nonneg,
        need(hp.vespo_lambda_pos, "vespo_lambda_pos"),
        need(hp.vespo_lambda_neg, "l"),
      ),
      1e-4,
    );
    const phi = g.exp(g.sub(g.add(lam, g.mul(k, logWs)), g.mul(lam, g.exp(logWs))));
    perToken = g.neg(g.mul(g.mul(g.stopGradient(phi), A), logp));
  } else if (o.noClip) {
    perToken = g.neg(g.mul(A, w));
  } else {
    const clipped = g.clip(w, g.sub(1, hp.clip), g.add(1, hi));
    const capped = o.delta ? g.min(w, need(hp.delta, "delta")) : w;
    // −min(w·A, clip(w)·A), written as PPO always has: max(−A·w, −A·clip(w)).
    perToken = g.max(g.neg(g.mul(A, capped)), g.neg(g.mul(A, clipped)));
  }
  return { perToken, weight: w, logratio };
}

/**
 * 1 on the real tokens whose entropy is at least the (1 − q) quantile of the real tokens'
 * entropies (linear interpolation, as torch.quantile), 0 elsewhere: TRL's
 * get_high_entropy_mask. No gradient flows through it.
 */
export function highEntropyMask(g: Graph, entropy: Value, mask: Value, q: number): Value {
  const dtype = entropy.dtype;
  const e = g.stopGradient(entropy);
  const flatE = g.reshape(e, g.ints([-1]), ["N"]);
  const flatM = g.reshape(mask, g.ints([-1]), ["N"]);
  // Padding sorts last (ascending), so the first Σ mask sorted values are the real tokens'.
  const keyed = g.where(g.greater(flatM, 0), flatE, 1e30);
  const k = g.reshape(g.size(flatE), g.ints([1]), [1]);
  const [sorted] = g.node(
    "TopK",
    [keyed, k],
    {
      axis: { kind: "int", value: 0 },
      largest: { kind: "int", value: 0 },
      sorted: { kind: "int", value: 1 },
    },
    undefined,
    [
      { dtype, shape: ["N"] },
      { dtype: "int64", shape: ["N"] },
    ],
  );
  const n = g.reduceSum(flatM);
  const pos = g.mul(g.max(g.sub(n, 1), 0), 1 - q); // ≥ 0: Cast to int64 is its floor
  const lo = g.cast(pos, "int64");
  const hi = g.min(g.add(lo, 1), g.max(g.sub(g.cast(n, "int64"), 1), 0));
  const vlo = g.gather(sorted, lo, 0), vhi = g.gather(sorted, hi, 0);
  const threshold = g.add(vlo, g.mul(g.sub(pos, g.cast(lo, dtype)), g.sub(vhi, vlo)));
  return g.mul(g.cast(g.greaterOrEqual(g.mul(e, mask), threshold), dtype), mask);
}

/**
 * The reduction of per-token terms (see the module doc); `tokenMean` is the masked mean. With
 * `rows` (a micro-batch's whole-minibatch row count, a scalar input) the means over rows divide
 * the piece's sum by it, so the pieces' results add up to the minibatch's.
 */
export function reduce(
  g: Graph,
  how: LossAggregation,
  mask: Value,
  tokenMean: (x: Value) => Value,
  rows?: Value,
): (x: Value) => Value {
  if (how === "token") return tokenMean;
  if (mask.rank !== 2) {
    throw new Error(`ppo: loss aggregation ${JSON.stringify(how)} needs [B, T] positions`);
  }
  const rowSum = (x: Value) => g.reduceSum(g.mul(x, mask), [1]); // [B]
  const rowMean = (v: Value) => rows ? g.div(g.reduceSum(v), rows) : g.reduceMean(v);
  if (how === "sequence") {
    return (x) => rowMean(g.div(rowSum(x), g.max(g.reduceSum(mask, [1]), 1)));
  }
  if (how === "sum") return (x) => rowMean(rowSum(x));
  if (!(how.tokens > 0)) throw new Error(`ppo: loss aggregation needs tokens > 0 (${how.tokens})`);
  return (x) => g.div(rowMean(rowSum(x)), how.tokens);
}
