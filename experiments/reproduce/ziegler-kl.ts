/**
 * Reward vs KL on the RLHF task `sentiment` in the setting of Ziegler et al. 2019: reward =
 * RM score − β·KL(π‖π_ref) per token, β adapted toward a KL target per response
 * (`ppo.kl.control: "adaptive"`, their proportional controller), targets 0.5–8 nats, plus the
 * unconstrained end point β = 0. 3 seeds, 20 PPO updates of 32 responses.
 *
 * The controller's horizon is 32 samples, one update's batch: Ziegler et al. move β by at most
 * ±0.2·K_β per batch with K_β = 0.1 over ~10^6 episodes; with 20 updates of 32 responses the
 * gain has to be larger (K_β = batch / horizon = 1) for β to reach its target range at all.
 * β starts at the task's 0.1. 18 trials, about 2 minutes on two cores once the stages are
 * cached.
 *
 * Part of `deno task reproduce ziegler-kl` (RM and hidden gold score beside the KL).
 *
 *   deno task sweep experiments/reproduce/ziegler-kl.ts
 */
import { concat, defineExperiment, grid } from "../../lib/experiment/mod.ts";

export default defineExperiment({
  name: "reproduce-ziegler-kl",
  task: "sentiment",
  description: "Ziegler et al. 2019 reward vs KL frontier with adaptive KL targets",
  base: {
    updates: 20,
    batch: 32,
    ppo: { kl: { placement: "reward", estimator: "k1", beta: 0.1, horizon: 32 } },
  },
  sweep: grid(
    concat(
      grid({ "ppo.kl.control": ["fixed"], "ppo.kl.beta": [0] }),
      grid({ "ppo.kl.control": ["adaptive"], "ppo.kl.target": [0.5, 1, 2, 4, 8] }),
    ),
    { seed: [1, 2, 3] },
  ),
  metrics: ["kl", "rm_score", "gold_score", "beta"],
});
