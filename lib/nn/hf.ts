/**
 * Hugging Face model folders for the GPT-2 model of `gpt.ts`: `config.json` (a `GPT2Config`),
 * `model.safetensors` (the `GPT2LMHeadModel` weights) and, optionally, the tokenizer files
 * (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`).
 *
 * Writing is atomic at folder level: everything goes into a sibling temp folder
 * (`<dir>.tmp-<hex>`, git-ignored), each file fsynced, which is then renamed into place, so a
 * reader never sees a half-written folder. An existing folder at `dir` is replaced as a whole
 * (only when it looks like a model folder: it has `config.json`, or is empty).
 *
 * Output is deterministic (sorted JSON keys, sorted tensors, fixed metadata), so saving the
 * same model twice, or saving what {@link loadHfFolder} returned, gives identical bytes.
 *
 * `model.safetensors` layout: tensor names as `GPT2LMHeadModel.save_pretrained` writes them
 * (`transformer.h.0.attn.c_attn.weight`, Conv1D `[in, out]` layout, no `lm_head.weight`
 * since the head is tied to `wte`), all float32, metadata `{"format": "pt"}` (transformers
 * refuses safetensors files without a known format), in the reference writer's layout (see
 * `lib/onnx/safetensors.ts`): with one dtype, plain name order, each tensor 4-byte aligned.
 *
 * Reading and the folder write are `checkpoint.ts`'s, shared with every model family: this
 * file adds the GPT-2-only contract (the byte tokenizer's files, `hfConfig`'s keys, float32).
 *
 * Reading accepts names with or without the `transformer.` prefix (the hub's `gpt2` files
 * have none), F32/F64/F16/BF16 weights, unsharded or sharded, skips the `attn.bias` /
 * `attn.masked_bias` buffers older transformers saved, checks a present `lm_head.weight`
 * equals `wte` (tied), and returns any other tensors (e.g. a value head) in `extra`. Every
 * error names the folder, the file, the key and a fix.
 *
 * @example
 * ```ts
 * await saveHfFolder("out/policy", cfg, params, makeByteTokenizer({ modelMaxLength: cfg.nPositions }));
 * const { cfg: cfg2, params: p2, tokenizer } = await loadHfFolder("out/policy");
 * ```
 * @module
 */
import { type FolderFile, loadModelFolder, readFolderJson, writeModelFiles } from "./checkpoint.ts";
import { canonicalJson, stableJson } from "../json.ts";
import { type GptConfig, gptShapes } from "./gpt.ts";
import type { TokenizerFiles } from "./tokenizer.ts";
import { encodeSafetensors, type NamedTensor } from "../onnx/safetensors.ts";

/** Model weights file name. */
export const HF_WEIGHTS = "model.safetensors";
/** Model config file name. */
export const HF_CONFIG = "config.json";
/** Tokenizer files read and written (each optional). */
export const HF_TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

/** Options of {@link saveHfFolder}. */
export interface SaveHfOptions {
  /**
   * Extra `config.json` keys (e.g. `eos_token_id`, or the whole `config` that
   * {@link loadHfFolder} returned). They may not contradict the architecture keys that come
   * from `cfg` (vocab_size, n_positions, n_ctx, n_embd, n_layer, n_head, layer_norm_epsilon).
   */
  config?: Record<string, unknown>;
  /** Extra float32 tensors stored next to the model's (e.g. `v_head.weight`), names kept. */
  extraTensors?: Record<string, NamedTensor>;
}

/** What {@link loadHfFolder} returns. */
export interface HfFolder {
  /** Architecture from config.json (with `prefix` when one was asked for). */
  cfg: GptConfig;
  /** GPT-2 parameters under the names of `gptShapes(cfg)`. */
  params: Record<string, Float32Array | Float64Array>;
  /** The parsed config.json, all keys. */
  config: Record<string, unknown>;
  /** Tokenizer files present in the folder, parsed; undefined when there is no tokenizer.json. */
  tokenizer?: TokenizerFiles;
  /** Tensors of model.safetensors that are not GPT-2 parameters or buffers, under their names. */
  extra: Record<string, NamedTensor>;
}

