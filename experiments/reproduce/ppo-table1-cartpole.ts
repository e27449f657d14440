/**
 * Schulman et al. 2017, Table 1 on CartPole-v1: the eleven surrogate objectives × 3 seeds, with the
 * paper's optimisation settings (`table1ClassicExperiment` in ./settings.ts, where the choices
 * are explained). Part of `deno task reproduce ppo-table1`.
 *
 *   deno task sweep experiments/reproduce/ppo-table1-cartpole.ts
 */
import { table1ClassicExperiment } from "./settings.ts";

export default table1ClassicExperiment("CartPole-v1");
