/**
 * Hugging Face model folders of every supported family, in and out: `config.json` by
 * `model_type` (`gpt2` → {@link GptConfig}; `llama`, `mistral`, `qwen2`, `qwen3` →
 * {@link LlamaConfig}), weights from `model.safetensors` or sharded
 * (`model.safetensors.index.json` → shards) in F32, F64, F16 or BF16, `generation_config.json`
 * and the tokenizer files.
 *
 * Why one module: the Hub's models differ by family in config keys only; the folder layout,
 * the sharding, the dtypes, the tied-head convention and the atomic write are the same, so
 * each is written once here and `hf.ts` (GPT-2 with the byte tokenizer) builds on it.
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
import { exists, writeAll } from "../fs.ts";
import { canonicalJson, stableJson } from "../json.ts";
import type { DecoderConfig } from "./decoder.ts";
import { type GptConfig, gptNames, gptShapes } from "./gpt.ts";
import {
  type LlamaConfig,
  llamaNames,
  llamaShapes,
  type RopeScaling,
  validateLlamaConfig,
} from "./llama_config.ts";
import {
  castFloatTensor,
  type FloatDType,
  floatValues,
  isFloatDType,
  type NamedTensor,
  openSafetensors,
  type SafetensorsEntry,
  type SafetensorsFile,
  type TensorSpec,
  writeSafetensors,
} from "../onnx/safetensors.ts";

/** The model config file. */
export const MODEL_CONFIG = "config.json";
/** The weights file of an unsharded folder. */
export const MODEL_WEIGHTS = "model.safetensors";
/** The index of a sharded folder (`weight_map`: tensor name → shard file). */
export const MODEL_WEIGHTS_INDEX = "model.safetensors.index.json";
/** The generation defaults file (optional). */
export const GENERATION_CONFIG = "generation_config.json";

/** The transformers `model_type` values that load. */
export const MODEL_TYPES = ["gpt2", "llama", "mistral", "qwen2", "qwen3"] as const;

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

/** Options of {@link loadModelFolder}. */
export interface LoadModelOptions {
  /** Element type of the returned params and float extras (default float32; widening is exact). */
  dtype?: "float32" | "float64";
  /** Parameter-name prefix of the returned params (default the family's: "transformer", "model"). */
  prefix?: string;
  /** Accept only these `model_type` values (default all of {@link MODEL_TYPES}). */
  modelTypes?: readonly string[];
  /** Name that starts error messages (default "loadModelFolder"). */
  caller?: string;
}

/** What {@link loadModelFolder} returns. */
export interface ModelFolder extends ModelConfig {
  /** Parameters under the names of `gptShapes(cfg)` / `llamaShapes(cfg)` (a classifier: no LM head). */
  params: Record<string, Float32Array | Float64Array>;
  /** The dtype the weights are stored in (the embedding's). */
  sourceDtype: FloatDType;
  /** generation_config.json, when the folder has one. */
  generation?: GenerationConfig;
  /** Tensors that are not model parameters or buffers (`score.weight`, `v_head.weight`, ...); floats converted to `dtype`. */
  extra: Record<string, NamedTensor>;
  /** The weight files read, relative to the folder. */
  weightFiles: string[];
}

/** Options of {@link saveModelFolder}. */
export interface SaveModelOptions {
  /** Stored dtype of the weights and float extras (default float32); rounding as torch's `.to()`. */
  dtype?: "float32" | "bfloat16" | "float16";
  /**
   * A config.json to start from (e.g. {@link ModelFolder.config}): its other keys are kept, the
   * architecture keys are written from `cfg`.
   */
  config?: Record<string, unknown>;
  /** The transformers class (default: `config.architectures[0]`, else the family's causal LM). */
  architecture?: string;
  /** generation_config.json content (a {@link GenerationConfig} or the raw object). */
  generation?: GenerationConfig | Record<string, unknown>;
  /** Files copied into the folder: bytes as they are, objects as JSON. */
  tokenizerFiles?: Record<string, Uint8Array | object>;
  /** Tensors stored beside the model's (e.g. `score.weight`), names kept; floats cast to `dtype`. */
  extraTensors?: Record<string, NamedTensor>;
}

// ---- errors and JSON ---------------------------------------------------------------------

/** Where errors point: the calling function and the folder. */
interface Where {
  caller: string;
  dir: string;
}

/** An error about `file` in the folder, with a fix. */
function folderError(w: Where, file: string, what: string, fix: string): Error {
  return new Error(`${w.caller}: ${w.dir}/${file}: ${what}. Fix: ${fix}`);
}

const trimSlashes = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") || "/" : p);
const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) || "/" : ".");

/**
 * Read `dir/file` as a JSON object; undefined when it is absent and not `required`. Errors
 * name the folder, the file and a fix.
 *
 * @example
 * ```ts
 * const tok = await readFolderJson("models/x", "tokenizer_config.json", false);
 * ```
 */
