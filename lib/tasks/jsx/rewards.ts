/**
 * The `jsx` reward, on the decoded response text (EOS dropped), len = its length in characters
 * (= bytes = tokens for this ASCII world):
 *
 *     reward = 1.0 + 0.5 · [parses as JSX] − 0.1 · |len − ref_len| / ref_len
 *
 * Definitions (both by acorn 8 with the acorn-jsx plugin, `ecmaVersion: "latest"`,
 * `sourceType: "module"`; never a regex):
 * - **parses as JSX** ({@link parsesAsJsx}): the text parses as a module AND its syntax tree
 *   holds at least one JSXElement or JSXFragment (so `""` or `"1;"`, which parse, do not earn
 *   the bonus: no JSX, no bonus);
 * - **valid JSX component** ({@link jsxComponentName}, {@link isJsxComponent}): the text parses
 *   as a module AND one of its top-level statements (optionally under `export` /
 *   `export default`) declares a component: a function declaration, or a `const`/`let`/`var`
 *   declarator initialised with an arrow function or function expression, whose name starts
 *   with an upper-case letter A–Z (React's rule for components) and whose body returns JSX —
 *   an arrow's expression body is a JSXElement/JSXFragment (parentheses allowed), or a
 *   statement directly in the function body is `return <JSXElement or JSXFragment>`.
 *
 * Reward components by name: `jsx` (the reward), `parse`, `structure`, `length`, or the user's
 * own; `parse` and `structure` are always logged (`parse_rate`, `structure_rate`).
 *
 * @example
 * ```ts
 * jsxReward(" const SaveButton = () => <button>Save</button>;", 48); // 1.5
 * jsxComponentName(" function List() { return <ul></ul>; }"); // "List"
 * ```
 * @module
 */
import * as acorn from "acorn";
import acornJsx from "acorn-jsx";
import { BYTE_EOS_ID, byteEncode } from "../../nn/tokenizer.ts";
import { decodeByteText } from "../byte_lm.ts";
import type { LmTask } from "../../ppo/lm_problem.ts";
import {
  resolveRewards,
  type RewardComponent,
  type RewardFn,
  rewardLmTask,
  type UserReward,
} from "../rewards.ts";
import { JSX_PROMPTS, JSX_REF_LENGTHS, JSX_TASK, jsxReference } from "./corpus.ts";

// ---- parsing and the reward -------------------------------------------------------

const JsxParser = acorn.Parser.extend(acornJsx());
const PARSE_OPTIONS: acorn.Options = { ecmaVersion: "latest", sourceType: "module" };

type Node = acorn.Node & Record<string, unknown>;

