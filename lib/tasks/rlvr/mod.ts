/**
 * The `rlvr` task (see task.ts): RL with verifiable rewards on seeded addition problems — the
 * world and its split (corpus.ts), the config (schema.ts), the SFT stage (stages.ts) and the
 * task ({@link RLVR_KIND}).
 * @module
 */
export * from "./corpus.ts";
export * from "./schema.ts";
export * from "./stages.ts";
export * from "./task.ts";