export async function readFolderJson(
  dir: string,
  file: string,
  required: boolean,
  caller = "readFolderJson",
): Promise<Record<string, unknown> | undefined> {
  const w = { caller, dir: trimSlashes(dir) };
  let text: string;
  try {
    text = await Deno.readTextFile(`${w.dir}/${file}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw folderError(
        w,
        file,
        "missing",
        "point at a model folder written by saveModelFolder or transformers' save_pretrained",
      );
    }
    throw folderError(w, file, `cannot read: ${(e as Error).message}`, "check permissions");
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw folderError(w, file, `corrupt JSON: ${(e as Error).message}`, "re-save the folder");
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw folderError(w, file, "must hold a JSON object", "re-save the folder");
  }
  return obj as Record<string, unknown>;
}

const encoder = new TextEncoder();
/** JSON as transformers writes config files: sorted keys, 2-space indent, trailing newline. */
const configBytes = (x: unknown) => encoder.encode(stableJson(x));
/** Other JSON files (tokenizer files): keys as given. */
const jsonBytes = (x: unknown) => encoder.encode(JSON.stringify(x, null, 2) + "\n");

// ---- config.json -------------------------------------------------------------------------

type LlamaModelType = LlamaConfig["modelType"];
type ModelType = (typeof MODEL_TYPES)[number];

/** transformers class-name stem per model_type. */
const CLASS_STEM: Record<ModelType, string> = {
  gpt2: "GPT2",
  llama: "Llama",
  mistral: "Mistral",
  qwen2: "Qwen2",
  qwen3: "Qwen3",
};

/** The causal-LM and classifier class names of a family. */
function familyClasses(mt: ModelType): { causal: string; classifier: string } {
  const stem = CLASS_STEM[mt];
  return {
    causal: mt === "gpt2" ? "GPT2LMHeadModel" : `${stem}ForCausalLM`,
    classifier: `${stem}ForSequenceClassification`,
  };
}

/** Defaults of the transformers config classes for keys older files may lack. */
const LLAMA_DEFAULTS: Record<
  LlamaModelType,
  { kvHeads: number | null; headDim: number | null; slidingWindow: number | null }
> = {
  llama: { kvHeads: null, headDim: null, slidingWindow: null },
  mistral: { kvHeads: 8, headDim: null, slidingWindow: 4096 },
  qwen2: { kvHeads: 32, headDim: null, slidingWindow: 4096 },
  qwen3: { kvHeads: 32, headDim: 128, slidingWindow: 4096 },
};

/** Qwen2/Qwen3: layers before `max_window_layers` (default 28) use full attention. */
const QWEN_MAX_WINDOW_LAYERS = 28;

/** Typed readers of config.json keys; each error names the key and a fix. */
class Keys {
  constructor(
    readonly c: Record<string, unknown>,
    readonly w: Where,
    readonly file = MODEL_CONFIG,
  ) {}

  bad(key: string, what: string, fix: string): Error {
    return folderError(this.w, this.file, `key "${key}": ${what}`, fix);
  }

  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }

  /** A positive integer; `def` when absent or null (required when `def` is undefined). */
  int(key: string, def?: number): number {
    const v = this.c[key];
    if ((v === undefined || v === null) && def !== undefined) return def;
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw this.bad(
        key,
        `expected a positive integer, got ${JSON.stringify(v)}`,
        `set "${key}" to the model's value`,
      );
    }
    return v as number;
  }

  /** A positive number; `def` when absent. */
  num(key: string, def?: number, v: unknown = this.c[key]): number {
    if ((v === undefined || v === null) && def !== undefined) return def;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw this.bad(
        key,
        `expected a positive number, got ${JSON.stringify(v)}`,
        `set "${key}" to the model's value`,
      );
    }
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.c[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== "boolean") {
      throw this.bad(key, `expected true or false, got ${JSON.stringify(v)}`, `set "${key}"`);
    }
    return v;
  }
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
  const k = new Keys(config, { caller, dir: trimSlashes(dir) });
  const mt = config.model_type;
  if (
    typeof mt !== "string" || !modelTypes.includes(mt) || !MODEL_TYPES.includes(mt as ModelType)
  ) {
    const known = modelTypes.filter((t) => MODEL_TYPES.includes(t as ModelType));
    throw k.bad(
      "model_type",
      `${JSON.stringify(mt)} is not supported (supported: ${known.join(", ")})`,
      known.length === 1
        ? `only ${known[0]} folders load here (loadModelFolder reads ${MODEL_TYPES.join(", ")})`
        : "use a model of a supported family, or add the family to lib/nn",
    );
  }
  const cfg = mt === "gpt2" ? parseGpt2(k) : parseLlama(k, mt as LlamaModelType);
  return { cfg, architecture: parseArchitecture(k, mt as ModelType), config };
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

/** GptConfig from a gpt2 config.json; rejects GPT-2 variants gpt.ts does not implement. */
function parseGpt2(k: Keys): GptConfig {
  const cfg: GptConfig = {
    vocabSize: k.int("vocab_size"),
    nPositions: k.int("n_positions"),
    nEmbd: k.int("n_embd"),
    nLayer: k.int("n_layer"),
    nHead: k.int("n_head"),
  };
  if (k.c.layer_norm_epsilon !== undefined) cfg.layerNormEps = k.num("layer_norm_epsilon");
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw k.bad(
      "n_head",
      `n_embd ${cfg.nEmbd} is not divisible by n_head ${cfg.nHead}`,
      "fix them",
    );
  }
  // GPT2Config options that change the math: only GPT-2's defaults are implemented.
  const supported: [string, (v: unknown) => boolean, string][] = [
    [
      "activation_function",
      (v) => v === undefined || v === "gelu_new" || v === "gelu_pytorch_tanh",
      '"gelu_new" (tanh GELU)',
    ],
    ["n_inner", (v) => v === undefined || v === null || v === 4 * cfg.nEmbd, "null (4 * n_embd)"],
    ["tie_word_embeddings", (v) => v === undefined || v === true, "true"],
    ["scale_attn_weights", (v) => v === undefined || v === true, "true"],
    ["scale_attn_by_inverse_layer_idx", (v) => v === undefined || v === false, "false"],
    ["add_cross_attention", (v) => v === undefined || v === false, "false"],
  ];
  for (const [key, ok, want] of supported) {
    if (!ok(k.c[key])) {
      throw k.bad(
        key,
        `${JSON.stringify(k.c[key])} is not supported by lib/nn/gpt.ts`,
        `only ${want} is implemented`,
      );
    }
  }
  return cfg;
}

/** LlamaConfig from a llama / mistral / qwen2 / qwen3 config.json. */
function parseLlama(k: Keys, mt: LlamaModelType): LlamaConfig {
  const def = LLAMA_DEFAULTS[mt];
  const hiddenSize = k.int("hidden_size");
  const nHead = k.int("num_attention_heads");
  const act = k.c.hidden_act ?? "silu";
  if (act !== "silu") {
    throw k.bad(
      "hidden_act",
      `${JSON.stringify(act)} is not supported by lib/nn/llama.ts`,
      `only "silu" (SwiGLU) is implemented`,
    );
  }
  if (hiddenSize % nHead !== 0 && !k.has("head_dim") && def.headDim === null) {
    throw k.bad(
      "num_attention_heads",
      `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${nHead}`,
      `set "head_dim"`,
    );
  }
  const attentionBias = mt === "llama" || mt === "qwen3" ? k.bool("attention_bias", false) : false;
  const nLayer = k.int("num_hidden_layers");
  const cfg: LlamaConfig = {
    family: "llama",
    modelType: mt,
    vocabSize: k.int("vocab_size"),
    hiddenSize,
    intermediateSize: k.int("intermediate_size"),
    nLayer,
    nHead,
    nKvHead: k.int("num_key_value_heads", def.kvHeads ?? nHead),
    headDim: k.int("head_dim", def.headDim ?? Math.floor(hiddenSize / nHead)),
    maxPositions: k.int("max_position_embeddings"),
    rmsNormEps: k.num("rms_norm_eps", 1e-6),
    ...parseRope(k),
    qkvBias: mt === "qwen2" || attentionBias,
    oBias: attentionBias,
    mlpBias: mt === "llama" ? k.bool("mlp_bias", false) : false,
    qkNorm: mt === "qwen3",
    tieWordEmbeddings: k.bool("tie_word_embeddings", false),
  };
  const window = parseSlidingWindow(k, mt, nLayer);
  if (window !== undefined) cfg.slidingWindow = window;
  try {
    validateLlamaConfig(cfg);
  } catch (e) {
    throw folderError(
      k.w,
      MODEL_CONFIG,
      (e as Error).message,
      "fix the head counts in config.json",
    );
  }
  return cfg;
}

