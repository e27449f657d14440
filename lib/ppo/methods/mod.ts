/**
 * The methods as records (one file each) and how a config names one: `method: "grpo"` sets the
 * keys its record defines (a config that sets one of them differently is refused, naming both
 * keys) and fills the paper's defaults wherever the config sets nothing, before the task's
 * schema fills the rest. Every default can still be overridden.
 *
 * @example
 * ```ts
 * resolveMethod({ method: "grpo", samples_per_prompt: 4 }, LmRunSchema).config;
 * // { method: "grpo", samples_per_prompt: 4, algorithm: …, ppo: { advantage: "grpo", whiten_advantages: false,
 * //   kl: { placement: "loss", estimator: "k3", beta: 0.04 }, loss_type: "grpo", … } }
 * ```
 * @module
 */
import { z } from "zod";
import type { ConfigProblem } from "../config.ts";
import type { MethodRecord } from "./record.ts";
import { PPO } from "./ppo.ts";
import { GRPO } from "./grpo.ts";
import { DR_GRPO } from "./dr_grpo.ts";
import { DAPO } from "./dapo.ts";
import { GSPO } from "./gspo.ts";
import { CISPO } from "./cispo.ts";
import { RLOO } from "./rloo.ts";
import { REINFORCE_PP } from "./reinforce_pp.ts";
import { DPO, IPO } from "./dpo.ts";
import { KTO } from "./kto.ts";

export type { MethodCitation, MethodRecord } from "./record.ts";
export { CISPO, DAPO, DPO, DR_GRPO, GRPO, GSPO, IPO, KTO, PPO, REINFORCE_PP, RLOO };

/** Every method, in the order tables list them. */
export const METHODS: readonly MethodRecord[] = [
  PPO,
  GRPO,
  DR_GRPO,
  DAPO,
  GSPO,
  CISPO,
  RLOO,
  REINFORCE_PP,
  DPO,
  IPO,
  KTO,
];

/** The names `method` accepts. */
export const METHOD_NAMES = METHODS.map((m) => m.name) as [string, ...string[]];

/** The `method` key of an LM task's config (null: the config's own keys, as before). */
export const MethodSchema = z.enum(METHOD_NAMES).nullable().default(null).describe(
  "a method's record (lib/ppo/methods): sets the keys that make it (e.g. ppo.advantage) and " +
    "its paper's defaults (KL placement / estimator / β, loss_type, clipping, ratio level) " +
    `where the config sets nothing; every default can be overridden. One of ${
      METHOD_NAMES.join(", ")
    }; null: the config's keys alone`,
);

/** A method's record by name (undefined for an unknown name). */
export function methodRecord(name: string): MethodRecord | undefined {
  return METHODS.find((m) => m.name === name);
}

/**
 * The method a resolved config runs: its `method`, else read from the keys that define one
 * (`algorithm: "dpo"` with `dpo.loss`, `algorithm: "kto"`, else `ppo.advantage`).
 */
export function methodOfConfig(config: Record<string, unknown>): string {
  if (typeof config.method === "string") return config.method;
  if (config.algorithm === "kto") return "kto";
  if (config.algorithm === "dpo") {
    return (config.dpo as { loss?: string } | undefined)?.loss === "ipo" ? "ipo" : "dpo";
  }
  const adv = (config.ppo as { advantage?: string } | undefined)?.advantage ?? "gae";
  return adv === "gae" ? "ppo" : adv;
}

type Raw = Record<string, unknown>;

function getPath(o: Raw, key: string): unknown {
  let cur: unknown = o;
  for (const p of key.split(".")) {
    if (!cur || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Raw)[p];
  }
  return cur;
}

function setPath(o: Raw, key: string, v: unknown): void {
  const parts = key.split(".");
  let cur = o;
  for (const p of parts.slice(0, -1)) {
    if (!cur[p] || typeof cur[p] !== "object" || Array.isArray(cur[p])) cur[p] = {};
    cur = cur[p] as Raw;
  }
  cur[parts.at(-1)!] = v;
}

/** Whether a dotted key names a field of an object schema (through defaults and nullables). */
export function schemaHasKey(schema: z.ZodType, key: string): boolean {
  let cur: z.ZodType = schema;
  for (const p of key.split(".")) {
    while (
      cur instanceof z.ZodDefault || cur instanceof z.ZodNullable || cur instanceof z.ZodOptional
    ) cur = (cur as unknown as { unwrap(): z.ZodType }).unwrap();
    if (!(cur instanceof z.ZodObject)) return false;
    const next = (cur.shape as Record<string, z.ZodType>)[p];
    if (!next) return false;
    cur = next;
  }
  return true;
}

/**
 * A raw (unparsed) config with its method's record applied: the keys the record defines set,
 * its defaults filled where `raw` has no value, keys the task's schema lacks skipped (a
 * required one is a problem). A key `raw` sets against the record's definition is a problem
 * naming both keys. `raw` without `method` comes back unchanged.
 */
export function resolveMethod(
  raw: Raw,
  schema: z.ZodType,
): { config: Raw; problems: ConfigProblem[] } {
  const name = raw.method;
  if (typeof name !== "string") return { config: raw, problems: [] };
  const m = methodRecord(name);
  if (!m) return { config: raw, problems: [] }; // the schema names the allowed values
  const config = structuredClone(raw);
  const problems: ConfigProblem[] = [];
  for (const [key, want] of Object.entries(m.defines)) {
    if (!schemaHasKey(schema, key)) {
      if (m.requires.includes(key)) {
        problems.push({
          key: "method",
          cause: `method "${name}" needs the config key ${key} (= ${
            JSON.stringify(want)
          }), which this task does not have`,
          fix: `use an online method (${
            METHODS.filter((x) => x.online).map((x) => x.name).join(", ")
          }) on this task, or a task with ${key}`,
        });
      }
      continue;
    }
    const given = getPath(config, key);
    if (given !== undefined && given !== want) {
      problems.push({
        key: "method",
        cause: `method "${name}" sets ${key} to ${JSON.stringify(want)}, and ${key} is ${
          JSON.stringify(given)
        }: the two contradict`,
        fix: `remove ${key}, or set method to the one that ${key} ${
          JSON.stringify(given)
        } makes (or null)`,
      });
      continue;
    }
    setPath(config, key, want);
  }
  for (const [key, v] of Object.entries(m.defaults)) {
    if (schemaHasKey(schema, key) && getPath(config, key) === undefined) setPath(config, key, v);
  }
  return { config, problems };
}
