/** PPO for RLHF (Ouyang et al. 2022): a value model, GAE, the reference KL in the reward. */
import { onlineMethod } from "./record.ts";

export const PPO = onlineMethod({
  name: "ppo",
  label: "PPO",
  citation: {
    short: "Ouyang et al. 2022",
    full: "L. Ouyang, J. Wu, X. Jiang, D. Almeida, C. L. Wainwright, P. Mishkin, C. Zhang, " +
      "S. Agarwal, K. Slama, A. Ray, et al. Training language models to follow instructions " +
      "with human feedback. NeurIPS 2022 (arXiv:2203.02155)",
    where: "§3.5 (PPO with a value function initialised from the reward model, the SFT policy " +
      "as the KL reference, the reward model scoring each sample)",
    url: "https://arxiv.org/abs/2203.02155",
  },
  holds: { critic: true, reference: true, rewardModel: true },
  grouping: "none",
  advantage: "gae",
  ratio: null,
  lossType: null,
  // The task's own PPO settings (β, estimator) are its tuned defaults: nothing is overridden.
  kl: { placement: "reward", estimator: null, beta: null },
  claim: {
    memory: "highest (a value model beside the policy)",
    quality: "the strong baseline, costly to tune",
  },
});
