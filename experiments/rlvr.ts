/**
 * Reinforcement learning with verifiable rewards on `rlvr` (seeded addition problems, a tiny
 * byte-level GPT SFT'd briefly on worked solutions): GRPO, Dr. GRPO and RLOO (`ppo.advantage`,
 * critic-free, no KL penalty), 3 RL seeds each from the one SFT policy (the stage is trained
 * once and shared), the same sample budget: 40 updates × 8 problems × 8 samples, reward =
 * exact_match + 0.1 · format. Held-out pass@1 / pass@4, format rate and response lengths
 * before and after RL, and every 10 updates (eval/* columns). `deno task reproduce rlvr` puts
 * the result beside Dr. GRPO's finding (Liu et al. 2025).
 *
 *   deno task sweep experiments/rlvr.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";
import { DR_GRPO, GRPO, RLOO } from "../lib/ppo/methods/mod.ts";

export default defineExperiment({
  name: "rlvr",
  task: "rlvr",
  description: "GRPO, Dr. GRPO and RLOO on verifiable rewards (exact_match + format), 3 seeds",
  // method null: the swept estimators alone, with rlvr's own KL (none) and loss aggregation
  // (a set ppo.advantage would otherwise imply its method's paper defaults).
  base: { method: null, updates: 40, eval: { every: 10 } },
  sweep: grid({
    "ppo.advantage": [GRPO, DR_GRPO, RLOO].map((m) => m.advantage!),
    seed: [1, 2, 3],
  }),
  metrics: ["pass1_before", "pass1", "passk", "format_rate", "length_incorrect"],
});
