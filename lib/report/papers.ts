/**
 * Published numbers that `deno task reproduce` prints beside ours, each with its citation.
 *
 * Only numbers copied from the cited source live here; anything we measure comes from result
 * bundles. A number's `std` is what the source prints after "±" (CleanRL: the standard
 * deviation over seeds).
 * @module
 */
import { DPO, DR_GRPO, GRPO, PPO, REINFORCE_PP, RLOO } from "../ppo/methods/mod.ts";

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
// Each method's paper lives in its record (lib/ppo/methods); these names are kept for tables.

export const OUYANG_2022: Citation = PPO.citation;

export const SHAO_2024: Citation = GRPO.citation;

export const LIU_2025: Citation = DR_GRPO.citation;

export const AHMADIAN_2024: Citation = RLOO.citation;

export const HU_2025: Citation = REINFORCE_PP.citation;

export const RAFAILOV_2023: Citation = DPO.citation;

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
