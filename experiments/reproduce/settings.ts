/**
 * The classic-control reproduce settings, one function per table, so each environment's
 * experiment file is one line and the two environments cannot drift apart. Not an experiment
 * file itself (no default export).
 * @module
 */
import { defineExperiment, grid } from "../../lib/experiment/mod.ts";
import { table1Sweep } from "../../lib/report/reproduce.ts";

/** The classic-control environments the reproduce tables use, by file-name slug. */
const SLUGS = { "CartPole-v1": "cartpole", "Acrobot-v1": "acrobot" } as const;
export type ClassicEnv = keyof typeof SLUGS;

/**
 * PPO on `env` with CleanRL ppo.py's hyperparameters (its classic-control benchmark:
 * benchmark/ppo.sh, 500k steps, 3 seeds). Part of `deno task reproduce cleanrl-classic-control`,
 * which prints the result beside CleanRL's published return (lib/report/papers.ts).
 *
 * Every value is spelled out although they are PpoSchema's defaults, so the code states the
 * setting; the resolved config (and so the trial id) is the same as with the defaults.
 */
export function cleanrlExperiment(env: ClassicEnv) {
  return defineExperiment({
    name: `reproduce-cleanrl-${SLUGS[env]}`,
    task: env,
    description: `CleanRL ppo.py benchmark setting on ${env}`,
    base: {
      total_steps: 500_000,
      envs: 4,
      steps: 128,
      hidden: [64, 64],
      ppo: {
        loss: "clip",
        clip: 0.2,
        clip_value: 0.2,
        gamma: 0.99,
        lambda: 0.95,
        lr: 2.5e-4,
        lr_anneal: true,
        adam_eps: 1e-5,
        epochs: 4,
        minibatches: 4,
        vf_coef: 0.5,
        ent_coef: 0.01,
        max_grad_norm: 0.5,
        whiten_advantages: true,
        target_kl: null,
      },
    },
    sweep: grid({ seed: [1, 2, 3] }),
    metrics: ["return", "solved_at", "episodes"],
  });
}

/**
 * Schulman et al. 2017, Table 1 on `env`: the eleven surrogate objectives (no clipping or
 * penalty; clipping ε = 0.1, 0.2, 0.3; adaptive KL d_targ = 0.003, 0.01, 0.03; fixed KL
 * β = 0.3, 1, 3, 10), 3 seeds each, 200k steps.
 *
 * Optimisation as in the paper's Table 1 runs (its Table 3, MuJoCo): horizon 2048 (one env),
 * Adam lr 3e-4 without annealing, 10 epochs of minibatches of 64 (32 per rollout), γ 0.99,
 * λ 0.95, no entropy bonus; the rest (64-64 tanh MLPs, clipped value loss, vf 0.5, grad norm
 * 0.5) as CleanRL ppo.py. With CleanRL's own classic-control settings (4 epochs, 4 minibatches,
 * lr 2.5e-4 annealed) the policy moves so little per update (KL(π_old‖π) < 0.001) that every
 * surrogate reaches the same return and the adaptive-KL settings cannot be told apart (β
 * halves every update for every target); the paper's settings take ~100× larger steps, where
 * the surrogate matters.
 *
 * The KL-penalty settings use the exact KL(π_old‖π) over the action distribution (the paper's
 * KL between Gaussians is exact too); adaptive KL starts at β = 1 and follows the paper's rule
 * (`ppo.penalty.control: "schulman"`; `ppo.penalty.estimator` defaults to "full").
 * 33 trials, about 15 minutes on two cores.
 *
 * Part of `deno task reproduce ppo-table1`, which normalises the returns as the paper does.
 */
export function table1ClassicExperiment(env: ClassicEnv) {
  return defineExperiment({
    name: `reproduce-ppo-table1-${SLUGS[env]}`,
    task: env,
    description: `Schulman et al. 2017 Table 1 surrogate objectives on ${env}`,
    base: {
      total_steps: 200_704, // 98 rollouts of 2048
      envs: 1,
      steps: 2048,
      ppo: { lr: 3e-4, lr_anneal: false, epochs: 10, minibatches: 32, ent_coef: 0 },
    },
    sweep: grid(table1Sweep(), { seed: [1, 2, 3] }),
    metrics: ["return", "approx_kl_k3:mean", "clipfrac:mean", "penalty_beta"],
  });
}
