/**
 * ONNX export of a model folder of any supported family (`gpt2`, `llama`, `mistral`, `qwen2`,
 * `qwen3`; F32/F16/BF16, sharded or not) in the layout transformers.js (v4) loads for
 * `AutoModelForCausalLM` / `pipeline("text-generation", ...)`: `onnx/model.onnx` next to the
 * folder's `config.json` (weights over 2 GiB in `onnx/model.onnx_data`, ONNX's external-data
 * format, which transformers.js in Node reads through onnxruntime; elsewhere pass it
 * `use_external_data_format: true`), plus a `generation_config.json`.
 *
 * The model is {@link decoderDecodeStep} (the same block code Proxima trains and samples with:
 * `gpt.ts` or `llama.ts`), built with our graph builder and serialised with `toModelBytes()`;
 * the weights then become float32 initializers under their Hugging Face names (a bf16 or f16
 * folder is widened exactly). RoPE (with its scaling), grouped-query attention, q/k norms,
 * biases, a tied head and a sliding window all live inside the graph, so transformers.js needs
 * nothing from config.json but the model type and layer count. The interface is the one
 * Optimum's "text-generation-with-past" export has for these model types and transformers.js
 * 4.3.1 feeds (`decoder_forward` / `addPastKeyValues` / `getPastKeyValues` in its
 * `modeling_utils.js`, cache names from `getCacheNames` in `configs.js`):
 *
 * | name                                    | type    | shape                                                    |
 * | --------------------------------------- | ------- | -------------------------------------------------------- |
 * | in `input_ids`                          | int64   | `[batch_size, sequence_length]`                          |
 * | in `attention_mask`                     | int64   | `[batch_size, total_sequence_length]`                    |
 * | in `position_ids`                       | int64   | `[batch_size, sequence_length]`                          |
 * | in `past_key_values.{i}.key` / `.value` | float32 | `[batch_size, kv_heads, past_sequence_length, head_dim]` |
 * | out `logits`                            | float32 | `[batch_size, sequence_length, vocab_size]`              |
 * | out `present.{i}.key` / `.value`        | float32 | `[batch_size, kv_heads, total_sequence_length, head_dim]` |
 *
 * `i` runs over `num_hidden_layers` (`n_layer`); `kv_heads` is `num_key_value_heads` (GPT-2:
 * `n_head`) and `head_dim` is `head_dim` (else `hidden_size / num_attention_heads`), both fixed
 * numbers in the graph. transformers.js starts generation with zero-length `past_key_values`
 * shaped from this input metadata (`batch_size` is resolved, every other symbolic dim is 0),
 * renames each `present.*` output to `past_key_values.*` for the next step, and computes
 * `position_ids` as `cumsum(attention_mask) - 1` (padding positions get 1; Proxima uses 0
 * there: padding is masked out of attention, so no real position's output depends on it).
 * The optional `num_logits_to_keep` input is not declared, so every step returns all logits.
 *
 * @example
 * ```ts
 * await exportOnnx("models/SmolLM2-135M"); // writes models/SmolLM2-135M/onnx/model.onnx
 * // transformers.js: env.allowRemoteModels = false;
 * // const model = await AutoModelForCausalLM.from_pretrained("models/SmolLM2-135M", { local_files_only: true });
 * ```
 * @module
 */
import protoPkg from "onnx-proto";
import { Graph } from "../onnx/graph.ts";
import type { KvCache } from "./attention.ts";
import {
  type DecoderConfig,
  decoderDecodeStep,
  decoderShapes,
  kvLayout,
  modelType,
} from "./decoder.ts";
import { GENERATION_CONFIG, loadModelFolder } from "./checkpoint.ts";
import { writeAll } from "../fs.ts";

// deno-lint-ignore no-explicit-any
const onnx = (protoPkg as any).onnx;

/** Path of the model inside the folder (transformers.js: `onnx/model.onnx` for dtype fp32). */
export const ONNX_MODEL_FILE = "onnx/model.onnx";
/** Generation defaults file read by transformers (Python and JS). */
export const GENERATION_CONFIG_FILE = GENERATION_CONFIG;
/**
 * Largest weights one ONNX file holds: ONNX files are protobufs, which stop at 2 GiB. Bigger
 * models are written in ONNX's external-data format (see {@link exportOnnxModel}).
 */
export const MAX_ONNX_BYTES = 2 ** 31 - 1;
/** The external-data file beside `onnx/model.onnx` (the name transformers.js looks for). */
export const ONNX_DATA_FILE = "onnx/model.onnx_data";
/** Tensor offsets in the external-data file are multiples of this (a page: ORT may map it). */
const DATA_ALIGN = 4096;

