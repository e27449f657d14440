/** GRPO (Shao et al. 2024, DeepSeekMath §4.1): group-normalised advantages, k3 KL in the loss. */
import { onlineMethod } from "./record.ts";

export const GRPO = onlineMethod({
  name: "grpo",
  label: "GRPO",
  citation: {
    short: "Shao et al. 2024",
    full: "Z. Shao, P. Wang, Q. Zhu, R. Xu, J. Song, X. Bi, H. Zhang, M. Zhang, Y. K. Li, " +
      "Y. Wu, D. Guo. DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open " +
      "Language Models. arXiv:2402.03300, 2024",
    where: "§4.1 (GRPO: no value model, the baseline from the scores of a group of outputs to " +
      "one question, KL to the reference in the loss; 64 outputs per question in their run)",
    url: "https://arxiv.org/abs/2402.03300",
  },
  holds: { critic: false, reference: true, rewardModel: true },
  grouping: "prompt",
  advantage: "grpo",
  ratio: "token",
  clipping: { epsilon: 0.2 },
  lossType: "grpo",
  // Eq. 3–4: the unbiased k3 estimator of KL(π‖π_ref) added to the loss, β = 0.04 (§4.2).
  kl: { placement: "loss", estimator: "k3", beta: 0.04 },
  claim: {
    memory: "below PPO (no value model)",
    quality: "PPO-level with groups of samples per prompt",
  },
});
