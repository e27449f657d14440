/**
 * The offline preference losses of TRL 1.13's DPOTrainer (`DPOConfig.loss_type`, a list with
 * `loss_weights`) as graph builders, checked against TRL's own code on fixed inputs
 * (tests/fixtures/trl/make_trl_dpo_losses.py, tests/ppo/trl_dpo_losses_test.ts).
 *
 * Per pair, with s = Σ log π over the response's tokens, r_c = s(chosen) − s_ref(chosen),
 * r_r the same for the rejected response, h = r_c − r_r, n_c / n_r the response lengths,
 * ε the label smoothing and softplus(−x) = −log σ(x):
 *
 *     sigmoid       −log σ(βh)                                     (DPO, Rafailov et al. 2023)
 *     hinge         relu(1 − βh)                                   (SLiC, Zhao et al. 2023)
 *     ipo           (r_c/n_c − r_r/n_r − 1/(2β))²                  (IPO, Azar et al. 2023)
 *     robust        ((1−ε)(−log σ(βh)) − ε(−log σ(−βh))) / (1 − 2ε) (rDPO, Chowdhury et al. 2024)
 *     nca_pair      −log σ(βr_c) − ½ log σ(−βr_c) − ½ log σ(−βr_r) (NCA, Chen et al. 2024)
 *     bco_pair      −log σ(βr_c) − log σ(−βr_r)
 *     sppo_hard     (r_c − 1/(2β))² + (r_r + 1/(2β))²              (SPPO, Wu et al. 2024)
 *     apo_zero      1 − σ(βr_c) + σ(βr_r)                          (APO, D'Oosterlinck et al. 2024)
 *     apo_down      σ(βr_c) + 1 − σ(βh)
 *     sigmoid_norm  −log σ(β(r_c/n_c − r_r/n_r))
 *     exo_pair      σ(βh)(log σ(βh) − log(1−ε)) + σ(−βh)(log σ(−βh) − log ε)   (EXO, Ji et al. 2024)
 *     discopop      −log σ(βh)·(1 − m) + e^{−βh}·m, m = σ(βh/τ)   (DiscoPOP, Chris Lu et al. 2024)
 *
 * The loss is Σ_k w_k · mean over pairs of loss type k.
 *
 * @example
 * ```ts
 * const { loss } = dpoLoss(g, ["sigmoid", "ipo"], pi, ref, beta, { weights: [0.8, 0.2], counts });
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import { bradleyTerryLoss } from "./reward_model.ts";

/** TRL 1.13 DPOConfig loss types Proxima builds. */
export const DPO_LOSS_TYPES = [
  "sigmoid",
  "hinge",
  "ipo",
  "robust",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "apo_zero",
  "apo_down",
  "sigmoid_norm",
  "exo_pair",
  "discopop",
] as const;
export type DpoLossType = typeof DPO_LOSS_TYPES[number];

/** Sequence log-probs of the chosen and rejected responses (each `[N]`). */
export interface PairLogps {
  chosen: Value;
  rejected: Value;
}

/** Options of {@link dpoLoss} beyond the loss types. */
export interface DpoLossOptions {
  /** Weight per loss type (default 1 each). */
  weights?: readonly number[];
  /**
   * Response lengths (for ipo, sigmoid_norm). Absent: the log-probs given are already per-token
   * means (the single-"ipo" path, whose reference scores are means too).
   */
  counts?: PairLogps;
  /** ε of robust and exo_pair (TRL's label_smoothing). */
  labelSmoothing?: number;
  /** τ of discopop. */
  discopopTau?: number;
}

/** The loss types of a config's `loss` (one or a list). */
export const dpoLossTypes = (loss: DpoLossType | readonly DpoLossType[]): DpoLossType[] =>
  typeof loss === "string" ? [loss] : [...loss];

/**
 * Whether the sequence log-probs are per-token means (a lone "ipo": the historical path, with
 * the reference scored as means too) rather than sums.
 */
export const dpoAveraged = (loss: DpoLossType | readonly DpoLossType[]): boolean => {
  const t = dpoLossTypes(loss);
  return t.length === 1 && t[0] === "ipo";
};

