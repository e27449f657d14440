/**
 * The offline methods' trial path: DPO (any of TRL's loss types, lib/ppo/dpo.ts) on preference
 * pairs and KTO on unpaired examples, trained by one loop without a rollout; the task hands
 * over the policy, the reference and the data and keeps the evaluation.
 * @module
 */
export * from "./loop.ts";
export * from "./kto.ts";
export * from "./problem.ts";
