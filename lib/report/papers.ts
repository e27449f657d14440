/**
 * Published numbers that `deno task reproduce` prints beside ours, each with its citation.
 *
 * Only numbers copied from the cited source live here; anything we measure comes from result
 * bundles. A number's `std` is what the source prints after "±" (CleanRL: the standard
 * deviation over seeds).
 * @module
 */

/** Where a published number comes from. */
export interface Citation {
  /** Short reference, e.g. "Schulman et al. 2017". */
  short: string;
  /** Full reference (authors, title, venue). */
  full: string;
  /** Table / section / page the numbers are from. */
  where: string;
  url: string;
}

/** A published mean ± std. */
export interface PublishedScore {
  mean: number;
  std: number;
}

export const CLEANRL_2022: Citation = {
  short: "CleanRL ppo.py (Huang et al. 2022)",
  full: "S. Huang, R. F. J. Dossa, C. Ye, J. Braga, D. Chakraborty, K. Mehta, J. G. M. Araújo. " +
    "CleanRL: High-quality Single-file Implementations of Deep Reinforcement Learning " +
    "Algorithms. JMLR 23(274), 2022",
  where: "CleanRL documentation, PPO, ppo.py, 'Experiment results' (benchmark/ppo.sh: " +
    "500k steps, 3 seeds)",
  url: "https://docs.cleanrl.dev/rl-algorithms/ppo/#experiment-results",
};

export const BASELINES_2022: Citation = {
  short: "openai/baselines PPO (Huang et al. 2022)",
  full: "S. Huang, R. F. J. Dossa, A. Raffin, A. Kanervisto, W. Wang. The 37 Implementation " +
    "Details of Proximal Policy Optimization. ICLR Blog Track, 2022",
  where: "as quoted in the CleanRL ppo.py 'Experiment results' table",
  url: "https://docs.cleanrl.dev/rl-algorithms/ppo/#experiment-results",
};

/** CleanRL ppo.py and openai/baselines PPO, average episodic return, classic control. */
export const CLEANRL_PPO_CLASSIC: Record<
  "CartPole-v1" | "Acrobot-v1",
  { cleanrl: PublishedScore; baselines: PublishedScore }
> = {
  "CartPole-v1": {
    cleanrl: { mean: 490.04, std: 6.12 },
    baselines: { mean: 497.54, std: 4.02 },
  },
  "Acrobot-v1": {
    cleanrl: { mean: -86.36, std: 1.32 },
    baselines: { mean: -81.82, std: 5.58 },
  },
};

export const SCHULMAN_2017: Citation = {
  short: "Schulman et al. 2017",
  full: "J. Schulman, F. Wolski, P. Dhariwal, A. Radford, O. Klimov. Proximal Policy " +
    "Optimization Algorithms. arXiv:1707.06347, 2017",
  where: "Table 1 (average normalised score over 21 runs: 7 MuJoCo environments × 3 seeds, " +
    "1M steps; random policy = 0, best setting = 1; β initialised at 1)",
  url: "https://arxiv.org/abs/1707.06347",
};

/** A surrogate objective of Schulman et al. 2017 Table 1. */
export interface SurrogateSetting {
  /** Row label as the paper prints it. */
  label: string;
  /** The ppo.* config that selects it (dotted keys). */
  config: Record<string, string | number>;
  /** The paper's average normalised score. */
  paper: number;
}

/** Schulman et al. 2017, Table 1, in the paper's row order. */
export const SCHULMAN_TABLE1: readonly SurrogateSetting[] = [
  { label: "No clipping or penalty", config: { "ppo.loss": "no-clip" }, paper: -0.39 },
  { label: "Clipping, ε = 0.1", config: { "ppo.loss": "clip", "ppo.clip": 0.1 }, paper: 0.76 },
  { label: "Clipping, ε = 0.2", config: { "ppo.loss": "clip", "ppo.clip": 0.2 }, paper: 0.82 },
  { label: "Clipping, ε = 0.3", config: { "ppo.loss": "clip", "ppo.clip": 0.3 }, paper: 0.70 },
  ...[[0.003, 0.68], [0.01, 0.74], [0.03, 0.71]].map(([d, paper]) => ({
    label: `Adaptive KL, d_targ = ${d}`,
    config: {
      "ppo.loss": "kl-penalty",
      "ppo.penalty.control": "schulman",
      "ppo.penalty.target": d,
      "ppo.penalty.beta": 1,
    },
    paper,
  })),
  ...[[0.3, 0.62], [1, 0.71], [3, 0.72], [10, 0.69]].map(([b, paper]) => ({
    label: `Fixed KL, β = ${b}`,
    config: { "ppo.loss": "kl-penalty", "ppo.penalty.control": "fixed", "ppo.penalty.beta": b },
    paper,
  })),
];

export const ZIEGLER_2019: Citation = {
  short: "Ziegler et al. 2019",
  full: "D. M. Ziegler, N. Stiennon, J. Wu, T. B. Brown, A. Radford, D. Amodei, P. Christiano, " +
    "G. Irving. Fine-Tuning Language Models from Human Preferences. arXiv:1909.08593, 2019",
  where: "§2.2 (reward R = r − β·KL(π‖ρ), β adapted toward a target KL: " +
    "e_t = clip((KL_t − KL_targ)/KL_targ, −0.2, 0.2), β ← β(1 + K_β·e_t), K_β = 0.1)",
  url: "https://arxiv.org/abs/1909.08593",
};

