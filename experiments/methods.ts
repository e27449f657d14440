/**
 * RLHF methods side by side on `sentiment`, one per method record (lib/ppo/methods): PPO, GRPO,
 * Dr. GRPO, RLOO, REINFORCE++ (one PPO update, `ppo.advantage`), DAPO, GSPO, CISPO, and DPO, IPO
 * and KTO (offline, `algorithm: "dpo"` / `"kto"`), 3 seeds each, the same
 * sample budget: 20 updates × 32 responses (DPO: 20 updates × 16 preference pairs, the reward
 * model's own training pairs, 32 responses per update). One SFT policy and one reward model
 * serve every trial (the stage cache); every method starts from that SFT policy with the KL to
 * it at β = 0.1 where its paper puts it:
 *
 * - PPO: GAE with a value head on the policy's trunk, −β·KL per token in the reward (k1);
 * - GRPO: 8 prompts × 4 samples, group-normalised rewards, β·KL (k3) in the loss, loss
 *   averaged per response, no value model;
 * - Dr. GRPO: as GRPO without the std normalisation and the per-response length average;
 * - RLOO: 8 prompts × 4 samples, leave-one-out baseline, KL in the reward;
 * - REINFORCE++: 32 prompts × 1, per-token KL in the reward, returns normalised over the batch;
 * - DPO: sigmoid loss, β = 0.1, the frozen SFT policy as reference; IPO: its squared loss;
 * - KTO: the same pairs unpaired (chosen desirable, rejected undesirable), 32 examples per update;
 * - DAPO, GSPO, CISPO: 8 prompts × 4 samples, `method: <name>` alone: their papers' clipping,
 *   loss type and no KL term (β = 0), as their records (lib/ppo/methods) set them.
 *
 * Each trial records its wall time, peak RSS and models in resources.json
 * (`measure_resources`), which `deno task reproduce rlhf-methods` puts in one table with the RM
 * and gold scores and the KL to the reference. A few minutes on two cores.
 *
 *   deno task sweep experiments/methods.ts
 */
import { defineExperiment, grid } from "../lib/experiment/mod.ts";
import { methodsSweep, SENTIMENT_METHODS } from "../lib/report/methods.ts";

export default defineExperiment({
  name: "methods",
  task: "sentiment",
  // The rows come from the method records: a new record gets a row and a word here.
  description: `${SENTIMENT_METHODS.map((m) => m.label).join(", ")} on sentiment at one ` +
    "sample budget",
  base: { updates: 20, batch: 32, measure_resources: true },
  sweep: grid(methodsSweep(SENTIMENT_METHODS), { seed: [1, 2, 3] }),
  metrics: ["rm_score", "gold_score", "kl", "pref_accuracy"],
});
