/** Models as graph builders. @module */
export * from "./mlp.ts";
export * from "./gpt.ts";
export * from "./llama.ts";
export * from "./decoder.ts";
export * from "./sample.ts";
export * from "./heads.ts";
export * from "./lora.ts";
export * from "./hf.ts";
export * from "./checkpoint.ts";
export * from "./tokenizer.ts";
export * from "./hf_tokenizer.ts";
export * from "./corpus.ts";
export * from "./sft.ts";
export * from "./export.ts";
export * from "./decoder_folder.ts";
export * from "./reward_folder.ts";
