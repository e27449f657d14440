/**
 * Saving a Hugging Face model folder of any supported family ({@link saveModelFolder}):
 * config.json, model.safetensors under transformers' names in the stored dtype (streamed tensor
 * by tensor), generation_config.json and the tokenizer files, written atomically with
 * `writeModelFiles`; deterministic bytes.
 *
 * @module
 */
import { type DecoderConfig, familyFor, hiddenSize } from "./decoder.ts";
import {
  castFloatTensor,
  type FloatDType,
  isFloatDType,
  type NamedTensor,
  type TensorSpec,
  writeSafetensors,
} from "../onnx/safetensors.ts";
import { type GenerationConfig, parseModelConfig } from "./hf_config.ts";
import { generationJson, modelConfigJson } from "./hf_config_write.ts";
import {
  configBytes,
  type FolderFile,
  GENERATION_CONFIG,
  jsonBytes,
  MODEL_CONFIG,
  MODEL_WEIGHTS,
  MODEL_WEIGHTS_INDEX,
  trimSlashes,
  writeModelFiles,
} from "./hf_folder.ts";
import { expectedParams, tied } from "./hf_weights.ts";

/** Options of {@link saveModelFolder}. */
export interface SaveModelOptions {
  /** Stored dtype of the weights and float extras (default float32); rounding as torch's `.to()`. */
  dtype?: "float32" | "bfloat16" | "float16";
  /**
   * A config.json to start from (e.g. {@link ModelFolder.config}): its other keys are kept, the
   * architecture keys are written from `cfg`.
   */
  config?: Record<string, unknown>;
  /** The transformers class (default: `config.architectures[0]`, else the family's causal LM). */
  architecture?: string;
  /** generation_config.json content (a {@link GenerationConfig} or the raw object). */
  generation?: GenerationConfig | Record<string, unknown>;
  /** Files copied into the folder: bytes as they are, objects as JSON. */
  tokenizerFiles?: Record<string, Uint8Array | object>;
  /** Tensors stored beside the model's (e.g. `score.weight`), names kept; floats cast to `dtype`. */
  extraTensors?: Record<string, NamedTensor>;
}

/** A plain file name inside the folder that is not one of the model's own files. */
function checkFileName(where: string, name: string): void {
  const reserved = [MODEL_CONFIG, MODEL_WEIGHTS, MODEL_WEIGHTS_INDEX, GENERATION_CONFIG];
  if (
    name === "" || name === "." || name === ".." || /[/\\]/.test(name) || reserved.includes(name)
  ) {
    throw new Error(
      `${where}: tokenizer file name ${
        JSON.stringify(name)
      } is not allowed (a plain name, not one of ${reserved.join(", ")})`,
    );
  }
}

/** The tensors to store: specs (dtype, shape) and how to produce each in the stored dtype. */
function storedTensors(
  where: string,
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  extraTensors: Record<string, NamedTensor>,
  classifier: boolean,
  dtype: FloatDType,
): { specs: Record<string, TensorSpec>; produce: (name: string) => NamedTensor } {
  const specs: Record<string, TensorSpec> = {};
  const sources: Record<string, NamedTensor> = {};
  const known = new Set<string>();
  for (const e of expectedParams(cfg, classifier)) {
    known.add(e.ours);
    const a = params[e.ours];
    const n = e.shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`${where}: missing parameter "${e.ours}"`);
    if (!(a instanceof Float32Array || a instanceof Float64Array) || a.length !== n) {
      throw new Error(
        `${where}: parameter "${e.ours}" has ${a.length} values, [${e.shape}] needs ${n} (a Float32Array or Float64Array)`,
      );
    }
    const name = e.candidates[0];
    specs[name] = { dtype, shape: e.shape };
    sources[name] = {
      dtype: a instanceof Float32Array ? "float32" : "float64",
      shape: e.shape,
      data: a,
    };
  }
  const head = familyFor(cfg).lmHeadName(cfg);
  for (const name of Object.keys(params)) {
    if (!known.has(name) && !(name === head && (tied(cfg) || classifier))) {
      throw new Error(
        `${where}: parameter "${name}" is not part of this model (config names ${known.size}); ` +
          `pass other tensors in extraTensors`,
      );
    }
  }
  for (const [name, t] of Object.entries(extraTensors)) {
    if (name in specs) {
      throw new Error(`${where}: extra tensor "${name}" clashes with a model weight`);
    }
    const stored = isFloatDType(t.dtype) ? dtype : t.dtype;
    specs[name] = { dtype: stored, shape: t.shape };
    sources[name] = t;
  }
  const produce = (name: string) => {
    const t = sources[name];
    return isFloatDType(t.dtype) ? castFloatTensor(t, dtype) : t;
  };
  return { specs, produce };
}

/**
 * Write a model folder of any supported family, atomically (see {@link writeModelFiles}):
 * config.json ({@link modelConfigJson}), model.safetensors in `opts.dtype` under transformers'
 * names (a tied head is not stored; a classifier stores `score.weight` from `extraTensors`),
 * generation_config.json when given, and the tokenizer files. Deterministic bytes; params may
 * be Float32Array or Float64Array and are converted tensor by tensor while writing.
 *
 * @example
 * ```ts
 * const m = await loadModelFolder("tests/fixtures/hf/qwen2-bf16");
 * await saveModelFolder("out/qwen2", m.cfg, m.params, {
 *   dtype: m.sourceDtype === "float16" ? "float16" : "bfloat16",
 *   config: m.config,
 *   generation: m.generation,
 *   extraTensors: m.extra,
 * }); // model.safetensors byte-identical to the source's
 * ```
 */
export async function saveModelFolder(
  dir: string,
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  opts: SaveModelOptions = {},
): Promise<void> {
  dir = trimSlashes(dir);
  const where = `saveModelFolder: ${dir}`;
  const dtype = opts.dtype ?? "float32";
  if (!["float32", "bfloat16", "float16"].includes(dtype)) {
    throw new Error(
      `${where}: dtype ${JSON.stringify(dtype)} (supported: float32, bfloat16, float16)`,
    );
  }
  const extraTensors = opts.extraTensors ?? {};
  const score = extraTensors["score.weight"];
  let config: Record<string, unknown>;
  try {
    config = modelConfigJson(cfg, {
      dtype,
      config: opts.config,
      architecture: opts.architecture,
      numLabels: score?.shape[0],
    });
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`, { cause: e });
  }
  const { architecture } = parseModelConfig(config, dir, "saveModelFolder");
  const classifier = architecture.kind === "sequence-classification";
  const hidden = hiddenSize(cfg);
  if (classifier && (!score || score.shape.join() !== `${architecture.numLabels},${hidden}`)) {
    throw new Error(
      `${where}: ${architecture.name} needs extraTensors["score.weight"] of shape ` +
        `[${architecture.numLabels}, ${hidden}], got ${score ? `[${score.shape}]` : "none"}`,
    );
  }
  const { specs, produce } = storedTensors(where, cfg, params, extraTensors, classifier, dtype);

  const files: Record<string, FolderFile> = {
    [MODEL_CONFIG]: configBytes(config),
    [MODEL_WEIGHTS]: (f) => writeSafetensors(f, specs, produce, { format: "pt" }),
  };
  if (opts.generation) {
    files[GENERATION_CONFIG] = configBytes(generationJson(opts.generation));
  }
  for (const [name, content] of Object.entries(opts.tokenizerFiles ?? {})) {
    checkFileName(where, name);
    files[name] = content instanceof Uint8Array ? content : jsonBytes(content);
  }
  await writeModelFiles(dir, files, "saveModelFolder");
}
