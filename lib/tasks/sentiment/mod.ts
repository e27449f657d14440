/**
 * The `sentiment` task (see task.ts): the world (openings, lexicon, gold reward, corpus and
 * preference pairs), the config schema, the SFT and reward-model stages, the rewards, and the
 * task itself ({@link SENTIMENT_KIND}, built with `defineLmTask`).
 * @module
 */
export * from "./world.ts";
export * from "./schema.ts";
export * from "./stages.ts";
export * from "./rewards.ts";
export * from "./task.ts";
