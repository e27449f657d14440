/**
 * Reinforcement learning with verifiable rewards on `rlvr` (seeded addition problems, a tiny
 * byte-level GPT SFT'd briefly on worked solutions): GRPO, Dr. GRPO and RLOO (`ppo.advantage`,
 * critic-free, no KL penalty), 3 seeds each (`sft.seed` = `seed`: each seed its own SFT
 * policy), the same sample budget: 30 updates × 8 problems × 8 samples, reward = exact_match
 * + 0.1 · format. Held-out pass@1 / pass@4, format rate and response lengths before and after
 * RL, and every 10 updates (eval/* columns). `deno task reproduce rlvr` puts the result beside
 * Dr. GRPO's finding (Liu et al. 2025).
 *
 *   deno task sweep experiments/rlvr.ts
 */
import { defineExperiment, grid, zip } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "rlvr",
  task: "rlvr",
  description: "GRPO, Dr. GRPO and RLOO on verifiable rewards (exact_match + format), 3 seeds",
  base: { eval: { every: 10 } },
  sweep: grid(
    { "ppo.advantage": ["grpo", "dr_grpo", "rloo"] },
    zip({ seed: [1, 2, 3], "sft.seed": [1, 2, 3] }),
  ),
  metrics: ["pass1_before", "pass1", "passk", "format_rate", "length_incorrect"],
});
