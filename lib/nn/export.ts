/**
 * ONNX export of a GPT-2 model folder in the layout transformers.js (v4) loads for
 * `AutoModelForCausalLM` / `pipeline("text-generation", ...)`: `onnx/model.onnx` next to the
 * folder's `config.json`, plus a `generation_config.json`.
 *
 * The model is {@link gptDecodeStep} (the same block code Proxima trains and samples with),
 * built with our graph builder and serialised with `toModelBytes()`; the weights then become
 * initializers under their Hugging Face names. Its interface is the one Optimum's
 * `gpt2` "text-generation-with-past" export has and transformers.js 4.3.1 feeds
 * (`decoder_forward` / `addPastKeyValues` / `getPastKeyValues` in its `modeling_utils.js`):
 *
 * | name                                             | type    | shape                                              |
 * | ------------------------------------------------ | ------- | -------------------------------------------------- |
 * | in `input_ids`                                   | int64   | `[batch_size, sequence_length]`                    |
 * | in `attention_mask`                              | int64   | `[batch_size, past_sequence_length + sequence_length]` |
 * | in `position_ids`                                | int64   | `[batch_size, sequence_length]`                    |
 * | in `past_key_values.{i}.key` / `.value`          | float32 | `[batch_size, n_head, past_sequence_length, head_dim]` |
 * | out `logits`                                     | float32 | `[batch_size, sequence_length, vocab_size]`        |
 * | out `present.{i}.key` / `.value`                 | float32 | `[batch_size, n_head, total_sequence_length, head_dim]` |
 *
 * transformers.js starts generation with zero-length `past_key_values` (it sizes them from the
 * input metadata: `batch_size` is resolved, every other symbolic dim is 0), renames each
 * `present.*` output to `past_key_values.*` for the next step, and computes `position_ids` as
 * `cumsum(attention_mask) - 1` (padding positions get 1; Proxima uses 0 there — padding is
 * masked out of attention, so no real position's output depends on it).
 *
 * @example
 * ```ts
 * await saveHfFolder("out/policy", cfg, params, makeByteTokenizer({ modelMaxLength: cfg.nPositions }));
 * await exportOnnx("out/policy"); // writes out/policy/onnx/model.onnx + generation_config.json
 * // transformers.js: env.allowRemoteModels = false;
 * // const model = await AutoModelForCausalLM.from_pretrained("out/policy", { local_files_only: true });
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
import { loadHfFolder } from "./hf.ts";

// deno-lint-ignore no-explicit-any
const onnx = (protoPkg as any).onnx;

/** Path of the model inside the folder (transformers.js: `onnx/model.onnx` for dtype fp32). */
export const ONNX_MODEL_FILE = "onnx/model.onnx";
/** Generation defaults file read by transformers (Python and JS). */
export const GENERATION_CONFIG_FILE = "generation_config.json";

/**
 * The decoder-with-past graph for `cfg`, with the parameters as float32 graph inputs under
 * the names of {@link gptShapes} (turned into initializers by {@link exportOnnxModel}).
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

/**
 * ONNX model bytes of the decoder with past for `cfg` and `params` (float32 or float64
 * arrays, stored as float32 initializers under their names).
 */
export function exportOnnxModel(
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
): Uint8Array {
  const shapes = decoderShapes(cfg);
  // deno-lint-ignore no-explicit-any
  const model: any = onnx.ModelProto.decode(buildExportGraph(cfg).toModelBytes());
  const graph = model.graph;
  // deno-lint-ignore no-explicit-any
  graph.input = graph.input.filter((i: any) => !(i.name in shapes));
  for (const [name, { shape }] of Object.entries(shapes)) {
    const a = params[name];
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`exportOnnxModel: missing parameter "${name}"`);
    if (a.length !== n) {
      throw new Error(`exportOnnxModel: parameter "${name}" has ${a.length} values, expected ${n}`);
    }
    const f32 = a instanceof Float32Array ? a : Float32Array.from(a);
    graph.initializer.push({
      name,
      dims: shape,
      dataType: 1, // FLOAT
      rawData: new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength),
    });
  }
  model.producerName = "proxima";
  model.docString = `${modelType(cfg)} decoder with past key values, exported by Proxima ` +
    "(lib/nn/export.ts)";
  return onnx.ModelProto.encode(model).finish();
}

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /** Extra generation_config.json keys (e.g. `max_new_tokens`); ids come from config.json. */
  generationConfig?: Record<string, unknown>;
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Write `onnx/model.onnx` and `generation_config.json` into a model folder written by
 * `saveHfFolder` (its config.json and model.safetensors are read, not changed). Each file is
 * written to a temp name and renamed, so a reader never sees half a file. Returns the path of
 * the model file.
 *
 * generation_config.json holds `bos_token_id`, `eos_token_id` and `pad_token_id` from
 * config.json (pad defaults to EOS, as the byte tokenizer's), sorted keys.
 *
 * @example
 * ```ts
 * await exportOnnx("out/policy");
 * ```
 */
export async function exportOnnx(dir: string, opts: ExportOnnxOptions = {}): Promise<string> {
  const folder = await loadHfFolder(dir);
  const bytes = exportOnnxModel(folder.cfg, folder.params);
  await Deno.mkdir(`${dir}/onnx`, { recursive: true });
  const path = `${dir}/${ONNX_MODEL_FILE}`;
  await writeAtomic(path, bytes);
  const c = folder.config;
  const gen: Record<string, unknown> = {
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id,
    pad_token_id: c.pad_token_id ?? c.eos_token_id,
    ...opts.generationConfig,
  };
  const sorted = Object.fromEntries(Object.keys(gen).sort().map((k) => [k, gen[k]]));
  await writeAtomic(
    `${dir}/${GENERATION_CONFIG_FILE}`,
    new TextEncoder().encode(JSON.stringify(sorted, null, 2) + "\n"),
  );
  return path;
}
