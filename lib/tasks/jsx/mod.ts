/**
 * The `jsx` task (see task.ts): the world (templates, prompts, references), the config
 * schema, the SFT stage, the parser-based rewards, and the task itself ({@link JSX_KIND},
 * built with `defineLmTask`).
 * @module
 */
export * from "./corpus.ts";
export * from "./schema.ts";
export * from "./stages.ts";
export * from "./rewards.ts";
export * from "./task.ts";
