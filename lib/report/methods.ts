/**
 * The RLHF methods that `experiments/methods.ts` (sentiment) and `experiments/methods-jsx.ts`
 * run side by side, as config points over one task config, and what the literature claims of
 * each: the project's seed table (models held, online or offline, memory) and, where a paper
 * reports numbers, those ({@link AHMADIAN_TABLE1}, {@link HU_TABLE1}).
 *
 * A trial's method is read back from its resolved config ({@link methodOf}), never from its
 * position in the sweep, so a table can be built from any set of bundles.
 *
 * @example
 * ```ts
 * const sweep = grid(methodsSweep(SENTIMENT_METHODS), { seed: [1, 2, 3] });
 * methodOf({ algorithm: "ppo", ppo: { advantage: "rloo" } }); // "rloo"
 * ```
 * @module
 */
import { concat, points, type Sweep } from "../experiment/sweep.ts";
import { methodOfConfig, methodRecord, METHODS } from "../ppo/methods/mod.ts";
import type { Citation } from "./papers.ts";

/** A method's name (a record's `name`: lib/ppo/methods). */
export type MethodId = string;

/** A method: how it is configured and what is claimed of it. */
export interface MethodDef {
  id: MethodId;
  label: string;
  /** Dotted config keys set on top of the experiment's base config. */
  config: Record<string, unknown>;
  /** The seed table's claims (folklore until measured). */
  claim: {
    /** Models held while training. */
    models: number;
    which: string;
    online: boolean;
    memory: string;
    quality: string;
  };
  /** The paper that defines it. */
  paper: Citation;
}

const CRITIC_FREE = { "ppo.whiten_advantages": false } as const;
/** Methods measured with `method: <name>` alone: their records' paper settings. */
const PAPER_METHODS = ["dapo", "gspo", "cispo"] as const;
const KL_IN_LOSS = { "ppo.kl.placement": "loss", "ppo.kl.estimator": "k3" } as const;

/** The order methods are listed in: the records' order. */
export const METHOD_ORDER: readonly MethodId[] = METHODS.map((m) => m.name);

/** A method's label, claims and paper, from its record. */
const def = (id: MethodId, config: Record<string, unknown>): MethodDef => {
  const m = methodRecord(id);
  if (!m) throw new Error(`methods: no method record "${id}" (lib/ppo/methods)`);
  const which = [
    "policy",
    ...(m.holds.critic ? ["value"] : []),
    ...(m.holds.reference ? ["reference"] : []),
    ...(m.holds.rewardModel ? ["reward model"] : []),
  ];
  return {
    id,
    label: m.label,
    config,
    claim: {
      models: which.length,
      which: which.join(", "),
      online: m.online,
      memory: m.claim.memory,
      quality: m.claim.quality,
    },
    paper: m.citation,
  };
};

/**
 * The methods on `sentiment` (batch 32): PPO as the task configures it (GAE, value head, KL in
 * the reward); GRPO and Dr. GRPO with 8 prompts × 4 samples and the KL (k3) in the loss; RLOO
 * with 8 × 4 and the KL in the reward; REINFORCE++ with 32 × 1 and the KL in the reward; DPO
 * offline on the reward model's pairs. (The measured configs of the methods table: they keep
 * the task's β and loss aggregation so that the rows compare estimators, not β.)
 */
export const SENTIMENT_METHODS: readonly MethodDef[] = [
  def("ppo", { algorithm: "ppo", "ppo.advantage": "gae" }),
  def("grpo", {
    algorithm: "ppo",
    "ppo.advantage": "grpo",
    samples_per_prompt: 4,
    ...CRITIC_FREE,
    ...KL_IN_LOSS,
  }),
  def("dr_grpo", {
    algorithm: "ppo",
    "ppo.advantage": "dr_grpo",
    samples_per_prompt: 4,
    ...CRITIC_FREE,
    ...KL_IN_LOSS,
  }),
  def("rloo", { algorithm: "ppo", "ppo.advantage": "rloo", samples_per_prompt: 4, ...CRITIC_FREE }),
  def("reinforce_pp", { algorithm: "ppo", "ppo.advantage": "reinforce_pp", ...CRITIC_FREE }),
  def("dpo", { algorithm: "dpo" }),
  // The newer ones as their records set them (the papers' clipping, loss type and KL).
  ...PAPER_METHODS.map((id) => def(id, { method: id, samples_per_prompt: 4 })),
];

/**
 * The online methods on `jsx` (5 prompts × samples_per_prompt 4 per update, its default; jsx
 * has no preference pairs, so no DPO): as on sentiment. DAPO, GSPO and CISPO run as their
 * records set them (`method`).
 */
export const JSX_METHODS: readonly MethodDef[] = [
  def("ppo", { "ppo.advantage": "gae" }),
  def("grpo", { "ppo.advantage": "grpo", ...CRITIC_FREE, ...KL_IN_LOSS }),
  def("dr_grpo", { "ppo.advantage": "dr_grpo", ...CRITIC_FREE, ...KL_IN_LOSS }),
  def("rloo", { "ppo.advantage": "rloo", ...CRITIC_FREE }),
  def("reinforce_pp", { "ppo.advantage": "reinforce_pp", ...CRITIC_FREE }),
  ...PAPER_METHODS.map((id) => def(id, { method: id })),
];

/** One sweep point per method (combine with seeds: `grid(methodsSweep(m), { seed })`). */
export function methodsSweep(methods: readonly MethodDef[]): Sweep {
  return concat(...methods.map((m) => points([m.config])));
}

/** A trial's method from its resolved config (its `method`, else the keys that define one). */
export function methodOf(config: Record<string, unknown>): MethodId {
  return methodOfConfig(config);
}

/** The label, claims and paper of a method id. */
export function methodDef(id: MethodId): MethodDef {
  return def(id, {});
}
