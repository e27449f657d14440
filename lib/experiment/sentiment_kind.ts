/**
 * Registers the RLHF `sentiment` task (lib/tasks/sentiment.ts: SFT -> reward model -> PPO on
 * synthetic reviews) as a trial kind, so experiment files can say `task: "sentiment"`. Its SFT
 * and reward-model stages go through the runner's stage cache (`results/.stages/`).
 * (lib/tasks builds the kind in this layer's shape without importing it; registration lives
 * here because the layers only point down.)
 * @module
 */
import { SENTIMENT_TRIAL_KIND } from "../tasks/sentiment.ts";
import { registerTrialKind, type TrialKind } from "./kinds.ts";

export const SENTIMENT_KIND: TrialKind = registerTrialKind(SENTIMENT_TRIAL_KIND as TrialKind);