/** The rope parameters object and the key it came from; per-layer-type maps must agree. */
function ropeObject(k: Keys): [key: string, obj: Record<string, unknown> | undefined] {
  const key = k.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const v = k.c[key];
  if (v === undefined || v === null) return [key, undefined];
  if (typeof v !== "object" || Array.isArray(v)) {
    throw k.bad(key, `expected an object, got ${JSON.stringify(v)}`, `fix "${key}"`);
  }
  const o = v as Record<string, unknown>;
  const values = Object.values(o);
  const perLayerType = !("rope_type" in o) && !("type" in o) && values.length > 0 &&
    values.every((x) => x !== null && typeof x === "object" && !Array.isArray(x));
  if (!perLayerType) return [key, o];
  const first = canonicalJson(values[0]);
  if (values.some((x) => canonicalJson(x) !== first)) {
    throw k.bad(
      key,
      `differs between layer types (${Object.keys(o).join(", ")})`,
      "lib/nn/llama.ts applies one RoPE to every layer; use a model with one rope setting",
    );
  }
  return [`${key}.${Object.keys(o)[0]}`, values[0] as Record<string, unknown>];
}

/** ropeTheta and ropeScaling from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling`. */
function parseRope(k: Keys): { ropeTheta: number; ropeScaling: RopeScaling } {
  const [key, p] = ropeObject(k);
  const thetaKey = p?.rope_theta !== undefined ? `${key}.rope_theta` : "rope_theta";
  const ropeTheta = k.num(thetaKey, 10000, p?.rope_theta ?? k.c.rope_theta);
  const partial = p?.partial_rotary_factor ?? k.c.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw k.bad(
      "partial_rotary_factor",
      `${JSON.stringify(partial)} is not supported`,
      "lib/nn/llama.ts rotates the whole head (partial_rotary_factor 1)",
    );
  }
  const type = p?.rope_type ?? p?.type ?? "default";
  const field = (f: string) => k.num(`${key}.${f}`, undefined, p?.[f]);
  switch (type) {
    case "default":
      return { ropeTheta, ropeScaling: { type: "default" } };
    case "linear":
      return { ropeTheta, ropeScaling: { type: "linear", factor: field("factor") } };
    case "llama3": {
      const orig = p?.original_max_position_embeddings;
      if (!Number.isInteger(orig) || (orig as number) < 1) {
        throw k.bad(
          `${key}.original_max_position_embeddings`,
          `expected a positive integer, got ${JSON.stringify(orig)}`,
          "set it to the pre-training context length (Llama 3.x: 8192)",
        );
      }
      return {
        ropeTheta,
        ropeScaling: {
          type: "llama3",
          factor: field("factor"),
          lowFreqFactor: field("low_freq_factor"),
          highFreqFactor: field("high_freq_factor"),
          originalMaxPositions: orig as number,
        },
      };
    }
    default:
      throw k.bad(
        `${key}.rope_type`,
        `${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`,
        "use a model with default, linear or llama3 RoPE, or add the rope type to lib/nn/llama.ts",
      );
  }
}

/** The window when every layer slides, undefined when none does; a mix is an error. */
function parseSlidingWindow(k: Keys, mt: LlamaModelType, nLayer: number): number | undefined {
  if (mt === "llama") return undefined;
  const def = LLAMA_DEFAULTS[mt].slidingWindow!;
  if (mt === "mistral") {
    return k.c.sliding_window === null ? undefined : k.int("sliding_window", def);
  }
  if (!k.bool("use_sliding_window", false) || k.c.sliding_window === null) return undefined;
  const window = k.int("sliding_window", def);
  const types = k.c.layer_types;
  let sliding: boolean[];
  if (types === undefined || types === null) {
    const full = k.c.max_window_layers === undefined
      ? QWEN_MAX_WINDOW_LAYERS
      : Number(k.c.max_window_layers);
    if (!Number.isInteger(full) || full < 0) {
      throw k.bad(
        "max_window_layers",
        `expected a non-negative integer, got ${JSON.stringify(k.c.max_window_layers)}`,
        "set it",
      );
    }
    sliding = Array.from({ length: nLayer }, (_, i) => i >= full);
  } else {
    if (
      !Array.isArray(types) || types.length !== nLayer ||
      !types.every((t) => t === "full_attention" || t === "sliding_attention")
    ) {
      throw k.bad(
        "layer_types",
        `expected ${nLayer} of "full_attention" / "sliding_attention", got ${
          JSON.stringify(types)
        }`,
        "fix layer_types or remove it",
      );
    }
    sliding = types.map((t) => t === "sliding_attention");
  }
  if (sliding.every((s) => !s)) return undefined;
  if (sliding.every((s) => s)) return window;
  const which = sliding.flatMap((s, i) => (s ? [i] : []));
  throw k.bad(
    types === undefined || types === null ? "max_window_layers" : "layer_types",
    `mixes full and sliding attention (layers ${which.join(", ")} slide)`,
    "lib/nn/llama.ts applies one window to every layer: set use_sliding_window to false, or " +
      "make every layer slide (max_window_layers 0)",
  );
}

