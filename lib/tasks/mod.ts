/**
 * Tasks: language-model problems for the shared PPO core (prompts, rewards, the policy and
 * its frozen reference), the counterpart of `lib/envs` for classic control.
 *
 * - the task contract (trial kind, stage definitions, run context) and the stage cache live one
 *   layer down, in lib/trial (shared with lib/envs); re-exported here for task authors;
 * - the LM policy-gradient problem (`createLmProblem`) lives in lib/ppo; `rewards.ts`: named, weighted reward
 *   components; `lm_task.ts`: `defineLmTask`, the one template of an LM task's trial (stages,
 *   problem, evaluate before and after PPO, eval.json, summary) as a trial function and kind;
 *   `byte_lm.ts`, `inputs.ts`, `trial_files.ts`: what the byte-level tasks share;
 * - one folder per task (world or corpus, schema, stages, rewards, task): `sentiment/`,
 *   `jsx/`; the list of tasks every command uses is lib/experiment/tasks.ts.
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
} from "../ppo/lm_problem.ts";
export * from "../trial/contract.ts";
export * from "../trial/stage_cache.ts";
export * from "./lm_task.ts";
export * from "./byte_lm.ts";
export * from "./inputs.ts";
export * from "./trial_files.ts";
export * from "./rewards.ts";
export * from "./sentiment/mod.ts";
export * from "./jsx/mod.ts";
export * from "./sandbox.ts";
export * from "./lm/mod.ts";
export * from "./reward_modules.ts";
export * from "./verifiable.ts";
export * from "./rlvr/mod.ts";