/** Options of {@link loadHfFolder}. */
export interface LoadHfOptions {
  /** Parameter-name prefix of the returned params (GptConfig.prefix; default "transformer"). */
  prefix?: string;
  /** Element type of the returned params (default float32; float64 widens exactly). */
  dtype?: "float32" | "float64";
}

/** Architecture keys written from `cfg`; `opts.config` may repeat but not change them. */
function archConfig(cfg: GptConfig): Record<string, unknown> {
  return {
    vocab_size: cfg.vocabSize,
    n_positions: cfg.nPositions,
    n_ctx: cfg.nPositions,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    layer_norm_epsilon: cfg.layerNormEps ?? 1e-5,
  };
}

/**
 * The config.json object for `cfg`: GPT2Config keys describing exactly the model of gpt.ts
 * (tanh GELU = "gelu_new", tied head, 1/√hd attention scaling, n_inner = 4d). Dropout is 0
 * because our graph has none: a PyTorch fine-tune from the folder then computes what we trained.
 * BOS = EOS = vocab_size - 1, GPT-2's convention (id 256 of the byte tokenizer, V = 257).
 * Keys are sorted, as transformers writes them.
 *
 * @example
 * ```ts
 * hfConfig(cfg).model_type; // "gpt2"
 * hfConfig(cfg, { eos_token_id: 0 }).eos_token_id; // 0
 * ```
 */
export function hfConfig(
  cfg: GptConfig,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  gptShapes(cfg); // validates cfg
  const arch = archConfig(cfg);
  for (const [k, v] of Object.entries(extra)) {
    if (k in arch && v !== arch[k]) {
      throw new Error(
        `hfConfig: config key "${k}" = ${JSON.stringify(v)} contradicts the model ` +
          `(${JSON.stringify(arch[k])}); drop it from the extra config or change the GptConfig`,
      );
    }
  }
  return JSON.parse(canonicalJson({
    activation_function: "gelu_new",
    architectures: ["GPT2LMHeadModel"],
    attn_pdrop: 0,
    bos_token_id: cfg.vocabSize - 1,
    embd_pdrop: 0,
    eos_token_id: cfg.vocabSize - 1,
    initializer_range: 0.02,
    model_type: "gpt2",
    n_inner: null,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    torch_dtype: "float32",
    use_cache: true,
    ...arch,
    ...extra,
  }));
}

/** (our name, HF name, shape) of every GPT-2 parameter, in gptShapes order. */
function namePairs(cfg: GptConfig): [ours: string, hf: string, shape: number[]][] {
  const ours = Object.entries(gptShapes(cfg));
  const theirs = Object.keys(gptShapes({ ...cfg, prefix: "transformer" }));
  return ours.map(([n, { shape }], i) => [n, theirs[i], shape]);
}

/** Largest token id a tokenizer.json defines, or -1. */
function maxTokenId(tok: Record<string, unknown>): number {
  let max = -1;
  const model = tok.model as { vocab?: Record<string, number> } | undefined;
  for (const id of Object.values(model?.vocab ?? {})) max = Math.max(max, id);
  for (const t of (tok.added_tokens ?? []) as { id: number }[]) max = Math.max(max, t.id);
  return max;
}

const encoder = new TextEncoder();
const trimSlashes = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") || "/" : p);

/**
 * Write a model folder: config.json, model.safetensors (float32; Float64Array params are
 * rounded) and the given tokenizer files, atomically (see the module doc). The tokenizer's ids
 * must fit in `cfg.vocabSize`.
 *
 * @example
 * ```ts
 * await saveHfFolder("out/policy", cfg, params, makeByteTokenizer(), {
 *   extraTensors: { "v_head.weight": { dtype: "float32", shape: [d, 1], data: w } },
 * });
 * ```
 */