/** The transformers class from `architectures`, checked against the family. */
function parseArchitecture(k: Keys, mt: ModelType): ModelArchitecture {
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
  const k = new Keys(raw, { caller, dir: trimSlashes(dir) }, GENERATION_CONFIG);
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

/** generation_config.json's object for a {@link GenerationConfig} (fields over `raw`) or a raw object. */
function generationJson(gen: GenerationConfig | Record<string, unknown>): Record<string, unknown> {
  if (!Array.isArray((gen as GenerationConfig).eosTokenIds)) return { ...gen };
  const g = gen as GenerationConfig;
  const out: Record<string, unknown> = { ...(g.raw ?? {}) };
  const put = (key: string, v: unknown) => {
    if (v !== undefined) out[key] = v;
  };
  if (g.eosTokenIds.length > 0 || out.eos_token_id !== undefined) {
    out.eos_token_id = g.eosTokenIds.length === 1 ? g.eosTokenIds[0] : g.eosTokenIds;
  }
  put("bos_token_id", g.bosTokenId);
  put("pad_token_id", g.padTokenId);
  put("do_sample", g.doSample);
  put("temperature", g.temperature);
  put("top_p", g.topP);
  put("top_k", g.topK);
  put("max_new_tokens", g.maxNewTokens);
  put("max_length", g.maxLength);
  return out;
}

// ---- weights: names and shapes -----------------------------------------------------------

/** One expected parameter: our name, the names a file may use for it, its shape. */
interface Expected {
  ours: string;
  candidates: string[];
  shape: number[];
}

/** The model's parameters as files name them, for `cfg` and a classifier or LM. */
function expectedParams(cfg: DecoderConfig, classifier: boolean): Expected[] {
  if (isLlamaCfg(cfg)) {
    const ours = Object.entries(llamaShapes(cfg));
    const theirs = Object.keys(llamaShapes({ ...cfg, prefix: "model" }));
    const lmHead = llamaNames(cfg).lmHead;
    return ours.flatMap(([n, { shape }], i) => {
      if (classifier && n === lmHead) return [];
      const hf = theirs[i];
      const bare = hf.startsWith("model.") ? hf.slice("model.".length) : hf;
      return [{ ours: n, candidates: bare === hf ? [hf] : [hf, bare], shape }];
    });
  }
  const ours = Object.entries(gptShapes(cfg));
  const theirs = Object.keys(gptShapes({ ...cfg, prefix: "transformer" }));
  return ours.map(([n, { shape }], i) => ({
    ours: n,
    candidates: [theirs[i], theirs[i].slice("transformer.".length)],
    shape,
  }));
}

function isLlamaCfg(cfg: DecoderConfig): cfg is LlamaConfig {
  return (cfg as LlamaConfig).family === "llama";
}

/** Buffers older transformers saved beside the weights: skipped on load. */
const BUFFER =
  /^((transformer\.)?h\.\d+\.attn\.(bias|masked_bias)|(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq)$/;

/** The embedding's parameter name (the tied head's matrix). */
function embedName(cfg: DecoderConfig): string {
  return isLlamaCfg(cfg) ? llamaNames(cfg).embed : gptNames(cfg).wte;
}

function tied(cfg: DecoderConfig): boolean {
  return isLlamaCfg(cfg) ? cfg.tieWordEmbeddings : true;
}

/** "key=value" of the config keys that determine the shape of tensor `name`. */
function impliedBy(cfg: DecoderConfig, name: string, numLabels?: number): string {
  if (!isLlamaCfg(cfg)) {
    return `n_embd=${cfg.nEmbd}, n_layer=${cfg.nLayer}, vocab_size=${cfg.vocabSize}, ` +
      `n_positions=${cfg.nPositions}` + (numLabels ? `, num_labels=${numLabels}` : "");
  }
  const d = `hidden_size=${cfg.hiddenSize}`, hd = `head_dim=${cfg.headDim}`;
  const f = `intermediate_size=${cfg.intermediateSize}`;
  const rules: [RegExp, string][] = [
    [/embed_tokens|lm_head/, `vocab_size=${cfg.vocabSize}, ${d}`],
    [/^score\./, `num_labels=${numLabels}, ${d}`],
    [/q_proj\./, `num_attention_heads=${cfg.nHead}, ${hd}, ${d}`],
    [/[kv]_proj\./, `num_key_value_heads=${cfg.nKvHead}, ${hd}, ${d}`],
    [/o_proj\./, `${d}, num_attention_heads=${cfg.nHead}, ${hd}`],
    [/[qk]_norm/, hd],
    [/mlp\./, `${f}, ${d}`],
  ];
  return rules.find(([re]) => re.test(name))?.[1] ?? d;
}

// ---- weights: files ----------------------------------------------------------------------

/** The open weight files of a folder and where each tensor lives. */
interface Weights {
  files: { name: string; st: SafetensorsFile }[];
  byName: Map<string, { file: string; st: SafetensorsFile; entry: SafetensorsEntry }>;
  close(): void;
}

/** Open one safetensors file of the folder; its errors become folder errors. */
async function openWeightFile(w: Where, file: string): Promise<SafetensorsFile> {
  const path = `${w.dir}/${file}`;
  try {
    return await openSafetensors(path);
  } catch (e) {
    const msg = (e as Error).message;
    if (msg.startsWith(`safetensors: file not found`)) {
      throw folderError(w, file, "missing", "re-download or re-save the folder");
    }
    throw folderError(
      w,
      file,
      `corrupt: ${msg.replace(`safetensors: ${path}: `, "")}`,
      "re-download or re-save the folder (the file is truncated or not a safetensors file)",
    );
  }
}

/** The shard files an index names, checked (plain names inside the folder, present). */
async function shardFiles(w: Where): Promise<{ files: string[]; map: Map<string, string> }> {
  const index = (await readFolderJson(w.dir, MODEL_WEIGHTS_INDEX, true, w.caller))!;
  const wm = index.weight_map;
  const bad = (what: string, fix: string) => folderError(w, MODEL_WEIGHTS_INDEX, what, fix);
  if (wm === null || typeof wm !== "object" || Array.isArray(wm)) {
    throw bad(
      `key "weight_map": expected an object of tensor name -> shard file`,
      "re-save the folder",
    );
  }
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (
      typeof file !== "string" || file === "" || file.startsWith("/") ||
      file.split("/").includes("..")
    ) {
      throw bad(
        `key "weight_map": tensor "${tensor}" maps to ${
          JSON.stringify(file)
        }, not a file in the folder`,
        "re-save the folder",
      );
    }
    map.set(tensor, file);
  }
  const files = [...new Set(map.values())].sort();
  for (const file of files) {
    if (!(await exists(`${w.dir}/${file}`))) {
      const tensor = [...map].find(([, f]) => f === file)![0];
      throw bad(
        `names shard "${file}" (for "${tensor}" and others), which is missing`,
        `copy ${file} into the folder (re-download it) or re-save the model`,
      );
    }
  }
  return { files, map };
}

/** Open the folder's weights: model.safetensors, or the shards of model.safetensors.index.json. */
async function openWeights(w: Where): Promise<Weights> {
  let names: string[];
  let map: Map<string, string> | undefined;
  if (await exists(`${w.dir}/${MODEL_WEIGHTS}`)) names = [MODEL_WEIGHTS];
  else if (await exists(`${w.dir}/${MODEL_WEIGHTS_INDEX}`)) {
    ({ files: names, map } = await shardFiles(w));
  } else {
    const fix = (await exists(`${w.dir}/pytorch_model.bin`))
      ? "pytorch_model.bin is not read: re-save with save_pretrained(..., safe_serialization=True)"
      : `point at a folder written by saveModelFolder or save_pretrained (${MODEL_WEIGHTS} or ${MODEL_WEIGHTS_INDEX})`;
    throw folderError(w, MODEL_WEIGHTS, "missing", fix);
  }
  const files: Weights["files"] = [];
  const close = () => files.forEach((f) => f.st.close());
  try {
    const byName: Weights["byName"] = new Map();
    for (const name of names) {
      const st = await openWeightFile(w, name);
      files.push({ name, st });
      for (const entry of st.header.entries) {
        const prev = byName.get(entry.name);
        if (prev) {
          throw folderError(
            w,
            name,
            `tensor "${entry.name}" is also in ${prev.file}`,
            "keep one copy",
          );
        }
        byName.set(entry.name, { file: name, st, entry });
      }
    }
    for (const [tensor, file] of map ?? []) {
      if (byName.get(tensor)?.file !== file) {
        throw folderError(
          w,
          MODEL_WEIGHTS_INDEX,
          `weight_map puts "${tensor}" in ${file}, which does not hold it`,
          "re-save the folder (the index and the shards disagree)",
        );
      }
    }
    return { files, byName, close };
  } catch (e) {
    close();
    throw e;
  }
}

// ---- loading -----------------------------------------------------------------------------

/** Which file tensor `expected` is in, checked for ambiguity, dtype and shape (no data read). */
function locate(
  w: Where,
  weights: Weights,
  e: Expected,
  cfg: DecoderConfig,
): { file: string; name: string; entry: SafetensorsEntry; st: SafetensorsFile } {
  const found = e.candidates.filter((n) => weights.byName.has(n));
  const searched = weights.files.map((f) => f.name).join(", ");
  const fileLabel = weights.files.length === 1 ? weights.files[0].name : MODEL_WEIGHTS_INDEX;
  if (found.length === 0) {
    const alt = e.candidates.length > 1 ? ` (also looked for "${e.candidates[1]}")` : "";
    const head = e.ours === "lm_head.weight";
    throw folderError(
      w,
      fileLabel,
      `missing tensor "${e.candidates[0]}"${alt}; searched ${searched}`,
      head
        ? `set "tie_word_embeddings": true in config.json if the LM head is the embedding, or add lm_head.weight`
        : `check that config.json (${impliedBy(cfg, e.candidates[0])}${
          isLlamaCfg(cfg) ? `, num_hidden_layers=${cfg.nLayer}` : ""
        }) describes these weights`,
    );
  }
  if (found.length > 1) {
    throw folderError(
      w,
      fileLabel,
      `holds both "${found[1]}" and "${found[0]}"`,
      "keep one of them",
    );
  }
  const at = weights.byName.get(found[0])!;
  checkEntry(w, at.file, at.entry, e.shape, impliedBy(cfg, found[0]));
  return { ...at, name: found[0] };
}

/** A weight's dtype must be a float we read and its shape the expected one. */
function checkEntry(
  w: Where,
  file: string,
  entry: SafetensorsEntry,
  shape: number[],
  keys: string,
) {
  if (!entry.dtype || !isFloatDType(entry.dtype)) {
    throw folderError(
      w,
      file,
      `tensor "${entry.name}" has dtype ${entry.tag}, which is not supported (supported: F32, F64, F16, BF16)`,
      "dequantize the model (e.g. load it in transformers with dtype=torch.bfloat16 and save_pretrained)",
    );
  }
  if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
    throw folderError(
      w,
      file,
      `tensor "${entry.name}" has shape [${entry.shape}], config.json (${keys}) implies [${shape}]`,
      "make config.json match the weights, or re-save the folder",
    );
  }
}

