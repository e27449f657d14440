/**
 * Clipping range ε of PPO's clipped surrogate on the RLHF default task (`sentiment`), three
 * seeds each, β = 0.1 (fixed, KL to the reference in the reward). Smaller ε takes smaller
 * steps per update: watch clipfrac, the per-update KL to the old policy (approx_kl_k3) and how
 * far the policy gets (RM and gold score, KL to the reference) in 20 updates.
 *
 *   deno task sweep experiments/clip.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "clip",
  task: "sentiment",
  base: { updates: 20, ppo: { loss: "clip" } },
  sweep: grid({ "ppo.clip": [0.1, 0.2, 0.3], seed: [1, 2, 3] }),
  metrics: ["rm_score", "gold_score", "kl", "clipfrac:mean", "approx_kl_k3:mean"],
});
