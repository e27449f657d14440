/** RLOO (Ahmadian et al. 2024): the leave-one-out baseline, the KL in the reward. */
import { onlineMethod } from "./record.ts";

export const RLOO = onlineMethod({
  name: "rloo",
  label: "RLOO",
  citation: {
    short: "Ahmadian et al. 2024",
    full: "A. Ahmadian, C. Cremer, M. Gallé, M. Fadaee, J. Kreutzer, O. Pietquin, A. Üstün, " +
      "S. Hooker. Back to Basics: Revisiting REINFORCE Style Optimization for Learning from " +
      "Human Feedback in LLMs. ACL 2024 (arXiv:2402.14740)",
    where: "Table 1 (simulated GPT-4 win-rate, %, against reference completions: TL;DR " +
      "summarisation with Pythia 6.9B, Anthropic-HH with Pythia 6.9B and with Llama 7B)",
    url: "https://arxiv.org/abs/2402.14740",
  },
  holds: { critic: false, reference: true, rewardModel: true },
  grouping: "prompt",
  advantage: "rloo",
  ratio: null,
  lossType: null,
  kl: { placement: "reward", estimator: null, beta: null },
  claim: {
    memory: "below PPO (no value model)",
    quality: "above PPO and DPO (Ahmadian et al. 2024)",
  },
});
