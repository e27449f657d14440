/**
 * The PPO core: config, GAE and the critic-free advantage estimators, KL estimators and
 * controllers, losses, the train step, trainer; reward-model training and DPO.
 * @module
 */
export * from "./config.ts";
export * from "./gae.ts";
export * from "./advantages.ts";
export * from "./kl.ts";
export * from "./losses.ts";
export * from "./checkpoint.ts";
export * from "./trainer.ts";
export * from "./reward_model.ts";
export * from "./dpo.ts";
export * from "./train_step.ts";
