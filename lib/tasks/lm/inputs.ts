/**
 * Everything the `lm` task reads by path, checked before anything trains: the policy folder
 * (config, tokenizer, weights), the reward model folder, the prompt sets. Each problem is a
 * ConfigError naming the config key, the file and the fix (lib/tasks/inputs.ts).
 *
 * Two steps, so that a process that never trains never holds weights:
 * {@link planLmInputs} reads config.json, the tokenizers, the safetensors headers (every
 * tensor's name, dtype and shape checked, no data read) and the prompts — sweep planning runs
 * only this, and the memory estimate needs nothing more; {@link loadLmInputs} adds the
 * weights, in the process that runs the trial.
 *
 * @example
 * ```ts
 * const plan = await planLmInputs(config); // configs, tokenizers, tokenized prompts
 * const inputs = await loadLmInputs(config, plan); // + the policy's and reward model's weights
 * ```
 * @module
 */
import { loadModelFolder, type ModelFolder } from "../../nn/checkpoint.ts";
import { contextLength, type DecoderConfig } from "../../nn/decoder.ts";
import { type HfTokenizer, loadHfTokenizer } from "../../nn/hf_tokenizer.ts";
import type { FloatArray } from "../../nn/sample.ts";
import { loadAnyRewardModel, type LoadedRewardModel } from "../../ppo/reward_model.ts";
import { describeRewardModel, type RewardModelInfo } from "../../nn/reward_folder.ts";
import { ConfigError } from "../../ppo/config.ts";
import { inputError } from "../inputs.ts";
import { sha256File } from "../../hash.ts";
import { type PromptRow, readPromptSet } from "./data.ts";
import { LM_TASK, type LmRunConfig } from "./schema.ts";
import { traced, tracedAsync } from "../../setup_trace.ts";

/** The policy folder read without its weights ({@link planLmPolicy}). */
export interface LmPolicyPlan {
  dir: string;
  cfg: DecoderConfig;
  /** config.json, generation config, source dtype (`params` and `extra` empty). */
  folder: ModelFolder;
  tokenizer: HfTokenizer;
}

/** The policy folder, loaded. */
export interface LmPolicy extends LmPolicyPlan {
  params: Record<string, FloatArray>;
  /** The folder's tokenizer files as bytes (copied into the exported policy folder). */
  tokenizerFiles: Record<string, Uint8Array>;
}

/** A reward model folder read without its weights, with the tokenizer it reads. */
export interface LmRewardModelPlan {
  dir: string;
  model: RewardModelInfo;
  /** Its own tokenizer (reward_input "text"), undefined when the folder has none. */
  tokenizer?: HfTokenizer;
}

/** A reward model folder, loaded, with the tokenizer it reads. */
export interface LmRewardModel extends LmRewardModelPlan {
  model: LoadedRewardModel;
}

/** Tokenizer files copied with an exported policy (those the folder has). */
const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
];

const err = (key: string, path: string, cause: string, fix: string) =>
  inputError(LM_TASK, key, path, cause, fix);

/** A folder given by `key`: it must exist and be a directory. */
async function checkFolder(key: string, dir: string): Promise<void> {
  const st = await Deno.stat(dir).catch(() => null);
  if (!st) throw err(key, dir, "no such folder", "check the path (a downloaded Hub folder)");
  if (!st.isDirectory) {
    throw err(key, dir, "is a file, not a model folder", "point at the folder with config.json");
  }
}

/** Load a model folder's pieces, every failure a ConfigError naming `key`. */
async function guarded<T>(key: string, dir: string, fn: () => Promise<T>, fix: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw err(key, dir, (e as Error).message.replace(/^[^:]+: /, ""), fix);
  }
}

