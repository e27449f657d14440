/**
 * A decoder of any family written as a Hugging Face folder by its family's writer, and read
 * back by its reader, so a caller holding a {@link DecoderConfig} or a folder never asks which
 * family it is.
 * @module
 */
import { type DecoderConfig, familyFor } from "./decoder.ts";
import { familyOf, isModelType } from "./families/mod.ts";
import { loadModelFolder, readFolderJson, saveModelFolder } from "./checkpoint.ts";
import { HF_TOKENIZER_FILES, loadHfFolder, saveHfFolder } from "./hf.ts";
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

/** A causal-LM folder read by {@link loadDecoderFolder}. */
export interface DecoderFolder {
  cfg: DecoderConfig;
  params: Record<string, Float32Array | Float64Array>;
  /** The parsed config.json, all keys. */
  config: Record<string, unknown>;
  /** Tokenizer files present in the folder, parsed; undefined without a tokenizer.json. */
  tokenizer?: TokenizerFiles;
}

/**
 * Load a causal-LM folder of any family with its family's reader (`ModelFamily.folders`):
 * GPT-2 with `loadHfFolder` (as always), the others with `loadModelFolder`, plus the tokenizer
 * files. An unknown `model_type` is `loadModelFolder`'s error (folder, key, supported list).
 *
 * @example
 * ```ts
 * const { cfg, params, tokenizer } = await loadDecoderFolder("results/.stages/sft/model");
 * ```
 */
export async function loadDecoderFolder(
  dir: string,
  caller = "loadDecoderFolder",
): Promise<DecoderFolder> {
  const json = await readFolderJson(dir, "config.json", true, caller);
  const mt = json?.model_type;
  if (isModelType(mt) && familyOf(mt).folders.writer === "gpt2") {
    const f = await loadHfFolder(dir);
    return { cfg: f.cfg, params: f.params, config: f.config, tokenizer: f.tokenizer };
  }
  const m = await loadModelFolder(dir, { caller });
  if (m.architecture.kind !== "causal-lm") {
    throw new Error(
      `${caller}: ${dir}: ${m.architecture.name} is not a causal LM (a policy needs one)`,
    );
  }
  const tok: TokenizerFiles = {};
  for (const f of HF_TOKENIZER_FILES) {
    const obj = await readFolderJson(dir, f, false, caller);
    if (obj) tok[f] = obj;
  }
  return {
    cfg: m.cfg,
    params: m.params,
    config: m.config,
    tokenizer: tok["tokenizer.json"] ? tok : undefined,
  };
}
