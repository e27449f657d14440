/**
 * A decoder of either family written as a Hugging Face folder by its family's writer, so a
 * caller holding a {@link DecoderConfig} never asks which family it is.
 * @module
 */
import type { DecoderConfig } from "./decoder.ts";
import { isLlama } from "./decoder.ts";
import { saveModelFolder } from "./checkpoint.ts";
import { saveHfFolder } from "./hf.ts";
import type { TokenizerFiles } from "./tokenizer.ts";

/**
 * Write `params` of `cfg` into `dir` (atomic): GPT-2 through `saveHfFolder` (the writer whose
 * folders the byte-level tasks' stage cache already holds), the Llama family through
 * `saveModelFolder`. `config` adds config.json keys; `tokenizer` is copied beside.
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
  if (isLlama(cfg)) {
    await saveModelFolder(dir, cfg, params, {
      config: opts.config,
      tokenizerFiles: opts.tokenizer,
    });
  } else await saveHfFolder(dir, cfg, params, opts.tokenizer, { config: opts.config });
}
