/**
 * The GPT-2 family (`model_type` gpt2): `gpt.ts`'s decoder behind the {@link ModelFamily}
 * shape, with its config.json reader and writer (GPT2Config's keys; GPT-2 variants gpt.ts does
 * not implement are refused, naming the key).
 *
 * @module
 */
import type { ModelFamily } from "../family.ts";
import type { ConfigKeys } from "../hf_config_keys.ts";
import { type GptConfig, gptDecodeStep, gptForward, gptNames, gptShapes, initGpt } from "../gpt.ts";
import { DEFAULT_LORA_TARGETS } from "../lora.ts";

/** GptConfig from a gpt2 config.json; rejects GPT-2 variants gpt.ts does not implement. */
function readGpt2(k: ConfigKeys): GptConfig {
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

/** GPT-2 architecture keys for config.json. */
function writeGpt2(cfg: GptConfig, base: Record<string, unknown>): Record<string, unknown> {
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
function freshGpt2(cfg: GptConfig): Record<string, unknown> {
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

/** "key=value" of the config keys that determine a GPT-2 tensor's shape (all of them). */
function impliedBy(cfg: GptConfig, _name: string, numLabels?: number): string {
  return `n_embd=${cfg.nEmbd}, n_layer=${cfg.nLayer}, vocab_size=${cfg.vocabSize}, ` +
    `n_positions=${cfg.nPositions}` + (numLabels ? `, num_labels=${numLabels}` : "");
}

/** GPT-2 (`gpt.ts`): Conv1D weights `[in, out]`, learned positions, the head tied to `wte`. */
export const gpt2Family: ModelFamily<GptConfig> = {
  name: "gpt2",
  modelTypes: ["gpt2"],
  // GptConfig has no discriminant: a config that names no family is GPT-2's.
  owns: (cfg) => (cfg as { family?: unknown }).family === undefined,
  modelType: () => "gpt2",
  classes: () => ({ causal: "GPT2LMHeadModel", classifier: "GPT2ForSequenceClassification" }),
  readConfig: readGpt2,
  // The other keys it writes are overwritten; n_ctx is dropped and rewritten when the base has it.
  configKeys: ["n_ctx"],
  freshConfig: freshGpt2,
  checkWritable: (cfg) => void gptShapes(cfg),
  writeConfig: writeGpt2,
  sized: (s) => ({
    vocabSize: s.vocabSize,
    nPositions: s.positions,
    nEmbd: s.hidden,
    nLayer: s.layers,
    nHead: s.heads,
  }),
  normalize: (cfg) => ({ ...cfg, layerNormEps: cfg.layerNormEps ?? 1e-5 }),
  shapes: gptShapes,
  hfPrefix: "transformer",
  embedName: (cfg) => gptNames(cfg).wte,
  lmHeadName: () => "lm_head.weight",
  tied: () => true,
  impliedBy,
  missingHint: impliedBy,
  untiedHead: () => ({
    says: "GPT-2's tied head",
    fix: "gpt.ts ties the head to wte; tie the weights (or drop lm_head.weight) before saving",
  }),
  dims: (cfg) => ({
    hidden: cfg.nEmbd,
    mlp: 4 * cfg.nEmbd,
    layers: cfg.nLayer,
    heads: cfg.nHead,
    kvHeads: cfg.nHead,
    headDim: cfg.nEmbd / cfg.nHead,
    context: cfg.nPositions,
  }),
  init: initGpt,
  forward: gptForward,
  hidden: (g, cfg, params, tokens, mask) => gptForward(g, cfg, params, tokens, mask).hidden,
  decodeStep: gptDecodeStep,
  lora: { targets: DEFAULT_LORA_TARGETS, fanInFanOut: true },
  folders: { writer: "gpt2", reward: "r_head" },
};
