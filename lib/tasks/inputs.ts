/**
 * Inputs an LM task's trial reads by path instead of training a stage: a model folder (a
 * starting policy, a reward model) or a prompts file. Every failure is a {@link ConfigError}
 * naming the task, the config key, the path, the cause and a fix; a model folder must use
 * Proxima's byte tokenizer (the byte-level tasks read bytes).
 *
 * @example
 * ```ts
 * const f = await loadByteModelFolder("sentiment", "policy_path", dir, (d) => loadByteModel(d));
 * const hash = folderHash(dir); // what eval.json records for it
 * const prompts = await readPromptsFile("sentiment", "prompts_path", "prompts.txt");
 * ```
 * @module
 */
import type { DecoderConfig } from "../nn/decoder.ts";
import { BYTE_VOCAB_SIZE, makeByteTokenizer } from "../nn/tokenizer.ts";
import { ConfigError } from "../ppo/config.ts";
import { canonicalJson } from "../json.ts";
import { contentHash } from "../hash.ts";

/** An input folder or file that cannot be used: names the config key, the path and a fix. */
export function inputError(
  task: string,
  key: string,
  path: string,
  cause: string,
  fix: string,
): ConfigError {
  const e = new ConfigError(`${task} config: ${key}: ${path}: ${cause}\n  fix: ${fix}`);
  // Kept apart too, so planning can list it like any other config problem.
  return Object.assign(e, { key, cause: `${path}: ${cause}`, fix });
}

/**
 * Content hash of an input folder (16 hex digits): the hash planning puts into the trial
 * identity ({@link contentHash}), shortened as stage hashes are.
 */
export function folderHash(dir: string): string {
  return contentHash(dir).slice(0, 16);
}

/**
 * Load a model folder given by config key `key`, turning every failure into an error naming
 * the key; the folder must hold Proxima's byte tokenizer and a matching vocabulary.
 */
export async function loadByteModelFolder<T>(
  task: string,
  key: string,
  dir: string,
  load: (dir: string) => Promise<T & { cfg: DecoderConfig; tokenizer?: Record<string, unknown> }>,
): Promise<T & { cfg: DecoderConfig }> {
  const err = (cause: string, fix: string) => inputError(task, key, dir, cause, fix);
  const st = await Deno.stat(dir).catch(() => null);
  if (!st) throw err("no such folder", "check the path, or set it to null to train this stage");
  if (!st.isDirectory) {
    throw err(
      "is a file, not a model folder",
      "point at the folder holding config.json and model.safetensors",
    );
  }
  let f;
  try {
    f = await load(dir);
  } catch (e) {
    throw err(
      (e as Error).message,
      "re-save the folder with saveHfFolder / saveModelFolder / saveRewardModel (Proxima writes them in results/.stages/*/*/model)",
    );
  }
  const tok = f.tokenizer?.["tokenizer.json"] as { model?: { vocab?: unknown } } | undefined;
  const byteVocab = (makeByteTokenizer()["tokenizer.json"] as { model: { vocab: unknown } }).model
    .vocab;
  if (!tok) {
    throw err(
      `no tokenizer.json: the ${task} task reads bytes with Proxima's byte tokenizer`,
      "save the folder with makeByteTokenizer()'s files (saveHfFolder's tokenizer argument)",
    );
  }
  if (canonicalJson(tok.model?.vocab ?? null) !== canonicalJson(byteVocab)) {
    throw err(
      "tokenizer.json is not Proxima's byte tokenizer (its vocabulary differs)",
      "use a model trained with the byte tokenizer (lib/nn/tokenizer.ts)",
    );
  }
  if (f.cfg.vocabSize !== BYTE_VOCAB_SIZE) {
    throw err(
      `config.json vocab_size is ${f.cfg.vocabSize}, the byte tokenizer has ${BYTE_VOCAB_SIZE}`,
      "use a model trained with the byte tokenizer (lib/nn/tokenizer.ts)",
    );
  }
  return f;
}

/** Prompts from a text file given by config key `key`: one per line, blank lines skipped. */
export async function readPromptsFile(task: string, key: string, path: string): Promise<string[]> {
  const err = (cause: string, fix: string) => inputError(task, key, path, cause, fix);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw err("no such file", "check the path, or set it to null for the built-in prompts");
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw err("is a folder", "point at a text file with one prompt per line");
    }
    throw err(
      `cannot read: ${(e as Error).message}`,
      "check the permissions and that the file is UTF-8 text",
    );
  }
  const prompts = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (prompts.length === 0) {
    throw err("has no prompts (every line is blank)", "write one prompt per line");
  }
  return prompts;
}
