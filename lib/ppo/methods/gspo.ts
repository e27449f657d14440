/** GSPO (Zheng et al. 2025): one importance ratio per response, GRPO's objective otherwise. */
import { onlineMethod } from "./record.ts";

export const GSPO = onlineMethod({
  name: "gspo",
  label: "GSPO",
  citation: {
    short: "Zheng et al. 2025",
    full: "C. Zheng, S. Liu, M. Li, X.-H. Chen, B. Yu, C. Gao, et al. Group Sequence Policy " +
      "Optimization. arXiv:2507.18071, 2025",
    where: "§4 (the sequence-level ratio (π/π_old)^(1/|y|), clipped per response; clip range " +
      "3e-4 / 4e-4, §5.1)",
    url: "https://arxiv.org/abs/2507.18071",
  },
  holds: { critic: false, reference: false, rewardModel: true },
  grouping: "prompt",
  advantage: "grpo",
  ratio: "sequence",
  clipping: { epsilon: 3e-4, epsilonHigh: 4e-4 },
  lossType: "grpo",
  kl: { placement: "none", estimator: null, beta: 0 },
  claim: {
    memory: "as DAPO (no value or reference model)",
    quality: "more stable than GRPO on MoE models",
  },
});
