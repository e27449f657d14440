/**
 * `config.json` and `generation_config.json` of a Hugging Face model folder, parsed and checked:
 * `model_type` picks the family (`gpt2` → {@link GptConfig}; `llama`, `mistral`, `qwen2`, `qwen3`
 * → {@link LlamaConfig}), the keys become the architecture (RoPE in both config styles, sliding
 * window, the transformers class), and every error names the folder, the file, the key and a fix.
 * Writing them back is `hf_config_write.ts`'s.
 *
 * @module
 */
import { canonicalJson } from "../json.ts";
import type { DecoderConfig } from "./decoder.ts";
import type { GptConfig } from "./gpt.ts";
import { type LlamaConfig, type RopeScaling, validateLlamaConfig } from "./llama_config.ts";
import {
  folderError,
  GENERATION_CONFIG,
  MODEL_CONFIG,
  readFolderJson,
  trimSlashes,
  type Where,
} from "./hf_folder.ts";

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

// ---- config.json -------------------------------------------------------------------------

type LlamaModelType = LlamaConfig["modelType"];
export type ModelType = (typeof MODEL_TYPES)[number];

/** transformers class-name stem per model_type. */
const CLASS_STEM: Record<ModelType, string> = {
  gpt2: "GPT2",
  llama: "Llama",
  mistral: "Mistral",
  qwen2: "Qwen2",
  qwen3: "Qwen3",
};

/** The causal-LM and classifier class names of a family. */
export function familyClasses(mt: ModelType): { causal: string; classifier: string } {
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
export const QWEN_MAX_WINDOW_LAYERS = 28;

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
  checkSpecialIds(k, cfg.vocabSize);
  return { cfg, architecture: parseArchitecture(k, mt as ModelType), config };
}

/**
 * config.json's special token ids (pad, bos, eos: an id or a list) must lie inside the
 * vocabulary: an id past it passes loading and fails at the first Gather that reads it
 * (a reward model reads its score at `pad_token_id`).
 */
function checkSpecialIds(k: Keys, vocabSize: number): void {
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

/** Whether `cfg` is a Llama-family config (else GPT-2). */
export function isLlamaCfg(cfg: DecoderConfig): cfg is LlamaConfig {
  return (cfg as LlamaConfig).family === "llama";
}
