/**
 * The PPO objective as graph builders. Every term is a masked mean over real positions
 * (mask 1), so padded tokens contribute nothing; hyperparameters that sweeps vary (ε, ε_v,
 * vf_coef, ent_coef, the two β) are graph inputs.
 *
 * total = policy_loss + vf_coef · value_loss − ent_coef · entropy
 *         (+ β_penalty · KL(π_old‖π) for the kl-penalty surrogate)
 *         (+ β · KL(π‖π_ref) when the reference KL is placed in the loss)
 *
 * Critic-free estimators (GRPO, Dr. GRPO, RLOO, REINFORCE++) have no value output and no
 * value loss. How per-token terms become one number is the variant's `aggregate`: the masked
 * mean over every real token of the minibatch (PPO's, the default), the mean over responses
 * of each response's token mean (GRPO), or the sum over tokens divided by responses × a
 * constant token budget (Dr. GRPO: no per-response length normalisation).
 *
 * @example
 * ```ts
 * // inside a TrainStepSpec.loss:
 * const { loss, metrics } = ppoLoss(g, { loss: "clip", valueClip: true }, policy, batch, hp);
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { KlConfig, PenaltyConfig, PpoConfig } from "./config.ts";
import {
  highEntropyMask,
  type LossAggregation,
  type PolicyHparams,
  type PolicyObjective,
  policyTerms,
  reduce,
} from "./policy_loss.ts";

export type { LossAggregation } from "./policy_loss.ts";

/** What the model computes for the minibatch, per position ([B] or [B, T]). */
export interface PolicyOutputs {
  /** log π(a) of the taken actions under the current params. */
  logp: Value;
  /** Entropy of π at each position. */
  entropy: Value;
  /** V(s) at each position (absent for a critic-free policy: no value loss). */
  value?: Value;
  /** log π over every action ([..., A]); needed for the exact ("full") KL. */
  logpAll?: Value;
}

/** Rollout-time quantities fed as batch inputs, per position. */
export interface PpoBatchValues {
  oldLogp: Value;
  advantages: Value;
  /** Value targets and rollout-time values (absent without a value model). */
  returns?: Value;
  oldValues?: Value;
  /** 1 = real position, 0 = padding (same dtype as the rest). */
  mask: Value;
  /** Rollout-time log π_old over all actions (for the exact KL of the kl-penalty loss). */
  oldLogpAll?: Value;
  /** Reference-model log-probs of the taken actions / all actions (KL in the loss). */
  refLogp?: Value;
  refLogpAll?: Value;
  /**
   * Micro-batches (`ppo.micro_batches` > 1, micro_batches.ts): the WHOLE minibatch's
   * normalisers as scalar inputs, so that each piece's loss and metrics are its share of the
   * minibatch's and their sum is exact. `tokens` = max(Σ mask, 1) over the minibatch (the masked
   * means' denominator), `rows` = its rows (the per-response reductions'). Absent: the batch's own
   * (today's graph).
   */
  tokens?: Value;
  rows?: Value;
}

/** Scalar hyperparameter inputs (and those the policy objective's options add). */
export interface PpoHparams extends PolicyHparams {
  clip: Value;
  clip_value: Value;
  vf_coef: Value;
  ent_coef: Value;
  /** β of the KL to the reference policy, when it is placed in the loss. */
  beta: Value;
  /** β of the kl-penalty surrogate's KL(π_old‖π). */
  penalty_beta: Value;
}

/** Defaults for the loss hyperparameters (graph inputs) taken from a config. */
export function ppoHparams(cfg: PpoConfig, beta = cfg.kl.beta): Record<string, number> {
  return {
    clip: cfg.clip,
    clip_value: cfg.clip_value ?? 0,
    vf_coef: cfg.vf_coef,
    ent_coef: cfg.ent_coef,
    beta,
    penalty_beta: cfg.penalty.beta,
  };
}

/**
 * The PPO batch values from train-step batch inputs named as {@link PPO_BATCH} in
 * lib/ppo/trainer.ts (`old_logp`, `advantages`, `returns`, `old_values`, `mask`) plus the
 * optional `old_logp_all`, `ref_logp`, `ref_logp_all`, and the micro-batches' minibatch
 * normalisers `norm_tokens`, `norm_rows` ({@link PpoBatchValues.tokens}).
 */
