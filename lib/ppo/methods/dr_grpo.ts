/** Dr. GRPO (Liu et al. 2025): GRPO without the std and per-response length normalisations. */
import { onlineMethod } from "./record.ts";

export const DR_GRPO = onlineMethod({
  name: "dr_grpo",
  label: "Dr. GRPO",
  citation: {
    short: "Liu et al. 2025",
    full: "Z. Liu, C. Chen, W. Li, P. Qi, T. Pang, C. Du, W. S. Lee, M. Lin. Understanding " +
      "R1-Zero-Like Training: A Critical Perspective. arXiv:2503.20783, 2025",
    where: "§3 (Dr. GRPO: GRPO without the per-response length normalisation and the group " +
      "std normalisation, which bias it toward long wrong answers)",
    url: "https://arxiv.org/abs/2503.20783",
  },
  holds: { critic: false, reference: true, rewardModel: true },
  grouping: "prompt",
  advantage: "dr_grpo",
  ratio: "token",
  clipping: { epsilon: 0.2 },
  lossType: "dr_grpo",
  kl: { placement: "loss", estimator: "k3", beta: null },
  claim: {
    memory: "as GRPO",
    quality: "as GRPO, shorter wrong answers (no length bias)",
  },
});