/**
 * Load a model folder of any supported family (see the module doc): config.json, the weights
 * (unsharded or sharded; F32/F64/F16/BF16, converted to `opts.dtype`), generation_config.json.
 * A tied head's `lm_head.weight`, when the file has one, must equal the embedding; an untied
 * head must be present. Tensors that are not parameters (a classifier's `score.weight`, a
 * value head) come back in `extra`. Throws one error naming folder, file, tensor or key, and
 * a fix, for: an unsupported model_type or architecture, an unsupported tensor dtype, a shard
 * the index names that is missing, a missing tensor, a wrong shape, a truncated file.
 *
 * @example
 * ```ts
 * const { cfg, params, sourceDtype, extra } = await loadModelFolder("tests/fixtures/hf/llama-rm");
 * extra["score.weight"].shape; // [1, 32]
 * ```
 */
export async function loadModelFolder(
  dir: string,
  opts: LoadModelOptions = {},
): Promise<ModelFolder> {
  const w: Where = { caller: opts.caller ?? "loadModelFolder", dir: trimSlashes(dir) };
  const config = (await readFolderJson(w.dir, MODEL_CONFIG, true, w.caller))!;
  const { cfg, architecture } = parseModelConfig(config, w.dir, w.caller, opts.modelTypes);
  if (opts.prefix !== undefined) cfg.prefix = opts.prefix;
  const generation = await readGenerationConfig(w.dir, w.caller);
  const dtype = opts.dtype ?? "float32";
  const classifier = architecture.kind === "sequence-classification";

  const weights = await openWeights(w);
  try {
    // Resolve and check every name, dtype and shape from the headers before reading data.
    const wanted = new Map<string, string>(); // file tensor name -> our param name
    const byOurs = new Map<string, ReturnType<typeof locate>>();
    const expected = expectedParams(cfg, classifier);
    for (const e of expected) {
      const at = locate(w, weights, e, cfg);
      wanted.set(at.name, e.ours);
      byOurs.set(e.ours, at);
    }
    const hidden = isLlamaCfg(cfg) ? cfg.hiddenSize : cfg.nEmbd;
    if (classifier) {
      const at = weights.byName.get("score.weight");
      if (!at) {
        throw folderError(
          w,
          weights.files.length === 1 ? weights.files[0].name : MODEL_WEIGHTS_INDEX,
          `missing tensor "score.weight" of ${architecture.name}`,
          "save the classifier with its score head, or set architectures to the causal LM",
        );
      }
      checkEntry(
        w,
        at.file,
        at.entry,
        [architecture.numLabels!, hidden],
        impliedBy(cfg, "score.weight", architecture.numLabels),
      );
    }
    const embedAt = byOurs.get(embedName(cfg))!;
    const sourceDtype = embedAt.entry.dtype as FloatDType;

    const params: Record<string, Float32Array | Float64Array> = {};
    const extra: Record<string, NamedTensor> = {};
    let lmHead: { file: string; values: Float32Array | Float64Array } | undefined;
    // File by file, in data order: each tensor is read, converted and its raw bytes dropped.
    for (const { name: file, st } of weights.files) {
      for (const entry of st.header.entries) {
        const ours = wanted.get(entry.name);
        if (ours !== undefined) {
          params[ours] = floatValues(await st.read(entry.name), dtype);
        } else if (entry.name === "lm_head.weight" && tied(cfg) && !classifier) {
          checkEntry(w, file, entry, embedAt.entry.shape, impliedBy(cfg, entry.name));
          lmHead = { file, values: floatValues(await st.read(entry.name), dtype) };
        } else if (!BUFFER.test(entry.name)) {
          if (!entry.dtype) checkEntry(w, file, entry, entry.shape, ""); // throws: unsupported dtype
          const t = await st.read(entry.name);
          extra[entry.name] = isFloatDType(t.dtype)
            ? { dtype, shape: t.shape, data: floatValues(t, dtype) }
            : t;
        }
      }
    }
    if (lmHead) checkTiedHead(w, cfg, lmHead, params[embedName(cfg)]);
    return {
      cfg,
      architecture,
      config,
      params: Object.fromEntries(expected.map((e) => [e.ours, params[e.ours]])), // shapes order
      sourceDtype,
      ...(generation ? { generation } : {}),
      extra,
      weightFiles: weights.files.map((f) => f.name),
    };
  } finally {
    weights.close();
  }
}