/**
 * The decoder-with-past graph for `cfg`, with the parameters as float32 graph inputs under
 * the names of `decoderShapes(cfg)` (turned into initializers by {@link exportOnnxModel}).
 */
export function buildExportGraph(cfg: DecoderConfig): Graph {
  const g = new Graph(`proxima_${modelType(cfg)}_decoder_with_past`);
  const params = Object.fromEntries(
    Object.entries(decoderShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
  );
  const { kvHeads: H, headDim: hd } = kvLayout(cfg);
  const inputIds = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "total_sequence_length"]);
  const positions = g.input("position_ids", "int64", ["batch_size", "sequence_length"]);
  const past: KvCache[] = Array.from({ length: cfg.nLayer }, (_, i) => ({
    key: g.input(`past_key_values.${i}.key`, "float32", [
      "batch_size",
      H,
      "past_sequence_length",
      hd,
    ]),
    value: g.input(`past_key_values.${i}.value`, "float32", [
      "batch_size",
      H,
      "past_sequence_length",
      hd,
    ]),
  }));
  const out = decoderDecodeStep(g, cfg, params, inputIds, past, mask, positions);
  g.output(out.logits, "logits");
  out.presents.forEach((c, i) => {
    g.output(c.key, `present.${i}.key`);
    g.output(c.value, `present.${i}.value`);
  });
  return g;
}

/** The parts of an export: the model file, and the external data (empty when inline). */
export interface OnnxExport {
  /** `onnx/model.onnx`. */
  model: Uint8Array;
  /** The weights of `onnx/model.onnx_data` at their offsets, in order (none when inline). */
  data: { offset: number; bytes: Uint8Array }[];
  /** Length of the external-data file (0 when inline). */
  dataBytes: number;
}

/**
 * The ONNX export of the decoder with past for `cfg` and `params` (float32 or float64 arrays,
 * stored as float32 initializers under their names). Weights of at most
 * {@link MAX_ONNX_BYTES} (less 64 MiB for the graph) go inside the model; bigger ones, or
 * every model with `externalData: true`, go to `model.onnx_data` in ONNX's external-data
 * format (each initializer names the file, its offset and length), which onnxruntime (and so
 * transformers.js in Node) reads beside the model file it loads.
 */
export function exportOnnxModel(
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  opts: { externalData?: boolean } = {},
): OnnxExport {
  const shapes = decoderShapes(cfg);
  const weightBytes = Object.values(shapes).reduce(
    (n, { shape }) => n + 4 * shape.reduce((x, y) => x * y, 1),
    0,
  );
  const external = opts.externalData ?? weightBytes > MAX_ONNX_BYTES - (64 << 20);
  // deno-lint-ignore no-explicit-any
  const model: any = onnx.ModelProto.decode(buildExportGraph(cfg).toModelBytes());
  const graph = model.graph;
  // deno-lint-ignore no-explicit-any
  graph.input = graph.input.filter((i: any) => !(i.name in shapes));
  const data: OnnxExport["data"] = [];
  let end = 0;
  const dataName = ONNX_DATA_FILE.slice(ONNX_DATA_FILE.lastIndexOf("/") + 1);
  for (const [name, { shape }] of Object.entries(shapes)) {
    const a = params[name];
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`exportOnnxModel: missing parameter "${name}"`);
    if (a.length !== n) {
      throw new Error(`exportOnnxModel: parameter "${name}" has ${a.length} values, expected ${n}`);
    }
    const f32 = a instanceof Float32Array ? a : Float32Array.from(a);
    const bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    if (!external) {
      graph.initializer.push({ name, dims: shape, dataType: 1, rawData: bytes }); // FLOAT
      continue;
    }
    const offset = Math.ceil(end / DATA_ALIGN) * DATA_ALIGN;
    data.push({ offset, bytes });
    end = offset + bytes.byteLength;
    graph.initializer.push({
      name,
      dims: shape,
      dataType: 1, // FLOAT
      dataLocation: 1, // EXTERNAL
      externalData: [
        { key: "location", value: dataName },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(bytes.byteLength) },
      ],
    });
  }
  model.producerName = "proxima";
  model.docString = `${modelType(cfg)} decoder with past key values, exported by Proxima ` +
    "(lib/nn/export.ts)";
  return { model: onnx.ModelProto.encode(model).finish(), data, dataBytes: end };
}

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /**
   * generation_config.json keys to set (e.g. `max_new_tokens`), over the folder's own file or
   * the ids from config.json.
   */
  generationConfig?: Record<string, unknown>;
  /**
   * Weights in `onnx/model.onnx_data` (ONNX external data) even when they would fit in the
   * model file; default: only when they would not (over 2 GiB of float32, e.g. 0.5B and up).
   */
  externalData?: boolean;
}

