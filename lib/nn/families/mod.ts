/**
 * The model families, keyed by `model_type`: the one place that knows which families exist.
 * {@link familyOf} finds a family by a config.json's `model_type`, {@link familyFor} by a
 * config; everything in lib/nn that differs by family goes through the object they return.
 * Adding a family is its file in this folder and its line in {@link FAMILIES}.
 *
 * @example
 * ```ts
 * familyOf("qwen2").lora.targets; // ["self_attn.q_proj", ...]
 * familyFor(cfg).shapes(cfg);      // parameter shapes of either family
 * ```
 * @module
 */
import { UserError } from "../../errors.ts";
import { suggestion } from "../../suggest.ts";
import type { ModelFamily } from "../family.ts";
import { gpt2Family } from "./gpt2.ts";
import { llamaFamily } from "./llama.ts";

/** Every family, in the order their `model_type`s are listed. */
export const FAMILIES = [gpt2Family, llamaFamily] as const;

/** The config type of a family object. */
type ConfigOf<F> = F extends ModelFamily<infer C> ? C : never;

/** A decoder config of any registered family (GPT-2's `GptConfig`, a `LlamaConfig`, ...). */
export type DecoderConfig = ConfigOf<(typeof FAMILIES)[number]>;

/** The transformers `model_type` values that load, every family's. */
export const MODEL_TYPES: readonly string[] = FAMILIES.flatMap((f) => f.modelTypes);

const BY_TYPE = new Map<string, ModelFamily<DecoderConfig>>(
  FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f as ModelFamily<DecoderConfig>])),
);

/** Whether `modelType` is a `model_type` some family reads. */
export function isModelType(modelType: unknown): modelType is string {
  return typeof modelType === "string" && BY_TYPE.has(modelType);
}

/**
 * The family of a config.json's `model_type`. An unknown one is a UserError naming `where`
 * (e.g. the folder's config.json), the value, the supported list and the closest match.
 */
export function familyOf(modelType: unknown, where = "config.json"): ModelFamily<DecoderConfig> {
  const f = typeof modelType === "string" ? BY_TYPE.get(modelType) : undefined;
  if (f) return f;
  const shown = JSON.stringify(modelType);
  throw new UserError(
    `${where}: key "model_type": ${shown} is not supported` +
      `${typeof modelType === "string" ? suggestion(modelType, MODEL_TYPES) : ""}` +
      ` (supported: ${MODEL_TYPES.join(", ")})`,
    { fix: "use a model of a supported family, or add the family (a file in lib/nn/families/)" },
  );
}

/** The family a config belongs to (its discriminant), e.g. for `decoderForward`. */
export function familyFor(cfg: DecoderConfig): ModelFamily<DecoderConfig> {
  for (const f of FAMILIES) {
    if (f.owns(cfg)) return f as ModelFamily<DecoderConfig>;
  }
  throw new Error(`familyFor: no model family owns this config: ${JSON.stringify(cfg)}`);
}
