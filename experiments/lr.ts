/**
 * Learning rate × PPO epochs per batch on the RLHF default task (`sentiment`), one seed: the
 * two knobs that set how far each update moves the policy. Watch the per-update KL to the old
 * policy (approx_kl_k3), clipfrac and the KL to the reference next to the scores.
 *
 *   deno task sweep experiments/lr.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "lr",
  task: "sentiment",
  base: { updates: 20, seed: 1 },
  sweep: grid({ "ppo.lr": [1e-4, 3e-4, 1e-3], "ppo.epochs": [1, 2, 4] }),
  metrics: ["rm_score", "gold_score", "kl", "approx_kl_k3:mean", "clipfrac:mean"],
});
