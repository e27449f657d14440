/**
 * `config.json` and `generation_config.json` objects for saving: {@link modelConfigJson} writes a
 * config as transformers 5 does (architecture keys from the model config, other keys of a given
 * config kept, sorted), checked to parse back to the same model; `generationJson` turns a
 * {@link GenerationConfig} back into its file's object.
 *
 * @module
 */
import { canonicalJson } from "../json.ts";
import type { DecoderConfig } from "./decoder.ts";
import { type GptConfig, gptShapes } from "./gpt.ts";
import { type LlamaConfig, validateLlamaConfig } from "./llama_config.ts";
import type { FloatDType } from "../onnx/safetensors.ts";
import {
  familyClasses,
  type GenerationConfig,
  isLlamaCfg,
  type ModelType,
  parseModelConfig,
  QWEN_MAX_WINDOW_LAYERS,
} from "./hf_config.ts";

/** generation_config.json's object for a {@link GenerationConfig} (fields over `raw`) or a raw object. */
export function generationJson(
  gen: GenerationConfig | Record<string, unknown>,
): Record<string, unknown> {
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