export function ppoBatchValues(b: Record<string, Value>): PpoBatchValues {
  return {
    oldLogp: b.old_logp,
    advantages: b.advantages,
    returns: b.returns,
    oldValues: b.old_values,
    mask: b.mask,
    oldLogpAll: b.old_logp_all,
    refLogp: b.ref_logp,
    refLogpAll: b.ref_logp_all,
    ...(b.norm_tokens ? { tokens: b.norm_tokens } : {}),
    ...(b.norm_rows ? { rows: b.norm_rows } : {}),
  };
}

/** The optimizer and clipping hyperparameters a PPO config sets (AdamW ε, decay, grad clip). */
export function ppoOptimizerHparams(cfg: PpoConfig): Record<string, number> {
  return {
    eps: cfg.adam_eps,
    weight_decay: cfg.weight_decay,
    ...(cfg.max_grad_norm !== null ? { max_grad_norm: cfg.max_grad_norm } : {}),
  };
}

/** Σ x·mask / max(Σ mask, 1). */
export function maskedMean(g: Graph, x: Value, mask: Value): Value {
  return g.div(g.reduceSum(g.mul(x, mask)), g.max(g.reduceSum(mask), 1));
}

/**
 * Per-position KL(p‖q) estimate inside the graph, x ~ p (see lib/ppo/kl.ts for the
 * formulas). `full` needs both full log-distributions.
 */
export function klTerm(
  g: Graph,
  estimator: KlConfig["estimator"],
  p: { logp: Value; logpAll?: Value },
  q: { logp: Value; logpAll?: Value },
): Value {
  if (estimator === "full") {
    if (!p.logpAll || !q.logpAll) {
      throw new Error('ppo: kl.estimator "full" needs log-probs over every action');
    }
    return g.reduceSum(g.mul(g.exp(p.logpAll), g.sub(p.logpAll, q.logpAll)), [-1]);
  }
  const logr = g.sub(q.logp, p.logp);
  if (estimator === "k1") return g.neg(logr);
  if (estimator === "k2") return g.mul(g.mul(logr, logr), 0.5);
  return g.sub(g.sub(g.exp(logr), 1), logr);
}

export interface PpoLossVariant {
  loss: PpoConfig["loss"];
  /** Clipped value loss (config clip_value ≠ null). */
  valueClip: boolean;
  /** The reference KL (its estimator and placement). */
  kl?: Pick<KlConfig, "estimator" | "placement">;
  /** The kl-penalty surrogate's KL estimator (default "full"). */
  penalty?: Pick<PenaltyConfig, "estimator">;
  /** A reference policy exists (RLHF); needed for the KL in the loss placement. */
  hasReference?: boolean;
  /**
   * How the per-token policy loss (and the reference KL in the loss) is reduced over a
   * `[B, T]` minibatch: "token" (default) = masked mean over all real tokens; "sequence" =
   * mean over rows of each row's masked mean; "sum" = mean over rows of each row's masked
   * sum; `{ tokens: L }` = Σ over real tokens / (B · L).
   */
  aggregate?: LossAggregation;
  /**
   * The per-token objective (loss type, ratio level, clip-higher, two-sided clipping; see
   * lib/ppo/policy_loss.ts); absent: PPO's, from `loss`.
   */
  objective?: PolicyObjective;
  /** Multiply the reference KL in the loss by the importance weight (TRL's bias correction). */
  klBiasCorrection?: boolean;
}

