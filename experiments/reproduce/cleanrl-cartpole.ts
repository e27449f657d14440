/**
 * PPO on CartPole-v1 with CleanRL ppo.py's hyperparameters (its classic-control benchmark:
 * benchmark/ppo.sh, 500k steps, 3 seeds). Part of `deno task reproduce cleanrl-classic-control`,
 * which prints the result beside CleanRL's published return (lib/report/papers.ts).
 *
 * Every value is spelled out although they are PpoSchema's defaults, so the file states the
 * setting; the resolved config (and so the trial id) is the same as with the defaults, which
 * lets `ppo-table1`'s "Clipping, ε = 0.2" trials reuse these bundles.
 *
 *   deno task sweep experiments/reproduce/cleanrl-cartpole.ts
 */
import { defineExperiment, grid } from "../../lib/experiment/mod.ts";

export default defineExperiment({
  name: "reproduce-cleanrl-cartpole",
  task: "CartPole-v1",
  description: "CleanRL ppo.py benchmark setting on CartPole-v1",
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
