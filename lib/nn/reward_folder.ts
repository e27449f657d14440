/**
 * Reward-model folders: {@link saveRewardModel} writes a reward model as a Hugging Face folder
 * in its family's own layout (GPT-2: the trunk plus `r_head.*`; the Llama family: a
 * transformers `*ForSequenceClassification`), {@link loadAnyRewardModel} reads either back, or a
 * Hub classifier with one label. Which family a folder holds is decided here, in lib/nn, so the
 * reward-model training in lib/ppo never asks.
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { NamedTensor } from "../onnx/safetensors.ts";
import type { GptConfig } from "./gpt.ts";
import { type DecoderConfig, familyFor, hiddenSize, modelType, trunkShapes } from "./decoder.ts";
import { loadModelFolder, type ModelFolder, saveModelFolder } from "./checkpoint.ts";
import { headNames, headShapes, REWARD_HEAD, rewardHeadFromScore } from "./heads.ts";
import { HF_TOKENIZER_FILES, saveHfFolder } from "./hf.ts";
import type { FloatArray } from "./sample.ts";
import type { TokenizerFiles } from "./tokenizer.ts";
import { UserError } from "../errors.ts";

/** A reward model: GPT config and its parameters (trunk + `r_head.*`). */
export interface RewardModel {
  cfg: DecoderConfig;
  params: Record<string, FloatArray | ort.Tensor>;
  /**
   * Read the score at the rightmost token whose id is not this pad id, as a Hub
   * `*ForSequenceClassification` model does (see `nonPadMask`); default: at the last real
   * token of the attention mask, as Proxima's reward models are trained.
   */
  readAtPadId?: number;
}

/** Options of {@link saveRewardModel}. */
export interface SaveRewardModelOptions {
  /** Tokenizer files to store with the model. */
  tokenizer?: TokenizerFiles;
  /** Extra config.json keys (e.g. training provenance). */
  config?: Record<string, unknown>;
  /** `pad_token_id` of a saved classifier (non-GPT families; default 0). */
  padTokenId?: number;
}

/**
 * Write a reward model as a Hugging Face folder (atomic). GPT-2: the trunk plus `r_head.*`
 * tensors (`saveHfFolder`, as before). Other families: a transformers
 * `*ForSequenceClassification` folder (trunk + `score.weight`, num_labels 1) that transformers
 * and the Hub load as they are. The `score` Linear has no bias; the head's bias is a constant
 * offset the Bradley–Terry loss cannot see (it cancels in r_c − r_r), kept in config.json as
 * `proxima_reward_bias` and added back by {@link loadAnyRewardModel} (transformers' scores
 * differ from Proxima's by that constant). The config also records `proxima_reward_read:
 * "mask"` (Proxima reads the last real token of the mask, not the last non-pad id) and
 * `pad_token_id` as transformers requires.
 */
export async function saveRewardModel(
  dir: string,
  rm: { cfg: DecoderConfig; params: Record<string, FloatArray> },
  opts: SaveRewardModelOptions = {},
): Promise<void> {
  const d = hiddenSize(rm.cfg), head = headNames(REWARD_HEAD);
  const w = rm.params[head.weight], b = rm.params[head.bias];
  if (!w || !b) {
    throw new Error(`saveRewardModel: ${dir}: missing parameter "${!w ? head.weight : head.bias}"`);
  }
  const f32 = (a: FloatArray) => (a instanceof Float32Array ? a : Float32Array.from(a));
  const fam = familyFor(rm.cfg);
  if (fam.folders.reward === "r_head") {
    const extraTensors: Record<string, NamedTensor> = {
      [head.weight]: { dtype: "float32", shape: [d, 1], data: f32(w) },
      [head.bias]: { dtype: "float32", shape: [1], data: f32(b) },
    };
    await saveHfFolder(dir, rm.cfg as GptConfig, rm.params, opts.tokenizer, {
      config: { ...opts.config, proxima_reward_head: REWARD_HEAD },
      extraTensors,
    });
    return;
  }
  const trunk = Object.fromEntries(
    Object.keys(trunkShapes(rm.cfg)).map((n) => [n, rm.params[n]]),
  ) as Record<string, FloatArray>;
  await saveModelFolder(dir, rm.cfg, trunk, {
    dtype: "float32",
    architecture: fam.classes(fam.modelType(rm.cfg)).classifier,
    config: {
      pad_token_id: opts.padTokenId ?? 0,
      ...opts.config,
      proxima_reward_read: "mask",
      // The score Linear has no bias: Proxima keeps the head's (a constant offset, which
      // Bradley–Terry cannot see) here and adds it back when loading.
      proxima_reward_bias: b[0],
    },
    extraTensors: { "score.weight": { dtype: "float32", shape: [1, d], data: f32(w) } },
    tokenizerFiles: opts.tokenizer,
  });
}

/** A reward model read by {@link loadRewardModel}. */
export interface LoadedRewardModel extends RewardModel {
  /** Trunk and head parameters (float32). */
  params: Record<string, Float32Array | Float64Array>;
  /** The parsed config.json. */
  config: Record<string, unknown>;
  tokenizer?: TokenizerFiles;
  /** "proxima": an `r_head` folder (saveRewardModel); "hub": a *ForSequenceClassification. */
  kind: "proxima" | "hub";
}

