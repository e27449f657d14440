/** DPO (Rafailov et al. 2023) and IPO (Azar et al. 2023): offline, on preference pairs. */
import type { MethodRecord } from "./record.ts";

const offline = {
  online: false,
  holds: { critic: false, reference: true, rewardModel: false },
  grouping: "none",
  advantage: null,
  ratio: null,
  clipping: { epsilon: null, epsilonHigh: null, delta: null },
  requires: ["algorithm"],
} as const;

export const DPO: MethodRecord = {
  ...offline,
  name: "dpo",
  label: "DPO",
  citation: {
    short: "Rafailov et al. 2023",
    full: "R. Rafailov, A. Sharma, E. Mitchell, S. Ermon, C. D. Manning, C. Finn. Direct " +
      "Preference Optimization: Your Language Model is Secretly a Reward Model. NeurIPS 2023 " +
      "(arXiv:2305.18290)",
    where: "§4 (the DPO loss: the policy and the frozen reference, no reward model, no " +
      "sampling while training)",
    url: "https://arxiv.org/abs/2305.18290",
  },
  lossType: "sigmoid",
  kl: { placement: "implicit", estimator: null, beta: 0.1 },
  defines: { algorithm: "dpo" },
  defaults: { "dpo.loss": "sigmoid", "dpo.beta": 0.1 },
  claim: {
    memory: "lowest (no reward or value model, no sampling)",
    quality: "below online RL at equal data",
  },
};

export const IPO: MethodRecord = {
  ...offline,
  name: "ipo",
  label: "IPO",
  citation: {
    short: "Azar et al. 2023",
    full: "M. G. Azar, M. Rowland, B. Piot, D. Guo, D. Calandriello, M. Valko, R. Munos. A " +
      "General Theoretical Paradigm to Understand Learning from Human Preferences. " +
      "AISTATS 2024 (arXiv:2310.12036)",
    where: "§5 (IPO: the squared loss (h − 1/(2τ))² on the log-ratio difference)",
    url: "https://arxiv.org/abs/2310.12036",
  },
  lossType: "ipo",
  kl: { placement: "implicit", estimator: null, beta: 0.1 },
  defines: { algorithm: "dpo", "dpo.loss": "ipo" },
  defaults: { "dpo.beta": 0.1 },
  claim: {
    memory: "as DPO",
    quality: "less overfitting than DPO on deterministic preferences",
  },
};