/** The policy folder without its weights: config.json, the headers, the tokenizer. */
export async function planLmPolicy(key: string, dir: string): Promise<LmPolicyPlan> {
  await checkFolder(key, dir);
  const folder = await guarded(
    key,
    dir,
    () => loadModelFolder(dir, { dtype: "float32", weights: false }),
    POLICY_FIX,
  );
  if (folder.architecture.kind !== "causal-lm") {
    throw err(
      key,
      dir,
      `${folder.architecture.name} is not a causal language model`,
      "give the policy's *ForCausalLM folder (a classifier belongs in reward_model)",
    );
  }
  const tokenizer = await guarded(
    key,
    dir,
    () => tracedAsync(`inputs: tokenizer ${key}`, () => loadHfTokenizer(dir)),
    "the policy folder needs its tokenizer.json (download it with the weights)",
  );
  if (tokenizer.vocabSize > folder.cfg.vocabSize) {
    throw err(
      key,
      dir,
      `tokenizer.json knows ${tokenizer.vocabSize} tokens, the model's vocab_size is ` +
        `${folder.cfg.vocabSize}`,
      "use the tokenizer that belongs to these weights",
    );
  }
  return { dir, cfg: folder.cfg, folder, tokenizer };
}

const POLICY_FIX = "point at a transformers causal LM folder (gpt2, llama, mistral, qwen2, qwen3)";

/** The policy folder: causal LM weights (any supported family) and its tokenizer. */
export async function loadLmPolicy(
  key: string,
  dir: string,
  plan?: LmPolicyPlan,
): Promise<LmPolicy> {
  plan ??= await planLmPolicy(key, dir);
  const folder = await guarded(
    key,
    dir,
    () =>
      tracedAsync(
        `inputs: weights ${key}`,
        () => loadModelFolder(dir, { dtype: "float32", map: true }),
      ),
    POLICY_FIX,
  );
  const tokenizerFiles: Record<string, Uint8Array> = {};
  for (const f of TOKENIZER_FILES) {
    const bytes = await Deno.readFile(`${dir}/${f}`).catch(() => undefined);
    if (bytes) tokenizerFiles[f] = bytes;
  }
  const params = folder.params as Record<string, FloatArray>;
  return { ...plan, cfg: folder.cfg, folder, params, tokenizerFiles };
}

/** sha256 of a file (streamed: tokenizer.json is megabytes), "absent" when there is none. */
const fileHash = (path: string) =>
  sha256File(path).then((h) => h.sha256, (e) => {
    if (e instanceof Deno.errors.NotFound) return "absent";
    throw e;
  });

/** The files whose bytes decide what `loadHfTokenizer` builds, besides the configs' EOS ids. */
const TOKENIZER_INPUTS = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
];

/**
 * Whether `loadHfTokenizer` would build the same tokenizer from folders `a` and `b`: the same
 * tokenizer files, byte for byte, and the same `eos_token_id` in config.json and
 * generation_config.json.
 */
async function sameTokenizer(a: string, b: string): Promise<boolean> {
  for (const f of TOKENIZER_INPUTS) {
    if (await fileHash(`${a}/${f}`) !== await fileHash(`${b}/${f}`)) return false;
  }
  const eos = (d: string, f: string) =>
    Deno.readTextFile(`${d}/${f}`).then((t) => JSON.stringify(JSON.parse(t).eos_token_id ?? null))
      .catch(() => "absent");
  for (const f of ["config.json", "generation_config.json"]) {
    if (await eos(a, f) !== await eos(b, f)) return false;
  }
  return true;
}

/**
 * A reward model folder without its weights (config.json, the headers) and its tokenizer.
 * When `policy` (its plan) has the same tokenizer files, the reward model shares its tokenizer
 * object: a 150K-vocabulary tokenizer takes ~130 MB, and planning holds both otherwise.
 */
export async function planLmRewardModel(
  key: string,
  dir: string,
  policy?: LmPolicyPlan,
): Promise<LmRewardModelPlan> {
  await checkFolder(key, dir);
  const model = await guarded(key, dir, () => describeRewardModel(dir), RM_FIX);
  const hasTokenizer = await Deno.stat(`${dir}/tokenizer.json`).then(() => true, () => false);
  const tokenizer = !hasTokenizer
    ? undefined
    : policy && await sameTokenizer(policy.dir, dir)
    ? policy.tokenizer
    : await guarded(key, dir, () => loadHfTokenizer(dir), "fix or remove its tokenizer files");
  // Its pad id (the tokenizer's) is read by the model's embedding: it must be inside it.
  if (tokenizer && tokenizer.padId >= model.cfg.vocabSize) {
    throw err(
      key,
      dir,
      `the tokenizer's pad id ${tokenizer.padId} is outside the model's vocabulary ` +
        `(config.json vocab_size ${model.cfg.vocabSize})`,
      "use the tokenizer files that belong to this reward model",
    );
  }
  return { dir, model, tokenizer };
}