/** The module's syntax tree (acorn + acorn-jsx), or the parser's error message. */
export function parseJsx(code: string): { ok: true; ast: acorn.Program } | {
  ok: false;
  error: string;
} {
  try {
    return { ok: true, ast: JsxParser.parse(code, PARSE_OPTIONS) as acorn.Program };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

const isJsxNode = (n: unknown): boolean => {
  const t = (n as Node | null)?.type;
  return t === "JSXElement" || t === "JSXFragment";
};

/** Whether a tree holds a JSXElement or JSXFragment anywhere. */
function containsJsx(n: unknown): boolean {
  if (Array.isArray(n)) return n.some(containsJsx);
  if (typeof n !== "object" || n === null) return false;
  if (isJsxNode(n)) return true;
  for (const [k, v] of Object.entries(n)) {
    if (k !== "loc" && typeof v === "object" && containsJsx(v)) return true;
  }
  return false;
}

/** "Parses as JSX": a module (acorn + acorn-jsx) with at least one JSX element or fragment. */
export function parsesAsJsx(code: string): boolean {
  const p = parseJsx(code);
  return p.ok && containsJsx(p.ast);
}

/** Whether a function node's body returns JSX (see the module doc). */
function returnsJsx(fn: Node): boolean {
  const body = fn.body as Node;
  if (fn.type === "ArrowFunctionExpression" && fn.expression) return isJsxNode(body);
  if (body?.type !== "BlockStatement") return false;
  return (body.body as Node[]).some((s) => s.type === "ReturnStatement" && isJsxNode(s.argument));
}

const COMPONENT_NAME = /^[A-Z]/;

/**
 * The name of the first component the code declares (see "valid JSX component" in the module
 * doc), or null when it does not parse or declares none.
 *
 * @example
 * ```ts
 * jsxComponentName(" const SaveButton = () => <button>Save</button>;"); // "SaveButton"
 * jsxComponentName(" function List() { return <ul></ul>; }"); // "List"
 * jsxComponentName(" const save = () => <b/>;"); // null: not capitalised
 * jsxComponentName(" const X = () => <b>;"); // null: does not parse
 * ```
 */
export function jsxComponentName(code: string): string | null {
  const p = parseJsx(code);
  if (!p.ok) return null;
  for (const top of p.ast.body as unknown as Node[]) {
    const stmt = top.type === "ExportNamedDeclaration" || top.type === "ExportDefaultDeclaration"
      ? top.declaration as Node | null
      : top;
    if (!stmt) continue;
    if (stmt.type === "FunctionDeclaration") {
      const name = (stmt.id as Node | null)?.name as string | undefined;
      if (name && COMPONENT_NAME.test(name) && returnsJsx(stmt)) return name;
    } else if (stmt.type === "VariableDeclaration") {
      for (const d of stmt.declarations as Node[]) {
        const id = d.id as Node, init = d.init as Node | null;
        if (id.type !== "Identifier" || !COMPONENT_NAME.test(id.name as string) || !init) continue;
        const fn = init.type === "ArrowFunctionExpression" || init.type === "FunctionExpression";
        if (fn && returnsJsx(init)) return id.name as string;
      }
    }
  }
  return null;
}

/** "Valid JSX component": parses as a module and declares a component (see the module doc). */
export function isJsxComponent(code: string): boolean {
  return jsxComponentName(code) !== null;
}

/** Share of texts that are valid JSX components (0 for none). */
export function structureRate(texts: readonly string[]): number {
  return texts.length ? texts.filter(isJsxComponent).length / texts.length : 0;
}

/** The reward's constants: `base + parse_bonus · [parses as JSX] − length_coef · |Δlen| / ref_len`. */
export const JSX_REWARD = { base: 1.0, parse_bonus: 0.5, length_coef: 0.1 } as const;

/** `|len − ref_len| / ref_len`, len in characters. */
export function jsxLengthError(text: string, refLen: number): number {
  if (!(refLen > 0)) throw new RangeError(`jsxLengthError: ref_len must be > 0 (got ${refLen})`);
  return Math.abs(text.length - refLen) / refLen;
}

/**
 * The task's reward: `1.0 + 0.5 · [parses as JSX] − 0.1 · |len − ref_len| / ref_len`.
 *
 * @example
 * ```ts
 * const ref = " const SaveButton = () => <button>Save</button>;"; // 48 characters
 * jsxReward(ref, 48); // 1.5
 * jsxReward(" const SaveButton = () => <button>Save</button;", 48); // 1 − 0.1/48: no parse
 * ```
 */
export function jsxReward(text: string, refLen: number): number {
  const { base, parse_bonus, length_coef } = JSX_REWARD;
  return base + (parsesAsJsx(text) ? parse_bonus : 0) - length_coef * jsxLengthError(text, refLen);
}

/** ref_len of a prompt: its reference's length; throws naming the prompt when it has none. */
export function jsxRefLength(prompt: string): number {
  return JSX_REF_LENGTHS[prompt] ?? jsxReference(prompt).length;
}

/**
 * Built-in reward components by name: `jsx` (the task's reward, {@link jsxReward}), and its
 * parts — `parse` (1 when the response parses as JSX), `structure` (1 when it is a valid JSX
 * component), `length` (`|len − ref_len| / ref_len`).
 */
export function builtinJsxRewards(): Record<string, RewardFn> {
  return {
    jsx: (s) => jsxReward(s.text, jsxRefLength(s.promptText)),
    parse: (s) => (parsesAsJsx(s.text) ? 1 : 0),
    structure: (s) => (isJsxComponent(s.text) ? 1 : 0),
    length: (s) => jsxLengthError(s.text, jsxRefLength(s.promptText)),
  };
}

/**
 * The reward components of a config's `rewards` list (built-ins or `userRewards`); `parse`
 * and `structure` are added with weight 0 when absent, so both are always logged. Throws on an
 * unknown name, listing the known ones.
 */
export function jsxRewards(
  refs: readonly { name: string; weight: number }[],
  userRewards: Record<string, UserReward> = {},
): RewardComponent[] {
  return resolveRewards(JSX_TASK, refs, builtinJsxRewards(), {
    user: userRewards,
    monitors: ["parse", "structure"],
  });
}

/** Row k of a batch: prompt `⌊k / perPrompt⌋ mod 5` ({@link JSX_PROMPTS}). */
export function jsxBatchPrompts(n: number, perPrompt: number): string[] {
  return Array.from(
    { length: n },
    (_, k) => JSX_PROMPTS[Math.floor(k / perPrompt) % JSX_PROMPTS.length],
  );
}

/**
 * The `jsx` LmTask: the five prompts, `perPrompt` samples each, reward = Σ weight · component;
 * metrics `parse_rate`, `structure_rate` and `reward/<name>` per component.
 */
export function jsxTask(rewards: readonly RewardComponent[], perPrompt: number): LmTask {
  return rewardLmTask({
    name: JSX_TASK,
    prompts: (n) => jsxBatchPrompts(n, perPrompt).map((p) => byteEncode(p)),
    rewards,
    decode: decodeByteText,
    eosTokenId: BYTE_EOS_ID,
    aliases: { parse_rate: "parse", structure_rate: "structure" },
  });
}
