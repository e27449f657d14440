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
import { FAMILIES, familyFor } from "./families/mod.ts";
import type { FloatDType } from "../onnx/safetensors.ts";
import { type GenerationConfig, parseModelConfig } from "./hf_config.ts";

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

/** Keys dropped from a base config before the architecture keys are written: every family's. */
const STALE_KEYS = [...FAMILIES.flatMap((f) => f.configKeys), "torch_dtype"];

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
  const fam = familyFor(cfg);
  fam.checkWritable(cfg);
  const mt = fam.modelType(cfg);
  const base = opts.config ?? {};
  const out: Record<string, unknown> = opts.config ? { ...base } : fam.freshConfig(cfg);
  for (const key of STALE_KEYS) delete out[key];
  const { causal, classifier } = fam.classes(mt);
  const given = Array.isArray(base.architectures) ? base.architectures[0] : undefined;
  const architecture = opts.architecture ?? given ?? causal;
  if (architecture !== causal && architecture !== classifier) {
    throw fail(`architecture "${architecture}" is not one of ${causal}, ${classifier}`);
  }
  Object.assign(out, fam.writeConfig(cfg, base), {
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
    return canonicalJson(familyFor(c).normalize(rest as DecoderConfig));
  };
  return strip(a) === strip(b);
}