/**
 * The preference loss (Σ_k w_k · mean over pairs) and its diagnostics: `accuracy` (share of
 * pairs with h > 0), `margin` (mean β·h), `chosen_reward` / `rejected_reward` (mean implicit
 * rewards β·r).
 */
export function dpoLoss(
  g: Graph,
  loss: DpoLossType | readonly DpoLossType[],
  pi: PairLogps,
  ref: PairLogps,
  beta: Value,
  o: DpoLossOptions = {},
): { loss: Value; metrics: Record<string, Value> } {
  const types = dpoLossTypes(loss);
  const weights = o.weights ?? types.map(() => 1);
  if (weights.length !== types.length) {
    throw new Error(
      `dpo: ${weights.length} loss_weights for ${types.length} loss types (${types.join(", ")})`,
    );
  }
  const rc = g.sub(pi.chosen, ref.chosen), rr = g.sub(pi.rejected, ref.rejected);
  const h = g.sub(rc, rr);
  const softplusNeg = (x: Value) => bradleyTerryLoss(g, x); // −log σ(x)
  const eps = o.labelSmoothing ?? 0;
  // Per-token-mean margin (ipo, sigmoid_norm): r/n with n ≥ 1, or h itself for mean inputs.
  const meanMargin = () =>
    o.counts
      ? g.sub(g.div(rc, g.max(o.counts.chosen, 1)), g.div(rr, g.max(o.counts.rejected, 1)))
      : h;
  const per = (t: DpoLossType): Value => {
    const bh = g.mul(beta, h);
    switch (t) {
      case "sigmoid":
        return softplusNeg(bh);
      case "hinge":
        return g.relu(g.sub(1, bh));
      case "ipo": {
        const e = g.sub(meanMargin(), g.div(0.5, beta));
        return g.mul(e, e);
      }
      case "robust":
        return g.div(
          g.sub(g.mul(softplusNeg(bh), 1 - eps), g.mul(softplusNeg(g.neg(bh)), eps)),
          1 - 2 * eps,
        );
      case "nca_pair": {
        const c = g.mul(beta, rc), r = g.mul(beta, rr);
        return g.add(
          g.add(softplusNeg(c), g.mul(softplusNeg(g.neg(c)), 0.5)),
          g.mul(softplusNeg(g.neg(r)), 0.5),
        );
      }
      case "bco_pair":
        return g.add(softplusNeg(g.mul(beta, rc)), softplusNeg(g.neg(g.mul(beta, rr))));
      case "sppo_hard": {
        const half = g.div(0.5, beta);
        const a = g.sub(rc, half), b = g.add(rr, half);
        return g.add(g.mul(a, a), g.mul(b, b));
      }
      case "apo_zero":
        return g.add(g.sub(1, g.sigmoid(g.mul(beta, rc))), g.sigmoid(g.mul(beta, rr)));
      case "apo_down":
        return g.add(g.sigmoid(g.mul(beta, rc)), g.sub(1, g.sigmoid(bh)));
      case "sigmoid_norm":
        return softplusNeg(g.mul(beta, meanMargin()));
      case "exo_pair": {
        if (!(eps > 0)) throw new Error("dpo: exo_pair needs label_smoothing > 0");
        const lq = g.neg(softplusNeg(bh)), lqn = g.neg(softplusNeg(g.neg(bh)));
        return g.add(
          g.mul(g.sigmoid(bh), g.sub(lq, Math.log1p(-eps))),
          g.mul(g.sigmoid(g.neg(bh)), g.sub(lqn, Math.log(eps))),
        );
      }
      case "discopop": {
        const m = g.sigmoid(g.div(bh, o.discopopTau ?? 0.05));
        return g.add(g.mul(softplusNeg(bh), g.sub(1, m)), g.mul(g.exp(g.neg(bh)), m));
      }
    }
  };
  let total: Value | null = null;
  types.forEach((t, i) => {
    const term = types.length === 1 && weights[0] === 1
      ? g.reduceMean(per(t)) // one unweighted type: the graph as it always was
      : g.mul(g.reduceMean(per(t)), weights[i]);
    total = total ? g.add(total, term) : term;
  });
  return {
    loss: total!,
    metrics: {
      accuracy: g.reduceMean(g.cast(g.greater(h, 0), h.dtype)),
      margin: g.reduceMean(g.mul(beta, h)),
      chosen_reward: g.reduceMean(g.mul(beta, rc)),
      rejected_reward: g.reduceMean(g.mul(beta, rr)),
    },
  };
}

