/**
 * Schulman et al. 2017, Table 1 on the RLHF task `sentiment`: the eleven surrogate objectives,
 * 3 seeds each, 20 PPO updates of 32 responses, otherwise the task's defaults, including its
 * KL to the reference policy in the reward (β = 0.1, fixed; Ziegler et al.). So every setting
 * is an ordinary RLHF run and the eleven differ only in the surrogate: the KL-penalty settings
 * add β_penalty·KL(π_old‖π) (`ppo.penalty`, the k3 estimate per token: the LM rollout keeps no
 * full-vocabulary log-probs for an exact KL) on top of the reference KL in the reward.
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
  base: { updates: 20, batch: 32 },
  sweep: grid(table1Sweep(), { seed: [1, 2, 3] }),
  metrics: ["rm_score", "gold_score", "kl", "kl_penalty:mean", "penalty_beta"],
});
