/**
 * Moved to lib/trial/contract.ts (the trial layer, below tasks and envs). Kept only while
 * branches written against this path merge.
 * @module
 */
export * from "../trial/contract.ts";
