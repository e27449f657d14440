/** Models as graph builders. @module */
export * from "./mlp.ts";
export * from "./gpt.ts";
