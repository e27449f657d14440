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
 * methodOf({ algorithm: "ppo", ppo: { advantage: "rloo" } }); // RLOO's record's name
 * ```
 * @module
 */
import { concat, points, type Sweep } from "../experiment/sweep.ts";
import { methodOfConfig, type MethodRecord, methodRecord, METHODS } from "../ppo/methods/mod.ts";
import type { Citation } from "./papers.ts";
import { SENTIMENT_ALGORITHMS } from "../tasks/sentiment/schema.ts";

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

/** How a task's methods table measures the records: which keys it has, its group size. */
export interface MethodsTask {
  /** Whether the task has the `algorithm` key (preference pairs: the offline methods run). */
  offline: boolean;
  /**
   * The offline `algorithm` values the task accepts (sentiment: "dpo" and "kto", the latter on
   * its preference pairs unpaired): an offline record defining another is not measured there.
   */
  algorithms?: readonly string[];
  /** `samples_per_prompt` for the grouped methods (null: the task's own). */
  samplesPerPrompt: number | null;
}

/** Whether two records are made by the same config keys (`defines`). */
const sameDefines = (a: MethodRecord, b: MethodRecord) => {
  const ka = Object.keys(a.defines), kb = Object.keys(b.defines);
  return ka.length === kb.length &&
    ka.every((k) => k in b.defines && b.defines[k] === a.defines[k]);
};

/**
 * The config a methods table measures a record with. A record that its `defines` alone make
 * (the first with those keys: PPO, GRPO, Dr. GRPO, RLOO, REINFORCE++, DPO, IPO) runs on those
 * keys with the task's β and loss aggregation, critic-free ⇒ no whitening, the KL placed where
 * the record places it (`method: null`: nothing implied), so the rows compare estimators, not
 * β. A record that refines another's keys (DAPO, GSPO, CISPO: GRPO's estimator with their own
 * clipping, loss type and KL) runs as its record sets it (`method`). Grouped methods get the
 * task's `samplesPerPrompt`.
 */
export function measuredConfig(m: MethodRecord, task: MethodsTask): Record<string, unknown> {
  const group = m.grouping === "prompt" && task.samplesPerPrompt !== null
    ? { samples_per_prompt: task.samplesPerPrompt }
    : {};
  if (METHODS.find((x) => sameDefines(x, m)) !== m) return { method: m.name, ...group };
  const keys = Object.fromEntries(
    Object.entries(m.defines).filter(([k]) => task.offline || k !== "algorithm"),
  );
  return {
    method: null,
    ...keys,
    ...group,
    ...(m.online && !m.holds.critic ? { "ppo.whiten_advantages": false } : {}),
    ...(m.online && m.kl.placement === "loss"
      ? { "ppo.kl.placement": m.kl.placement, "ppo.kl.estimator": m.kl.estimator }
      : {}),
  };
}

/** One row per record that runs on the task (online ones only without preference pairs). */
export function methodsFor(task: MethodsTask): MethodDef[] {
  const runs = (m: MethodRecord) =>
    m.online || (task.offline && (typeof m.defines.algorithm !== "string" ||
      (task.algorithms ?? []).includes(m.defines.algorithm)));
  return METHODS.filter(runs).map((m) => def(m.name, measuredConfig(m, task)));
}

/**
 * The methods on `sentiment` (batch 32), one per record: PPO as the task configures it (GAE,
 * value head, KL in the reward); GRPO and Dr. GRPO with 8 prompts × 4 samples and the KL (k3)
 * in the loss; RLOO with 8 × 4 and the KL in the reward; REINFORCE++ with 32 × 1 and the KL in
 * the reward; DAPO, GSPO and CISPO as their records set them; DPO and IPO offline on the reward
 * model's pairs ({@link measuredConfig}).
 */
export const SENTIMENT_METHODS: readonly MethodDef[] = methodsFor({
  offline: true,
  // The task's own offline `algorithm` values (its schema's enum, less online "ppo").
  algorithms: SENTIMENT_ALGORITHMS.filter((a) => a !== "ppo"),
  samplesPerPrompt: 4,
});

/**
 * The online methods on `jsx` (5 prompts × samples_per_prompt 4 per update, its default; jsx
 * has no preference pairs, so no offline method), configured as on sentiment.
 */
export const JSX_METHODS: readonly MethodDef[] = methodsFor({
  offline: false,
  samplesPerPrompt: null,
});

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
