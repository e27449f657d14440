/**
 * The files of a Hugging Face model folder and the folder-level helpers every reader and writer
 * shares: the file names, errors that name the folder, the file and a fix ({@link folderError}),
 * reading one JSON file ({@link readFolderJson}), config JSON bytes as transformers writes them,
 * and the atomic, fsynced folder write ({@link writeModelFiles}).
 *
 * @module
 */
import { writeAll } from "../fs.ts";
import { stableJson } from "../json.ts";
import { InputError, UserError } from "../errors.ts";

/** The model config file. */
export const MODEL_CONFIG = "config.json";
/** The weights file of an unsharded folder. */
export const MODEL_WEIGHTS = "model.safetensors";
/** The index of a sharded folder (`weight_map`: tensor name → shard file). */
export const MODEL_WEIGHTS_INDEX = "model.safetensors.index.json";
/** The generation defaults file (optional). */
export const GENERATION_CONFIG = "generation_config.json";

/** Where errors point: the calling function and the folder. */
export interface Where {
  caller: string;
  dir: string;
}

/** An error about `file` in the folder, with a fix. */
export function folderError(w: Where, file: string, what: string, fix: string): InputError {
  return new InputError(w.caller, `${w.dir}/${file}`, what, fix, {
    message: `${w.caller}: ${w.dir}/${file}: ${what}. Fix: ${fix}`,
  });
}

export const trimSlashes = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") || "/" : p);
const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) || "/" : ".");

/**
 * Read `dir/file` as a JSON object; undefined when it is absent and not `required`. Errors
 * name the folder, the file and a fix.
 *
 * @example
 * ```ts
 * const tok = await readFolderJson("models/x", "tokenizer_config.json", false);
 * ```
 */
export async function readFolderJson(
  dir: string,
  file: string,
  required: boolean,
  caller = "readFolderJson",
): Promise<Record<string, unknown> | undefined> {
  const w = { caller, dir: trimSlashes(dir) };
  let text: string;
  try {
    text = await Deno.readTextFile(`${w.dir}/${file}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw folderError(
        w,
        file,
        "missing",
        "point at a model folder written by saveModelFolder or transformers' save_pretrained",
      );
    }
    if (e instanceof Deno.errors.NotADirectory) {
      throw folderError(w, file, `${w.dir} is a file, not a folder`, "point at the model's folder");
    }
    throw folderError(w, file, `cannot read: ${(e as Error).message}`, "check permissions");
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw folderError(w, file, `corrupt JSON: ${(e as Error).message}`, "re-save the folder");
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw folderError(w, file, "must hold a JSON object", "re-save the folder");
  }
  return obj as Record<string, unknown>;
}

const encoder = new TextEncoder();
/** JSON as transformers writes config files: sorted keys, 2-space indent, trailing newline. */
export const configBytes = (x: unknown) => encoder.encode(stableJson(x));
/** Other JSON files (tokenizer files): keys as given. */
export const jsonBytes = (x: unknown) => encoder.encode(JSON.stringify(x, null, 2) + "\n");

/** A file of a folder: its bytes, or a function that streams them into the open file. */
export type FolderFile = Uint8Array | ((file: Deno.FsFile) => Promise<void>);

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

async function writeSynced(path: string, content: FolderFile): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true });
  try {
    if (content instanceof Uint8Array) await writeAll(f, content);
    else await content(f);
    await f.sync();
  } finally {
    f.close();
  }
}

function hex8(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Write a model folder atomically: every file into a sibling temp folder (`<dir>.tmp-<hex>`),
 * each fsynced, then renamed into place, so a reader never sees a half-written folder. An
 * existing `dir` is replaced whole, and only when it looks like a model folder (it has
 * config.json, or is empty): a typo like "." must not wipe a directory. Unlike a list of
 * buffers, a file may be a function that streams into the open file, so a multi-gigabyte
 * model.safetensors is never one buffer.
 *
 * @example
 * ```ts
 * await writeModelFiles("out/m", { "config.json": new TextEncoder().encode("{}") }, "save");
 * ```
 */
export async function writeModelFiles(
  dir: string,
  files: Record<string, FolderFile>,
  caller = "writeModelFiles",
): Promise<void> {
  dir = trimSlashes(dir);
  const where = `${caller}: ${dir}`;
  let exists = false;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new UserError(`${where}: exists and is not a directory`);
    const entries: string[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    if (entries.length > 0 && !entries.includes(MODEL_CONFIG)) {
      throw new UserError(
        `${where}: refusing to replace a non-empty folder without ${MODEL_CONFIG} (not a model ` +
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
    for (const [name, content] of Object.entries(files)) {
      await writeSynced(`${tmp}/${name}`, content);
    }
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
    throw new UserError(`${where}: cannot write: ${(e as Error).message}`, { cause: e });
  }
  if (exists) await Deno.remove(old, { recursive: true }).catch(() => {});
}