/**
 * Write `path` through a temp name in the same folder, renamed when complete (a reader never
 * sees half a file); `content` is the bytes, or a writer that streams them into the file.
 */
async function writeAtomic(
  path: string,
  content: Uint8Array | ((f: Deno.FsFile) => Promise<void>),
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using f = await Deno.open(tmp, { write: true, create: true, truncate: true });
      await (content instanceof Uint8Array ? writeAll(f, content) : content(f));
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Stream an export's external data into `f`: each tensor at its (aligned) offset. */
async function writeData(f: Deno.FsFile, out: OnnxExport): Promise<void> {
  let at = 0;
  for (const { offset, bytes } of out.data) {
    if (offset > at) await writeAll(f, new Uint8Array(offset - at));
    await writeAll(f, bytes);
    at = offset + bytes.byteLength;
  }
}

/** The token-id keys generation_config.json takes from config.json. */
const ID_KEYS = ["bos_token_id", "eos_token_id", "pad_token_id"] as const;

const missing = (v: unknown) => v === undefined || v === null;

/** The object with its top-level keys sorted. */
const sortKeys = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));

/**
 * generation_config.json for the export: the folder's own `raw` file with only the ids it
 * lacks taken from config.json, or, without one, config.json's ids (pad defaults to the first
 * EOS); then `extra` over it. Keys sorted, as transformers writes them.
 */
function exportGenerationConfig(
  config: Record<string, unknown>,
  raw: Record<string, unknown> | undefined,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const gen: Record<string, unknown> = { ...raw };
  for (const k of ID_KEYS) {
    if (missing(gen[k]) && !missing(config[k])) gen[k] = config[k];
  }
  if (!raw && missing(gen.pad_token_id) && !missing(gen.eos_token_id)) {
    gen.pad_token_id = [gen.eos_token_id].flat()[0];
  }
  Object.assign(gen, extra);
  return sortKeys(gen);
}

/**
 * Write `onnx/model.onnx` (and, when needed, `generation_config.json`) into a model folder of
 * any family `loadModelFolder` reads: one `saveHfFolder` / `saveModelFolder` wrote, or a Hub
 * folder (its config.json and weights are read, not changed; bf16/f16 weights are exported as
 * float32). Each file is written to a temp name and renamed, so a reader never sees half a
 * file. Returns the path of the model file. A sequence classifier (reward model) is refused:
 * transformers.js' causal-LM classes would run it as a language model.
 *
 * generation_config.json: a folder that has one keeps it (a Hub model's sampling defaults
 * stay as published); only `bos_token_id` / `eos_token_id` / `pad_token_id` it lacks are
 * filled from config.json, and the file is rewritten only when that or
 * `opts.generationConfig` changes it. A folder without one gets config.json's ids (pad
 * defaults to the EOS, as the byte tokenizer's), sorted keys.
 *
 * @example
 * ```ts
 * await exportOnnx("out/policy");
 * ```
 */
export async function exportOnnx(dir: string, opts: ExportOnnxOptions = {}): Promise<string> {
  const folder = await loadModelFolder(dir, { dtype: "float32", caller: "exportOnnx" });
  if (folder.architecture.kind !== "causal-lm") {
    throw new Error(
      `exportOnnx: ${dir}/config.json: ${folder.architecture.name} is a sequence classifier; ` +
        "the transformers.js export is for causal language models. Fix: export the policy " +
        "folder, or set architectures to the family's *ForCausalLM if it has an LM head",
    );
  }
  const out = exportOnnxModel(folder.cfg, folder.params, { externalData: opts.externalData });
  await Deno.mkdir(`${dir}/onnx`, { recursive: true });
  const path = `${dir}/${ONNX_MODEL_FILE}`;
  // The data first: a reader that finds the new model file finds its weights.
  if (out.data.length) await writeAtomic(`${dir}/${ONNX_DATA_FILE}`, (f) => writeData(f, out));
  else await Deno.remove(`${dir}/${ONNX_DATA_FILE}`).catch(() => {});
  await writeAtomic(path, out.model);
  const raw = folder.generation?.raw;
  const gen = exportGenerationConfig(folder.config, raw, opts.generationConfig);
  if (!raw || JSON.stringify(sortKeys(raw)) !== JSON.stringify(gen)) {
    await writeAtomic(
      `${dir}/${GENERATION_CONFIG_FILE}`,
      new TextEncoder().encode(JSON.stringify(gen, null, 2) + "\n"),
    );
  }
  return path;
}
