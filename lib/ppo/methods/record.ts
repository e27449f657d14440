/**
 * What a method is, as data: one record per method (lib/ppo/methods/<name>.ts), read by config
 * resolution (`method: "grpo"` sets its defaults: {@link resolveMethod} in ./mod.ts), the
 * train-step graph (through the config keys the record sets), planning checks and the report's
 * methods table. Adding a method is its record (and, if it is new, its loss), nothing else.
 *
 * @example
 * ```ts
 * const GRPO = onlineMethod({ name: "grpo", label: "GRPO", advantage: "grpo", ... });
 * ```
 * @module
 */
import type { AdvantageEstimator, KlConfig, LossType } from "../config.ts";

/** The paper that defines a method (the shape lib/report prints). */
export interface MethodCitation {
  /** Short reference, e.g. "Shao et al. 2024". */
  short: string;
  /** Authors, title, venue. */
  full: string;
  /** Where in the paper the method is defined. */
  where: string;
  url: string;
}

/** A method: what it holds, how it estimates advantages and forms its loss, its paper's defaults. */
export interface MethodRecord {
  /** What `method` in a config names. */
  name: string;
  label: string;
  citation: MethodCitation;
  /** Samples from the policy while training (online RL) or learns from fixed data. */
  online: boolean;
  /** Models held while training besides the policy. */
  holds: { critic: boolean; reference: boolean; rewardModel: boolean };
  /** "prompt": groups of samples_per_prompt responses to one prompt share a baseline. */
  grouping: "none" | "prompt";
  /** The advantage estimator (`ppo.advantage`); null for offline methods. */
  advantage: AdvantageEstimator | null;
  /** Importance-ratio level; null: the task's ("token"). */
  ratio: "token" | "sequence" | null;
  /** The paper's clipping: ε (`ppo.clip`), ε_high, δ; null: the task's. */
  clipping: { epsilon: number | null; epsilonHigh: number | null; delta: number | null };
  /** Loss aggregation / objective (`ppo.loss_type`, or `dpo.loss` offline); null: the task's. */
  lossType: LossType | string | null;
  /**
   * KL to the reference: where it acts ("none": no reference, β = 0; "implicit": DPO's β in
   * its loss), the estimator and β the paper uses (null: the task's).
   */
  kl: {
    placement: KlConfig["placement"] | "none" | "implicit";
    estimator: KlConfig["estimator"] | null;
    beta: number | null;
  };
  /** Config keys that make the method: a config setting one differently contradicts it. */
  defines: Record<string, unknown>;
  /** Keys of `defines` a task must have for the method to run there (else it is refused). */
  requires: readonly string[];
  /** The paper's settings as config keys, applied where a config sets nothing. */
  defaults: Record<string, unknown>;
  /** What the literature claims of it (the seed table of lib/report/methods.ts). */
  claim: { memory: string; quality: string };
}

/** The parts of an online method's record that are not derived. */
export type OnlineMethodSpec =
  & Omit<MethodRecord, "online" | "defines" | "requires" | "defaults" | "advantage" | "clipping">
  & {
    advantage: AdvantageEstimator;
    clipping?: Partial<MethodRecord["clipping"]>;
    /** Further paper settings as config keys. */
    extra?: Record<string, unknown>;
  };

/**
 * An online (policy-gradient) method's record: `ppo.advantage` defines it; its structured
 * fields become config defaults (critic-free ⇒ no advantage whitening: they normalise
 * themselves).
 */
export function onlineMethod(s: OnlineMethodSpec): MethodRecord {
  const clipping = { epsilon: null, epsilonHigh: null, delta: null, ...s.clipping };
  const defaults: Record<string, unknown> = {};
  const put = (k: string, v: unknown) => {
    if (v !== null && v !== undefined) defaults[k] = v;
  };
  if (!s.holds.critic) put("ppo.whiten_advantages", false);
  if (s.kl.placement === "none") put("ppo.kl.beta", 0);
  else if (s.kl.placement !== "implicit") {
    put("ppo.kl.placement", s.kl.placement);
    put("ppo.kl.estimator", s.kl.estimator);
    put("ppo.kl.beta", s.kl.beta);
  }
  put("ppo.loss_type", s.lossType);
  put("ppo.importance_sampling_level", s.ratio);
  put("ppo.clip", clipping.epsilon);
  put("ppo.epsilon_high", clipping.epsilonHigh);
  put("ppo.delta", clipping.delta);
  Object.assign(defaults, s.extra ?? {});
  const { extra: _, ...rest } = s;
  return {
    ...rest,
    online: true,
    clipping,
    defines: { algorithm: "ppo", "ppo.advantage": s.advantage },
    requires: ["ppo.advantage"],
    defaults,
  };
}
