/**
 * The shape of a model family: everything lib/nn needs to know of one architecture (GPT-2, the
 * Llama family), in one object, so the rest of the code asks the family instead of asking which
 * family it holds. The families are registered, by `model_type`, in `families/mod.ts`
 * (`familyOf`, `familyFor`); `decoder.ts`, the config.json reader and writer, the weight loader
 * and saver and the folder writers dispatch through it and nowhere else.
 *
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";
import type { KvCache } from "./attention.ts";
import type { ConfigKeys } from "./hf_config_keys.ts";

/** What a forward pass or decode step returns, for every family. */
export interface DecoderOutput {
  /** Next-token logits `[B, S, V]`. */
  logits: Value;
  /** Final hidden states `[B, S, d]` (the input of value and reward heads). */
  hidden: Value;
  /** Per layer, keys and values of every position, `[B, kvHeads, P + S, headDim]`. */
  presents: KvCache[];
}

/** Options of a full forward pass (see `gptForward` / `llamaForward`). */
export interface ForwardOptions {
  /** Explicit int64 position ids `[B, T]`; by default from the mask. */
  positionIds?: Value;
  /** Only these columns (int64 `[T]`) get hidden states and logits. */
  at?: Value;
}

/**
 * The sizes of a decoder that the KV cache, the heads and the memory estimate
 * (`lib/tasks/memory.ts`: KV cache ∝ layers·kvHeads·headDim; its activations are counted from
 * the train step's graph) read, whatever the family calls them.
 */
export interface DecoderDims {
  /** Width of the hidden states d (`n_embd` / `hidden_size`). */
  hidden: number;
  /** Width of the MLP's inner layer f (`intermediate_size`; GPT-2: 4·d). */
  mlp: number;
  /** Decoder layers L. */
  layers: number;
  /** Query heads H. */
  heads: number;
  /** Key/value heads of the KV cache (GPT-2: H). */
  kvHeads: number;
  /** Per-head width. */
  headDim: number;
  /** Most positions the model supports (`n_positions` / `max_position_embeddings`). */
  context: number;
}

/** The sizes of a small model built from scratch ({@link ModelFamily.sized}). */
export interface DecoderSizes {
  vocabSize: number;
  /** Context length. */
  positions: number;
  /** Width d of the hidden states. */
  hidden: number;
  layers: number;
  heads: number;
}

/**
 * One model family. `C` is its config type (GPT-2's `GptConfig`, the Llama family's
 * `LlamaConfig`); methods take a config the family {@link ModelFamily.owns}.
 *
 * @example Using a family: look it up, never ask which one it is
 * ```ts
 * const fam = familyFor(cfg); // or familyOf(config.model_type)
 * const shapes = fam.shapes(cfg);
 * const { logits } = fam.forward(g, cfg, params, tokens, mask);
 * const lora = { r: 16, alpha: 32, ...fam.lora };
 * ```
 *
 * @example Adding a family: one file and one registry line (`DecoderConfig` follows the table)
 * ```ts
 * // lib/nn/families/phi.ts
 * export const phiFamily: ModelFamily<PhiConfig> = {
 *   name: "phi",
 *   modelTypes: ["phi"],
 *   owns: (cfg) => (cfg as PhiConfig).family === "phi",
 *   modelType: () => "phi",
 *   classes: () => ({ causal: "PhiForCausalLM", classifier: "PhiForSequenceClassification" }),
 *   readConfig: (keys) => ({ family: "phi", vocabSize: keys.int("vocab_size"), ... }),
 *   shapes: phiShapes, init: initPhi, forward: phiForward, decodeStep: phiDecodeStep, ...
 * };
 * // lib/nn/families/mod.ts
 * export const FAMILIES = [gpt2Family, llamaFamily, phiFamily] as const;
 * ```
 */
export interface ModelFamily<C = unknown> {
  /** The family's name (also its registry key for configs): "gpt2", "llama". */
  readonly name: string;
  /** The transformers `model_type` values this family reads and writes. */
  readonly modelTypes: readonly string[];
  /** Whether `cfg` is a config of this family. */
  owns(cfg: object): boolean;
  /** The `model_type` a config of this family is saved as. */
  modelType(cfg: C): string;
  /** The transformers causal-LM and classifier class names of a `model_type`. */
  classes(modelType: string): { causal: string; classifier: string };

