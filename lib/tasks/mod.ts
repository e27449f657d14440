/**
 * Tasks: language-model problems for the shared PPO core (prompts, rewards, the policy and
 * its frozen reference), the counterpart of `lib/envs` for classic control.
 *
 * @example
 * ```ts
 * import { createLmProblem } from "./mod.ts";
 * const problem = await createLmProblem({ model, task, cfg, seed: 1, batch: 32, maxNewTokens: 8, padTokenId: 0 });
 * ```
 * @module
 */
export {
  createLmProblem,
  type LmProblem,
  type LmProblemOptions,
  type LmScores,
  type LmSequences,
  type LmTask,
} from "./lm_ppo.ts";
export * from "./byte_lm.ts";
export * from "./rewards.ts";
export * from "./sentiment.ts";
export * from "./jsx.ts";
export * from "./sandbox.ts";
