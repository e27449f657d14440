/**
 * The Llama family (`model_type` llama — Llama 2/3.x, SmolLM2 —, mistral, qwen2, qwen3):
 * `llama.ts`'s decoder behind the {@link ModelFamily} shape; one `LlamaConfig` whose flags tell
 * the model types apart, read and written by `llama_config_json.ts`.
 *
 * @module
 */
import type { ModelFamily } from "../family.ts";
import { initLlama, llamaDecodeStep, llamaForward, llamaHidden } from "../llama.ts";
import { type LlamaConfig, llamaNames, llamaShapes, validateLlamaConfig } from "../llama_config.ts";
import { LLAMA_LORA_TARGETS } from "../lora.ts";
import {
  inexpressible,
  LLAMA_ARCH_KEYS,
  LLAMA_MODEL_TYPES,
  llamaArch,
  llamaFresh,
  type LlamaModelType,
  parseLlama,
} from "./llama_config_json.ts";

/** transformers class-name stem per model_type. */
const CLASS_STEM: Record<LlamaModelType, string> = {
  llama: "Llama",
  mistral: "Mistral",
  qwen2: "Qwen2",
  qwen3: "Qwen3",
};

/** "key=value" of the config keys that determine the shape of tensor `name`. */
function impliedBy(cfg: LlamaConfig, name: string, numLabels?: number): string {
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

/** The Llama family (`llama.ts`): Linear weights `[out, in]`, RoPE, RMSNorm, SwiGLU, GQA. */
export const llamaFamily: ModelFamily<LlamaConfig> = {
  name: "llama",
  modelTypes: LLAMA_MODEL_TYPES,
  owns: (cfg) => (cfg as LlamaConfig).family === "llama",
  modelType: (cfg) => cfg.modelType,
  classes: (mt) => {
    const stem = CLASS_STEM[mt as LlamaModelType];
    return { causal: `${stem}ForCausalLM`, classifier: `${stem}ForSequenceClassification` };
  },
  readConfig: (k, mt) => parseLlama(k, mt as LlamaModelType),
  configKeys: LLAMA_ARCH_KEYS,
  freshConfig: llamaFresh,
  checkWritable: (cfg) => {
    validateLlamaConfig(cfg);
    const bad = inexpressible(cfg);
    if (bad.length > 0) {
      throw new Error(
        `modelConfigJson: a ${cfg.modelType} config.json needs ${
          bad.join(", ")
        }; fix the LlamaConfig or its modelType`,
      );
    }
  },
  writeConfig: llamaArch,
  // Full multi-head attention, headDim d / H, RMSNorm ε 1e-5, RoPE θ 10000, no biases, no q/k
  // norm, tied embeddings (like GPT-2 and SmolLM2), and a SwiGLU inner width of 4·d, GPT-2's MLP
  // width rather than Llama's ≈ 8/3·d: no rounding rule has to be chosen for widths as small
  // as 64, and the activation memory per token matches GPT-2's.
  sized: (s) => ({
    family: "llama",
    modelType: "llama",
    vocabSize: s.vocabSize,
    hiddenSize: s.hidden,
    intermediateSize: 4 * s.hidden,
    nLayer: s.layers,
    nHead: s.heads,
    nKvHead: s.heads,
    headDim: s.hidden / s.heads,
    maxPositions: s.positions,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    tieWordEmbeddings: true,
  }),
  normalize: (cfg) => cfg,
  shapes: llamaShapes,
  hfPrefix: "model",
  embedName: (cfg) => llamaNames(cfg).embed,
  lmHeadName: (cfg) => llamaNames(cfg).lmHead,
  tied: (cfg) => cfg.tieWordEmbeddings,
  impliedBy,
  missingHint: (cfg, name) => `${impliedBy(cfg, name)}, num_hidden_layers=${cfg.nLayer}`,
  untiedHead: () => ({
    says: `"tie_word_embeddings": true`,
    fix: `set "tie_word_embeddings": false in config.json, or drop lm_head.weight`,
  }),
  dims: (cfg) => ({
    hidden: cfg.hiddenSize,
    mlp: cfg.intermediateSize,
    layers: cfg.nLayer,
    heads: cfg.nHead,
    kvHeads: cfg.nKvHead,
    headDim: cfg.headDim,
    context: cfg.maxPositions,
  }),
  init: initLlama,
  forward: llamaForward,
  hidden: llamaHidden,
  decodeStep: llamaDecodeStep,
  lora: { targets: LLAMA_LORA_TARGETS, fanInFanOut: false },
  folders: { writer: "transformers", reward: "classifier" },
};
