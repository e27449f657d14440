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
import {
  AHMADIAN_2024,
  type Citation,
  HU_2025,
  LIU_2025,
  OUYANG_2022,
  RAFAILOV_2023,
  SHAO_2024,
} from "./papers.ts";

export type MethodId = "ppo" | "grpo" | "dr_grpo" | "rloo" | "reinforce_pp" | "dpo";

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
const KL_IN_LOSS = { "ppo.kl.placement": "loss", "ppo.kl.estimator": "k3" } as const;

const CLAIMS: Record<MethodId, MethodDef["claim"]> = {
  ppo: {
    models: 4,
    which: "policy, value, reference, reward model",
    online: true,
    memory: "highest (a value model beside the policy)",
    quality: "the strong baseline, costly to tune",
  },
  grpo: {
    models: 3,
    which: "policy, reference, reward model",
    online: true,
    memory: "below PPO (no value model)",
    quality: "PPO-level with groups of samples per prompt",
  },
  dr_grpo: {
    models: 3,
    which: "policy, reference, reward model",
    online: true,
    memory: "as GRPO",
    quality: "as GRPO, shorter wrong answers (no length bias)",
  },
  rloo: {
    models: 3,
    which: "policy, reference, reward model",
    online: true,
    memory: "below PPO (no value model)",
    quality: "above PPO and DPO (Ahmadian et al. 2024)",
  },
  reinforce_pp: {
    models: 3,
    which: "policy, reference, reward model",
    online: true,
    memory: "below PPO (no value model)",
    quality: "GRPO-level with one sample per prompt",
  },
  dpo: {
    models: 2,
    which: "policy, reference",
    online: false,
    memory: "lowest (no reward or value model, no sampling)",
    quality: "below online RL at equal data",
  },
};

const PAPERS: Record<MethodId, Citation> = {
  ppo: OUYANG_2022,
  grpo: SHAO_2024,
  dr_grpo: LIU_2025,
  rloo: AHMADIAN_2024,
  reinforce_pp: HU_2025,
  dpo: RAFAILOV_2023,
};

const LABELS: Record<MethodId, string> = {
  ppo: "PPO",
  grpo: "GRPO",
  dr_grpo: "Dr. GRPO",
  rloo: "RLOO",
  reinforce_pp: "REINFORCE++",
  dpo: "DPO",
};

/** The order methods are listed in. */
export const METHOD_ORDER: readonly MethodId[] = [
  "ppo",
  "grpo",
  "dr_grpo",
  "rloo",
  "reinforce_pp",
  "dpo",
];

const def = (id: MethodId, config: Record<string, unknown>): MethodDef => ({
  id,
  label: LABELS[id],
  config,
  claim: CLAIMS[id],
  paper: PAPERS[id],
});

/**
 * The methods on `sentiment` (batch 32): PPO as the task configures it (GAE, value head, KL in
 * the reward); GRPO and Dr. GRPO with 8 prompts × 4 samples and the KL (k3) in the loss; RLOO
 * with 8 × 4 and the KL in the reward; REINFORCE++ with 32 × 1 and the KL in the reward; DPO
 * offline on the reward model's pairs.
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
];

/**
 * The online methods on `jsx` (5 prompts × samples_per_prompt 4 per update, its default; jsx
 * has no preference pairs, so no DPO): as on sentiment.
 */
export const JSX_METHODS: readonly MethodDef[] = [
  def("ppo", { "ppo.advantage": "gae" }),
  def("grpo", { "ppo.advantage": "grpo", ...CRITIC_FREE, ...KL_IN_LOSS }),
  def("dr_grpo", { "ppo.advantage": "dr_grpo", ...CRITIC_FREE, ...KL_IN_LOSS }),
  def("rloo", { "ppo.advantage": "rloo", ...CRITIC_FREE }),
  def("reinforce_pp", { "ppo.advantage": "reinforce_pp", ...CRITIC_FREE }),
];

/** One sweep point per method (combine with seeds: `grid(methodsSweep(m), { seed })`). */
export function methodsSweep(methods: readonly MethodDef[]): Sweep {
  return concat(...methods.map((m) => points([m.config])));
}

/** A trial's method from its resolved config. */
export function methodOf(config: Record<string, unknown>): MethodId {
  if (config.algorithm === "dpo") return "dpo";
  const adv = (config.ppo as { advantage?: string } | undefined)?.advantage ?? "gae";
  return adv === "gae" ? "ppo" : adv as MethodId;
}

/** The label, claims and paper of a method id. */
export function methodDef(id: MethodId): MethodDef {
  return def(id, {});
}
