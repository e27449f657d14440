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
    }; null: the config's keys alone. Absent, a critic-free ppo.advantage the config sets ` +
    "implies the first record defining it (grpo ⇒ grpo)",
);

/** A method's record by name (undefined for an unknown name). */
export function methodRecord(name: string): MethodRecord | undefined {
  return METHODS.find((m) => m.name === name);
}

/**
 * The method a resolved config runs: its `method`, else the record whose `defines` the config
 * agrees with (keys the task lacks skipped), the one with most such keys winning and the first
 * listed on a tie: `algorithm: "dpo"` with `dpo.loss: "ipo"` is IPO, `ppo.advantage: "grpo"`
 * GRPO (not DAPO, which must be named). A config no record fits reads as its advantage.
 */
export function methodOfConfig(config: Record<string, unknown>): string {
  if (typeof config.method === "string") return config.method;
  let best: MethodRecord | undefined, most = -1;
  for (const m of METHODS) {
    const keys = Object.keys(m.defines).filter((k) => getPath(config, k) !== undefined);
    if (!keys.length || !keys.every((k) => getPath(config, k) === m.defines[k])) continue;
    if (keys.length > most) best = m, most = keys.length;
  }
  return best?.name ?? String(getPath(config, "ppo.advantage") ?? config.algorithm);
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
 * The method a raw config implies without naming one (`method` absent; an explicit
 * `method: null` opts out): the config sets a critic-free `ppo.advantage` itself, and the
 * first record in {@link METHODS} order that holds no critic and whose `defines` the config
 * agrees with (every key it `requires` set, none set otherwise) is the method, e.g.
 * `ppo.advantage: "grpo"` ⇒ GRPO, as a user choosing GRPO's estimator expects GRPO (no
 * whitening, the k3 KL in the loss). A record listed later with the same `defines` (DAPO,
 * GSPO, CISPO refine GRPO's estimator) must be named. A task's own default advantage implies
 * nothing, so configs that set no advantage resolve as before.
 *
 * @example
 * ```ts
 * impliedMethod({ ppo: { advantage: "grpo" } }, LmRunSchema)?.name; // "grpo"
 * impliedMethod({ method: null, ppo: { advantage: "grpo" } }, LmRunSchema); // undefined
 * ```
 */
export function impliedMethod(raw: Raw, schema: z.ZodType): MethodRecord | undefined {
  if (raw.method !== undefined) return undefined;
  return METHODS.find((m) =>
    m.online && !m.holds.critic &&
    m.requires.every((k) => schemaHasKey(schema, k) && getPath(raw, k) !== undefined) &&
    Object.entries(m.defines).every(([k, want]) => {
      const given = getPath(raw, k);
      return given === undefined || given === want;
    })
  );
}

/**
 * A raw (unparsed) config with its method's record applied: the keys the record defines set,
 * its defaults filled where `raw` has no value, keys the task's schema lacks skipped (a
 * required one is a problem). A key `raw` sets against the record's definition is a problem
 * naming both keys. `raw` without `method` resolves as the method it implies
 * ({@link impliedMethod}), else comes back unchanged.
 */
export function resolveMethod(
  raw: Raw,
  schema: z.ZodType,
): { config: Raw; problems: ConfigProblem[] } {
  const implied = raw.method === undefined ? impliedMethod(raw, schema) : undefined;
  const name = implied?.name ?? raw.method;
  if (typeof name !== "string") return { config: raw, problems: [] };
  const m = methodRecord(name);
  if (!m) return { config: raw, problems: [] }; // the schema names the allowed values
  const config = structuredClone(raw);
  // An implied method is recorded as if it had been named (the bundle says what ran).
  if (implied) config.method = implied.name;
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
