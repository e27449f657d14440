/**
 * Loading a Hugging Face model folder of any supported family ({@link loadModelFolder}): the
 * config, every expected tensor located and checked (dtype, shape) from the headers before any
 * data is read, then the tensors read one at a time and converted, the tied head checked, and
 * tensors that are not parameters returned as extras.
 *
 * @module
 */
import { type DecoderConfig, familyFor, hiddenSize } from "./decoder.ts";
import {
  type FloatDType,
  floatValues,
  isFloatDType,
  type NamedTensor,
  type SafetensorsEntry,
  type SafetensorsFile,
} from "../onnx/safetensors.ts";
import {
  type GenerationConfig,
  type ModelConfig,
  parseModelConfig,
  readGenerationConfig,
} from "./hf_config.ts";
import {
  folderError,
  MODEL_CONFIG,
  MODEL_WEIGHTS_INDEX,
  readFolderJson,
  trimSlashes,
  type Where,
} from "./hf_folder.ts";
import {
  BUFFER,
  embedName,
  type Expected,
  expectedParams,
  impliedBy,
  openWeights,
  tied,
  type Weights,
} from "./hf_weights.ts";

/** Options of {@link loadModelFolder}. */
export interface LoadModelOptions {
  /** Element type of the returned params and float extras (default float32; widening is exact). */
  dtype?: "float32" | "float64";
  /** Parameter-name prefix of the returned params (default the family's: "transformer", "model"). */
  prefix?: string;
  /** Accept only these `model_type` values (default all of {@link MODEL_TYPES}). */
  modelTypes?: readonly string[];
  /** Name that starts error messages (default "loadModelFolder"). */
  caller?: string;
  /**
   * false: read config.json and the safetensors headers only, every name, dtype and shape
   * checked, no tensor data read (`params` and `extra` empty; a tied head's equality and a
   * truncated data section are found only by a full load). Sweep planning reads folders so.
   */
  weights?: boolean;
  /**
   * Map the weight files instead of reading them (lib/onnx/file_map.ts): float32 params of a
   * float32 file are then views of the page cache, no copy and no fresh memory to fault in (the
   * 0.5B model's 2 GB: 7 s → 0.2 s here). Writes to them copy the page, never the file.
   * Default false; falls back to reading where mapping is not possible.
   */
  map?: boolean;
}

/** What {@link loadModelFolder} returns. */
export interface ModelFolder extends ModelConfig {
  /** Parameters under the names of `gptShapes(cfg)` / `llamaShapes(cfg)` (a classifier: no LM head). */
  params: Record<string, Float32Array | Float64Array>;
  /** The dtype the weights are stored in (the embedding's). */
  sourceDtype: FloatDType;
  /** generation_config.json, when the folder has one. */
  generation?: GenerationConfig;
  /** Tensors that are not model parameters or buffers (`score.weight`, `v_head.weight`, ...); floats converted to `dtype`. */
  extra: Record<string, NamedTensor>;
  /** The weight files read, relative to the folder. */
  weightFiles: string[];
  /** Dtype tag and shape of each tensor in `extra` (filled without `weights` too). */
  extraShapes: Record<string, { tag: string; shape: number[] }>;
}

/** Which file tensor `expected` is in, checked for ambiguity, dtype and shape (no data read). */
function locate(
  w: Where,
  weights: Weights,
  e: Expected,
  cfg: DecoderConfig,
): { file: string; name: string; entry: SafetensorsEntry; st: SafetensorsFile } {
  const found = e.candidates.filter((n) => weights.byName.has(n));
  const searched = weights.files.map((f) => f.name).join(", ");
  const fileLabel = weights.files.length === 1 ? weights.files[0].name : MODEL_WEIGHTS_INDEX;
  if (found.length === 0) {
    const alt = e.candidates.length > 1 ? ` (also looked for "${e.candidates[1]}")` : "";
    const head = e.ours === "lm_head.weight";
    throw folderError(
      w,
      fileLabel,
      `missing tensor "${e.candidates[0]}"${alt}; searched ${searched}`,
      head
        ? `set "tie_word_embeddings": true in config.json if the LM head is the embedding, or add lm_head.weight`
        : `check that config.json (${
          familyFor(cfg).missingHint(cfg, e.candidates[0])
        }) describes these weights`,
    );
  }
  if (found.length > 1) {
    throw folderError(
      w,
      fileLabel,
      `holds both "${found[1]}" and "${found[0]}"`,
      "keep one of them",
    );
  }
  const at = weights.byName.get(found[0])!;
  checkEntry(w, at.file, at.entry, e.shape, impliedBy(cfg, found[0]));
  return { ...at, name: found[0] };
}

/** A weight's dtype must be a float we read and its shape the expected one. */
function checkEntry(
  w: Where,
  file: string,
  entry: SafetensorsEntry,
  shape: number[],
  keys: string,
) {
  if (!entry.dtype || !isFloatDType(entry.dtype)) {
    throw folderError(
      w,
      file,
      `tensor "${entry.name}" has dtype ${entry.tag}, which is not supported (supported: F32, F64, F16, BF16)`,
      "dequantize the model (e.g. load it in transformers with dtype=torch.bfloat16 and save_pretrained)",
    );
  }
  if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
    throw folderError(
      w,
      file,
      `tensor "${entry.name}" has shape [${entry.shape}], config.json (${keys}) implies [${shape}]`,
      "make config.json match the weights, or re-save the folder",
    );
  }
}

