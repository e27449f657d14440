/**
 * Seeded, vectorised, checkpointable ports of Gymnasium's classic-control envs (CartPole-v1,
 * Acrobot-v1) with same-step autoreset. See `env.ts` for the interface and its semantics.
 *
 * @example
 * ```ts
 * import { makeVecEnv } from "./mod.ts";
 * const env = makeVecEnv("CartPole-v1", 4);
 * env.reset(1);
 * const { obs, rewards, terminated, truncated, episodes } = env.step([0, 1, 0, 1]);
 * ```
 * @module
 */
export type { EnvSpec, EnvStepResult, EpisodeRecord, VecEnv, VecEnvState } from "./env.ts";
export { ClassicVecEnv } from "./env.ts";
export { CARTPOLE_SPEC, CartPoleVecEnv } from "./cartpole.ts";
export { ACROBOT_SPEC, AcrobotVecEnv } from "./acrobot.ts";
export { ENV_ALIASES, ENV_IDS, type EnvId, envSpec, makeVecEnv, resolveEnvId } from "./registry.ts";
export { createEnvProblem, type EnvProblem, type EnvProblemOptions } from "./ppo.ts";
export * from "./run.ts";
export { ACROBOT_KIND, CARTPOLE_KIND, ENV_METRIC_COLUMNS, type EnvTrialConfig } from "./kind.ts";
