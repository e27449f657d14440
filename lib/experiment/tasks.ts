/**
 * Every built-in task, in one explicit list: what an experiment's `task` may name, what a
 * sweep worker can run, what `deno task train --task` knows. A new task is one entry here (and
 * its folder under lib/tasks, built with `defineLmTask`); nothing registers itself on import.
 * @module
 */
import type { TrialKind } from "../tasks/contract.ts";
import { ACROBOT_KIND, CARTPOLE_KIND } from "../envs/kind.ts";
import { SENTIMENT_TRIAL_KIND } from "../tasks/sentiment.ts";
import { JSX_TRIAL_KIND } from "../tasks/jsx.ts";

export { ACROBOT_KIND, CARTPOLE_KIND };
export const SENTIMENT_KIND: TrialKind = SENTIMENT_TRIAL_KIND as TrialKind;
export const JSX_KIND: TrialKind = JSX_TRIAL_KIND as TrialKind;

/** The built-in tasks: classic control, then the RLHF tasks. */
export const TASKS: readonly TrialKind[] = [CARTPOLE_KIND, ACROBOT_KIND, SENTIMENT_KIND, JSX_KIND];
