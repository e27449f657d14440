/**
 * LoRA adapters as a PEFT folder (`adapter_config.json` + `adapter_model.safetensors`), the
 * format Python `peft` (`PeftModel.from_pretrained(base, dir)`) and the Hub use, so an adapter
 * trained by Proxima loads onto the same base model in PyTorch, and one trained with PEFT loads
 * here.
 *
 * Tensor names are PEFT's: `base_model.model.<module>.lora_A.weight` `[r, in]` and
 * `...lora_B.weight` `[out, r]`, with `<module>` the base weight's name without `.weight`. For
 * Llama-family Linear weights Proxima's adapters already have that layout
 * (`fanInFanOut: false`); GPT-2's Conv1D adapters (`A [in, r]`, `B [r, out]`) are transposed
 * and the config says `fan_in_fan_out: true`, as PEFT writes for GPT-2.
 *
 * @example
 * ```ts
 * await savePeftAdapter("out/adapter", lora, trainer.params(), { baseModel: "models/llama" });
 * const { lora: l2, adapters } = await loadPeftAdapter("out/adapter");
 * ```
 * @module
 */
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from "../onnx/safetensors.ts";
import { writeFolderAtomic } from "../fs.ts";
import { type LoraConfig, loraNames } from "./lora.ts";

/** Adapter config file name (PEFT's CONFIG_NAME). */
export const PEFT_CONFIG = "adapter_config.json";
/** Adapter weights file name (PEFT's SAFETENSORS_WEIGHTS_NAME). */
export const PEFT_WEIGHTS = "adapter_model.safetensors";
const PREFIX = "base_model.model.";

/** Options of {@link savePeftAdapter}. */
export interface SavePeftOptions {
  /** `base_model_name_or_path`: the base model's folder or Hub id (default null). */
  baseModel?: string;
  /** PEFT task type (default "CAUSAL_LM"). */
  taskType?: string;
}

/** Module names (weight names without `.weight`) that carry adapters, sorted. */
function adaptedModules(adapters: Record<string, unknown>): string[] {
  return Object.keys(adapters).filter((n) => n.endsWith(".lora_A")).map((n) =>
    n.slice(0, -".lora_A".length)
  ).sort();
}

