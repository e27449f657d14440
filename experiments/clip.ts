/**
 * Clip range ε of PPO's clipped surrogate (Schulman et al. 2017): ε ∈ {0.1, 0.2, 0.3}, three
 * seeds each, everything else CleanRL ppo.py's defaults.
 *
 * Runs on CartPole-v1 for now, with a small budget (9 trials of 100k steps: about 20 s on two
 * cores). It moves to the RLHF `sentiment` task when that task lands in lib/tasks.
 *
 *   deno task sweep experiments/clip.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "clip",
  task: "CartPole-v1",
  base: { total_steps: 100_000, envs: 4, steps: 128, ppo: { loss: "clip" } },
  sweep: grid({ "ppo.clip": [0.1, 0.2, 0.3], seed: [1, 2, 3] }),
  metrics: ["return", "clipfrac:mean", "approx_kl_k3:mean", "solved_at"],
});