  // ---- config.json ----
  /** Our config from a config.json of `modelType` (errors name the key and a fix). */
  readConfig(keys: ConfigKeys, modelType: string): C;
  /**
   * config.json keys dropped from a base config before the architecture keys are written (a
   * stale one would contradict them); those of every family are dropped, whatever the family.
   */
  readonly configKeys: readonly string[];
  /** Defaults of a fresh config.json, when no base config is given. */
  freshConfig(cfg: C): Record<string, unknown>;
  /** Throws when `cfg` is invalid or the family's config.json cannot express it. */
  checkWritable(cfg: C): void;
  /** The architecture keys of config.json for `cfg` (`base`: the config it updates). */
  writeConfig(cfg: C, base: Record<string, unknown>): Record<string, unknown>;
  /**
   * A config of these sizes with the family's plain choices (a model trained from scratch, as
   * the byte-level tasks' `model.family` builds): every other field at one fixed value.
   */
  sized(s: DecoderSizes): C;
  /** `cfg` with its optional fields at their defaults (two configs compare equal so). */
  normalize(cfg: C): C;

  // ---- parameters ----
  /** Parameter shapes by (transformers) name, in the family's fixed order. */
  shapes(cfg: C): Record<string, { shape: number[] }>;
  /** The prefix transformers' files use for the trunk ("transformer", "model"). */
  readonly hfPrefix: string;
  /** The token embedding's parameter name (the tied head's matrix). */
  embedName(cfg: C): string;
  /** The LM head's name ("lm_head.weight" under the default prefix); not a param when tied. */
  lmHeadName(cfg: C): string;
  /** Whether the LM head is the embedding. */
  tied(cfg: C): boolean;
  /** "key=value" of the config.json keys that determine the shape of tensor `name`. */
  impliedBy(cfg: C, name: string, numLabels?: number): string;
  /** The keys to check when a tensor is missing (`impliedBy` plus the depth, where it helps). */
  missingHint(cfg: C, name: string): string;
  /** How config.json ties the head, and the fix when a stored head differs. */
  untiedHead(): { says: string; fix: string };
  /** Sizes read by the KV cache, heads and the memory estimate. */
  dims(cfg: C): DecoderDims;

  // ---- computation ----
  /** A randomly initialised model (the family's transformers initialisation), seeded. */
  init(
    cfg: C,
    rng: Rng,
    dtype: "float32" | "float64",
  ): Record<string, Float32Array | Float64Array>;
  /** Full forward pass. */
  forward(
    g: Graph,
    cfg: C,
    params: Record<string, Value>,
    tokens: Value,
    attentionMask?: Value,
    opts?: ForwardOptions,
  ): DecoderOutput;
  /** Final hidden states `[B, T, d]` of the trunk (no LM head needed). */
  hidden(
    g: Graph,
    cfg: C,
    params: Record<string, Value>,
    tokens: Value,
    attentionMask?: Value,
  ): Value;
  /** One KV-cache decode step. */
  decodeStep(
    g: Graph,
    cfg: C,
    params: Record<string, Value>,
    tokens: Value,
    past: KvCache[],
    attentionMask: Value,
    positionIds: Value,
    opts?: { lastOnly?: boolean },
  ): DecoderOutput;

  // ---- adapters and folders ----
  /** Default LoRA targets and the weights' layout (PEFT's `fan_in_fan_out`). */
  readonly lora: { readonly targets: readonly string[]; readonly fanInFanOut: boolean };
  /**
   * How the family's models are written as folders: `writer` "gpt2" (`saveHfFolder`, the
   * byte-level tasks' layout) or "transformers" (`saveModelFolder`); `reward` "r_head" (the
   * head's tensors beside the trunk) or "classifier" (a `*ForSequenceClassification`).
   */
  readonly folders: {
    readonly writer: "gpt2" | "transformers";
    readonly reward: "r_head" | "classifier";
  };
}
