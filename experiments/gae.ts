/**
 * GAE's γ × λ on the RLHF default task (`sentiment`), two seeds each. The task's only reward
 * is the score at EOS plus the per-token KL penalty, so γ < 1 discounts the score back to the
 * early tokens and λ trades the value model's bias against Monte-Carlo variance: compare the
 * value model's explained variance and loss with the scores reached.
 *
 *   deno task sweep experiments/gae.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "gae",
  task: "sentiment",
  base: { updates: 20 },
  sweep: grid({ "ppo.gamma": [0.95, 1], "ppo.lambda": [0.9, 0.95, 1], seed: [1, 2] }),
  metrics: ["rm_score", "gold_score", "kl", "explained_variance:mean", "value_loss:mean"],
});
