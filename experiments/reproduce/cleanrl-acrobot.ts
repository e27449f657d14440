/**
 * PPO on Acrobot-v1 with CleanRL ppo.py's hyperparameters (500k steps, 3 seeds): the setting is
 * `cleanrlExperiment` in ./settings.ts. Part of `deno task reproduce cleanrl-classic-control`.
 *
 *   deno task sweep experiments/reproduce/cleanrl-acrobot.ts
 */
import { cleanrlExperiment } from "./settings.ts";

export default cleanrlExperiment("Acrobot-v1");
