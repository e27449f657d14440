/**
 * DAPO (Yu et al. 2025): group-normalised advantages, clip-higher (ε 0.2 / ε_high 0.28), the
 * token-level loss, no KL term (so no reference model). Its dynamic sampling
 * (`ppo.dynamic_sampling`, the most batches per update) and overlong reward shaping
 * (`ppo.overlong_cache`) are options rather than defaults: their sizes depend on the task's
 * budget and response length (the paper: L_max 20480, L_cache 4096).
 */
import { onlineMethod } from "./record.ts";

export const DAPO = onlineMethod({
  name: "dapo",
  label: "DAPO",
  citation: {
    short: "Yu et al. 2025",
    full: "Q. Yu, Z. Zhang, R. Zhu, Y. Yuan, X. Zuo, Y. Yue, et al. DAPO: An Open-Source LLM " +
      "Reinforcement Learning System at Scale. arXiv:2503.14476, 2025",
    where: "§3 (clip-higher ε_low 0.2 / ε_high 0.28, dynamic sampling, token-level policy " +
      "gradient loss, overlong reward shaping; the KL term removed, §2.3)",
    url: "https://arxiv.org/abs/2503.14476",
  },
  holds: { critic: false, reference: false, rewardModel: true },
  grouping: "prompt",
  advantage: "grpo",
  ratio: "token",
  clipping: { epsilon: 0.2, epsilonHigh: 0.28 },
  lossType: "dapo",
  kl: { placement: "none", estimator: null, beta: 0 },
  claim: {
    memory: "below GRPO (no reference model)",
    quality: "above GRPO on long reasoning (AIME 50 vs 30, Qwen2.5-32B)",
  },
});
