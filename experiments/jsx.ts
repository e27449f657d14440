/**
 * The `jsx` task (lib/tasks/jsx/): does PPO raise the share of a tiny GPT's outputs that are
 * valid JSX components over its SFT baseline? Three seeds; each seed has its own (briefly
 * trained, so imperfect) SFT policy (`sft.seed` = `seed`) and PPO run (40 updates × 5 prompts
 * × 4 samples, reward 1 + 0.5·[parses as JSX] − 0.1·|len − ref_len|/ref_len). The summary
 * table prints the structure rate of the SFT policy (`structure_rate_before`) beside the one
 * after PPO (`structure_rate`), then the parse and sandbox-execution rates and the KL to the
 * SFT policy. About 20–30 s per trial on 2 cores.
 *
 *   deno task sweep experiments/jsx.ts
 */
import { defineExperiment, zip } from "../lib/experiment/mod.ts";

export default defineExperiment({
  name: "jsx",
  task: "jsx",
  sweep: zip({ seed: [1, 2, 3], "sft.seed": [1, 2, 3] }),
  metrics: [
    "structure_rate_before",
    "structure_rate",
    "parse_rate_before",
    "parse_rate",
    "exec_rate",
    "kl",
  ],
});