/** `[rows, cols]` row-major -> its transpose. */
function transpose(a: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/**
 * `target_modules` for adapter_config.json: the config's string targets as PEFT suffixes
 * (PEFT matches a module whose name ends with `.<target>`); with a RegExp target, the full
 * list of adapted modules instead, which PEFT matches exactly.
 */
function targetModules(lora: LoraConfig, modules: string[]): string[] {
  const ts = lora.targets;
  if (ts && ts.every((t) => typeof t === "string")) return [...(ts as string[])].sort();
  return modules;
}

/**
 * The adapter_config.json object PEFT writes for a LoRA adapter (keys sorted, only settings
 * that change the math or the matching; PEFT fills the rest with its defaults).
 */
export function peftAdapterConfig(
  lora: LoraConfig,
  modules: string[],
  opts: SavePeftOptions = {},
): Record<string, unknown> {
  return {
    base_model_name_or_path: opts.baseModel ?? null,
    bias: "none",
    fan_in_fan_out: lora.fanInFanOut !== false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: "LORA",
    r: lora.r,
    revision: null,
    target_modules: targetModules(lora, modules),
    task_type: opts.taskType ?? "CAUSAL_LM",
    use_dora: false,
    use_rslora: false,
  };
}

/**
 * Write a PEFT adapter folder atomically (see `writeFolderAtomic`): `adapters` are Proxima's
 * (`<module>.lora_A` / `.lora_B`, as `initLora` names them; other entries such as the base
 * weights or a value head are ignored), stored float32 under PEFT's names. Deterministic bytes.
 */
export async function savePeftAdapter(
  dir: string,
  lora: LoraConfig,
  adapters: Record<string, ArrayLike<number>>,
  opts: SavePeftOptions = {},
): Promise<void> {
  const r = lora.r, conv1d = lora.fanInFanOut !== false;
  const modules = adaptedModules(adapters);
  if (modules.length === 0) {
    throw new Error(`savePeftAdapter: ${dir}: no "<module>.lora_A" adapters among the params`);
  }
  const tensors: Record<string, NamedTensor> = {};
  for (const m of modules) {
    const { a, b } = loraNames(`${m}.weight`);
    const A = adapters[a], B = adapters[b];
    if (!B) throw new Error(`savePeftAdapter: ${dir}: "${a}" has no "${b}"`);
    const inDim = A.length / r, outDim = B.length / r;
    if (!Number.isInteger(inDim) || !Number.isInteger(outDim)) {
      throw new Error(`savePeftAdapter: ${dir}: "${a}"/"${b}" do not fit rank ${r}`);
    }
    tensors[`${PREFIX}${m}.lora_A.weight`] = {
      dtype: "float32",
      shape: [r, inDim],
      data: conv1d ? transpose(A, inDim, r) : Float32Array.from(A),
    };
    tensors[`${PREFIX}${m}.lora_B.weight`] = {
      dtype: "float32",
      shape: [outDim, r],
      data: conv1d ? transpose(B, r, outDim) : Float32Array.from(B),
    };
  }
  const config = peftAdapterConfig(lora, modules, opts);
  await writeFolderAtomic(dir, [
    [PEFT_CONFIG, new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n")],
    [PEFT_WEIGHTS, encodeSafetensors(tensors, { format: "pt" })],
  ], { who: "savePeftAdapter", marker: PEFT_CONFIG });
}

/** What {@link loadPeftAdapter} returns. */
export interface PeftAdapter {
  /** r, alpha, targets (the adapted modules) and layout, ready for `applyLora`. */
  lora: LoraConfig;
  /** Adapters under Proxima's names (`<module>.lora_A`, `.lora_B`) in Proxima's layout. */
  adapters: Record<string, Float32Array>;
  /** `base_model_name_or_path` from adapter_config.json. */
  baseModel: string | null;
}

/**
 * Read a PEFT LoRA folder (written by Python peft or {@link savePeftAdapter}). Refuses what
 * Proxima does not implement (DoRA, rsLoRA, biases, per-module ranks, modules_to_save) with
 * the key and a fix.
 */
export async function loadPeftAdapter(dir: string): Promise<PeftAdapter> {
  const fail = (file: string, what: string, fix: string) =>
    new Error(`loadPeftAdapter: ${dir}/${file}: ${what}. Fix: ${fix}`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(await Deno.readTextFile(`${dir}/${PEFT_CONFIG}`));
  } catch (e) {
    throw fail(PEFT_CONFIG, (e as Error).message, "point at a folder PEFT's save_pretrained wrote");
  }
  if (cfg.peft_type !== "LORA") {
    throw fail(
      PEFT_CONFIG,
      `peft_type ${JSON.stringify(cfg.peft_type)}`,
      "only LORA adapters load",
    );
  }
  const unsupported: [string, (v: unknown) => boolean][] = [
    ["use_dora", (v) => !v],
    ["use_rslora", (v) => !v],
    ["bias", (v) => v === undefined || v === "none"],
    ["rank_pattern", (v) => !v || Object.keys(v as object).length === 0],
    ["alpha_pattern", (v) => !v || Object.keys(v as object).length === 0],
    ["modules_to_save", (v) => v === undefined || v === null],
  ];
  for (const [key, ok] of unsupported) {
    if (!ok(cfg[key])) {
      throw fail(
        PEFT_CONFIG,
        `"${key}": ${JSON.stringify(cfg[key])} is not supported`,
        `retrain without it`,
      );
    }
  }
  const r = cfg.r as number, alpha = cfg.lora_alpha as number;
  if (!Number.isInteger(r) || r < 1 || typeof alpha !== "number") {
    throw fail(PEFT_CONFIG, `"r" ${cfg.r} / "lora_alpha" ${cfg.lora_alpha}`, "set both");
  }
  let tensors: Record<string, NamedTensor>;
  try {
    ({ tensors } = decodeSafetensors(await Deno.readFile(`${dir}/${PEFT_WEIGHTS}`), PEFT_WEIGHTS));
  } catch (e) {
    throw fail(PEFT_WEIGHTS, (e as Error).message, "re-save the adapter");
  }
  const conv1d = cfg.fan_in_fan_out === true;
  const adapters: Record<string, Float32Array> = {};
  const modules: string[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const m = /^base_model\.model\.(.+)\.lora_A(?:\.default)?\.weight$/.exec(name);
    if (!m) continue;
    const bName = name.replace(".lora_A", ".lora_B"), tb = tensors[bName];
    if (!tb) throw fail(PEFT_WEIGHTS, `"${name}" has no "${bName}"`, "re-save the adapter");
    const toF32 = (x: NamedTensor) =>
      x.data instanceof Float32Array ? x.data : Float32Array.from(x.data as ArrayLike<number>);
    const [ra, inDim] = t.shape, [outDim, rb] = tb.shape;
    if (ra !== r || rb !== r) {
      throw fail(PEFT_WEIGHTS, `"${name}" is [${t.shape}], "r" is ${r}`, "fix adapter_config.json");
    }
    const { a, b } = loraNames(`${m[1]}.weight`);
    adapters[a] = conv1d ? transpose(toF32(t), r, inDim) : toF32(t);
    adapters[b] = conv1d ? transpose(toF32(tb), outDim, r) : toF32(tb);
    modules.push(m[1]);
  }
  if (modules.length === 0) {
    throw fail(PEFT_WEIGHTS, "no base_model.model.*.lora_A.weight tensors", "re-save the adapter");
  }
  modules.sort();
  return {
    lora: {
      r,
      alpha,
      fanInFanOut: conv1d,
      targets: modules.map((m) => new RegExp(`^${m.replace(/\./g, "\\.")}\\.weight$`)),
    },
    adapters,
    baseModel: (cfg.base_model_name_or_path as string | null) ?? null,
  };
}