const RM_FIX = "give a *ForSequenceClassification folder with num_labels 1, or one Proxima saved";

/** A reward model folder (Hub classifier or Proxima's) and its tokenizer, if it has one. */
export async function loadLmRewardModel(
  key: string,
  dir: string,
  plan?: LmRewardModelPlan,
): Promise<LmRewardModel> {
  plan ??= await planLmRewardModel(key, dir);
  const model = await guarded(key, dir, () => loadAnyRewardModel(dir), RM_FIX);
  return { ...plan, model };
}

/**
 * The reward model can read the policy's token ids: same tokenizer (tokenizer.json bytes) and
 * vocabulary, unless the reward reads text. Problems name `reward_model` and the fix.
 */
export async function checkRewardModelFits(
  policy: LmPolicyPlan,
  rm: LmRewardModelPlan,
  input: "tokens" | "text",
): Promise<void> {
  const at = (cause: string, fix: string) => err("reward_model", rm.dir, cause, fix);
  if (input === "text") {
    if (!rm.tokenizer) {
      throw at(
        'has no tokenizer.json, but reward_input is "text"',
        'add the reward model\'s tokenizer files, or use reward_input "tokens"',
      );
    }
    return;
  }
  if (rm.model.cfg.vocabSize !== policy.cfg.vocabSize) {
    throw at(
      `vocab_size ${rm.model.cfg.vocabSize} differs from the policy's ${policy.cfg.vocabSize} ` +
        `(different vocabularies)`,
      'use a reward model trained on the policy\'s tokenizer, or set reward_input "text"',
    );
  }
  if (rm.tokenizer) {
    const [a, b] = [policy.dir, rm.dir].map((d) => `${d}/tokenizer.json`);
    if (await fileHash(a) !== await fileHash(b)) {
      throw at(
        "its tokenizer.json differs from the policy's, so the policy's token ids would mean " +
          "other text to it",
        'set reward_input "text" (decode, then re-encode with its tokenizer)',
      );
    }
  }
}

/** Token ids of the `stop` strings: each must be exactly one token of the policy's tokenizer. */
export function stopTokenIds(tok: HfTokenizer, stop: readonly string[]): number[] {
  return stop.map((s, i) => {
    const ids = tok.encode(s, { addSpecialTokens: false });
    if (ids.length !== 1) {
      throw err(
        `stop.${i}`,
        `${tok.source}/tokenizer.json`,
        `${JSON.stringify(s)} encodes to ${ids.length} tokens [${ids}], not one`,
        'use a string that is one token (e.g. "\\n" or the chat template\'s end-of-turn ' +
          "marker), or remove it",
      );
    }
    return ids[0];
  });
}

/**
 * One prompt's token ids (`where` names it in errors): plain text with the tokenizer's added
 * tokens, or (`chat` on and the tokenizer has a template, or a `messages` row) the rendered
 * conversation with the assistant header.
 */
export function encodePrompt(
  key: string,
  where: string,
  r: PromptRow,
  policy: LmPolicyPlan,
  chat: boolean,
): number[] {
  const tok = policy.tokenizer;
  const messages = "messages" in r
    ? r.messages
    : chat && tok.hasChatTemplate
    ? [{ role: "user", content: r.text }]
    : undefined;
  if (messages && !tok.hasChatTemplate) {
    throw err(
      key,
      where,
      `a "messages" prompt, but ${policy.dir} has no chat template`,
      'use plain "prompt" rows, or an instruct model\'s folder',
    );
  }
  const ids = messages
    ? tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true })
    : tok.encode((r as { text: string }).text);
  if (ids.length === 0) throw err(key, where, "encodes to no tokens", "give the prompt some text");
  return ids;
}