/** The PPO loss and its diagnostics (all scalars). */
export function ppoLoss(
  g: Graph,
  variant: PpoLossVariant,
  pi: PolicyOutputs,
  b: PpoBatchValues,
  hp: PpoHparams,
): { loss: Value; metrics: Record<string, Value> } {
  const mean = b.tokens
    ? (x: Value) => g.div(g.reduceSum(g.mul(x, b.mask)), b.tokens!)
    : (x: Value) => maskedMean(g, x, b.mask);
  const agg = reduce(g, variant.aggregate ?? "token", b.mask, mean, b.rows);
  // Policy surrogate: −A·r, and for "clip" the pessimistic max with −A·clip(r, 1−ε, 1+ε)
  // (or another loss type's objective: lib/ppo/policy_loss.ts).
  const objective: PolicyObjective = variant.objective ??
    { noClip: variant.loss !== "clip" };
  const terms = policyTerms(g, objective, pi.logp, b.oldLogp, b.advantages, b.mask, hp);
  const { logratio } = terms;
  const ratio = objective.level === "sequence" ? g.exp(logratio) : terms.weight;
  // TRL's top_entropy_quantile: the policy loss and the entropy bonus on high-entropy tokens.
  const q = objective.topEntropyQuantile ?? 1;
  if (q < 1 && b.tokens) {
    throw new Error("ppo: top_entropy_quantile < 1 needs the whole minibatch (no micro-batches)");
  }
  const entMask = q < 1 ? highEntropyMask(g, pi.entropy, b.mask, q) : null;
  const policyLoss = agg(entMask ? g.mul(terms.perToken, entMask) : terms.perToken);

  // Value loss: ½(V − R)², or with value clipping ½·max((V − R)², (V_old + clip(V − V_old, ±ε_v) − R)²).
  let valueLoss: Value | null = null;
  if (pi.value) {
    if (!b.returns || !b.oldValues) {
      throw new Error("ppo: a value output needs returns and old values");
    }
    const err = g.sub(pi.value, b.returns);
    if (variant.valueClip) {
      const vClipped = g.add(
        b.oldValues,
        g.clip(g.sub(pi.value, b.oldValues), g.neg(hp.clip_value), hp.clip_value),
      );
      const errClipped = g.sub(vClipped, b.returns);
      valueLoss = g.mul(mean(g.max(g.mul(err, err), g.mul(errClipped, errClipped))), 0.5);
    } else valueLoss = g.mul(mean(g.mul(err, err)), 0.5);
  }

  const entropy = entMask ? maskedMean(g, pi.entropy, entMask) : mean(pi.entropy);
  let loss = g.sub(
    valueLoss ? g.add(policyLoss, g.mul(hp.vf_coef, valueLoss)) : policyLoss,
    g.mul(hp.ent_coef, entropy),
  );

  const metrics: Record<string, Value> = {
    policy_loss: policyLoss,
    ...(valueLoss ? { value_loss: valueLoss } : {}),
    entropy,
    // CleanRL's diagnostics: k1 ("old_approx_kl") and k3 ("approx_kl") of KL(π_old‖π).
    approx_kl_k1: mean(g.neg(logratio)),
    approx_kl_k3: mean(g.sub(g.sub(ratio, 1), logratio)),
    clipfrac: mean(g.cast(g.greater(g.abs(g.sub(ratio, 1)), hp.clip), ratio.dtype)),
  };

  // The kl-penalty surrogate (Schulman et al. 2017 §4): + β_penalty·KL(π_old‖π).
  if (variant.loss === "kl-penalty") {
    const est = variant.penalty?.estimator ?? "full";
    const kl = klTerm(g, est, { logp: b.oldLogp, logpAll: b.oldLogpAll }, pi);
    metrics.kl_penalty = mean(kl);
    loss = g.add(loss, g.mul(hp.penalty_beta, metrics.kl_penalty));
  }
  // The reference KL placed in the loss (instead of the reward): + β·KL(π‖π_ref).
  if (variant.kl?.placement === "loss" && variant.hasReference) {
    if (!b.refLogp) throw new Error("ppo: KL in the loss needs reference log-probs (refLogp)");
    let kl = klTerm(g, variant.kl.estimator, pi, { logp: b.refLogp, logpAll: b.refLogpAll });
    if (variant.klBiasCorrection) kl = g.mul(kl, terms.weight);
    metrics.kl_ref_loss = mean(kl);
    loss = g.add(loss, g.mul(hp.beta, agg === mean ? metrics.kl_ref_loss : agg(kl)));
  }
  return { loss, metrics };
}

/** Entropy −Σ p log p of categorical distributions given as log-probs over the last axis. */
export function categoricalEntropy(g: Graph, logpAll: Value): Value {
  return g.neg(g.reduceSum(g.mul(g.exp(logpAll), logpAll), [-1]));
}

/** log π(a) of integer actions `actions` (int64, shape = logpAll's minus the last axis). */
export function actionLogp(g: Graph, logpAll: Value, actions: Value): Value {
  const A = logpAll.shape.at(-1);
  if (typeof A !== "number") throw new Error("actionLogp: the action axis must be static");
  const ids = g.ints([...Array(A).keys()]);
  const onehot = g.cast(g.equal(g.unsqueeze(actions, [-1]), ids), logpAll.dtype);
  return g.reduceSum(g.mul(logpAll, onehot), [-1]);
}
