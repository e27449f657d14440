/**
 * The weights of a Hugging Face model folder, before any data is read: the parameters a config
 * implies under transformers' names and shapes ({@link expectedParams}), and the open weight
 * files, `model.safetensors` or the shards of `model.safetensors.index.json`, with where each
 * tensor lives ({@link openWeights}); errors name the folder, the file, the tensor and a fix.
 *
 * @module
 */
import { exists } from "../fs.ts";
import type { DecoderConfig } from "./decoder.ts";
import { familyFor } from "./families/mod.ts";
import {
  openSafetensors,
  type SafetensorsEntry,
  type SafetensorsFile,
} from "../onnx/safetensors.ts";
import {
  folderError,
  MODEL_WEIGHTS,
  MODEL_WEIGHTS_INDEX,
  readFolderJson,
  type Where,
} from "./hf_folder.ts";
import { InputError } from "../errors.ts";

/** One expected parameter: our name, the names a file may use for it, its shape. */
export interface Expected {
  ours: string;
  candidates: string[];
  shape: number[];
}

/**
 * The model's parameters as files name them, for `cfg` and a classifier or LM: each under the
 * family's transformers prefix, or without it (the Hub's bare `gpt2` files); a classifier has
 * no LM head.
 */
export function expectedParams(cfg: DecoderConfig, classifier: boolean): Expected[] {
  const fam = familyFor(cfg);
  const ours = Object.entries(fam.shapes(cfg));
  const theirs = Object.keys(fam.shapes({ ...cfg, prefix: fam.hfPrefix }));
  const lmHead = fam.lmHeadName(cfg), prefix = `${fam.hfPrefix}.`;
  return ours.flatMap(([n, { shape }], i) => {
    if (classifier && n === lmHead) return [];
    const hf = theirs[i];
    const bare = hf.startsWith(prefix) ? hf.slice(prefix.length) : hf;
    return [{ ours: n, candidates: bare === hf ? [hf] : [hf, bare], shape }];
  });
}

/** Buffers older transformers saved beside the weights: skipped on load. */
export const BUFFER =
  /^((transformer\.)?h\.\d+\.attn\.(bias|masked_bias)|(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq)$/;

/** The embedding's parameter name (the tied head's matrix). */
export function embedName(cfg: DecoderConfig): string {
  return familyFor(cfg).embedName(cfg);
}

/** Whether the LM head is the embedding (GPT-2: always). */
export function tied(cfg: DecoderConfig): boolean {
  return familyFor(cfg).tied(cfg);
}

/** "key=value" of the config keys that determine the shape of tensor `name`. */
export function impliedBy(cfg: DecoderConfig, name: string, numLabels?: number): string {
  return familyFor(cfg).impliedBy(cfg, name, numLabels);
}

/** The open weight files of a folder and where each tensor lives. */
export interface Weights {
  files: { name: string; st: SafetensorsFile }[];
  byName: Map<string, { file: string; st: SafetensorsFile; entry: SafetensorsEntry }>;
  close(): void;
}

/** Open one safetensors file of the folder; its errors become folder errors. */
async function openWeightFile(w: Where, file: string, map: boolean): Promise<SafetensorsFile> {
  const path = `${w.dir}/${file}`;
  try {
    return await openSafetensors(path, { map });
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof InputError && e.fix?.includes("git lfs")) {
      throw folderError(w, file, e.problem, e.fix!);
    }
    if (msg.startsWith(`safetensors: file not found`)) {
      throw folderError(w, file, "missing", "re-download or re-save the folder");
    }
    throw folderError(
      w,
      file,
      `corrupt: ${msg.replace(`safetensors: ${path}: `, "")}`,
      "re-download or re-save the folder (the file is truncated or not a safetensors file)",
    );
  }
}

/** The shard files an index names, checked (plain names inside the folder, present). */
async function shardFiles(w: Where): Promise<{ files: string[]; map: Map<string, string> }> {
  const index = (await readFolderJson(w.dir, MODEL_WEIGHTS_INDEX, true, w.caller))!;
  const wm = index.weight_map;
  const bad = (what: string, fix: string) => folderError(w, MODEL_WEIGHTS_INDEX, what, fix);
  if (wm === null || typeof wm !== "object" || Array.isArray(wm)) {
    throw bad(
      `key "weight_map": expected an object of tensor name -> shard file`,
      "re-save the folder",
    );
  }
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (
      typeof file !== "string" || file === "" || file.startsWith("/") ||
      file.split("/").includes("..")
    ) {
      throw bad(
        `key "weight_map": tensor "${tensor}" maps to ${
          JSON.stringify(file)
        }, not a file in the folder`,
        "re-save the folder",
      );
    }
    map.set(tensor, file);
  }
  const files = [...new Set(map.values())].sort();
  for (const file of files) {
    if (!(await exists(`${w.dir}/${file}`))) {
      const tensor = [...map].find(([, f]) => f === file)![0];
      throw bad(
        `names shard "${file}" (for "${tensor}" and others), which is missing`,
        `copy ${file} into the folder (re-download it) or re-save the model`,
      );
    }
  }
  return { files, map };
}

/**
 * Open the folder's weights: model.safetensors, or the shards of model.safetensors.index.json;
 * `mapFiles`: map the files (see `OpenSafetensorsOptions.map`).
 */
export async function openWeights(w: Where, mapFiles = false): Promise<Weights> {
  let names: string[];
  let map: Map<string, string> | undefined;
  if (await exists(`${w.dir}/${MODEL_WEIGHTS}`)) names = [MODEL_WEIGHTS];
  else if (await exists(`${w.dir}/${MODEL_WEIGHTS_INDEX}`)) {
    ({ files: names, map } = await shardFiles(w));
  } else {
    const fix = (await exists(`${w.dir}/pytorch_model.bin`))
      ? "pytorch_model.bin is not read: re-save with save_pretrained(..., safe_serialization=True)"
      : `point at a folder written by saveModelFolder or save_pretrained (${MODEL_WEIGHTS} or ${MODEL_WEIGHTS_INDEX})`;
    throw folderError(w, MODEL_WEIGHTS, "missing", fix);
  }
  const files: Weights["files"] = [];
  const close = () => files.forEach((f) => f.st.close());
  try {
    const byName: Weights["byName"] = new Map();
    for (const name of names) {
      const st = await openWeightFile(w, name, mapFiles);
      files.push({ name, st });
      for (const entry of st.header.entries) {
        const prev = byName.get(entry.name);
        if (prev) {
          throw folderError(
            w,
            name,
            `tensor "${entry.name}" is also in ${prev.file}`,
            "keep one copy",
          );
        }
        byName.set(entry.name, { file: name, st, entry });
      }
    }
    for (const [tensor, file] of map ?? []) {
      if (byName.get(tensor)?.file !== file) {
        throw folderError(
          w,
          MODEL_WEIGHTS_INDEX,
          `weight_map puts "${tensor}" in ${file}, which does not hold it`,
          "re-save the folder (the index and the shards disagree)",
        );
      }
    }
    return { files, byName, close };
  } catch (e) {
    close();
    throw e;
  }
}
