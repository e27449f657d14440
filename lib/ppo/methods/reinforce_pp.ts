/** REINFORCE++ (Hu et al. 2025): per-token KL in the reward, batch-normalised returns. */
import { onlineMethod } from "./record.ts";

export const REINFORCE_PP = onlineMethod({
  name: "reinforce_pp",
  label: "REINFORCE++",
  citation: {
    short: "Hu et al. 2025",
    full: "J. Hu, J. K. Liu, H. Xu, W. Shen. REINFORCE++: Stabilizing Critic-Free Policy " +
      "Optimization with Global Normalization. arXiv:2501.03262 (v9), 2025",
    where: "Eq. 4–5 (per-token KL in the reward, advantages normalised over the global batch) " +
      "and Table 1 (Chat-Arena-Hard score, Llama-3-8B-SFT: REINFORCE++ with k = 1 sample per " +
      "prompt against GRPO and RLOO with k = 4)",
    url: "https://arxiv.org/abs/2501.03262",
  },
  holds: { critic: false, reference: true, rewardModel: true },
  grouping: "none",
  advantage: "reinforce_pp",
  ratio: null,
  lossType: null,
  kl: { placement: "reward", estimator: null, beta: null },
  claim: {
    memory: "below PPO (no value model)",
    quality: "GRPO-level with one sample per prompt",
  },
});
