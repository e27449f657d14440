/**
 * Schulman et al. 2017, Table 1 on Acrobot-v1: the eleven surrogate objectives × 3 seeds, with the
 * paper's optimisation settings (`table1ClassicExperiment` in ./settings.ts, where the choices
 * are explained). Part of `deno task reproduce ppo-table1`.
 *
 *   deno task sweep experiments/reproduce/ppo-table1-acrobot.ts
 */
import { table1ClassicExperiment } from "./settings.ts";

export default table1ClassicExperiment("Acrobot-v1");
