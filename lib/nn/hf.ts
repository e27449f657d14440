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
 * refuses safetensors files without a known format). Alignment: the reference writer orders
 * tensors by dtype then name and pads only the header (to 8 bytes), never between tensors;
 * with a single dtype that is plain name order, which `encodeSafetensors` also uses, and every
 * tensor starts at a multiple of 4 bytes from the 8-aligned data section, so float32 data is
 * naturally aligned for zero-copy readers. (A mixed float64/float32 file would not be: that is
 * one reason everything here is float32.)
 *
 * Reading accepts names with or without the `transformer.` prefix (the hub's `gpt2` files
 * have none), skips the `attn.bias` / `attn.masked_bias` buffers older transformers saved,
 * checks a present `lm_head.weight` equals `wte` (tied), and returns any other tensors (e.g. a
 * value head) in `extra`. Every error names the folder, the file, the key and a fix.
 *
 * @example
 * ```ts
 * await saveHfFolder("out/policy", cfg, params, makeByteTokenizer({ modelMaxLength: cfg.nPositions }));
 * const { cfg: cfg2, params: p2, tokenizer } = await loadHfFolder("out/policy");
 * ```
 * @module
 */
import { type GptConfig, gptNames, gptShapes } from "./gpt.ts";
import type { TokenizerFiles } from "./tokenizer.ts";
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from "../onnx/safetensors.ts";

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
  return sortKeys({
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
  }) as Record<string, unknown>;
}

/** Sorted keys at every level (as HF's `to_json_string(sort_keys=True)`), for stable bytes. */
function sortKeys(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(sortKeys);
  if (x === null || typeof x !== "object") return x;
  const o = x as Record<string, unknown>;
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
}

const jsonBytes = (x: unknown) => new TextEncoder().encode(JSON.stringify(x, null, 2) + "\n");

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

function hex8(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    let n = 0;
    while (n < bytes.length) n += await f.write(bytes.subarray(n));
    await f.sync();
  } finally {
    f.close();
  }
}

/** fsync a directory so renames in it are durable. Best effort: not every OS allows it. */
async function syncDir(path: string): Promise<void> {
  try {
    const f = await Deno.open(path, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch { /* not supported here */ }
}

const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) || "/" : ".");
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
  const files: [string, Uint8Array][] = [
    [HF_CONFIG, jsonBytes(config)],
    [HF_WEIGHTS, encodeSafetensors(tensors, { format: "pt" })],
  ];
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
    files.push([name, jsonBytes(obj)]);
  }

  // Refuse to replace something that is not a model folder (a typo like "." must not wipe a
  // directory), before writing anything.
  let exists = false;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new Error(`${where}: exists and is not a directory`);
    const entries: string[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    if (entries.length > 0 && !entries.includes(HF_CONFIG)) {
      throw new Error(
        `${where}: refusing to replace a non-empty folder without ${HF_CONFIG} (not a model ` +
          `folder); choose another path or remove it`,
      );
    }
    exists = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }

  // Same parent as `dir`, so the final rename stays on one filesystem (atomic).
  const tmp = `${dir}.tmp-${hex8()}`;
  const old = `${tmp}-old`;
  try {
    await Deno.mkdir(tmp);
    for (const [name, bytes] of files) await writeSynced(`${tmp}/${name}`, bytes);
    await syncDir(tmp);
    // A directory cannot be renamed over a non-empty one: move the old folder aside first.
    // In between, `dir` is briefly absent, never partial.
    if (exists) await Deno.rename(dir, old);
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      if (exists) await Deno.rename(old, dir).catch(() => {});
      throw e;
    }
    await syncDir(parentOf(dir));
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`${where}: cannot write: ${(e as Error).message}`, { cause: e });
  }
  if (exists) await Deno.remove(old, { recursive: true }).catch(() => {});
}

/** An error about `file` in folder `dir`, with a fix. */
function folderError(dir: string, file: string, what: string, fix: string): Error {
  return new Error(`loadHfFolder: ${dir}/${file}: ${what}. Fix: ${fix}`);
}

