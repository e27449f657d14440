/**
 * The online RLHF methods on `jsx`: PPO, GRPO, Dr. GRPO, RLOO and REINFORCE++ (one PPO update,
 * `ppo.advantage`), 3 seeds each (`sft.seed` = `seed`, as experiments/jsx.ts), the same sample
 * budget: 40 updates × 5 prompts × 4 samples. The group of the critic-free estimators is the 4
 * samples of each prompt; GRPO and Dr. GRPO put the KL (k3) in the loss, the others keep it in
 * the reward. jsx has no preference pairs (its reward is a rule), so no DPO here: DPO runs on
 * `sentiment` (experiments/methods.ts). Each trial records its wall time, peak RSS and models in
 * resources.json; `deno task reproduce rlhf-methods` tabulates both experiments. About 100 s
 * per trial on two busy cores.
 *
 *   deno task sweep experiments/methods-jsx.ts
 */
import { defineExperiment, grid, zip } from "../lib/experiment/mod.ts";
import { JSX_METHODS, methodsSweep } from "../lib/report/methods.ts";

export default defineExperiment({
  name: "methods-jsx",
  task: "jsx",
  description: "PPO, GRPO, Dr. GRPO, RLOO and REINFORCE++ on jsx at one sample budget",
  base: { measure_resources: true },
  sweep: grid(methodsSweep(JSX_METHODS), zip({ seed: [1, 2, 3], "sft.seed": [1, 2, 3] })),
  metrics: ["structure_rate_before", "structure_rate", "reward", "kl"],
});
