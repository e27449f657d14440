/**
 * Schulman et al. 2017, Table 1 on the RLHF task `sentiment`: the eleven surrogate objectives,
 * 3 seeds each, 20 PPO updates of 32 responses (the task's defaults otherwise).
 *
 * Every setting optimises the reward model alone: `ppo.kl.beta` is 0 for the clipping / no
 * clipping settings, and the KL-penalty settings use the task's one `ppo.kl` section for the
 * penalty to the OLD policy (Schulman's §4), which also turns off the KL-to-reference term in
 * the reward (lib/ppo/trainer.ts: `klInReward` is false for `ppo.loss = "kl-penalty"`). So the
 * eleven settings differ only in the surrogate. The penalty is the k3 estimate of
 * KL(π_old‖π) per token (the LM rollout keeps no full-vocabulary log-probs for an exact KL).
 * 33 trials, about 3 minutes on two cores once the SFT and reward-model stages are cached.
 *
 *   deno task sweep experiments/reproduce/ppo-table1-sentiment.ts
 */
import { defineExperiment, grid } from "../../lib/experiment/mod.ts";
import { table1Sweep } from "../../lib/report/reproduce.ts";

export default defineExperiment({
  name: "reproduce-ppo-table1-sentiment",
  task: "sentiment",
  description: "Schulman et al. 2017 Table 1 surrogate objectives on the RLHF task",
  base: { updates: 20, batch: 32, ppo: { kl: { beta: 0, control: "fixed", estimator: "k3" } } },
  sweep: grid(table1Sweep(), { seed: [1, 2, 3] }),
  metrics: ["rm_score", "gold_score", "kl", "kl_penalty:mean", "beta"],
});