async function readJson(
  dir: string,
  file: string,
  required: boolean,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${file}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw folderError(
        dir,
        file,
        "missing",
        "point at a folder written by saveHfFolder or transformers' save_pretrained",
      );
    }
    throw folderError(dir, file, `cannot read: ${(e as Error).message}`, "check permissions");
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw folderError(dir, file, `corrupt JSON: ${(e as Error).message}`, "re-save the folder");
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw folderError(dir, file, "must hold a JSON object", "re-save the folder");
  }
  return obj as Record<string, unknown>;
}

/** GptConfig from a config.json object; rejects GPT-2 variants gpt.ts does not implement. */
function parseConfig(dir: string, c: Record<string, unknown>): GptConfig {
  const bad = (key: string, what: string, fix: string) =>
    folderError(dir, HF_CONFIG, `key "${key}": ${what}`, fix);
  if (c.model_type !== "gpt2") {
    throw bad(
      "model_type",
      `expected "gpt2", got ${JSON.stringify(c.model_type)}`,
      "only GPT-2 folders load here",
    );
  }
  const int = (key: string) => {
    const v = c[key];
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw bad(
        key,
        `expected a positive integer, got ${JSON.stringify(v)}`,
        `set "${key}" to the model's value`,
      );
    }
    return v as number;
  };
  const cfg: GptConfig = {
    vocabSize: int("vocab_size"),
    nPositions: int("n_positions"),
    nEmbd: int("n_embd"),
    nLayer: int("n_layer"),
    nHead: int("n_head"),
  };
  const eps = c.layer_norm_epsilon;
  if (eps !== undefined) {
    if (typeof eps !== "number" || !(eps > 0)) {
      throw bad(
        "layer_norm_epsilon",
        `expected a positive number, got ${JSON.stringify(eps)}`,
        "set it (GPT-2: 1e-5)",
      );
    }
    cfg.layerNormEps = eps;
  }
  if (cfg.nEmbd % cfg.nHead !== 0) {
    throw bad("n_head", `n_embd ${cfg.nEmbd} is not divisible by n_head ${cfg.nHead}`, "fix them");
  }
  // GPT2Config options that change the math: only GPT-2's defaults are implemented.
  const supported: [string, (v: unknown) => boolean, string][] = [
    [
      "activation_function",
      (v) => v === undefined || v === "gelu_new" || v === "gelu_pytorch_tanh",
      '"gelu_new" (tanh GELU)',
    ],
    ["n_inner", (v) => v === undefined || v === null || v === 4 * cfg.nEmbd, "null (4 * n_embd)"],
    ["tie_word_embeddings", (v) => v === undefined || v === true, "true"],
    ["scale_attn_weights", (v) => v === undefined || v === true, "true"],
    ["scale_attn_by_inverse_layer_idx", (v) => v === undefined || v === false, "false"],
    ["add_cross_attention", (v) => v === undefined || v === false, "false"],
  ];
  for (const [key, ok, want] of supported) {
    if (!ok(c[key])) {
      throw bad(
        key,
        `${JSON.stringify(c[key])} is not supported by lib/nn/gpt.ts`,
        `only ${want} is implemented`,
      );
    }
  }
  return cfg;
}

