/**
 * A decoder of either family written as a Hugging Face folder by its family's writer, so a
 * caller holding a {@link DecoderConfig} never asks which family it is.
 * @module
 */
import { type DecoderConfig, familyFor } from "./decoder.ts";
import { saveModelFolder } from "./checkpoint.ts";
import { saveHfFolder } from "./hf.ts";
import type { GptConfig } from "./gpt.ts";
import type { TokenizerFiles } from "./tokenizer.ts";

/**
 * Write `params` of `cfg` into `dir` (atomic) with the writer its family names
 * (`ModelFamily.folders.writer`): GPT-2 through `saveHfFolder` (the writer whose folders the
 * byte-level tasks' stage cache already holds), the Llama family through `saveModelFolder`.
 * `config` adds config.json keys; `tokenizer` is copied beside.
 *
 * @example
 * ```ts
 * await saveDecoderFolder("out/sft", cfg, params, { config: { eos_token_id: 0 }, tokenizer });
 * ```
 */
export async function saveDecoderFolder(
  dir: string,
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  opts: { config?: Record<string, unknown>; tokenizer?: TokenizerFiles } = {},
): Promise<void> {
  const fam = familyFor(cfg);
  if (fam.folders.writer === "gpt2") {
    await saveHfFolder(dir, cfg as GptConfig, params, opts.tokenizer, { config: opts.config });
  } else {
    await saveModelFolder(dir, cfg, params, {
      config: opts.config,
      tokenizerFiles: opts.tokenizer,
    });
  }
}