// ---- RLHF methods (deno task reproduce rlhf-methods) ----------------------------------------

export const OUYANG_2022: Citation = {
  short: "Ouyang et al. 2022",
  full: "L. Ouyang, J. Wu, X. Jiang, D. Almeida, C. L. Wainwright, P. Mishkin, C. Zhang, " +
    "S. Agarwal, K. Slama, A. Ray, et al. Training language models to follow instructions " +
    "with human feedback. NeurIPS 2022 (arXiv:2203.02155)",
  where: "§3.5 (PPO with a value function initialised from the reward model, the SFT policy " +
    "as the KL reference, the reward model scoring each sample)",
  url: "https://arxiv.org/abs/2203.02155",
};

export const SHAO_2024: Citation = {
  short: "Shao et al. 2024",
  full: "Z. Shao, P. Wang, Q. Zhu, R. Xu, J. Song, X. Bi, H. Zhang, M. Zhang, Y. K. Li, Y. Wu, " +
    "D. Guo. DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language " +
    "Models. arXiv:2402.03300, 2024",
  where: "§4.1 (GRPO: no value model, the baseline from the scores of a group of outputs to one " +
    "question, KL to the reference in the loss; 64 outputs per question in their run)",
  url: "https://arxiv.org/abs/2402.03300",
};

export const LIU_2025: Citation = {
  short: "Liu et al. 2025",
  full: "Z. Liu, C. Chen, W. Li, P. Qi, T. Pang, C. Du, W. S. Lee, M. Lin. Understanding " +
    "R1-Zero-Like Training: A Critical Perspective. arXiv:2503.20783, 2025",
  where: "§3 (Dr. GRPO: GRPO without the per-response length normalisation and the group std " +
    "normalisation, which bias it toward long wrong answers)",
  url: "https://arxiv.org/abs/2503.20783",
};

export const AHMADIAN_2024: Citation = {
  short: "Ahmadian et al. 2024",
  full: "A. Ahmadian, C. Cremer, M. Gallé, M. Fadaee, J. Kreutzer, O. Pietquin, A. Üstün, " +
    "S. Hooker. Back to Basics: Revisiting REINFORCE Style Optimization for Learning from " +
    "Human Feedback in LLMs. ACL 2024 (arXiv:2402.14740)",
  where: "Table 1 (simulated GPT-4 win-rate, %, against reference completions: TL;DR " +
    "summarisation with Pythia 6.9B, Anthropic-HH with Pythia 6.9B and with Llama 7B)",
  url: "https://arxiv.org/abs/2402.14740",
};

export const HU_2025: Citation = {
  short: "Hu et al. 2025",
  full: "J. Hu, J. K. Liu, H. Xu, W. Shen. REINFORCE++: Stabilizing Critic-Free Policy " +
    "Optimization with Global Normalization. arXiv:2501.03262 (v9), 2025",
  where: "Eq. 4–5 (per-token KL in the reward, advantages normalised over the global batch) " +
    "and Table 1 (Chat-Arena-Hard score, Llama-3-8B-SFT: REINFORCE++ with k = 1 sample per " +
    "prompt against GRPO and RLOO with k = 4)",
  url: "https://arxiv.org/abs/2501.03262",
};

export const RAFAILOV_2023: Citation = {
  short: "Rafailov et al. 2023",
  full: "R. Rafailov, A. Sharma, E. Mitchell, S. Ermon, C. D. Manning, C. Finn. Direct " +
    "Preference Optimization: Your Language Model is Secretly a Reward Model. NeurIPS 2023 " +
    "(arXiv:2305.18290)",
  where: "§4 (the DPO loss: the policy and the frozen reference, no reward model, no sampling " +
    "while training)",
  url: "https://arxiv.org/abs/2305.18290",
};

/** Ahmadian et al. 2024, Table 1: win-rate (%) per setting (TL;DR, HH Pythia, HH Llama). */
export const AHMADIAN_TABLE1: Readonly<Record<string, readonly [number, number, number]>> = {
  "RLOO (k=4)": [77.9, 43.7, 64.1],
  "RLOO (k=2)": [74.2, 47.6, 62.2],
  "RAFT (k=4)": [73.2, 42.1, 63.3],
  "RAFT (k=2)": [72.1, 37.7, 58.4],
  "REINFORCE w/ baseline": [70.7, 37.9, 55.3],
  "Vanilla PG": [70.4, 36.4, 52.3],
  "PPO": [67.6, 29.2, 32.0],
  "DPO": [66.6, 39.0, 61.9],
};

/** Hu et al. 2025, Table 1: Chat-Arena-Hard score. */
export const HU_TABLE1: Readonly<Record<string, number>> = {
  "REINFORCE++ (k=1)": 46.7,
  "GRPO (k=4)": 46.8,
  "RLOO (k=4)": 44.6,
  "ReMax (k=1+1)": 45.1,
};
