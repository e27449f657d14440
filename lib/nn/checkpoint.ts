/**
 * Hugging Face model folders of every supported family, in and out: `config.json` by
 * `model_type` (`gpt2` → {@link GptConfig}; `llama`, `mistral`, `qwen2`, `qwen3` →
 * {@link LlamaConfig}), weights from `model.safetensors` or sharded
 * (`model.safetensors.index.json` → shards) in F32, F64, F16 or BF16, `generation_config.json`
 * and the tokenizer files.
 *
 * Why one facade: the Hub's models differ by family in config keys only; the folder layout,
 * the sharding, the dtypes, the tied-head convention and the atomic write are the same, so
 * each is written once, for every family, and `hf.ts` (GPT-2 with the byte tokenizer) builds
 * on it. This module re-exports the public API of the modules that hold it, lowest first:
 * `hf_folder.ts` (file names, folder errors, JSON reading, the atomic write), `hf_config.ts`
 * (config.json and generation_config.json parsed), `hf_config_write.ts` (both written back),
 * `hf_weights.ts` (expected tensor names and shapes, weight files and shards), `hf_load.ts`
 * ({@link loadModelFolder}) and `hf_save.ts` ({@link saveModelFolder}).
 *
 * - Names are transformers' own (`model.layers.0.self_attn.q_proj.weight`,
 *   `transformer.h.0.attn.c_attn.weight`), so a folder loads and saves without renaming; a
 *   classifier (`…ForSequenceClassification`) has the same trunk names plus `score.weight`.
 * - Both config styles parse: transformers 5's `rope_parameters` and the older `rope_theta` +
 *   `rope_scaling`; keys absent from older files take transformers' class defaults.
 * - Memory: tensors are read one at a time ({@link openSafetensors}) and converted to the
 *   requested dtype at once, so loading a 2.5 GB bf16 model holds its float32 params plus one
 *   raw tensor, never the file and a second copy; saving streams tensor by tensor too.
 * - Writing is atomic at folder level ({@link writeModelFiles}) and deterministic: sorted
 *   JSON keys, tensors in the reference safetensors layout, so loading a folder and saving it
 *   in its source dtype reproduces the tensor bytes of `save_pretrained`.
 * - Every error names the folder, the file, the key or tensor, and a fix.
 *
 * @example
 * ```ts
 * const m = await loadModelFolder("models/SmolLM2-135M", { dtype: "float32" });
 * m.cfg; // LlamaConfig { modelType: "llama", tieWordEmbeddings: true, ... }
 * await saveModelFolder("out/policy", m.cfg, m.params, {
 *   dtype: "bfloat16",
 *   config: m.config,
 *   generation: m.generation,
 * });
 * ```
 * @module
 */
export {
  type FolderFile,
  GENERATION_CONFIG,
  MODEL_CONFIG,
  MODEL_WEIGHTS,
  MODEL_WEIGHTS_INDEX,
  readFolderJson,
  writeModelFiles,
} from "./hf_folder.ts";
export {
  type GenerationConfig,
  MODEL_TYPES,
  type ModelArchitecture,
  type ModelConfig,
  parseModelConfig,
  readGenerationConfig,
  readModelConfig,
} from "./hf_config.ts";
export { modelConfigJson } from "./hf_config_write.ts";
export { loadModelFolder, type LoadModelOptions, type ModelFolder } from "./hf_load.ts";
export { saveModelFolder, type SaveModelOptions } from "./hf_save.ts";
