/**
 * Every decoder family behind one surface, so sampling, SFT, heads, LoRA and the PPO tasks are
 * written once: {@link DecoderConfig} is a GPT-2 `GptConfig` or a Llama-family `LlamaConfig`
 * (told apart by `family: "llama"`), and each function here dispatches to `gpt.ts` or
 * `llama.ts`. A family is one file; this file only routes.
 *
 * @example
 * ```ts
 * const { logits, hidden } = decoderForward(g, cfg, params, tokens, mask); // either family
 * const { kvHeads, headDim } = kvLayout(cfg); // the KV cache's per-layer shape
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";
import type { KvCache } from "./attention.ts";
import { type GptConfig, gptDecodeStep, gptForward, gptShapes, initGpt } from "./gpt.ts";
import { initLlama, llamaDecodeStep, llamaForward, llamaHidden } from "./llama.ts";
import { type LlamaConfig, llamaNames, llamaShapes } from "./llama_config.ts";
import { DEFAULT_LORA_TARGETS, LLAMA_LORA_TARGETS } from "./lora.ts";

/** A decoder of any supported family. */
export type DecoderConfig = GptConfig | LlamaConfig;

/** What a forward pass or decode step returns, for every family. */
export interface DecoderOutput {
  /** Next-token logits `[B, S, V]`. */
  logits: Value;
  /** Final hidden states `[B, S, d]` (the input of value and reward heads). */
  hidden: Value;
  /** Per layer, keys and values of every position, `[B, kvHeads, P + S, headDim]`. */
  presents: KvCache[];
}

/** True for a Llama-family config. */
export function isLlama(cfg: DecoderConfig): cfg is LlamaConfig {
  return (cfg as LlamaConfig).family === "llama";
}

/** The family's name: "gpt2" or the Llama-family `modelType` (llama, mistral, qwen2, qwen3). */
export function modelType(cfg: DecoderConfig): string {
  return isLlama(cfg) ? cfg.modelType : "gpt2";
}

/**
 * Whether two configs share a family's parameter layout (names, LoRA targets): GPT-2, or the
 * Llama family (llama, mistral, qwen2, qwen3 share one layout).
 */
export function sameFamily(a: DecoderConfig, b: DecoderConfig): boolean {
  return isLlama(a) === isLlama(b);
}

/** Width of the MLP's inner layer (`intermediate_size`; GPT-2: 4 × n_embd). */
export function mlpSize(cfg: DecoderConfig): number {
  return isLlama(cfg) ? cfg.intermediateSize : 4 * cfg.nEmbd;
}

/** Parameter shapes by (transformers) name. */
export function decoderShapes(cfg: DecoderConfig): Record<string, { shape: number[] }> {
  return isLlama(cfg) ? llamaShapes(cfg) : gptShapes(cfg);
}

/**
 * The parameters of the trunk only: {@link decoderShapes} without an untied LM head (what a
 * reward or value model built on the decoder holds; GPT-2's head is tied, so nothing differs).
 */
export function trunkShapes(cfg: DecoderConfig): Record<string, { shape: number[] }> {
  const shapes = decoderShapes(cfg);
  if (isLlama(cfg)) delete shapes[llamaNames(cfg).lmHead];
  return shapes;
}

/** Final hidden states `[B, T, d]` of the trunk ({@link trunkShapes}' params suffice). */
export function decoderHidden(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
): Value {
  return isLlama(cfg)
    ? llamaHidden(g, cfg, params, tokens, attentionMask)
    : gptForward(g, cfg, params, tokens, attentionMask).hidden;
}

/** Width of the hidden states (`n_embd` / `hidden_size`). */
export function hiddenSize(cfg: DecoderConfig): number {
  return isLlama(cfg) ? cfg.hiddenSize : cfg.nEmbd;
}

/** Most positions the model supports (`n_positions` / `max_position_embeddings`). */
export function contextLength(cfg: DecoderConfig): number {
  return isLlama(cfg) ? cfg.maxPositions : cfg.nPositions;
}

/** The KV cache of one layer is `[B, kvHeads, P, headDim]`; there are `nLayer` of them. */
export function kvLayout(cfg: DecoderConfig): { nLayer: number; kvHeads: number; headDim: number } {
  return isLlama(cfg)
    ? { nLayer: cfg.nLayer, kvHeads: cfg.nKvHead, headDim: cfg.headDim }
    : { nLayer: cfg.nLayer, kvHeads: cfg.nHead, headDim: cfg.nEmbd / cfg.nHead };
}

/** A randomly initialised model (each family's transformers initialisation), seeded by `rng`. */
export function initDecoder(
  cfg: DecoderConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  return isLlama(cfg) ? initLlama(cfg, rng, dtype) : initGpt(cfg, rng, dtype);
}

/** Full forward pass (see `gptForward` / `llamaForward`). */
export function decoderForward(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
  opts: { positionIds?: Value; at?: Value } = {},
): DecoderOutput {
  return isLlama(cfg)
    ? llamaForward(g, cfg, params, tokens, attentionMask, opts)
    : gptForward(g, cfg, params, tokens, attentionMask, opts);
}

/** One KV-cache decode step (see `gptDecodeStep` / `llamaDecodeStep`). */
export function decoderDecodeStep(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  past: KvCache[],
  attentionMask: Value,
  positionIds: Value,
  opts: { lastOnly?: boolean } = {},
): DecoderOutput {
  return isLlama(cfg)
    ? llamaDecodeStep(g, cfg, params, tokens, past, attentionMask, positionIds, opts)
    : gptDecodeStep(g, cfg, params, tokens, past, attentionMask, positionIds, opts);
}

/**
 * LoRA settings that fit the family: GPT-2's Conv1D matrices `[in, out]` (fan_in_fan_out,
 * targets c_attn/c_proj/c_fc) or the Llama family's Linear `[out, in]` (PEFT's own adapter
 * layout, targets q/k/v/o/gate/up/down).
 *
 * @example
 * ```ts
 * const lora = { r: 16, alpha: 32, ...loraDefaults(cfg) };
 * ```
 */
export function loraDefaults(
  cfg: DecoderConfig,
): { targets: string[]; fanInFanOut: boolean } {
  return isLlama(cfg)
    ? { targets: [...LLAMA_LORA_TARGETS], fanInFanOut: false }
    : { targets: [...DEFAULT_LORA_TARGETS], fanInFanOut: true };
}