/**
 * Read a model folder written by {@link saveHfFolder} (or transformers' `save_pretrained`
 * for a float32 `GPT2LMHeadModel`). Throws, naming folder, file, key and a fix, when
 * config.json or model.safetensors is missing or corrupt, a weight is missing, a shape does
 * not match config.json, or the config asks for a GPT-2 variant gpt.ts does not implement.
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
  const config = (await readJson(dir, HF_CONFIG, true))!;
  const cfg = parseConfig(dir, config);
  if (opts.prefix !== undefined) cfg.prefix = opts.prefix;

  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${dir}/${HF_WEIGHTS}`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw folderError(
        dir,
        HF_WEIGHTS,
        `cannot read: ${(e as Error).message}`,
        "check permissions",
      );
    }
    const has = (f: string) => Deno.stat(`${dir}/${f}`).then(() => true, () => false);
    const fix = (await has("model.safetensors.index.json"))
      ? "sharded checkpoints are not supported: re-save with a max_shard_size above the model size"
      : (await has("pytorch_model.bin"))
      ? "pytorch_model.bin is not read: re-save with save_pretrained(..., safe_serialization=True)"
      : "point at a folder written by saveHfFolder or transformers' save_pretrained";
    throw folderError(dir, HF_WEIGHTS, "missing", fix);
  }
  let tensors: Record<string, NamedTensor>;
  try {
    ({ tensors } = decodeSafetensors(bytes, HF_WEIGHTS));
  } catch (e) {
    const why = (e as Error).message.replace(`safetensors: ${HF_WEIGHTS}: `, "");
    throw folderError(
      dir,
      HF_WEIGHTS,
      `corrupt: ${why}`,
      "re-save the folder (the file is truncated or not a safetensors file)",
    );
  }

  // Index the file by bare name (prefix stripped); both spellings of one weight is ambiguous.
  const byBare = new Map<string, string>();
  for (const name of Object.keys(tensors)) {
    const bare = name.startsWith("transformer.") ? name.slice("transformer.".length) : name;
    const prev = byBare.get(bare);
    if (prev !== undefined) {
      throw folderError(dir, HF_WEIGHTS, `holds both "${prev}" and "${name}"`, "keep one of them");
    }
    byBare.set(bare, name);
  }
  const Arr = opts.dtype === "float64" ? Float64Array : Float32Array;
  const params: Record<string, Float32Array | Float64Array> = {};
  const used = new Set<string>();
  const dims = `n_embd=${cfg.nEmbd}, n_layer=${cfg.nLayer}, vocab_size=${cfg.vocabSize}, ` +
    `n_positions=${cfg.nPositions}`;
  for (const [ours, hf, shape] of namePairs(cfg)) {
    const name = byBare.get(hf.slice("transformer.".length));
    if (name === undefined) {
      throw folderError(
        dir,
        HF_WEIGHTS,
        `missing tensor "${hf}" (looked for it with and without the "transformer." prefix)`,
        `check that config.json (${dims}) describes these weights`,
      );
    }
    const t = tensors[name];
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw folderError(
        dir,
        HF_WEIGHTS,
        `tensor "${name}" has shape [${t.shape}], config.json (${dims}) implies [${shape}]`,
        "make config.json match the weights, or re-save the folder",
      );
    }
    if (t.dtype !== "float32" && t.dtype !== "float64") {
      throw folderError(dir, HF_WEIGHTS, `tensor "${name}" is ${t.dtype}`, "store float32 weights");
    }
    params[ours] = t.data instanceof Arr ? t.data : Arr.from(t.data as Float32Array);
    used.add(name);
  }
  const extra: Record<string, NamedTensor> = {};
  const wte = params[gptNames(cfg).wte];
  for (const [name, t] of Object.entries(tensors)) {
    if (used.has(name)) continue;
    if (/^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/.test(name)) continue; // buffers
    if (name === "lm_head.weight") {
      const d = t.data as Float32Array | Float64Array;
      if (d.length !== wte.length || d.some((v, i) => v !== wte[i])) {
        throw folderError(
          dir,
          HF_WEIGHTS,
          `"lm_head.weight" differs from the token embedding: an untied LM head`,
          "gpt.ts ties the head to wte; tie the weights (or drop lm_head.weight) before saving",
        );
      }
      continue;
    }
    extra[name] = t;
  }

  const tok: TokenizerFiles = {};
  for (const f of HF_TOKENIZER_FILES) {
    const obj = await readJson(dir, f, false);
    if (obj) tok[f] = obj;
  }
  const tokenizer = tok["tokenizer.json"] ? tok : undefined;
  return { cfg, params, config, tokenizer, extra };
}
