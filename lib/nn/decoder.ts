/**
 * Every decoder family behind one surface, so sampling, SFT, heads, LoRA and the PPO tasks are
 * written once: {@link DecoderConfig} is a config of any registered family (GPT-2's
 * `GptConfig`, the Llama family's `LlamaConfig`), and each function here asks the config's
 * {@link ModelFamily} (`families/mod.ts`, the one dispatch point). A family is one file; this
 * file only routes.
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
import type { DecoderDims, DecoderOutput, ForwardOptions } from "./family.ts";
import { type DecoderConfig, familyFor } from "./families/mod.ts";

export type { DecoderDims, DecoderOutput, ModelFamily } from "./family.ts";
export { type DecoderConfig, familyFor, familyOf } from "./families/mod.ts";

/** The family's name: "gpt2" or the Llama-family `modelType` (llama, mistral, qwen2, qwen3). */
export function modelType(cfg: DecoderConfig): string {
  return familyFor(cfg).modelType(cfg);
}

/**
 * Whether two configs share a family's parameter layout (names, LoRA targets): GPT-2, or the
 * Llama family (llama, mistral, qwen2, qwen3 share one layout).
 */
export function sameFamily(a: DecoderConfig, b: DecoderConfig): boolean {
  return familyFor(a) === familyFor(b);
}

/** Width of the MLP's inner layer (`intermediate_size`; GPT-2: 4 × n_embd). */
export function mlpSize(cfg: DecoderConfig): number {
  return familyFor(cfg).dims(cfg).mlp;
}

/** Parameter shapes by (transformers) name. */
export function decoderShapes(cfg: DecoderConfig): Record<string, { shape: number[] }> {
  return familyFor(cfg).shapes(cfg);
}

/**
 * The parameters of the trunk only: {@link decoderShapes} without an untied LM head (what a
 * reward or value model built on the decoder holds; GPT-2's head is tied, so nothing differs).
 */
export function trunkShapes(cfg: DecoderConfig): Record<string, { shape: number[] }> {
  const fam = familyFor(cfg);
  const shapes = fam.shapes(cfg);
  delete shapes[fam.lmHeadName(cfg)];
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
  return familyFor(cfg).hidden(g, cfg, params, tokens, attentionMask);
}

/** Width of the hidden states (`n_embd` / `hidden_size`). */
export function hiddenSize(cfg: DecoderConfig): number {
  return familyFor(cfg).dims(cfg).hidden;
}

/** Most positions the model supports (`n_positions` / `max_position_embeddings`). */
export function contextLength(cfg: DecoderConfig): number {
  return familyFor(cfg).dims(cfg).context;
}

/**
 * The sizes the memory estimate and the KV cache read (`ModelFamily.dims`): hidden and MLP
 * widths, layers, query and KV heads, head width, context length.
 */
export function decoderDims(cfg: DecoderConfig): DecoderDims {
  return familyFor(cfg).dims(cfg);
}

/** The KV cache of one layer is `[B, kvHeads, P, headDim]`; there are `nLayer` of them. */
export function kvLayout(cfg: DecoderConfig): { nLayer: number; kvHeads: number; headDim: number } {
  const d = familyFor(cfg).dims(cfg);
  return { nLayer: d.layers, kvHeads: d.kvHeads, headDim: d.headDim };
}

/** A randomly initialised model (each family's transformers initialisation), seeded by `rng`. */
export function initDecoder(
  cfg: DecoderConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  return familyFor(cfg).init(cfg, rng, dtype);
}

/** Full forward pass (see `gptForward` / `llamaForward`). */
export function decoderForward(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  attentionMask?: Value,
  opts: ForwardOptions = {},
): DecoderOutput {
  return familyFor(cfg).forward(g, cfg, params, tokens, attentionMask, opts);
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
  return familyFor(cfg).decodeStep(g, cfg, params, tokens, past, attentionMask, positionIds, opts);
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
  const { targets, fanInFanOut } = familyFor(cfg).lora;
  return { targets: [...targets], fanInFanOut };
}
