/** KTO (Ethayarajh et al. 2024): offline, on unpaired examples labelled desirable or not. */
import type { MethodRecord } from "./record.ts";

export const KTO: MethodRecord = {
  name: "kto",
  label: "KTO",
  citation: {
    short: "Ethayarajh et al. 2024",
    full: "K. Ethayarajh, W. Xu, N. Muennighoff, D. Jurafsky, D. Kiela. KTO: Model Alignment " +
      "as Prospect Theoretic Optimization. ICML 2024 (arXiv:2402.01306)",
    where: "§4.1, Eq. 7 (the KTO loss: a value function of β·log π/π_ref against the KL " +
      "reference point z, λ_D / λ_U weights; unpaired binary feedback)",
    url: "https://arxiv.org/abs/2402.01306",
  },
  online: false,
  holds: { critic: false, reference: true, rewardModel: false },
  grouping: "none",
  advantage: null,
  ratio: null,
  clipping: { epsilon: null, epsilonHigh: null, delta: null },
  lossType: "kto",
  kl: { placement: "implicit", estimator: null, beta: 0.1 },
  defines: { algorithm: "kto" },
  requires: ["algorithm"],
  defaults: { "kto.loss": "kto", "kto.beta": 0.1 },
  claim: {
    memory: "as DPO (the KL batch adds a forward pass of policy and reference)",
    quality: "matches or beats DPO from 1B to 30B with unpaired binary labels only",
  },
};