/** A tied model's stored `lm_head.weight` must equal the embedding. */
function checkTiedHead(
  w: Where,
  cfg: DecoderConfig,
  head: { file: string; values: Float32Array | Float64Array },
  embed: Float32Array | Float64Array,
): void {
  const d = head.values;
  if (
    d.length !== embed.length ||
    d.some((v, i) => v !== embed[i] && !(v !== v && embed[i] !== embed[i]))
  ) {
    const key = isLlamaCfg(cfg) ? `"tie_word_embeddings": true` : "GPT-2's tied head";
    throw folderError(
      w,
      head.file,
      `"lm_head.weight" differs from the token embedding "${
        embedName(cfg)
      }": an untied LM head, but config.json says ${key}`,
      isLlamaCfg(cfg)
        ? `set "tie_word_embeddings": false in config.json, or drop lm_head.weight`
        : "gpt.ts ties the head to wte; tie the weights (or drop lm_head.weight) before saving",
    );
  }
}

// ---- saving ------------------------------------------------------------------------------

/** Keys of config.json written from `cfg` (the rest of a given config is kept). */
const LLAMA_ARCH_KEYS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "max_position_embeddings",
  "rms_norm_eps",
  "hidden_act",
  "rope_parameters",
  "rope_scaling",
  "rope_theta",
  "attention_bias",
  "mlp_bias",
  "tie_word_embeddings",
  "sliding_window",
  "use_sliding_window",
  "max_window_layers",
  "layer_types",
];

/** `rope_parameters` for a LlamaConfig, as transformers 5 writes it. */
function ropeJson(cfg: LlamaConfig): Record<string, unknown> {
  const s = cfg.ropeScaling;
  const out: Record<string, unknown> = { rope_theta: cfg.ropeTheta, rope_type: s.type };
  if (s.type === "linear") out.factor = s.factor;
  if (s.type === "llama3") {
    Object.assign(out, {
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositions,
    });
  }
  return out;
}

/** Flags a family's config.json cannot express: each a message. */
function inexpressible(cfg: LlamaConfig): string[] {
  const out: string[] = [];
  const need = (ok: boolean, what: string) => ok || out.push(what);
  const mt = cfg.modelType;
  if (mt === "llama" || mt === "qwen3") {
    need(cfg.qkvBias === cfg.oBias, "qkvBias and oBias must be equal (attention_bias)");
  }
  if (mt === "mistral") need(!cfg.qkvBias && !cfg.oBias, "no attention biases");
  if (mt === "qwen2") need(cfg.qkvBias && !cfg.oBias, "qkvBias true and oBias false");
  if (mt !== "llama") need(!cfg.mlpBias, "mlpBias false");
  need(cfg.qkNorm === (mt === "qwen3"), mt === "qwen3" ? "qkNorm true" : "qkNorm false");
  if (mt === "llama") need(cfg.slidingWindow === undefined, "no sliding window");
  return out;
}

/** Llama-family architecture keys for config.json. */
function llamaArch(cfg: LlamaConfig, base: Record<string, unknown>): Record<string, unknown> {
  const mt = cfg.modelType;
  const arch: Record<string, unknown> = {
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.nLayer,
    num_attention_heads: cfg.nHead,
    num_key_value_heads: cfg.nKvHead,
    max_position_embeddings: cfg.maxPositions,
    rms_norm_eps: cfg.rmsNormEps,
    hidden_act: "silu",
    rope_parameters: ropeJson(cfg),
    tie_word_embeddings: cfg.tieWordEmbeddings,
  };
  // Qwen2Config has no head_dim key (transformers derives it): write it only when it differs.
  const derived = Math.floor(cfg.hiddenSize / cfg.nHead);
  if (mt !== "qwen2" || cfg.headDim !== derived || base.head_dim !== undefined) {
    arch.head_dim = cfg.headDim;
  }
  if (mt === "llama" || mt === "qwen3") arch.attention_bias = cfg.oBias;
  if (mt === "llama") arch.mlp_bias = cfg.mlpBias;
  if (mt === "mistral") arch.sliding_window = cfg.slidingWindow ?? null;
  if (mt === "qwen2" || mt === "qwen3") {
    const slide = cfg.slidingWindow !== undefined;
    arch.use_sliding_window = slide;
    arch.sliding_window = cfg.slidingWindow ?? null;
    arch.max_window_layers = slide ? 0 : base.max_window_layers ?? QWEN_MAX_WINDOW_LAYERS;
    arch.layer_types = Array(cfg.nLayer).fill(slide ? "sliding_attention" : "full_attention");
  }
  return arch;
}

