/**
 * The user's data files for the `lm` task: prompt sets (`.txt`, `.jsonl`, `.parquet`) and
 * preference pairs (`.jsonl` with chosen/rejected) — the formats TRL's and the Hub's datasets
 * use. Every problem is a {@link ConfigError} naming the config key, the file (and line or
 * row), the cause and the fix, raised before any trial starts.
 *
 * @example
 * ```ts
 * const prompts = await readPromptSet("lm", "prompts", "data/prompts.jsonl");
 * // [{ text: "Write a haiku" }, { messages: [{ role: "user", content: "Hi" }] }]
 * const pairs = await readPreferencePairs("lm", "reward_model_data", "data/prefs.jsonl");
 * ```
 * @module
 */
import { parquetReadObjects } from "hyparquet";
import type { ChatMessage } from "../../nn/hf_tokenizer.ts";
import { inputError } from "../inputs.ts";

/**
 * One prompt: plain text, or a conversation rendered with the chat template; `row` holds the
 * row's other columns (`answer`, `tests`, ...), which reward functions see as `sample.row`.
 */
export type PromptRow = ({ text: string } | { messages: ChatMessage[] }) & {
  row?: Record<string, unknown>;
};

/** One preference pair (a shared prompt, the preferred and the other completion). */
export interface PreferenceRow {
  /** Shared prompt text ("" when the completions carry the whole text). */
  prompt: string;
  chosen: string;
  rejected: string;
}

const fail = inputError;

/** The file's bytes as UTF-8 text; a missing file or invalid UTF-8 is a ConfigError. */
async function readText(task: string, key: string, path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw fail(task, key, path, `cannot read (${(e as Error).message})`, "check the path");
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw fail(
      task,
      key,
      path,
      "is not UTF-8 text",
      "convert the file to UTF-8 (e.g. iconv -t UTF-8), or give a .parquet file",
    );
  }
}

/** The JSON objects of a .jsonl file's non-blank lines, each with `file:line` for errors. */
export async function jsonlRows(
  task: string,
  key: string,
  path: string,
): Promise<{ row: unknown; where: string }[]> {
  const out: { row: unknown; where: string }[] = [];
  (await readText(task, key, path)).split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${path}:${i + 1}`;
    try {
      out.push({ row: JSON.parse(line), where });
    } catch (e) {
      const why = `not JSON (${(e as Error).message})`;
      throw fail(task, key, where, why, "one JSON object per line");
    }
  });
  return out;
}

const isMessages = (m: unknown): m is ChatMessage[] =>
  Array.isArray(m) && m.length > 0 &&
  m.every((x) =>
    x !== null && typeof x === "object" && typeof (x as ChatMessage).role === "string" &&
    typeof (x as ChatMessage).content === "string"
  );

/** A row's prompt: a `prompt` string or a `messages` list; undefined when it has neither. */
export function promptOf(row: unknown): PromptRow | undefined {
  if (row === null || typeof row !== "object") return undefined;
  const r = row as { prompt?: unknown; messages?: unknown };
  // Every other column goes with the prompt to the reward functions (as TRL passes them).
  const { prompt: _p, messages: _m, ...rest } = row as Record<string, unknown>;
  const extra = Object.keys(rest).length ? { row: rest } : {};
  if (typeof r.prompt === "string") return { text: r.prompt, ...extra };
  if (isMessages(r.prompt)) return { messages: r.prompt, ...extra }; // TRL's conversational "prompt"
  if (isMessages(r.messages)) return { messages: r.messages, ...extra };
  return undefined;
}

const ROW_FIX =
  'give every row "prompt" (a string) or "messages" ([{"role": ..., "content": ...}])';

/**
 * Read a prompt set: `.txt` (one prompt per non-empty line), `.jsonl` (one JSON object per
 * line with `prompt` or `messages`) or `.parquet` (a `prompt` or `messages` column); a row's
 * other columns come with it as `row`. Empty
 * prompts, an empty file, and rows without a prompt are errors.
 */
export async function readPromptSet(
  task: string,
  key: string,
  path: string,
): Promise<PromptRow[]> {
  const rows: PromptRow[] = [];
  if (path.endsWith(".parquet")) {
    let objects: Record<string, unknown>[];
    try {
      const bytes = await Deno.readFile(path);
      objects = await parquetReadObjects({ file: bytes.buffer as ArrayBuffer });
    } catch (e) {
      throw fail(
        task,
        key,
        path,
        `not a readable parquet file (${(e as Error).message})`,
        "re-export it",
      );
    }
    objects.forEach((o, i) => {
      const p = promptOf(o);
      if (!p) throw fail(task, key, `${path} row ${i}`, "no prompt column", ROW_FIX);
      rows.push(p);
    });
  } else if (path.endsWith(".jsonl")) {
    for (const { row, where } of await jsonlRows(task, key, path)) {
      const p = promptOf(row);
      if (!p) throw fail(task, key, where, 'no "prompt" or "messages"', ROW_FIX);
      rows.push(p);
    }
  } else if (path.endsWith(".txt")) {
    for (const line of (await readText(task, key, path)).split(/\r?\n/)) {
      if (line.trim() !== "") rows.push({ text: line });
    }
  } else {
    throw fail(task, key, path, "unknown prompt file type", "use .txt, .jsonl or .parquet");
  }
  if (rows.length === 0) {
    throw fail(task, key, path, "holds no prompts", "add at least one prompt");
  }
  rows.forEach((r, i) => {
    if ("text" in r && r.text.trim() === "") {
      throw fail(task, key, `${path} row ${i}`, "empty prompt", "remove it or give it text");
    }
  });
  return rows;
}

/**
 * Read preference pairs from `.jsonl`: `{"chosen": ..., "rejected": ..., "prompt"?: ...}` per
 * line (strings), as TRL's RewardTrainer takes them.
 */
export async function readPreferencePairs(
  task: string,
  key: string,
  path: string,
): Promise<PreferenceRow[]> {
  if (!path.endsWith(".jsonl")) {
    throw fail(
      task,
      key,
      path,
      "unknown preference file type",
      'use .jsonl with "chosen"/"rejected"',
    );
  }
  const out: PreferenceRow[] = [];
  for (const { row, where } of await jsonlRows(task, key, path)) {
    const o = (row ?? {}) as Record<string, unknown>;
    const { prompt = "", chosen, rejected } = o;
    if (typeof chosen !== "string" || typeof rejected !== "string" || typeof prompt !== "string") {
      throw fail(
        task,
        key,
        where,
        'needs "chosen" and "rejected" strings (and optionally "prompt")',
        'e.g. {"prompt": "Q: 2+2?", "chosen": " 4", "rejected": " 5"}',
      );
    }
    out.push({ prompt, chosen, rejected });
  }
  if (out.length < 2) {
    throw fail(task, key, path, `holds ${out.length} pair(s)`, "give at least 2 preference pairs");
  }
  return out;
}