/**
 * Token ids of every prompt: plain text with the tokenizer's added tokens, or (chat template on,
 * or a `messages` row) the rendered conversation with the assistant header. A prompt that
 * leaves no room for `maxNewTokens` in the model's context is an error naming the row.
 */
export function encodePrompts(
  key: string,
  path: string,
  rows: readonly PromptRow[],
  policy: LmPolicyPlan,
  o: { chat: boolean; maxNewTokens: number },
): number[][] {
  const ctx = contextLength(policy.cfg);
  return rows.map((r, i) => {
    const ids = encodePrompt(key, `${path} row ${i}`, r, policy, o.chat);
    if (ids.length + o.maxNewTokens > ctx) {
      throw err(
        key,
        `${path} row ${i}`,
        `is ${ids.length} tokens; with max_new_tokens ${o.maxNewTokens} that exceeds the ` +
          `model's context of ${ctx}`,
        `shorten the prompt, or lower max_new_tokens to ${Math.max(0, ctx - ids.length)} or less`,
      );
    }
    return ids;
  });
}

/** What {@link planLmInputs} returns: every input but the weights. */
export interface LmInputPlan {
  policy: LmPolicyPlan;
  /** The given reward model folder (null when none is given). */
  rewardModel: LmRewardModelPlan | null;
  /** Tokenized training prompts. */
  prompts: number[][];
  /** Tokenized evaluation prompts. */
  evalPrompts: number[][];
  /** Each training prompt's other columns (`answer`, ...; `{}` when none): `sample.row`. */
  promptRows: Record<string, unknown>[];
  /** The same for the evaluation prompts. */
  evalRows: Record<string, unknown>[];
  /** Ids that end a response: the tokenizer's and generation config's EOS, then `stop`. */
  eosIds: number[];
}

/** What {@link loadLmInputs} returns: the plan with the weights. */
export interface LmInputs extends LmInputPlan {
  policy: LmPolicy;
  rewardModel: LmRewardModel | null;
}

/** Read and check every input of a config but the weights (see the module doc). */
export async function planLmInputs(c: LmRunConfig): Promise<LmInputPlan> {
  const policy = await tracedAsync("inputs: plan policy", () => planLmPolicy("policy", c.policy));
  const rewardModel = c.reward_model === null
    ? null
    : await planLmRewardModel("reward_model", c.reward_model, policy);
  if (rewardModel) await checkRewardModelFits(policy, rewardModel, c.reward_input);
  const opts = { chat: c.chat_template, maxNewTokens: c.max_new_tokens };
  const trainRows = await readPromptSet(LM_TASK, "prompts", c.prompts);
  const prompts = traced(
    "inputs: encode prompts",
    () => encodePrompts("prompts", c.prompts, trainRows, policy, opts),
  );
  const evalSet = c.eval.prompts === null
    ? trainRows
    : await readPromptSet(LM_TASK, "eval.prompts", c.eval.prompts);
  const evalPrompts = c.eval.prompts === null
    ? prompts
    : encodePrompts("eval.prompts", c.eval.prompts, evalSet, policy, opts);
  const gen = policy.folder.generation?.eosTokenIds ?? [];
  const eosIds = [
    ...new Set([...policy.tokenizer.eosIds, ...gen, ...stopTokenIds(policy.tokenizer, c.stop)]),
  ];
  const rowsOf = (rows: PromptRow[]) => rows.map((r) => r.row ?? {});
  return {
    policy,
    rewardModel,
    prompts,
    evalPrompts,
    promptRows: rowsOf(trainRows),
    evalRows: rowsOf(evalSet),
    eosIds,
  };
}

/**
 * Every input of a config with the weights: `plan` (the same config's {@link planLmInputs},
 * read now when not given) plus the policy's and the reward model's tensors.
 */
export async function loadLmInputs(c: LmRunConfig, plan?: LmInputPlan): Promise<LmInputs> {
  plan ??= await planLmInputs(c);
  const policy = await loadLmPolicy("policy", c.policy, plan.policy);
  const rewardModel = plan.rewardModel === null
    ? null
    : await loadLmRewardModel("reward_model", plan.rewardModel.dir, plan.rewardModel);
  return { ...plan, policy, rewardModel };
}