/** What a reward model folder is, read from config.json and the headers ({@link describeRewardModel}). */
export interface RewardModelInfo {
  cfg: DecoderConfig;
  /** The parsed config.json. */
  config: Record<string, unknown>;
  /** "proxima": an `r_head` folder (saveRewardModel); "hub": a *ForSequenceClassification. */
  kind: "proxima" | "hub";
  /** See {@link RewardModel.readAtPadId}. */
  readAtPadId?: number;
}

const FLOAT_TAGS = new Set(["F32", "F64", "F16", "BF16"]);

/** The checks both readers share, on a folder read with or without its weights. */
function rewardInfo(dir: string, f: ModelFolder): RewardModelInfo {
  const d = hiddenSize(f.cfg);
  if (f.architecture.kind === "sequence-classification") {
    if (!f.extraShapes["score.weight"] || f.architecture.numLabels !== 1) {
      throw new UserError(
        `loadRewardModel: ${dir}: ${f.architecture.name} with ${f.architecture.numLabels} ` +
          `labels: a reward model has one (num_labels 1, score.weight [1, ${d}])`,
      );
    }
    const pad = f.config.pad_token_id;
    if (!Number.isInteger(pad)) {
      throw new UserError(
        `loadRewardModel: ${dir}/config.json: "pad_token_id" is ${JSON.stringify(pad)}; a ` +
          `sequence classifier finds its last token by it. Fix: set it (as transformers needs)`,
      );
    }
    return {
      cfg: f.cfg,
      config: f.config,
      kind: "hub",
      // Proxima's own classifiers were trained reading the mask's last real token.
      readAtPadId: f.config.proxima_reward_read === "mask" ? undefined : pad as number,
    };
  }
  for (const [name, { shape }] of Object.entries(headShapes(d, REWARD_HEAD))) {
    const t = f.extraShapes[name];
    const size = shape.reduce((a, b) => a * b, 1);
    if (!t) {
      throw new UserError(
        `loadRewardModel: ${dir}: model.safetensors has no "${name}": not a reward model ` +
          `folder (write it with saveRewardModel, or give a *ForSequenceClassification folder)`,
      );
    }
    if (t.shape.reduce((a, b) => a * b, 1) !== size || !FLOAT_TAGS.has(t.tag)) {
      throw new UserError(
        `loadRewardModel: ${dir}: "${name}" is ${t.tag} [${t.shape}], expected float32 [${shape}]`,
      );
    }
  }
  return { cfg: f.cfg, config: f.config, kind: "proxima" };
}

/**
 * A reward model folder checked as {@link loadAnyRewardModel} checks it, from config.json and
 * the safetensors headers only: no tensor data is read (sweep planning).
 */
export async function describeRewardModel(dir: string): Promise<RewardModelInfo> {
  const f = await loadModelFolder(dir, { weights: false, caller: "loadRewardModel" });
  return rewardInfo(dir, f);
}

/**
 * Read a reward model folder of any family (see {@link loadRewardModel} for GPT-2 only): one
 * written by {@link saveRewardModel}
 * (`r_head.*` tensors), or a Hub `*ForSequenceClassification` with `num_labels` 1, whose
 * `score` head becomes the reward head and which then reads its score at the last non-pad
 * token as transformers does. Errors name the folder and what is missing.
 */
export async function loadAnyRewardModel(dir: string): Promise<LoadedRewardModel> {
  const f = await loadModelFolder(dir, { dtype: "float32", caller: "loadRewardModel" });
  const info = rewardInfo(dir, f);
  const params: Record<string, Float32Array | Float64Array> = {};
  for (const n of Object.keys(trunkShapes(f.cfg))) params[n] = f.params[n];
  const d = hiddenSize(f.cfg);
  const tokenizer = await readTokenizerFiles(dir);
  if (info.kind === "hub") {
    Object.assign(params, rewardHeadFromScore(f.extra["score.weight"]));
    const bias = f.config.proxima_reward_bias;
    if (typeof bias === "number") params[headNames(REWARD_HEAD).bias][0] = bias;
    return { ...info, params, tokenizer };
  }
  for (const name of Object.keys(headShapes(d, REWARD_HEAD))) {
    params[name] = Float32Array.from(f.extra[name].data as FloatArray);
  }
  return { ...info, params, tokenizer };
}

/**
 * {@link loadAnyRewardModel} for callers built on GPT-2 (the byte-level tasks): a folder of
 * another family is refused with the fix.
 */
export async function loadRewardModel(
  dir: string,
): Promise<LoadedRewardModel & { cfg: GptConfig }> {
  const rm = await loadAnyRewardModel(dir);
  if (familyFor(rm.cfg).name !== "gpt2") {
    throw new Error(
      `loadRewardModel: ${dir}: a ${modelType(rm.cfg)} reward model where a GPT-2 one is ` +
        `needed (this task is byte-level GPT-2); use the lm task for other families`,
    );
  }
  return rm as LoadedRewardModel & { cfg: GptConfig };
}

/** The tokenizer files of a folder that has a tokenizer.json (parsed), else undefined. */
async function readTokenizerFiles(dir: string): Promise<TokenizerFiles | undefined> {
  const out: TokenizerFiles = {};
  for (const f of HF_TOKENIZER_FILES) {
    try {
      out[f] = JSON.parse(await Deno.readTextFile(`${dir}/${f}`));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new Error(`loadRewardModel: ${dir}/${f}: ${(e as Error).message}`);
      }
    }
  }
  return out["tokenizer.json"] ? out : undefined;
}
