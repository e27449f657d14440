/**
 * Verifiable rewards (RLVR: DeepSeek-R1, TinyZero, Dr. GRPO): rewards computed from the
 * response and its dataset row (`sample.row`), no reward model.
 *
 * - `exact_match` ({@link exactMatch}): 1 when the response's final answer equals the row's
 *   `answer`, else 0. The final answer ({@link finalAnswer}) is the last complete
 *   `<answer>…</answer>` tag; without one, the last `\boxed{…}`; without one, the last number.
 *   A response that opens `<answer>` and never closes it has no answer (a malformed tag earns
 *   nothing, so the policy cannot skip the format). Numbers compare as numbers (`1,000` = `1000`,
 *   `4.0` = `4`, `$7` = `7`); other answers as trimmed text with whitespace collapsed.
 * - `format` ({@link formatReward}): 1 when the whole response matches a regex (default
 *   {@link DEFAULT_FORMAT}: `<think>…</think>` then `<answer>…</answer>`), else 0; the pattern
 *   is the reward's `options.pattern`.
 * - `code_tests` ({@link codeTests}): the response's JavaScript (a fenced ```js block, else the
 *   `<answer>` tag, else the whole text) runs in the permissionless sandbox
 *   (lib/tasks/sandbox.ts) with a time limit (`options.timeout_ms`, default 1000): its function
 *   `row.entry_point` (default: the first function the code declares) is called on each of
 *   `row.tests` (`[{ "args": [...], "expected": value }]`); the reward is the share that return
 *   `expected` (compared as JSON). Code that loops forever is stopped at the limit and earns 0.
 *
 * @example
 * ```ts
 * exactMatch("<think>7+5=12</think><answer>12</answer>", 12); // 1
 * finalAnswer("so \\boxed{3/4}"); // "3/4"
 * formatReward("<think>x</think><answer>1</answer>"); // 1
 * await codeTests("function add(a, b) { return a + b; }", [{ args: [1, 2], expected: 3 }]); // 1
 * ```
 * @module
 */
import { ConfigError } from "../ppo/config.ts";
import { runInSandbox } from "./sandbox.ts";
import type { RewardRef, RewardSample, UserReward } from "./rewards.ts";

/** The built-in verifiable rewards' names. */
export const VERIFIABLE_REWARDS = ["exact_match", "format", "code_tests"] as const;

/** `format`'s default pattern: `<think>…</think>` then `<answer>…</answer>`, nothing else. */
export const DEFAULT_FORMAT = String
  .raw`^\s*<think>[\s\S]*?</think>\s*<answer>[\s\S]*?</answer>\s*$`;

/** The content of the last `\boxed{…}` (braces balanced), or null. */
function lastBoxed(text: string): string | null {
  const at = text.lastIndexOf("\\boxed{");
  if (at < 0) return null;
  let depth = 0;
  for (let i = at + 6; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(at + 7, i);
  }
  return null; // never closed: malformed
}

const NUMBER = /-?\d[\d,]*(?:\.\d+)?|-?\.\d+/g;

/**
 * The final answer of a response: the last complete `<answer>…</answer>`, else the last
 * `\boxed{…}`, else the last number; null when there is none (or an `<answer>` tag is opened
 * and never closed).
 */
export function finalAnswer(text: string): string | null {
  const tags = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (tags.length) return tags.at(-1)![1].trim();
  if (text.includes("<answer>")) return null; // malformed: opened, never closed
  const boxed = lastBoxed(text);
  if (boxed !== null) return boxed.trim();
  const nums = text.match(NUMBER);
  return nums ? nums.at(-1)! : null;
}

/** A number's value when the text is one (`1,000`, `$7`, `4.0`, `-3`), else null. */
function asNumber(s: string): number | null {
  const t = s.trim().replace(/^\$/, "").replace(/\$$/, "").replace(/,(?=\d{3}\b)/g, "");
  if (!/^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i.test(t)) return null;
  return Number(t);
}

/** Whether two answers are the same: as numbers when both are numbers, else as text. */
export function sameAnswer(got: string, want: string | number): boolean {
  const w = String(want);
  const a = asNumber(got), b = asNumber(w);
  if (a !== null && b !== null) return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
  const norm = (x: string) => x.trim().replace(/\s+/g, " ");
  return norm(got) === norm(w);
}

/** 1 when the response's {@link finalAnswer} equals `answer`, else 0. */
export function exactMatch(text: string, answer: string | number): number {
  const got = finalAnswer(text);
  return got !== null && sameAnswer(got, answer) ? 1 : 0;
}

/** A compiled `format` pattern; a bad one is a ConfigError naming the key. */
export function formatPattern(pattern: string = DEFAULT_FORMAT, key = "format"): RegExp {
  try {
    return new RegExp(pattern);
  } catch (e) {
    throw new ConfigError(
      `${key}: options.pattern ${JSON.stringify(pattern)} is not a regular expression ` +
        `(${(e as Error).message})\n  fix: give a JavaScript regex source, e.g. ${
          JSON.stringify(DEFAULT_FORMAT)
        }`,
    );
  }
}

