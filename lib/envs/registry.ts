/**
 * Name → environment lookup, so configs and CLIs can say `"CartPole-v1"` or `"cartpole"`.
 *
 * @example
 * ```ts
 * import { makeVecEnv } from "./registry.ts";
 * const env = makeVecEnv("acrobot", 16); // AcrobotVecEnv, spec.id === "Acrobot-v1"
 * ```
 * @module
 */
import { ACROBOT_SPEC, AcrobotVecEnv } from "./acrobot.ts";
import { CARTPOLE_SPEC, CartPoleVecEnv } from "./cartpole.ts";
import type { EnvSpec, VecEnv } from "./env.ts";

/** Gymnasium ids of every registered environment. */
export const ENV_IDS = ["CartPole-v1", "Acrobot-v1"] as const;
/** A registered Gymnasium id. */
export type EnvId = typeof ENV_IDS[number];
/** Accepted short names (matched case-insensitively). */
export const ENV_ALIASES: Readonly<Record<string, EnvId>> = {
  cartpole: "CartPole-v1",
  acrobot: "Acrobot-v1",
};

const ENTRIES: Record<EnvId, { spec: EnvSpec; make: (num: number) => VecEnv }> = {
  "CartPole-v1": { spec: CARTPOLE_SPEC, make: (num) => new CartPoleVecEnv(num) },
  "Acrobot-v1": { spec: ACROBOT_SPEC, make: (num) => new AcrobotVecEnv(num) },
};

/** Map an id or short name to its Gymnasium id; throws naming the known ones if unknown. */
export function resolveEnvId(name: string): EnvId {
  if ((ENV_IDS as readonly string[]).includes(name)) return name as EnvId;
  const alias = ENV_ALIASES[String(name).toLowerCase()];
  if (alias) return alias;
  const known = ENV_IDS.map((id) =>
    `${id} (${Object.keys(ENV_ALIASES).filter((k) => ENV_ALIASES[k] === id).join(", ")})`
  );
  throw new Error(`Unknown env id ${JSON.stringify(name)}; known: ${known.join(", ")}`);
}

/** The spec of an env, by id or short name. */
export function envSpec(name: string): EnvSpec {
  return ENTRIES[resolveEnvId(name)].spec;
}

/** Build `num` copies of an env (by Gymnasium id or short name); call `reset(seed)` before use. */
export function makeVecEnv(name: string, num: number): VecEnv {
  return ENTRIES[resolveEnvId(name)].make(num);
}
