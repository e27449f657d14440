/**
 * How a config problem is worded: a zod issue turned into its cause and fix (ranges, allowed
 * values with a did-you-mean, unknown keys with the task's hints), and the schema walk that
 * lists a task's dotted keys. Split from spec.ts, which plans experiments with them.
 * @module
 */
import { z } from "zod";
import type { TrialKind } from "../trial/contract.ts";
import { didYouMean } from "../suggest.ts";

/** A value as a message shows it (`nothing` for undefined). */
export const fmt = (v: unknown): string => {
  if (typeof v === "number") return String(v);
  if (v === undefined) return "nothing";
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

/** What kind of value `v` is, for "got ..." in messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "a plain object";
  return typeof v;
}

/** Dotted paths of a zod object schema: leaves (values) and objects (nested configs). */
export function schemaPaths(schema: z.ZodType): { leaves: Set<string>; objects: Set<string> } {
  const leaves = new Set<string>(), objects = new Set<string>();
  const walk = (s: z.ZodType, path: string) => {
    const inner = unwrap(s);
    if (inner instanceof z.ZodObject) {
      if (path) objects.add(path);
      for (const [k, v] of Object.entries(inner.shape)) {
        walk(v as z.ZodType, path ? `${path}.${k}` : k);
      }
    } else leaves.add(path);
  };
  walk(schema, "");
  return { leaves, objects };
}

export function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  while (
    cur instanceof z.ZodDefault || cur instanceof z.ZodNullable || cur instanceof z.ZodOptional
  ) cur = (cur as unknown as { unwrap(): z.ZodType }).unwrap();
  return cur;
}

/** The cause and fix of one zod issue of the config key `key` (given `given`). */
export function explainIssue(
  issue: z.core.$ZodIssue,
  given: unknown,
  key: string,
  known: string[],
  kind: TrialKind,
): { cause: string; fix: string } {
  const got = `got ${fmt(given)}`;
  switch (issue.code) {
    case "too_small":
      if (issue.origin === "array" || issue.origin === "string") {
        const what = issue.origin === "array" ? "item" : "character";
        return {
          cause: `must have at least ${issue.minimum} ${what}${
            Number(issue.minimum) === 1 ? "" : "s"
          } (${got})`,
          fix: `give at least ${issue.minimum} ${what}${Number(issue.minimum) === 1 ? "" : "s"}`,
        };
      }
      return {
        cause: `must be ${issue.inclusive ? "≥" : ">"} ${issue.minimum} (${got})`,
        fix: `use a value ${issue.inclusive ? "≥" : ">"} ${issue.minimum}`,
      };
    case "too_big":
      return {
        cause: `must be ${issue.inclusive ? "≤" : "<"} ${issue.maximum} (${got})`,
        fix: `use a value ${issue.inclusive ? "≤" : "<"} ${issue.maximum}`,
      };
    case "invalid_value": {
      const vals = issue.values.map((v) => JSON.stringify(v));
      const m = typeof given === "string" ? didYouMean(given, issue.values.map(String)) : null;
      return {
        cause: `must be one of ${vals.join(", ")} (${got})` + (m ? ` (did you mean "${m}"?)` : ""),
        fix: m ? `write "${m}"` : `use one of ${vals.join(", ")}`,
      };
    }
    case "invalid_type": {
      const exp = issue.expected as string;
      if (exp === "int") {
        return { cause: `must be an integer (${got})`, fix: "use a whole number" };
      }
      if (typeof given === "number" && !Number.isFinite(given)) {
        return {
          cause: `must be a finite number (${got})`,
          fix: "replace it with a finite number",
        };
      }
      if (given === undefined) return { cause: `is required (a ${exp})`, fix: `set ${key}` };
      return {
        cause: `must be a ${exp} (${got}, a ${Array.isArray(given) ? "list" : typeof given})`,
        fix: typeof given === "string" && exp === "number" && given.trim() !== "" &&
            !Number.isNaN(Number(given))
          ? `write ${Number(given)} without quotes`
          : `give a ${exp}`,
      };
    }
    case "unrecognized_keys": {
      const keys = issue.keys.map((x) => (key ? `${key}.${x}` : x));
      const ms = keys.map((x) => didYouMean(x, known));
      const hint = keys.map((x) => kind.keyHints?.[x]).find(Boolean);
      return {
        cause: `unknown key${keys.length > 1 ? "s" : ""} ${keys.map((x) => `"${x}"`).join(", ")}` +
          (ms.some(Boolean)
            ? ` (did you mean ${ms.filter(Boolean).map((x) => `"${x}"`).join(", ")}?)`
            : ""),
        fix: hint ?? "remove or rename it",
      };
    }
    default:
      return { cause: `${issue.message} (${got})`, fix: "see the task's config keys" };
  }
}
