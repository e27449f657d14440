/**
 * Command-line flags, parsed one way by every command: `--name value` and `--name=value`,
 * negative numbers as values (`--lr -1` is the value -1, which the range check then refuses,
 * instead of Node's "argument is ambiguous"), an unknown flag named with a did-you-mean, and
 * every problem a {@link UsageError} (exit 2 at the boundary, no stack).
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { didYouMean } from "../lib/suggest.ts";

/** An argument that is a negative number (a value, never a flag): -1, -0.5, -.5, -1e-3. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/**
 * Join `--name` and a following negative number into `--name=-1` when `takesValue(name)`, so
 * that parsers that read a leading `-` as a flag see the value.
 */
export function joinNegativeValues(
  args: readonly string[],
  takesValue: (name: string) => boolean = () => true,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^--([^=]+)$/.exec(a);
    if (m && next !== undefined && NEGATIVE_NUMBER.test(next) && takesValue(m[1])) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Options of {@link parseFlags}. */
export interface ParseFlagsOptions {
  /** Positional arguments allowed (default false). */
  allowPositionals?: boolean;
  /** `--max_new_tokens` is `--max-new-tokens` (scripts spell flags either way). */
  underscores?: boolean;
}

/**
 * Parse `args` for `command` against `options` (node:util parseArgs' options, strict): an
 * unknown flag is a {@link UsageError} with a did-you-mean, a negative number after a string
 * flag is its value, and parseArgs' own complaints become usage errors too.
 *
 * @example
 * ```ts
 * const { values } = parseFlags("generate", ["--temperature", "-1"], {
 *   temperature: { type: "string" },
 * }); // values.temperature === "-1"
 * ```
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  command: string,
  args: readonly string[],
  options: O,
  opts: ParseFlagsOptions = {},
) {
  const names = Object.keys(options);
  const shorts = new Map(
    Object.entries(options).flatMap(([k, o]) => o.short ? [[o.short, k] as const] : []),
  );
  let normalised = opts.underscores
    ? args.map((a) => a.startsWith("--") ? a.replace(/^--[^=]*/, (f) => f.replaceAll("_", "-")) : a)
    : [...args];
  normalised = joinNegativeValues(normalised, (n) => options[n]?.type === "string");
  for (const a of normalised) {
    if (a === "--") break;
    const long = /^--([^=]+)/.exec(a);
    const short = /^-([^-\d.])$/.exec(a);
    const name = long?.[1] ?? (short ? shorts.get(short[1]) ?? `-${short[1]}` : undefined);
    if (name !== undefined && !names.includes(name)) {
      const s = didYouMean(name.replace(/^-/, ""), names);
      throw new UsageError(
        `${command}: unknown flag ${long ? "--" : "-"}${name.replace(/^-/, "")}` +
          `${s ? ` (did you mean --${s}?)` : ""}`,
        { fix: `see deno task ${command} --help` },
      );
    }
  }
  try {
    return parseArgs({
      args: normalised,
      options,
      strict: true,
      allowPositionals: opts.allowPositionals ?? false,
    });
  } catch (e) {
    // parseArgs' own messages name the flag ("Option '--model <value>' argument missing").
    const msg = (e as Error).message.replace(/\. To specify .*$/s, "");
    throw new UsageError(`${command}: ${msg}`, { fix: `see deno task ${command} --help` });
  }
}

/** A number flag's range: integer or not, bounds, what to say when it is outside. */
export interface NumberRange {
  integer?: boolean;
  min?: number;
  max?: number;
  /** Whether `min` itself is allowed (default true). */
  minInclusive?: boolean;
}

/**
 * The value of number flag `--name` (a string from {@link parseFlags}), or undefined when it
 * was not given; a value that is not a number or is outside `range` is a {@link UsageError}
 * naming the flag, the value and the range.
 */
export function numberFlag(
  command: string,
  name: string,
  raw: string | undefined,
  range: NumberRange = {},
): number | undefined {
  if (raw === undefined) return undefined;
  const x = raw.trim() === "" ? NaN : Number(raw);
  const { integer = false, min, max, minInclusive = true } = range;
  const ok = Number.isFinite(x) && (!integer || Number.isInteger(x)) &&
    (min === undefined || (minInclusive ? x >= min : x > min)) &&
    (max === undefined || x <= max);
  if (!ok) {
    const kind = integer ? "an integer" : "a number";
    const what = min !== undefined && max !== undefined
      ? `${kind} in ${minInclusive ? "[" : "("}${min}, ${max}]`
      : min !== undefined
      ? `${kind} ${minInclusive ? ">=" : ">"} ${min}`
      : max !== undefined
      ? `${kind} <= ${max}`
      : kind;
    throw new UsageError(`${command}: --${name} ${JSON.stringify(raw)}: expected ${what}`);
  }
  return x;
}
