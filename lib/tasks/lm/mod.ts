/**
 * The `lm` task (see task.ts): RLHF on the user's own Hugging Face model, reward model and
 * prompts — the config schema, the data readers, the inputs' loading and checks, the
 * reward-model stage, and the task ({@link LM_KIND}, built with `defineLmTask`).
 * @module
 */
export * from "./schema.ts";
export * from "./data.ts";
export * from "./inputs.ts";
export * from "./stages.ts";
export * from "./offline.ts";
export * from "./task.ts";