/**
 * Load a model folder of any supported family (see the module doc): config.json, the weights
 * (unsharded or sharded; F32/F64/F16/BF16, converted to `opts.dtype`), generation_config.json.
 * A tied head's `lm_head.weight`, when the file has one, must equal the embedding; an untied
 * head must be present. Tensors that are not parameters (a classifier's `score.weight`, a
 * value head) come back in `extra`. Throws one error naming folder, file, tensor or key, and
 * a fix, for: an unsupported model_type or architecture, an unsupported tensor dtype, a shard
 * the index names that is missing, a missing tensor, a wrong shape, a truncated file.
 *
 * @example
 * ```ts
 * const { cfg, params, sourceDtype, extra } = await loadModelFolder("tests/fixtures/hf/llama-rm");
 * extra["score.weight"].shape; // [1, 32]
 * ```
 */
export async function loadModelFolder(
  dir: string,
  opts: LoadModelOptions = {},
): Promise<ModelFolder> {
  const w: Where = { caller: opts.caller ?? "loadModelFolder", dir: trimSlashes(dir) };
  const config = (await readFolderJson(w.dir, MODEL_CONFIG, true, w.caller))!;
  const { cfg, architecture } = parseModelConfig(config, w.dir, w.caller, opts.modelTypes);
  if (opts.prefix !== undefined) cfg.prefix = opts.prefix;
  const generation = await readGenerationConfig(w.dir, w.caller);
  const dtype = opts.dtype ?? "float32";
  const classifier = architecture.kind === "sequence-classification";

  const weights = await openWeights(w, opts.map === true && opts.weights !== false);
  try {
    // Resolve and check every name, dtype and shape from the headers before reading data.
    const wanted = new Map<string, string>(); // file tensor name -> our param name
    const byOurs = new Map<string, ReturnType<typeof locate>>();
    const expected = expectedParams(cfg, classifier);
    for (const e of expected) {
      const at = locate(w, weights, e, cfg);
      wanted.set(at.name, e.ours);
      byOurs.set(e.ours, at);
    }
    const hidden = hiddenSize(cfg);
    if (classifier) {
      const at = weights.byName.get("score.weight");
      if (!at) {
        throw folderError(
          w,
          weights.files.length === 1 ? weights.files[0].name : MODEL_WEIGHTS_INDEX,
          `missing tensor "score.weight" of ${architecture.name}`,
          "save the classifier with its score head, or set architectures to the causal LM",
        );
      }
      checkEntry(
        w,
        at.file,
        at.entry,
        [architecture.numLabels!, hidden],
        impliedBy(cfg, "score.weight", architecture.numLabels),
      );
    }
    const embedAt = byOurs.get(embedName(cfg))!;
    const sourceDtype = embedAt.entry.dtype as FloatDType;

    const extraShapes: ModelFolder["extraShapes"] = {};
    for (const { name: file, st } of weights.files) {
      for (const e of st.header.entries) {
        if (wanted.has(e.name) || BUFFER.test(e.name)) continue;
        if (e.name === "lm_head.weight" && tied(cfg) && !classifier) {
          checkEntry(w, file, e, embedAt.entry.shape, impliedBy(cfg, e.name));
          continue;
        }
        if (!e.dtype) checkEntry(w, file, e, e.shape, ""); // throws: unsupported dtype
        extraShapes[e.name] = { tag: e.tag, shape: e.shape };
      }
    }
    const params: Record<string, Float32Array | Float64Array> = {};
    const extra: Record<string, NamedTensor> = {};
    const head = { cfg, architecture, config, sourceDtype, ...(generation ? { generation } : {}) };
    const weightFiles = weights.files.map((f) => f.name);
    if (opts.weights === false) return { ...head, params, extra, weightFiles, extraShapes };
    let lmHead: { file: string; values: Float32Array | Float64Array } | undefined;
    // File by file, in data order: each tensor is read, converted and its raw bytes dropped.
    for (const { name: file, st } of weights.files) {
      for (const entry of st.header.entries) {
        const ours = wanted.get(entry.name);
        if (ours !== undefined) {
          params[ours] = floatValues(await st.read(entry.name), dtype);
        } else if (entry.name === "lm_head.weight" && tied(cfg) && !classifier) {
          checkEntry(w, file, entry, embedAt.entry.shape, impliedBy(cfg, entry.name));
          lmHead = { file, values: floatValues(await st.read(entry.name), dtype) };
        } else if (!BUFFER.test(entry.name)) {
          if (!entry.dtype) checkEntry(w, file, entry, entry.shape, ""); // throws: unsupported dtype
          const t = await st.read(entry.name);
          extra[entry.name] = isFloatDType(t.dtype)
            ? { dtype, shape: t.shape, data: floatValues(t, dtype) }
            : t;
        }
      }
    }
    if (lmHead) checkTiedHead(w, cfg, lmHead, params[embedName(cfg)]);
    return {
      ...head,
      params: Object.fromEntries(expected.map((e) => [e.ours, params[e.ours]])), // shapes order
      extra,
      weightFiles,
      extraShapes,
    };
  } finally {
    weights.close();
  }
}

/** A tied model's stored `lm_head.weight` must equal the embedding. */
function checkTiedHead(
  w: Where,
  cfg: DecoderConfig,
  head: { file: string; values: Float32Array | Float64Array },
  embed: Float32Array | Float64Array,
): void {
  const d = head.values;
  if (
    d.length !== embed.length ||
    d.some((v, i) => v !== embed[i] && !(v !== v && embed[i] !== embed[i]))
  ) {
    const { says, fix } = familyFor(cfg).untiedHead();
    throw folderError(
      w,
      head.file,
      `"lm_head.weight" differs from the token embedding "${
        embedName(cfg)
      }": an untied LM head, but config.json says ${says}`,
      fix,
    );
  }
}
