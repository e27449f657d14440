/**
 * Moved to lib/trial/stage_process.ts (the trial layer, below tasks and envs). Kept only while
 * branches written against this path merge.
 * @module
 */
export * from "../trial/stage_process.ts";
