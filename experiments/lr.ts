/**
 * Learning rate × PPO epochs per update: lr ∈ {1e-4, 2.5e-4, 1e-3} × epochs ∈ {1, 4, 10}, one
 * seed (more epochs reuse each rollout more: faster learning until the policy moves too far).
 *
 * Runs on CartPole-v1 for now, with a small budget (9 trials of 50k steps: about 20 s on two
 * cores). It moves to the RLHF `sentiment` task when that task lands in lib/tasks.
 *
 *   deno task sweep experiments/lr.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "lr",
  task: "CartPole-v1",
  base: { total_steps: 50_000, envs: 4, steps: 128, seed: 1 },
  sweep: grid({ "ppo.lr": [1e-4, 2.5e-4, 1e-3], "ppo.epochs": [1, 4, 10] }),
  metrics: ["return", "approx_kl_k3:mean", "clipfrac:mean"],
});
