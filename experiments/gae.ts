/**
 * GAE: discount γ × λ (Schulman et al. 2016), γ ∈ {0.95, 0.99}, λ ∈ {0.9, 0.95, 1}, two seeds.
 *
 * Runs on CartPole-v1 for now, with a small budget (12 trials of 60k steps: about 20 s on two
 * cores). It moves to the RLHF `sentiment` task (where γ = 1 is the usual choice and λ matters
 * for per-token credit) when that task lands in lib/tasks.
 *
 *   deno task sweep experiments/gae.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "gae",
  task: "CartPole-v1",
  base: { total_steps: 60_000, envs: 4, steps: 128 },
  sweep: grid({ "ppo.gamma": [0.95, 0.99], "ppo.lambda": [0.9, 0.95, 1], seed: [1, 2] }),
  metrics: ["return", "explained_variance:mean", "value_loss:mean"],
});