export async function saveHfFolder(
  dir: string,
  cfg: GptConfig,
  params: Record<string, Float32Array | Float64Array>,
  tokenizer?: TokenizerFiles,
  opts: SaveHfOptions = {},
): Promise<void> {
  dir = trimSlashes(dir);
  const where = `saveHfFolder: ${dir}`;
  const config = hfConfig(cfg, opts.config);

  const tensors: Record<string, NamedTensor> = {};
  for (const [ours, hf, shape] of namePairs(cfg)) {
    const a = params[ours];
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a) throw new Error(`${where}: missing parameter "${ours}"`);
    if (a.length !== n) {
      throw new Error(
        `${where}: parameter "${ours}" has ${a.length} values, [${shape}] needs ${n}`,
      );
    }
    tensors[hf] = {
      dtype: "float32",
      shape,
      data: a instanceof Float32Array ? a : Float32Array.from(a),
    };
  }
  for (const [name, t] of Object.entries(opts.extraTensors ?? {})) {
    if (name in tensors) {
      throw new Error(`${where}: extra tensor "${name}" clashes with a model weight`);
    }
    if (t.dtype !== "float32") {
      throw new Error(
        `${where}: extra tensor "${name}" is ${t.dtype}; store float32 (one dtype keeps every ` +
          `tensor aligned)`,
      );
    }
    tensors[name] = t;
  }
  const files: Record<string, FolderFile> = {
    [HF_CONFIG]: encoder.encode(stableJson(config)),
    [HF_WEIGHTS]: encodeSafetensors(tensors, { format: "pt" }),
  };
  for (const [name, obj] of Object.entries(tokenizer ?? {})) {
    if (!HF_TOKENIZER_FILES.includes(name)) {
      throw new Error(
        `${where}: unknown tokenizer file "${name}" (known: ${HF_TOKENIZER_FILES.join(", ")})`,
      );
    }
    if (name === "tokenizer.json") {
      const max = maxTokenId(obj);
      if (max >= cfg.vocabSize) {
        throw new Error(
          `${where}: tokenizer.json defines token id ${max} but vocab_size is ${cfg.vocabSize}; ` +
            `use a GptConfig with vocabSize >= ${max + 1}`,
        );
      }
    }
    files[name] = encoder.encode(JSON.stringify(obj, null, 2) + "\n");
  }
  await writeModelFiles(dir, files, "saveHfFolder");
}

/**
 * Read a GPT-2 model folder written by {@link saveHfFolder} or transformers' `save_pretrained`
 * (`loadModelFolder` restricted to `model_type` gpt2, plus the tokenizer files). Throws,
 * naming folder, file, key and a fix, when config.json or the weights are missing or corrupt,
 * a weight is missing, a shape does not match config.json, or the config asks for a GPT-2
 * variant gpt.ts does not implement.
 *
 * @example
 * ```ts
 * const f = await loadHfFolder("out/policy");
 * await saveHfFolder("out/copy", f.cfg, f.params, f.tokenizer, {
 *   config: f.config,
 *   extraTensors: f.extra,
 * }); // byte-identical to out/policy when that was written by saveHfFolder
 * ```
 */
export async function loadHfFolder(dir: string, opts: LoadHfOptions = {}): Promise<HfFolder> {
  dir = trimSlashes(dir);
  const m = await loadModelFolder(dir, {
    dtype: opts.dtype,
    prefix: opts.prefix,
    modelTypes: ["gpt2"],
    caller: "loadHfFolder",
  });
  const tok: TokenizerFiles = {};
  for (const f of HF_TOKENIZER_FILES) {
    const obj = await readFolderJson(dir, f, false, "loadHfFolder");
    if (obj) tok[f] = obj;
  }
  const tokenizer = tok["tokenizer.json"] ? tok : undefined;
  return { cfg: m.cfg as GptConfig, params: m.params, config: m.config, tokenizer, extra: m.extra };
}
