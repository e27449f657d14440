/**
 * KL penalty strength: PPO's "adaptive KL penalty" surrogate (Schulman et al. 2017, Table 1:
 * ratio·A − β·KL(π_old‖π)) with a fixed β swept over [0.3, 1, 3], three seeds each.
 *
 * Runs on CartPole-v1 for now, with a small budget (9 trials of 100k steps: about 20 s on
 * two cores). It moves to the RLHF `sentiment` task (β of the KL to the reference policy, in
 * the reward) when that task lands in lib/tasks.
 *
 *   deno task sweep experiments/kl.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "kl",
  task: "CartPole-v1",
  base: {
    total_steps: 100_000,
    envs: 4,
    steps: 128,
    ppo: { loss: "kl-penalty", kl: { estimator: "k2", control: "fixed" } },
  },
  sweep: grid({ "ppo.kl.beta": [0.3, 1, 3], seed: [1, 2, 3] }),
  metrics: ["return", "kl_penalty:mean", "clipfrac:mean", "entropy"],
});
