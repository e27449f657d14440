/**
 * KL penalty strength on the RLHF default task (`sentiment`): per-token −β·KL(π‖π_ref) in the
 * reward (Ziegler et al. 2019), fixed β swept over [0, 0.03, 0.1, 0.3], three seeds each.
 *
 * Every trial shares one SFT policy and one reward model (the stage cache trains them once,
 * under results/.stages/), then runs 20 PPO updates of 32 responses and evaluates the policy
 * before and after on the same 128 prompts: reward-model score, hidden gold score, KL to the
 * reference. Expect KL to fall as β rises, and the RM score to run ahead of the gold score at
 * small β (reward over-optimisation). About 5 minutes on two cores.
 *
 *   deno task sweep experiments/kl.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "kl",
  task: "sentiment",
  base: { updates: 20, ppo: { kl: { control: "fixed", placement: "reward", estimator: "k1" } } },
  sweep: grid({ "ppo.kl.beta": [0, 0.03, 0.1, 0.3], seed: [1, 2, 3] }),
  metrics: ["kl", "rm_score", "gold_score", "gold_score_before", "clipfrac:mean"],
});