/** 1 when the response matches the pattern, else 0. */
export function formatReward(text: string, pattern: RegExp | string = DEFAULT_FORMAT): number {
  const re = typeof pattern === "string" ? formatPattern(pattern) : pattern;
  return re.test(text) ? 1 : 0;
}

/** One test case of `code_tests`: the function's arguments and the value it must return. */
export interface CodeTest {
  args: unknown[];
  expected: unknown;
}

/** The code in a response: a fenced js/ts block, else the `<answer>` tag, else the text. */
export function codeOf(text: string): string {
  const fence = [...text.matchAll(/```(?:js|javascript|ts|typescript)?\s*\n([\s\S]*?)```/g)];
  if (fence.length) return fence.at(-1)![1];
  const tag = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (tag.length) return tag.at(-1)![1];
  return text;
}

/** The first function the code declares (`function f`, `const f = (…) =>`/`function`), or null. */
function firstFunction(code: string): string | null {
  const m = code.match(
    /\bfunction\s*\*?\s*([A-Za-z_$][\w$]*)|\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?(?:function\b|\([^)]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)/,
  );
  return m ? (m[1] ?? m[2]) : null;
}

/**
 * The share of `tests` the response's function passes, run in the sandbox (no permissions,
 * `timeoutMs` for all the tests together); 0 when it declares no function, fails to parse,
 * or runs past the limit.
 */
export async function codeTests(
  text: string,
  tests: readonly CodeTest[],
  opts: { entryPoint?: string; timeoutMs?: number } = {},
): Promise<number> {
  if (tests.length === 0) return 0;
  const code = codeOf(text);
  const entry = opts.entryPoint ?? firstFunction(code);
  if (!entry || !/^[A-Za-z_$][\w$]*$/.test(entry)) return 0;
  // The harness counts passes inside the sandbox: only a number comes back.
  const source =
    `${code}\n;export default () => { const f = ${entry}; const tests = ${
      JSON.stringify(tests)
    }; let pass = 0; for (const t of tests) { try { if (JSON.stringify(f(...t.args)) === ` +
    `JSON.stringify(t.expected)) pass++; } catch { /* a failing test */ } } return pass; };\n`;
  const r = await runInSandbox(source, { timeoutMs: opts.timeoutMs ?? 1000 });
  return r.ok && typeof r.result === "number" ? r.result / tests.length : 0;
}

/** The columns of a row, for error messages. */
const columns = (row: Readonly<Record<string, unknown>>) =>
  Object.keys(row).length ? Object.keys(row).join(", ") : "none besides the prompt";

/** The `answer` column of a sample's row (a string or number), or a clear error. */
function answerOf(s: RewardSample): string | number {
  const a = s.row.answer;
  if (typeof a === "string" || typeof a === "number") return a;
  throw new Error(
    `exact_match needs an "answer" column (a string or number) in the prompt rows; this row ` +
      `has ${
        a === undefined ? `no "answer" (columns: ${columns(s.row)})` : `answer ${JSON.stringify(a)}`
      }`,
  );
}

/** The `tests` column of a sample's row, or a clear error. */
function testsOf(s: RewardSample): CodeTest[] {
  const t = s.row.tests;
  const ok = Array.isArray(t) &&
    t.every((x) => x && typeof x === "object" && Array.isArray((x as CodeTest).args));
  if (ok) return t as CodeTest[];
  throw new Error(
    `code_tests needs a "tests" column in the prompt rows: [{"args": [...], "expected": ...}]; ` +
      `this row has ${t === undefined ? `none (columns: ${columns(s.row)})` : JSON.stringify(t)}`,
  );
}

/**
 * The built-in verifiable rewards, configured by the config's reward list (`format`'s
 * `options.pattern`, `code_tests`' `options.timeout_ms`): a task adds them to its built-ins.
 */
export function verifiableRewards(
  refs: readonly RewardRef[] = [],
  defaults: { pattern?: string } = {},
): Record<string, UserReward> {
  const opt = (name: string) => refs.find((r) => r.name === name && !r.module)?.options ?? {};
  const f = opt("format"), c = opt("code_tests");
  const i = refs.findIndex((r) => r.name === "format" && !r.module);
  const re = formatPattern(
    typeof f.pattern === "string" ? f.pattern : defaults.pattern,
    `rewards.${i < 0 ? 0 : i}`,
  );
  const timeoutMs = typeof c.timeout_ms === "number" ? c.timeout_ms : 1000;
  return {
    exact_match: (s) => exactMatch(s.text, answerOf(s)),
    format: (s) => (re.test(s.text) ? 1 : 0),
    code_tests: (s) =>
      codeTests(s.text, testsOf(s), {
        entryPoint: typeof s.row.entry_point === "string" ? s.row.entry_point : undefined,
        timeoutMs,
      }),
  };
}