/** Defaults of a fresh llama-family config.json (no base given). */
function llamaFresh(cfg: LlamaConfig): Record<string, unknown> {
  return {
    attention_dropout: 0,
    initializer_range: 0.02,
    use_cache: true,
    ...(cfg.modelType === "llama" ? { pretraining_tp: 1 } : {}),
  };
}

/** GPT-2 architecture keys for config.json. */
function gpt2Arch(cfg: GptConfig, base: Record<string, unknown>): Record<string, unknown> {
  const arch: Record<string, unknown> = {
    vocab_size: cfg.vocabSize,
    n_positions: cfg.nPositions,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    layer_norm_epsilon: cfg.layerNormEps ?? 1e-5,
    tie_word_embeddings: true,
  };
  if (base.n_ctx !== undefined) arch.n_ctx = cfg.nPositions;
  return arch;
}

/** Defaults of a fresh gpt2 config.json: GPT2Config's keys for the model of gpt.ts (no dropout). */
function gpt2Fresh(cfg: GptConfig): Record<string, unknown> {
  return {
    activation_function: "gelu_new",
    add_cross_attention: false,
    attn_pdrop: 0,
    bos_token_id: cfg.vocabSize - 1,
    embd_pdrop: 0,
    eos_token_id: cfg.vocabSize - 1,
    initializer_range: 0.02,
    n_inner: null,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    use_cache: true,
  };
}

/**
 * The config.json object for `cfg`, as transformers 5 writes it: `model_type`,
 * `architectures`, every architecture key, `dtype`, sorted keys. With `opts.config`, its
 * other keys are kept (`torch_dtype`, `rope_scaling` and `rope_theta` become `dtype` and
 * `rope_parameters`); the result always parses back to `cfg`.
 *
 * @example
 * ```ts
 * modelConfigJson(cfg, { dtype: "bfloat16" }).rope_parameters; // { rope_theta: 500000, rope_type: "llama3", ... }
 * ```
 */
export function modelConfigJson(
  cfg: DecoderConfig,
  opts: {
    dtype?: FloatDType;
    config?: Record<string, unknown>;
    architecture?: string;
    numLabels?: number;
  } = {},
): Record<string, unknown> {
  const fail = (what: string) => new Error(`modelConfigJson: ${what}`);
  const llama = isLlamaCfg(cfg);
  if (llama) {
    validateLlamaConfig(cfg);
    const bad = inexpressible(cfg);
    if (bad.length > 0) {
      throw fail(
        `a ${cfg.modelType} config.json needs ${
          bad.join(", ")
        }; fix the LlamaConfig or its modelType`,
      );
    }
  } else gptShapes(cfg);
  const mt: ModelType = llama ? cfg.modelType : "gpt2";
  const base = opts.config ?? {};
  const out: Record<string, unknown> = opts.config
    ? { ...base }
    : llama
    ? llamaFresh(cfg)
    : gpt2Fresh(cfg);
  for (const key of [...LLAMA_ARCH_KEYS, "torch_dtype", "n_ctx"]) delete out[key];
  const { causal, classifier } = familyClasses(mt);
  const given = Array.isArray(base.architectures) ? base.architectures[0] : undefined;
  const architecture = opts.architecture ?? given ?? causal;
  if (architecture !== causal && architecture !== classifier) {
    throw fail(`architecture "${architecture}" is not one of ${causal}, ${classifier}`);
  }
  Object.assign(out, llama ? llamaArch(cfg, base) : gpt2Arch(cfg, base), {
    architectures: [architecture],
    model_type: mt,
    dtype: opts.dtype ?? "float32",
  });
  if (architecture === classifier && opts.numLabels !== undefined) {
    const labels = Array.from({ length: opts.numLabels }, (_, i) => `LABEL_${i}`);
    const current = out.id2label ? Object.keys(out.id2label as object).length : 2;
    if (current !== opts.numLabels) {
      out.id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
      out.label2id = Object.fromEntries(labels.map((l, i) => [l, i]));
      delete out.num_labels;
    }
  }
  const json = JSON.parse(canonicalJson(out)) as Record<string, unknown>;
  const back = parseModelConfig(json, "<modelConfigJson>", "modelConfigJson").cfg;
  if (!sameConfig(back, cfg)) {
    throw fail(`the config does not describe the model (it parses to ${JSON.stringify(back)})`);
  }
  return json;
}

/** Equal architectures (the name prefix aside). */
function sameConfig(a: DecoderConfig, b: DecoderConfig): boolean {
  const strip = (c: DecoderConfig) => {
    const { prefix: _, ...rest } = c as DecoderConfig & { prefix?: string };
    if (!isLlamaCfg(c)) (rest as GptConfig).layerNormEps ??= 1e-5;
    return canonicalJson(rest);
  };
  return strip(a) === strip(b);
}

/** A file of a folder: its bytes, or a function that streams them into the open file. */
export type FolderFile = Uint8Array | ((file: Deno.FsFile) => Promise<void>);

/** fsync a directory so renames in it are durable. Best effort: not every OS allows it. */
async function syncDir(path: string): Promise<void> {
  try {
    const f = await Deno.open(path, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch { /* not supported here */ }
}

async function writeSynced(path: string, content: FolderFile): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    if (content instanceof Uint8Array) await writeAll(f, content);
    else await content(f);
    await f.sync();
  } finally {
    f.close();
  }
}

function hex8(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Write a model folder atomically: every file into a sibling temp folder (`<dir>.tmp-<hex>`),
 * each fsynced, then renamed into place, so a reader never sees a half-written folder. An
 * existing `dir` is replaced whole, and only when it looks like a model folder (it has
 * config.json, or is empty): a typo like "." must not wipe a directory. Unlike a list of
 * buffers, a file may be a function that streams into the open file, so a multi-gigabyte
 * model.safetensors is never one buffer.
 *
 * @example
 * ```ts
 * await writeModelFiles("out/m", { "config.json": new TextEncoder().encode("{}") }, "save");
 * ```
 */
export async function writeModelFiles(
  dir: string,
  files: Record<string, FolderFile>,
  caller = "writeModelFiles",
): Promise<void> {
  dir = trimSlashes(dir);
  const where = `${caller}: ${dir}`;
  let exists = false;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new Error(`${where}: exists and is not a directory`);
    const entries: string[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    if (entries.length > 0 && !entries.includes(MODEL_CONFIG)) {
      throw new Error(
        `${where}: refusing to replace a non-empty folder without ${MODEL_CONFIG} (not a model ` +
          `folder); choose another path or remove it`,
      );
    }
    exists = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  // Same parent as `dir`, so the final rename stays on one filesystem (atomic).
  const tmp = `${dir}.tmp-${hex8()}`;
  const old = `${tmp}-old`;
  try {
    await Deno.mkdir(tmp);
    for (const [name, content] of Object.entries(files)) {
      await writeSynced(`${tmp}/${name}`, content);
    }
    await syncDir(tmp);
    // A directory cannot be renamed over a non-empty one: move the old folder aside first.
    // In between, `dir` is briefly absent, never partial.
    if (exists) await Deno.rename(dir, old);
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      if (exists) await Deno.rename(old, dir).catch(() => {});
      throw e;
    }
    await syncDir(parentOf(dir));
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`${where}: cannot write: ${(e as Error).message}`, { cause: e });
  }
  if (exists) await Deno.remove(old, { recursive: true }).catch(() => {});
}

