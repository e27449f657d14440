/**
 * Every built-in task, in one explicit list: what an experiment's `task` may name, what a
 * sweep worker can run, what `deno task train --task` knows. A new task is one entry here (and
 * its folder under lib/tasks, built with `defineLmTask`); nothing registers itself on import.
 * @module
 */
import type { TrialKind } from "../trial/contract.ts";
import { ACROBOT_KIND, CARTPOLE_KIND } from "../envs/kind.ts";
import { SENTIMENT_KIND } from "../tasks/sentiment/task.ts";
import { JSX_KIND } from "../tasks/jsx/task.ts";
import { LM_KIND } from "../tasks/lm/task.ts";
import { RLVR_KIND } from "../tasks/rlvr/task.ts";

export { ACROBOT_KIND, CARTPOLE_KIND, JSX_KIND, LM_KIND, RLVR_KIND, SENTIMENT_KIND };

/** The built-in tasks: classic control, then the RLHF tasks. */
export const TASKS: readonly TrialKind[] = [
  CARTPOLE_KIND,
  ACROBOT_KIND,
  SENTIMENT_KIND,
  JSX_KIND,
  LM_KIND,
  RLVR_KIND,
];
