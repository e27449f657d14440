/** CISPO (MiniMax 2025): clip the importance weight (detached), not the update. */
import { onlineMethod } from "./record.ts";

export const CISPO = onlineMethod({
  name: "cispo",
  label: "CISPO",
  citation: {
    short: "MiniMax 2025",
    full: "MiniMax. MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning " +
      "Attention. arXiv:2506.13585, 2025",
    where: "§3.1 (CISPO: −sg(clip(r, ·, 1 + ε_high))·A·log π, every token keeps a gradient; " +
      "ε_max 5 as TRL recommends after ScaleRL)",
    url: "https://arxiv.org/abs/2506.13585",
  },
  holds: { critic: false, reference: false, rewardModel: true },
  grouping: "prompt",
  advantage: "grpo",
  ratio: "token",
  clipping: { epsilonHigh: 5 },
  lossType: "cispo",
  kl: { placement: "none", estimator: null, beta: 0 },
  claim: {
    memory: "as DAPO (no value or reference model)",
    quality: "DAPO-level in half the steps (MiniMax-M1)",
  },
});
