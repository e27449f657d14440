/**
 * Registers the `jsx` task (lib/tasks/jsx.ts: SFT -> PPO on React components, reward from a
 * real JSX parser, structure rate before and after) as a trial kind, so experiment files can
 * say `task: "jsx"`. Its SFT stage goes through the runner's stage cache (`results/.stages/`).
 * (lib/tasks builds the kind in this layer's shape without importing it; registration lives
 * here because the layers only point down.)
 * @module
 */
import { JSX_TRIAL_KIND } from "../tasks/jsx.ts";
import { registerTrialKind, type TrialKind } from "./kinds.ts";

export const JSX_KIND: TrialKind = registerTrialKind(JSX_TRIAL_KIND as TrialKind);
