/**
 * The Llama family's config.json (`llama`, `mistral`, `qwen2`, `qwen3`), read into a
 * {@link LlamaConfig} and written back as transformers 5 does: RoPE in both config styles,
 * sliding windows, each model_type's defaults and the flags its config.json can express.
 *
 * @module
 */
import { canonicalJson } from "../../json.ts";
import type { ConfigKeys } from "../hf_config_keys.ts";
import { folderError, MODEL_CONFIG } from "../hf_folder.ts";
import { type LlamaConfig, type RopeScaling, validateLlamaConfig } from "../llama_config.ts";

/** A Llama-family `model_type`. */
export type LlamaModelType = LlamaConfig["modelType"];

/** The Llama-family `model_type` values, in the order errors list them. */
export const LLAMA_MODEL_TYPES: readonly LlamaModelType[] = ["llama", "mistral", "qwen2", "qwen3"];

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

/** LlamaConfig from a llama / mistral / qwen2 / qwen3 config.json. */
export function parseLlama(k: ConfigKeys, mt: LlamaModelType): LlamaConfig {
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
function ropeObject(k: ConfigKeys): [key: string, obj: Record<string, unknown> | undefined] {
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
function parseRope(k: ConfigKeys): { ropeTheta: number; ropeScaling: RopeScaling } {
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
function parseSlidingWindow(k: ConfigKeys, mt: LlamaModelType, nLayer: number): number | undefined {
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

/** Keys of config.json written from `cfg` (the rest of a given config is kept). */
export const LLAMA_ARCH_KEYS = [
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
export function inexpressible(cfg: LlamaConfig): string[] {
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
export function llamaArch(
  cfg: LlamaConfig,
  base: Record<string, unknown>,
): Record<string, unknown> {
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
export function llamaFresh(cfg: LlamaConfig): Record<string, unknown> {
  return {
    attention_dropout: 0,
    initializer_range: 0.02,
    use_cache: true,
    ...(cfg.modelType === "llama" ? { pretraining_tp: 1 } : {}),
  };
}