/** TRL 1.13 KTOConfig loss types. */
export const KTO_LOSS_TYPES = ["kto", "apo_zero_unpaired"] as const;
export type KtoLossType = typeof KTO_LOSS_TYPES[number];

/**
 * KTO's reference point z = max(0, mean(log π(y'|x) − log π_ref(y'|x))) over the KL batch (each
 * prompt with another example's completion), a constant of the loss (TRL detaches it).
 */
export function ktoReferencePoint(klLogps: ArrayLike<number>, refKlLogps: ArrayLike<number>) {
  let s = 0;
  for (let i = 0; i < klLogps.length; i++) s += klLogps[i] - refKlLogps[i];
  return Math.max(0, s / Math.max(klLogps.length, 1));
}

/**
 * KTO (Ethayarajh et al. 2024, Eq. 7) on unpaired examples, as TRL 1.13's KTOTrainer: with
 * r = s − s_ref (summed response log-probs) and the reference point `z`,
 *
 *     desirable (label 1):   w_d · (1 − σ(β(r − z)))     apo_zero_unpaired: w_d · (1 − σ(βr))
 *     undesirable (label 0): w_u · (1 − σ(β(z − r)))     apo_zero_unpaired: w_u · σ(βr)
 *
 * averaged over the examples. `labels` is 1 / 0 per example (same dtype as the log-probs).
 */
export function ktoLoss(
  g: Graph,
  lossType: KtoLossType,
  logps: Value,
  refLogps: Value,
  labels: Value,
  z: Value,
  beta: Value,
  o: { desirableWeight?: number; undesirableWeight?: number } = {},
): { loss: Value; metrics: Record<string, Value> } {
  const r = g.sub(logps, refLogps);
  const [good, bad] = lossType === "kto"
    ? [g.sub(1, g.sigmoid(g.mul(beta, g.sub(r, z)))), g.sub(1, g.sigmoid(g.mul(beta, g.sub(z, r))))]
    : [g.sub(1, g.sigmoid(g.mul(beta, r))), g.sigmoid(g.mul(beta, r))];
  const per = g.add(
    g.mul(g.mul(good, labels), o.desirableWeight ?? 1),
    g.mul(g.mul(bad, g.sub(1, labels)), o.undesirableWeight ?? 1),
  );
  return {
    loss: g.reduceMean(per),
    metrics: { reward: g.reduceMean(g.mul(beta, r)) },
  };
}

/** What a `dpo` section cannot run, found at planning: {key, cause, fix}. */
export function dpoProblems(
  dpo: { loss: DpoLossType | readonly DpoLossType[]; loss_weights: readonly number[] | null } & {
    label_smoothing: number;
  },
): { key: string; cause: string; fix: string }[] {
  const types = dpoLossTypes(dpo.loss);
  const out: { key: string; cause: string; fix: string }[] = [];
  if (dpo.loss_weights && dpo.loss_weights.length !== types.length) {
    out.push({
      key: "dpo.loss_weights",
      cause: `${dpo.loss_weights.length} weights for ${types.length} loss types (${
        types.join(", ")
      })`,
      fix: `give one weight per entry of dpo.loss (${types.length}), or null`,
    });
  }
  if (types.includes("exo_pair") && !(dpo.label_smoothing > 0)) {
    out.push({
      key: "dpo.label_smoothing",
      cause: 'dpo.loss "exo_pair" needs label_smoothing > 0 (it takes log ε)',
      fix: "set dpo.label_smoothing to e.g. 0.001",
    });
  }
  return out;
}
