/**
 * The `lm` task's offline data: preference pairs for DPO (`preferences`: .jsonl rows
 * `{prompt, chosen, rejected}`) and unpaired examples for KTO (`examples`: .jsonl rows
 * `{prompt, completion, label}`), read, checked and tokenized before any model loads, and
 * handed to lib/ppo/offline as the method's data. A prompt is a string or a chat `messages`
 * list (`prompt` or `messages`, as the prompts file takes them), rendered as the task renders
 * its prompts (the chat template's assistant header); a completion is its text's tokens plus
 * the end-of-sequence token, as TRL's DPOTrainer and KTOTrainer append it.
 *
 * Every problem is a ConfigError naming the config key, `file:line`, the column and the fix.
 *
 * @example
 * ```ts
 * const data = await planLmOffline(config, policyPlan, eosIds); // null for algorithm "ppo"
 * const method = lmOfflineMethod(config, data!); // createOfflineProblem's `method`
 * ```
 * @module
 */
import { contextLength } from "../../nn/decoder.ts";
import type { KtoExample } from "../../ppo/offline/kto.ts";
import type { OfflineMethod } from "../../ppo/offline/problem.ts";
import type { PreferencePair } from "../../ppo/reward_model.ts";
import { inputError } from "../inputs.ts";
import { jsonlRows, promptOf, type PromptRow } from "./data.ts";
import { encodePrompt, type LmPolicyPlan } from "./inputs.ts";
import { LM_TASK, type LmRunConfig } from "./schema.ts";

/** The tokenized data of an offline method. */
export type LmOfflineData =
  | { algorithm: "dpo"; pairs: PreferencePair[] }
  | { algorithm: "kto"; examples: KtoExample[] };

/** One row of a preferences or examples file, before tokenization. */
interface OfflineRow {
  where: string;
  prompt: PromptRow;
  /** chosen, rejected (DPO) or the completion (KTO). */
  texts: string[];
  label?: boolean;
}

const PROMPT_FIX = 'give "prompt" (a string or [{"role": ..., "content": ...}]) or "messages"';

/** The rows of `path` with their prompt and the string columns `columns` checked. */
async function readRows(key: string, path: string, columns: readonly string[], example: string) {
  const fail = (where: string, cause: string, fix: string) =>
    inputError(LM_TASK, key, where, cause, fix);
  if (!path.endsWith(".jsonl")) {
    throw fail(path, "unknown file type", `use .jsonl, one object per line: ${example}`);
  }
  const out: { where: string; row: Record<string, unknown>; prompt: PromptRow }[] = [];
  for (const { row, where } of await jsonlRows(LM_TASK, key, path)) {
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw fail(where, "is not a JSON object", `one object per line: ${example}`);
    }
    const prompt = promptOf(row);
    if (!prompt) throw fail(where, 'no "prompt" column (or "messages")', PROMPT_FIX);
    const r = row as Record<string, unknown>;
    for (const col of columns) {
      if (!(col in r)) throw fail(where, `no "${col}" column`, `add it: ${example}`);
      if (typeof r[col] !== "string") {
        throw fail(
          where,
          `"${col}" is ${JSON.stringify(r[col])?.slice(0, 40)}, not a string`,
          `give "${col}" the completion's text: ${example}`,
        );
      }
    }
    out.push({ where, row: r, prompt });
  }
  if (out.length === 0) throw fail(path, "holds no rows", `add rows: ${example}`);
  return out;
}

const PAIR_EXAMPLE = '{"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}';
const KTO_EXAMPLE = '{"prompt": "2 + 2?", "completion": "4", "label": true}';

/** Read `preferences` (.jsonl rows {prompt, chosen, rejected}). */
export async function readPreferenceRows(path: string): Promise<OfflineRow[]> {
  const rows = await readRows("preferences", path, ["chosen", "rejected"], PAIR_EXAMPLE);
  return rows.map(({ where, row, prompt }) => ({
    where,
    prompt,
    texts: [row.chosen as string, row.rejected as string],
  }));
}

/** Read `examples` (.jsonl rows {prompt, completion, label: boolean}). */
export async function readKtoRows(path: string): Promise<OfflineRow[]> {
  const rows = await readRows("examples", path, ["completion"], KTO_EXAMPLE);
  return rows.map(({ where, row, prompt }) => {
    if (!("label" in row)) {
      throw inputError(LM_TASK, "examples", where, 'no "label" column', `add it: ${KTO_EXAMPLE}`);
    }
    if (typeof row.label !== "boolean") {
      throw inputError(
        LM_TASK,
        "examples",
        where,
        `"label" is ${JSON.stringify(row.label)?.slice(0, 40)}, not true or false`,
        "label: true for a desirable completion, false for an undesirable one",
      );
    }
    return { where, prompt, texts: [row.completion as string], label: row.label };
  });
}

/**
 * The offline data of a config, tokenized with the policy's tokenizer (null for "ppo"); each
 * prompt + completion must fit the model's context.
 */
export async function planLmOffline(
  c: LmRunConfig,
  policy: LmPolicyPlan,
  eosIds: readonly number[],
): Promise<LmOfflineData | null> {
  if (c.algorithm === "ppo") return null;
  const key = c.algorithm === "dpo" ? "preferences" : "examples";
  const path = (c.algorithm === "dpo" ? c.preferences : c.examples)!;
  const rows = c.algorithm === "dpo" ? await readPreferenceRows(path) : await readKtoRows(path);
  const tok = policy.tokenizer, ctx = contextLength(policy.cfg), eos = eosIds[0];
  const encoded = rows.map((r) => {
    const prompt = encodePrompt(key, r.where, r.prompt, policy, c.chat_template);
    const end = eos === undefined ? [] : [eos];
    const completions = r.texts.map((t) => [...tok.encode(t, { addSpecialTokens: false }), ...end]);
    const longest = Math.max(...completions.map((x) => x.length));
    if (prompt.length + longest > ctx) {
      throw inputError(
        LM_TASK,
        key,
        r.where,
        `prompt and completion are ${prompt.length + longest} tokens, over the model's ` +
          `context of ${ctx}`,
        "shorten the row or drop it",
      );
    }
    return { prompt, completions, label: r.label };
  });
  return c.algorithm === "dpo"
    ? {
      algorithm: "dpo",
      pairs: encoded.map((e) => ({
        prompt: e.prompt,
        chosen: e.completions[0],
        rejected: e.completions[1],
      })),
    }
    : {
      algorithm: "kto",
      examples: encoded.map((e) => ({
        prompt: e.prompt,
        completion: e.completions[0],
        label: e.label!,
      })),
    };
}

/** The method and data {@link createOfflineProblem} trains (TRL's metric names). */
export function lmOfflineMethod(c: LmRunConfig, data: LmOfflineData): OfflineMethod {
  return data.algorithm === "dpo"
    ? { name: "dpo", cfg: c.dpo, pairs: data.pairs, pairsPerUpdate: c.batch / 2, columns: "trl" }
    : { name: "kto", cfg: c.kto, examples: data.examples, perUpdate: c.batch };
}
