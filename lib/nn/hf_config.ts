/**
 * `config.json` and `generation_config.json` of a Hugging Face model folder, parsed and checked:
 * `model_type` picks the family (`familyOf`: `gpt2` → GPT-2's `GptConfig`; `llama`, `mistral`,
 * `qwen2`, `qwen3` → the Llama family's `LlamaConfig`), whose reader turns the keys into the
 * architecture; this file checks what every family shares (the transformers class, special ids),
 * and every error names the folder, the file, the key and a fix. Writing them back is
 * `hf_config_write.ts`'s.
 *
 * @module
 */
import { suggestion } from "../suggest.ts";
import type { DecoderConfig } from "./decoder.ts";
import { familyOf, isModelType, MODEL_TYPES } from "./families/mod.ts";
import { ConfigKeys } from "./hf_config_keys.ts";
import { GENERATION_CONFIG, MODEL_CONFIG, readFolderJson, trimSlashes } from "./hf_folder.ts";

export { MODEL_TYPES };

/** What a folder's model computes, from `config.json`'s `architectures`. */
export interface ModelArchitecture {
  /** The transformers class, e.g. "LlamaForCausalLM", "Qwen2ForSequenceClassification". */
  name: string;
  /** Next-token LM (`…ForCausalLM`, `GPT2LMHeadModel`) or a classifier / reward model. */
  kind: "causal-lm" | "sequence-classification";
  /** Classifier outputs (`num_labels`, else the length of `id2label`, else 2). */
  numLabels?: number;
}

/** What {@link readModelConfig} returns. */
export interface ModelConfig {
  /** The architecture: a GPT-2 `GptConfig` or a Llama-family `LlamaConfig`. */
  cfg: DecoderConfig;
  /** The transformers class and its kind. */
  architecture: ModelArchitecture;
  /** The parsed config.json, all keys. */
  config: Record<string, unknown>;
}

/** Generation defaults from `generation_config.json` (each only when present). */
export interface GenerationConfig {
  /** End-of-sequence ids (`eos_token_id`, a number or a list); empty when absent. */
  eosTokenIds: number[];
  bosTokenId?: number;
  padTokenId?: number;
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxNewTokens?: number;
  maxLength?: number;
  /** The parsed file, all keys. */
  raw: Record<string, unknown>;
}

// ---- config.json -------------------------------------------------------------------------

/** A transformers `model_type` some family reads (see {@link MODEL_TYPES}). */
export type ModelType = string;

/** The causal-LM and classifier class names of a `model_type` (its family's). */
export function familyClasses(mt: ModelType): { causal: string; classifier: string } {
  return familyOf(mt).classes(mt);
}

/**
 * Parse a config.json object (see {@link readModelConfig}); `dir` only labels errors.
 *
 * @example
 * ```ts
 * const { cfg, architecture } = parseModelConfig(JSON.parse(text), "models/x");
 * ```
 */
export function parseModelConfig(
  config: Record<string, unknown>,
  dir = ".",
  caller = "parseModelConfig",
  modelTypes: readonly string[] = MODEL_TYPES,
): ModelConfig {
  const k = new ConfigKeys(config, { caller, dir: trimSlashes(dir) });
  const mt = config.model_type;
  if (!isModelType(mt) || !modelTypes.includes(mt)) {
    const known = modelTypes.filter(isModelType);
    const near = typeof mt === "string" ? suggestion(mt, known) : "";
    throw k.bad(
      "model_type",
      `${JSON.stringify(mt)} is not supported${near} (supported: ${known.join(", ")})`,
      known.length === 1
        ? `only ${known[0]} folders load here (loadModelFolder reads ${MODEL_TYPES.join(", ")})`
        : "use a model of a supported family, or add the family (a file in lib/nn/families/)",
    );
  }
  const cfg = familyOf(mt).readConfig(k, mt);
  checkSpecialIds(k, cfg.vocabSize);
  return { cfg, architecture: parseArchitecture(k, mt), config };
}

/**
 * config.json's special token ids (pad, bos, eos: an id or a list) must lie inside the
 * vocabulary: an id past it passes loading and fails at the first Gather that reads it
 * (a reward model reads its score at `pad_token_id`).
 */
function checkSpecialIds(k: ConfigKeys, vocabSize: number): void {
  for (const key of ["pad_token_id", "bos_token_id", "eos_token_id"]) {
    const v = k.c[key];
    for (const id of Array.isArray(v) ? v : [v]) {
      if (typeof id === "number" && Number.isInteger(id) && id >= vocabSize) {
        throw k.bad(
          key,
          `${id} is outside the vocabulary (vocab_size ${vocabSize}: ids 0..${vocabSize - 1})`,
          `set "${key}" to the id of that token in tokenizer.json (or fix "vocab_size")`,
        );
      }
    }
  }
}