/** A plain file name inside the folder that is not one of the model's own files. */
function checkFileName(where: string, name: string): void {
  const reserved = [MODEL_CONFIG, MODEL_WEIGHTS, MODEL_WEIGHTS_INDEX, GENERATION_CONFIG];
  if (
    name === "" || name === "." || name === ".." || /[/\\]/.test(name) || reserved.includes(name)
  ) {
    throw new Error(
      `${where}: tokenizer file name ${
        JSON.stringify(name)
      } is not allowed (a plain name, not one of ${reserved.join(", ")})`,
    );
  }
}

/** The tensors to store: specs (dtype, shape) and how to produce each in the stored dtype. */
function storedTensors(
  where: string,
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  extraTensors: Record<string, NamedTensor>,
  classifier: boolean,
  dtype: FloatDType,
): { specs: Record<string, TensorSpec>; produce: (name: string) => NamedTensor } {
  const specs: Record<string, TensorSpec> = {};
  const sources: Record<string, NamedTensor> = {};
  const known = new Set<string>();
  for (const e of expectedParams(cfg, classifier)) {
    known.add(e.ours);
    const a = params[e.ours];
    const n = e.shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`${where}: missing parameter "${e.ours}"`);
    if (!(a instanceof Float32Array || a instanceof Float64Array) || a.length !== n) {
      throw new Error(
        `${where}: parameter "${e.ours}" has ${a.length} values, [${e.shape}] needs ${n} (a Float32Array or Float64Array)`,
      );
    }
    const name = e.candidates[0];
    specs[name] = { dtype, shape: e.shape };
    sources[name] = {
      dtype: a instanceof Float32Array ? "float32" : "float64",
      shape: e.shape,
      data: a,
    };
  }
  const head = isLlamaCfg(cfg) ? llamaNames(cfg).lmHead : "lm_head.weight";
  for (const name of Object.keys(params)) {
    if (!known.has(name) && !(name === head && (tied(cfg) || classifier))) {
      throw new Error(
        `${where}: parameter "${name}" is not part of this model (config names ${known.size}); ` +
          `pass other tensors in extraTensors`,
      );
    }
  }
  for (const [name, t] of Object.entries(extraTensors)) {
    if (name in specs) {
      throw new Error(`${where}: extra tensor "${name}" clashes with a model weight`);
    }
    const stored = isFloatDType(t.dtype) ? dtype : t.dtype;
    specs[name] = { dtype: stored, shape: t.shape };
    sources[name] = t;
  }
  const produce = (name: string) => {
    const t = sources[name];
    return isFloatDType(t.dtype) ? castFloatTensor(t, dtype) : t;
  };
  return { specs, produce };
}

/**
 * Write a model folder of any supported family, atomically (see {@link writeModelFiles}):
 * config.json ({@link modelConfigJson}), model.safetensors in `opts.dtype` under transformers'
 * names (a tied head is not stored; a classifier stores `score.weight` from `extraTensors`),
 * generation_config.json when given, and the tokenizer files. Deterministic bytes; params may
 * be Float32Array or Float64Array and are converted tensor by tensor while writing.
 *
 * @example
 * ```ts
 * const m = await loadModelFolder("tests/fixtures/hf/qwen2-bf16");
 * await saveModelFolder("out/qwen2", m.cfg, m.params, {
 *   dtype: m.sourceDtype === "float16" ? "float16" : "bfloat16",
 *   config: m.config,
 *   generation: m.generation,
 *   extraTensors: m.extra,
 * }); // model.safetensors byte-identical to the source's
 * ```
 */
export async function saveModelFolder(
  dir: string,
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  opts: SaveModelOptions = {},
): Promise<void> {
  dir = trimSlashes(dir);
  const where = `saveModelFolder: ${dir}`;
  const dtype = opts.dtype ?? "float32";
  if (!["float32", "bfloat16", "float16"].includes(dtype)) {
    throw new Error(
      `${where}: dtype ${JSON.stringify(dtype)} (supported: float32, bfloat16, float16)`,
    );
  }
  const extraTensors = opts.extraTensors ?? {};
  const score = extraTensors["score.weight"];
  let config: Record<string, unknown>;
  try {
    config = modelConfigJson(cfg, {
      dtype,
      config: opts.config,
      architecture: opts.architecture,
      numLabels: score?.shape[0],
    });
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`, { cause: e });
  }
  const { architecture } = parseModelConfig(config, dir, "saveModelFolder");
  const classifier = architecture.kind === "sequence-classification";
  const hidden = isLlamaCfg(cfg) ? cfg.hiddenSize : cfg.nEmbd;
  if (classifier && (!score || score.shape.join() !== `${architecture.numLabels},${hidden}`)) {
    throw new Error(
      `${where}: ${architecture.name} needs extraTensors["score.weight"] of shape ` +
        `[${architecture.numLabels}, ${hidden}], got ${score ? `[${score.shape}]` : "none"}`,
    );
  }
  const { specs, produce } = storedTensors(where, cfg, params, extraTensors, classifier, dtype);

  const files: Record<string, FolderFile> = {
    [MODEL_CONFIG]: configBytes(config),
    [MODEL_WEIGHTS]: (f) => writeSafetensors(f, specs, produce, { format: "pt" }),
  };
  if (opts.generation) {
    files[GENERATION_CONFIG] = configBytes(generationJson(opts.generation));
  }
  for (const [name, content] of Object.entries(opts.tokenizerFiles ?? {})) {
    checkFileName(where, name);
    files[name] = content instanceof Uint8Array ? content : jsonBytes(content);
  }
  await writeModelFiles(dir, files, "saveModelFolder");
}
