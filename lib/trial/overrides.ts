/**
 * One default per config key: every key gets its default where its schema is declared (the
 * base: `PpoSchema` for `ppo.*`, the shared LM fields, ...), and a task whose setting needs
 * another value says so in ONE record beside its schema, `{ "ppo.kl.beta": 0.1, ... }`, that
 * {@link withOverrides} applies. Nothing else may give a key a second default
 * (tests/experiment/defaults_test.ts walks every task's schema to hold that), and
 * `deno task train --task <task> --help` lists each record ({@link describeOverrides}).
 *
 * @example
 * ```ts
 * const Base = z.object({ ppo: PpoSchema.default(PpoSchema.parse({})), updates: ... });
 * export const MY_OVERRIDES = { "ppo.gamma": 1, updates: 20 } as const;
 * export const MySchema = withOverrides(Base, MY_OVERRIDES);
 * MySchema.parse({}).ppo.gamma; // 1 (PpoSchema's own default is 0.99)
 * ```
 * @module
 */
import { z } from "zod";
import { canonicalJson } from "../json.ts";

/** A task's declared defaults that differ from the base: dotted config key -> value. */
export type DefaultOverrides = Readonly<Record<string, unknown>>;

function unwrapAll(s: z.ZodType): z.ZodType {
  let cur = s;
  while (
    cur instanceof z.ZodDefault || cur instanceof z.ZodNullable || cur instanceof z.ZodOptional
  ) cur = (cur as unknown as { unwrap(): z.ZodType }).unwrap();
  return cur;
}

/** The same field with default `v`: its range, nullability and description kept. */
function redefaultField(s: z.ZodType, v: unknown, key: string): z.ZodType {
  if (!(s instanceof z.ZodDefault)) {
    throw new Error(`default override ${key}: the key has no default to override`);
  }
  const inner = s.unwrap() as z.ZodType;
  const r = inner.safeParse(v);
  if (!r.success) {
    throw new Error(
      `default override ${key}: ${JSON.stringify(v)} is not a valid value (${
        r.error.issues[0]?.message
      })`,
    );
  }
  const out = inner.default(v as never) as z.ZodType;
  const d = s.description ?? inner.description;
  return d && out.description !== d ? out.describe(d) : out;
}

/**
 * `schema` with the defaults of `overrides` (dotted keys, nested through object fields):
 * each named field keeps its range and description and gets the new default, and an object
 * field's own default (used when the whole section is left out) is recomputed from its fields.
 * Throws (a programming error, at module load) when a key names no field, a field without a
 * default, or the value is outside the field's range.
 */
export function withOverrides<T extends z.ZodObject>(
  schema: T,
  overrides: DefaultOverrides,
  /** Where `schema` sits in the whole config (for messages). */
  at = "",
): T {
  const groups = new Map<string, Record<string, unknown>>();
  const shape: Record<string, z.ZodType> = {};
  for (const [key, v] of Object.entries(overrides)) {
    const [head, ...rest] = key.split(".");
    const field = (schema.shape as Record<string, z.ZodType>)[head];
    if (!field) throw new Error(`default override ${at}${key}: no config key ${at}${head}`);
    if (rest.length === 0) shape[head] = redefaultField(field, v, at + key);
    else {
      const g = groups.get(head) ?? {};
      g[rest.join(".")] = v;
      groups.set(head, g);
    }
  }
  for (const [head, sub] of groups) {
    const field = (schema.shape as Record<string, z.ZodType>)[head];
    const inner = unwrapAll(field);
    if (!(inner instanceof z.ZodObject) || field instanceof z.ZodNullable) {
      throw new Error(
        `default override ${at}${head}.${Object.keys(sub)[0]}: ${at}${head} is not a group of ` +
          "keys",
      );
    }
    const next = withOverrides(inner, sub, `${at}${head}.`);
    let out: z.ZodType = field instanceof z.ZodDefault ? next.default(next.parse({})) : next;
    if (field.description) out = out.describe(field.description);
    shape[head] = out;
  }
  return schema.extend(shape) as unknown as T;
}

/**
 * The default of every leaf key of an object schema (dotted path -> default; keys without a
 * default are absent), walking into object fields. What the one-default test compares.
 */
export function schemaDefaults(schema: z.ZodObject): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const walk = (s: z.ZodObject, prefix: string) => {
    for (const [k, f] of Object.entries(s.shape as Record<string, z.ZodType>)) {
      const path = prefix ? `${prefix}.${k}` : k;
      const inner = unwrapAll(f);
      if (inner instanceof z.ZodObject) walk(inner, path);
      else {
        const r = f.safeParse(undefined);
        if (r.success) out.set(path, r.data);
      }
    }
  };
  walk(schema, "");
  return out;
}

/** Whether two defaults are the same value (canonical JSON). */
export function sameDefault(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** One line per override, `  ppo.kl.beta = 0.1`, for `--help` (sorted by key). */
export function describeOverrides(overrides: DefaultOverrides): string[] {
  return Object.keys(overrides).sort().map((k) => `  ${k} = ${JSON.stringify(overrides[k])}`);
}

/** `{ gamma: 1 }` under `ppo` -> `{ "ppo.gamma": 1 }`: a section's overrides in a task's record. */
export function overridesUnder(prefix: string, overrides: DefaultOverrides): DefaultOverrides {
  return Object.fromEntries(Object.entries(overrides).map(([k, v]) => [`${prefix}.${k}`, v]));
}

/**
 * Where a list of kinds breaks "one default per key": a key two kinds default differently
 * without either declaring it, an override naming no key with a default, an override the
 * schema does not apply, or one that restates the base default. Empty when every key has
 * one default and each kind's differing ones are its declared overrides.
 */
export function defaultConflicts(
  kinds: readonly { name: string; schema: z.ZodObject; overrides?: DefaultOverrides }[],
): string[] {
  const out: string[] = [];
  const base = new Map<string, { value: unknown; kind: string }>();
  for (const k of kinds) {
    const defaults = schemaDefaults(k.schema), over = k.overrides ?? {};
    for (const [key, v] of Object.entries(over)) {
      if (!defaults.has(key)) out.push(`${k.name}: override ${key} names no key with a default`);
      else if (!sameDefault(defaults.get(key), v)) {
        out.push(
          `${k.name}: override ${key} = ${JSON.stringify(v)}, but the schema's default is ` +
            JSON.stringify(defaults.get(key)),
        );
      }
    }
    for (const [key, v] of defaults) {
      if (key in over) continue;
      const b = base.get(key);
      if (!b) base.set(key, { value: v, kind: k.name });
      else if (!sameDefault(b.value, v)) {
        out.push(
          `${key}: ${b.kind} defaults it to ${JSON.stringify(b.value)}, ${k.name} to ` +
            `${JSON.stringify(v)}, and neither declares an override`,
        );
      }
    }
  }
  for (const k of kinds) {
    for (const [key, v] of Object.entries(k.overrides ?? {})) {
      const b = base.get(key);
      if (b && sameDefault(b.value, v)) {
        out.push(`${k.name}: override ${key} = ${JSON.stringify(v)} restates the base default`);
      }
    }
  }
  return out;
}
