/**
 * Schulman et al. 2017, Table 1 on CartPole-v1: the eleven surrogate objectives (no clipping or
 * penalty; clipping ε = 0.1, 0.2, 0.3; adaptive KL d_targ = 0.003, 0.01, 0.03; fixed KL
 * β = 0.3, 1, 3, 10), 3 seeds each, 500k steps, everything else CleanRL ppo.py's defaults.
 * The KL-penalty settings use the exact KL(π_old‖π) over the action distribution (the paper's
 * KL between Gaussians is exact too); adaptive KL starts at β = 1 and follows the paper's rule
 * (`ppo.kl.control: "schulman"`). 33 trials, about 11 minutes on one core.
 *
 * Part of `deno task reproduce ppo-table1`, which normalises the returns as the paper does.
 *
 *   deno task sweep experiments/reproduce/ppo-table1-cartpole.ts
 */
import { defineExperiment, grid } from "../../lib/experiment/mod.ts";
import { table1Sweep } from "../../lib/report/reproduce.ts";

export default defineExperiment({
  name: "reproduce-ppo-table1-cartpole",
  task: "CartPole-v1",
  description: "Schulman et al. 2017 Table 1 surrogate objectives on CartPole-v1",
  base: { total_steps: 500_000 },
  sweep: grid(table1Sweep({ klExtra: { "ppo.kl.estimator": "full" } }), { seed: [1, 2, 3] }),
  metrics: ["return", "approx_kl_k3:mean", "clipfrac:mean", "beta"],
});