/**
 * Read and parse `dir/config.json`: the architecture (`GptConfig` or `LlamaConfig`), the
 * transformers class and the raw object. Rejects, naming the key and a fix, a `model_type`
 * outside {@link MODEL_TYPES}, a `hidden_act` other than silu, RoPE types other than default,
 * linear and llama3, per-layer mixes of full and sliding attention, and malformed values.
 *
 * @example
 * ```ts
 * const { cfg, architecture } = await readModelConfig("tests/fixtures/hf/qwen3-f32");
 * // cfg.qkNorm === true, architecture.name === "Qwen3ForCausalLM"
 * ```
 */
export async function readModelConfig(
  dir: string,
  caller = "readModelConfig",
): Promise<ModelConfig> {
  const config = (await readFolderJson(dir, MODEL_CONFIG, true, caller))!;
  return parseModelConfig(config, dir, caller);
}

/** The transformers class from `architectures`, checked against the family. */
function parseArchitecture(k: ConfigKeys, mt: ModelType): ModelArchitecture {
  const { causal, classifier } = familyClasses(mt);
  const list = k.c.architectures;
  if (list === undefined || list === null) return { name: causal, kind: "causal-lm" };
  if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== "string") {
    throw k.bad(
      "architectures",
      `expected one class name, got ${JSON.stringify(list)}`,
      `set it to ["${causal}"] or ["${classifier}"]`,
    );
  }
  const name = list[0];
  if (name === causal) return { name, kind: "causal-lm" };
  if (name !== classifier) {
    throw k.bad(
      "architectures",
      `"${name}" is not supported for model_type ${mt} (supported: ${causal}, ${classifier})`,
      `save the model as ${causal} or ${classifier}`,
    );
  }
  let numLabels = 2;
  if (k.c.num_labels !== undefined) numLabels = k.int("num_labels");
  else if (k.has("id2label")) {
    const m = k.c.id2label;
    if (typeof m !== "object" || Array.isArray(m)) {
      throw k.bad("id2label", `expected an object, got ${JSON.stringify(m)}`, "fix it");
    }
    numLabels = Object.keys(m as object).length;
    if (numLabels < 1) throw k.bad("id2label", "is empty", "give the classifier one label or more");
  }
  return { name, kind: "sequence-classification", numLabels };
}

// ---- generation_config.json --------------------------------------------------------------

/**
 * Read `dir/generation_config.json` (optional: undefined when absent): end-of-sequence ids
 * (a number or a list), bos/pad ids and the sampling defaults, each checked.
 *
 * @example
 * ```ts
 * const gen = await readGenerationConfig("tests/fixtures/hf/llama3-f32");
 * gen?.eosTokenIds; // [2, 62]: its eos_token_id is a list
 * ```
 */
export async function readGenerationConfig(
  dir: string,
  caller = "readGenerationConfig",
): Promise<GenerationConfig | undefined> {
  const raw = await readFolderJson(dir, GENERATION_CONFIG, false, caller);
  if (raw === undefined) return undefined;
  const k = new ConfigKeys(raw, { caller, dir: trimSlashes(dir) }, GENERATION_CONFIG);
  /** `raw[key]` when present and `ok`; undefined when absent or null. */
  const opt = <T>(key: string, ok: (v: unknown) => boolean, want: string): T | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (!ok(v)) {
      throw k.bad(key, `expected ${want}, got ${JSON.stringify(v)}`, `fix "${key}" or remove it`);
    }
    return v as T;
  };
  const isId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
  const eos = opt<number | number[]>(
    "eos_token_id",
    (v) => isId(v) || (Array.isArray(v) && v.every(isId)),
    "a token id or a list of them",
  );
  const fields: Omit<GenerationConfig, "eosTokenIds" | "raw"> = {
    bosTokenId: opt("bos_token_id", isId, "a token id"),
    padTokenId: opt("pad_token_id", isId, "a token id"),
    doSample: opt("do_sample", (v) => typeof v === "boolean", "true or false"),
    temperature: opt("temperature", (v) => typeof v === "number" && v >= 0, "a number >= 0"),
    topP: opt("top_p", (v) => typeof v === "number" && v > 0 && v <= 1, "a number in (0, 1]"),
    topK: opt("top_k", isId, "an integer >= 0"),
    maxNewTokens: opt("max_new_tokens", isCount, "a positive integer"),
    maxLength: opt("max_length", isCount, "a positive integer"),
  };
  const present = Object.entries(fields).filter(([, v]) => v !== undefined);
  return {
    eosTokenIds: eos === undefined ? [] : [eos].flat(),
    ...Object.fromEntries(present),
    raw,
  };
}
