/**
 * The PPO core: config, GAE and the critic-free advantage estimators, KL estimators and
 * controllers, losses (PPO's and TRL's policy-gradient loss types), the train step, trainer;
 * reward-model training, DPO and its loss types; the methods as records; the LM
 * policy-gradient problem; the offline methods' problem (DPO, KTO: lib/ppo/offline).
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
export * from "./policy_loss.ts";
export * from "./shaping.ts";
export {
  DPO_LOSS_TYPES,
  type DpoLossOptions,
  dpoLossTypes,
  KTO_LOSS_TYPES,
  ktoLoss,
  type KtoLossType,
  ktoReferencePoint,
} from "./dpo_losses.ts";
export * from "./methods/mod.ts";
export * from "./lm_problem.ts";
export * from "./offline/mod.ts";
