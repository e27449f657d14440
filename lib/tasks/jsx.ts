/**
 * `jsx`: React components from prompts. A tiny byte-level GPT is SFT'd (briefly, on purpose)
 * on generated (prompt, component) pairs, then PPO raises the share of its outputs that are
 * valid JSX components, with a reward computed by a real parser (acorn + acorn-jsx).
 *
 * The world ({@link drawJsxSpec}): six templates over small word lists
 * ({@link JSX_WORDS}), each a prompt and a one-line component, written as an arrow function
 * (or, in `function_share` of the corpus, as a function declaration):
 *
 *     "A button labelled Save"          -> " const SaveButton = () => <button>Save</button>;"
 *     "A link to help"                  -> ' const HelpLink = () => <a href="/help">Help</a>;'
 *     "An input for email"              -> ' const EmailInput = () => <input placeholder="Email" />;'
 *     "A heading saying Hello"          -> " const HelloTitle = () => <h1>Hello</h1>;"
 *     "A list of tea, milk"             -> " const TeaList = () => <ul><li>tea</li><li>milk</li></ul>;"
 *     "A card titled News saying soon"  -> " const NewsCard = () => <div><h2>News</h2><p>soon</p></div>;"
 *     (function form: " function SaveButton() { return <button>Save</button>; }")
 *
 * PPO prompts: the five {@link JSX_PROMPTS} (one per template but the heading), each sampled
 * `samples_per_prompt` = 4 times per update (a batch of 20). Each has a reference — its arrow
 * form ({@link jsxReference}) — and so a reference length `ref_len`.
 *
 * The reward ({@link jsxReward}), on the decoded response text (EOS dropped), len = its length
 * in characters (= bytes = tokens for this ASCII world):
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
 * Evaluation ({@link evaluateJsxPolicy}): the same `eval.samples_per_prompt` × 5 samples before
 * and after PPO (one seed): **structure rate** = share of samples that are valid JSX
 * components, next to the parse rate, the mean reward, KL to the reference, length, and — when
 * `eval.execute` — the **exec rate**: share of samples that are valid components AND, run in
 * the sandbox (lib/tasks/sandbox.ts: a Deno Worker with no permissions and a time limit)
 * with a tiny JSX runtime, return an element. Generated code is never run anywhere else.
 *
 * Stages: `jsx-sft` (the SFT policy, one Hugging Face folder `<stage dir>/model`,
 * content-addressed by its config), through the experiment runner's stage cache or
 * {@link jsxLocalStageCache}. The SFT budget is deliberately short (250 steps of 16) so the
 * starting policy is imperfect (structure rate ≈ 0.3–0.6) and PPO has room to raise it.
 *
 * A reward function that throws or returns NaN/±∞ stops the trial with a RewardError naming
 * the task (`jsx`), the component and the sample; the trial's outputs are removed.
 *
 * @example
 * ```ts
 * const r = await runJsxTrial({ seed: 1 }, "results/jsx/s1");
 * r.before.structure_rate; // the SFT policy's, e.g. 0.4
 * r.after.structure_rate;  // after PPO, higher
 * ```
 * @module
 */
import * as acorn from "acorn";
import acornJsx from "acorn-jsx";
import { z } from "zod";
import { Rng } from "../rng.ts";
import type { SessionOptions } from "../onnx/session.ts";
import type { GptConfig } from "../nn/gpt.ts";
import { loadHfFolder } from "../nn/hf.ts";
import { generate } from "../nn/sample.ts";
import type { TextPair } from "../nn/corpus.ts";
import { BYTE_EOS_ID, byteDecode, byteEncode } from "../nn/tokenizer.ts";
import { ConfigError, formatIssues, KlSchema, PpoSchema, redefault } from "../ppo/config.ts";
import { type MetricsRow, PPO_METRIC_COLUMNS } from "../ppo/trainer.ts";
import { byteGptConfig, fitByteSft, LmPpoSchema, saveSftStage, stageSession } from "./byte_lm.ts";
import { createLmProblem, type LmProblem, type LmTask } from "./lm_ppo.ts";
import { type RewardComponent, type RewardFn, rewardLmTask } from "./rewards.ts";
import {
  localStageCache,
  RewardRefSchema,
  type SentimentRunContext,
  type SentimentStageContext,
  type SentimentStageDef,
  type SentimentStageFn,
  type UserReward,
} from "./sentiment.ts";
import { runComponentInSandbox } from "./sandbox.ts";
import { LM_TRIAL_OUTPUTS, readLmTrial, runLmPpo, writeEvalJson } from "./trial_files.ts";

/** The task's name (in errors and registries). */
export const JSX_TASK = "jsx";

/** Bump when the corpus or the SFT code changes what the stage produces (part of its hash). */
export const JSX_STAGE_VERSION = 1;

// ---- the world -----------------------------------------------------------------

/** The words the templates draw from. */
export const JSX_WORDS = {
  /** Button labels, link targets, input fields, headings, card titles. */
  words: [
    "save",
    "send",
    "open",
    "edit",
    "play",
    "stop",
    "next",
    "back",
    "home",
    "news",
    "help",
    "shop",
    "blog",
    "name",
    "email",
    "city",
  ],
  /** List items. */
  items: ["tea", "milk", "jam", "eggs", "rice", "figs", "salt", "fish"],
  /** Card bodies. */
  bodies: ["hi", "soon", "more", "new"],
} as const;

/** One (prompt, component) pair before it is written out. */
export type JsxSpec =
  | { kind: "button" | "link" | "input" | "heading"; word: string }
  | { kind: "list"; items: [string, string] }
  | { kind: "card"; word: string; body: string };

/** How the component is written. */
export type JsxStyle = "arrow" | "function";

const cap = (w: string) => w[0].toUpperCase() + w.slice(1);

/** The prompt of a spec (e.g. `"A button labelled Save"`). */
export function jsxPrompt(s: JsxSpec): string {
  switch (s.kind) {
    case "button":
      return `A button labelled ${cap(s.word)}`;
    case "link":
      return `A link to ${s.word}`;
    case "input":
      return `An input for ${s.word}`;
    case "heading":
      return `A heading saying ${cap(s.word)}`;
    case "list":
      return `A list of ${s.items[0]}, ${s.items[1]}`;
    case "card":
      return `A card titled ${cap(s.word)} saying ${s.body}`;
  }
}

/** The component of a spec (leading space, as a response follows its prompt). */
export function jsxComponent(s: JsxSpec, style: JsxStyle = "arrow"): string {
  let name: string, el: string;
  switch (s.kind) {
    case "button":
      [name, el] = [`${cap(s.word)}Button`, `<button>${cap(s.word)}</button>`];
      break;
    case "link":
      [name, el] = [`${cap(s.word)}Link`, `<a href="/${s.word}">${cap(s.word)}</a>`];
      break;
    case "input":
      [name, el] = [`${cap(s.word)}Input`, `<input placeholder="${cap(s.word)}" />`];
      break;
    case "heading":
      [name, el] = [`${cap(s.word)}Title`, `<h1>${cap(s.word)}</h1>`];
      break;
    case "list":
      [name, el] = [
        `${cap(s.items[0])}List`,
        `<ul><li>${s.items[0]}</li><li>${s.items[1]}</li></ul>`,
      ];
      break;
    case "card":
      [name, el] = [
        `${cap(s.word)}Card`,
        `<div><h2>${cap(s.word)}</h2><p>${s.body}</p></div>`,
      ];
      break;
  }
  return style === "arrow"
    ? ` const ${name} = () => ${el};`
    : ` function ${name}() { return ${el}; }`;
}

/** The spec a prompt was written from, or null for a prompt outside the templates. */
export function jsxSpecOf(prompt: string): JsxSpec | null {
  const { words, items, bodies } = JSX_WORDS;
  const word = (w: string) => (words as readonly string[]).includes(w.toLowerCase());
  let m: RegExpMatchArray | null;
  if ((m = prompt.match(/^A button labelled ([A-Z][a-z]+)$/)) && word(m[1])) {
    return { kind: "button", word: m[1].toLowerCase() };
  }
  if ((m = prompt.match(/^A link to ([a-z]+)$/)) && word(m[1])) {
    return { kind: "link", word: m[1] };
  }
  if ((m = prompt.match(/^An input for ([a-z]+)$/)) && word(m[1])) {
    return { kind: "input", word: m[1] };
  }
  if ((m = prompt.match(/^A heading saying ([A-Z][a-z]+)$/)) && word(m[1])) {
    return { kind: "heading", word: m[1].toLowerCase() };
  }
  const item = (w: string) => (items as readonly string[]).includes(w);
  if ((m = prompt.match(/^A list of ([a-z]+), ([a-z]+)$/)) && item(m[1]) && item(m[2])) {
    return { kind: "list", items: [m[1], m[2]] };
  }
  if (
    (m = prompt.match(/^A card titled ([A-Z][a-z]+) saying ([a-z]+)$/)) && word(m[1]) &&
    (bodies as readonly string[]).includes(m[2])
  ) {
    return { kind: "card", word: m[1].toLowerCase(), body: m[2] };
  }
  return null;
}

/** The reference component of a prompt (its arrow form); throws for an unknown prompt. */
export function jsxReference(prompt: string): string {
  const s = jsxSpecOf(prompt);
  if (!s) throw new Error(`task "${JSX_TASK}": no reference for prompt ${JSON.stringify(prompt)}`);
  return jsxComponent(s, "arrow");
}

/** A spec drawn uniformly: template, then its words (two list items differ). */
export function drawJsxSpec(rng: Rng): JsxSpec {
  const pick = <T>(xs: readonly T[]) => xs[rng.int(xs.length)];
  const { words, items, bodies } = JSX_WORDS;
  switch (rng.int(6)) {
    case 0:
      return { kind: "button", word: pick(words) };
    case 1:
      return { kind: "link", word: pick(words) };
    case 2:
      return { kind: "input", word: pick(words) };
    case 3:
      return { kind: "heading", word: pick(words) };
    case 4: {
      const a = pick(items);
      let b = pick(items);
      while (b === a) b = pick(items);
      return { kind: "list", items: [a, b] };
    }
    default:
      return { kind: "card", word: pick(words), body: pick(bodies) };
  }
}

/**
 * The SFT corpus: `size` (prompt, component) pairs drawn with replacement, each written as a
 * function declaration with probability `functionShare` (else an arrow); deterministic in
 * `seed`.
 *
 * @example
 * ```ts
 * makeJsxCorpus({ seed: 1, size: 2 });
 * // [{ prompt: "A link to shop", response: ' const ShopLink = () => <a href="/shop">Shop</a>;' }, ...]
 * ```
 */
export function makeJsxCorpus(
  opts: { seed: number; size: number; functionShare?: number },
): TextPair[] {
  const rng = new Rng(opts.seed);
  const share = opts.functionShare ?? 0.25;
  return Array.from({ length: opts.size }, () => {
    const spec = drawJsxSpec(rng);
    const style: JsxStyle = rng.uniform() < share ? "function" : "arrow";
    return { prompt: jsxPrompt(spec), response: jsxComponent(spec, style) };
  });
}

/** The five PPO (and evaluation) prompts: one per template but the heading. */
export const JSX_PROMPTS: readonly string[] = [
  "A button labelled Save",
  "A link to help",
  "An input for email",
  "A list of tea, milk",
  "A card titled News saying soon",
];

/** Reference length (characters of {@link jsxReference}) of each of {@link JSX_PROMPTS}. */
export const JSX_REF_LENGTHS: Readonly<Record<string, number>> = Object.fromEntries(
  JSX_PROMPTS.map((p) => [p, jsxReference(p).length]),
);

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
  const builtins = builtinJsxRewards();
  const resolve = (name: string, weight: number): RewardComponent => {
    const u = userRewards[name];
    if (u) return typeof u === "function" ? { name, weight, fn: u } : { name, weight, ...u };
    if (builtins[name]) return { name, weight, fn: builtins[name] };
    throw new Error(
      `task "${JSX_TASK}": unknown reward "${name}" (known: ${
        [...Object.keys(builtins), ...Object.keys(userRewards)].join(", ")
      })`,
    );
  };
  const out = refs.map((r) => resolve(r.name, r.weight));
  for (const name of ["parse", "structure"]) {
    if (!refs.some((r) => r.name === name)) out.push(resolve(name, 0));
  }
  return out;
}

/** Row k of a batch: prompt `⌊k / perPrompt⌋ mod 5` ({@link JSX_PROMPTS}). */
export function jsxBatchPrompts(n: number, perPrompt: number): string[] {
  return Array.from(
    { length: n },
    (_, k) => JSX_PROMPTS[Math.floor(k / perPrompt) % JSX_PROMPTS.length],
  );
}

const decodeText = (ids: number[]) => byteDecode(ids, { skipSpecialTokens: true });

/**
 * The `jsx` LmTask: the five prompts, `perPrompt` samples each, reward = Σ weight · component;
 * metrics `parse_rate`, `structure_rate` and `reward/<name>` per component.
 */
export function jsxTask(rewards: readonly RewardComponent[], perPrompt: number): LmTask {
  const mean = (a?: Float64Array) => a ? a.reduce((s, x) => s + x, 0) / Math.max(1, a.length) : NaN;
  return rewardLmTask({
    name: JSX_TASK,
    prompts: (n) => jsxBatchPrompts(n, perPrompt).map((p) => byteEncode(p)),
    rewards,
    decode: decodeText,
    eosTokenId: BYTE_EOS_ID,
    metrics: (v) => ({ parse_rate: mean(v.parts.parse), structure_rate: mean(v.parts.structure) }),
  });
}

// ---- config --------------------------------------------------------------------

/** The policy's architecture; V = 257 (byte tokenizer). */
export const JsxModelSchema = z.object({
  n_embd: z.number().int().min(8).default(64).describe("model width d"),
  n_layer: z.number().int().min(1).default(2).describe("transformer blocks"),
  n_head: z.number().int().min(1).default(4).describe("attention heads (must divide d)"),
  n_positions: z.number().int().min(112).default(128).describe(
    "context length (prompt ≤ 30 + max_new_tokens)",
  ),
}).strict();

/** SFT stage: the corpus and the (deliberately short) optimisation. */
export const JsxSftSchema = z.object({
  seed: z.number().int().default(1).describe("init and batch order"),
  corpus_seed: z.number().int().default(1).describe("seed of the generated corpus"),
  corpus_size: z.number().int().min(16).default(4000).describe("pairs in the corpus"),
  function_share: z.number().min(0).max(1).default(0.25).describe(
    "share of components written as function declarations (else arrows)",
  ),
  steps: z.number().int().min(0).default(300).describe(
    "optimizer steps (short on purpose: an imperfect starting policy)",
  ),
  batch_size: z.number().int().min(1).default(16).describe("examples per step"),
  lr: z.number().positive().default(3e-3).describe("AdamW learning rate"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: z.number().positive().default(1).describe("gradient-norm clip"),
}).strict();

/** {@link KlSchema} with this task's defaults (β = 0.05, fixed, in the reward). */
export const JsxKlSchema = KlSchema.extend({ beta: redefault(KlSchema.shape.beta, 0.05) });

/**
 * {@link LmPpoSchema} (the byte-level LM defaults) with this task's: λ = 1, lr 1e-4, 2
 * minibatches, β = 0.05 (with λ = 0.95 and lr 3e-4 the policy collapsed to junk).
 */
export const JsxPpoSchema = LmPpoSchema.extend({
  lambda: redefault(PpoSchema.shape.lambda, 1),
  lr: redefault(PpoSchema.shape.lr, 1e-4),
  minibatches: redefault(PpoSchema.shape.minibatches, 2),
  kl: JsxKlSchema.default(JsxKlSchema.parse({})),
});

/** A whole `jsx` trial: SFT stage, PPO, rewards, evaluation. */
export const JsxRunSchema = z.object({
  seed: z.number().int().default(1).describe(
    "PPO trial seed (value head, sampling, minibatches)",
  ),
  model: JsxModelSchema.default(JsxModelSchema.parse({})),
  sft: JsxSftSchema.default(JsxSftSchema.parse({})),
  ppo: JsxPpoSchema.default(JsxPpoSchema.parse({})),
  updates: z.number().int().min(1).default(40).describe("PPO updates"),
  samples_per_prompt: z.number().int().min(1).default(4).describe(
    "responses per prompt per update (5 prompts: batch = 5 × this)",
  ),
  max_new_tokens: z.number().int().min(1).max(96).default(72).describe(
    "most tokens per response",
  ),
  rewards: z.array(RewardRefSchema).min(1).default([{ name: "jsx", weight: 1 }]).describe(
    "the reward: Σ weight · component (built-ins: jsx, parse, structure, length)",
  ),
  eval: z.object({
    samples_per_prompt: z.number().int().min(1).default(20).describe(
      "responses per prompt per evaluation",
    ),
    seed: z.number().int().default(12345).describe("sampling seed of every evaluation"),
    execute: z.boolean().default(true).describe(
      "run valid components in the sandbox (exec_rate)",
    ),
    timeout_ms: z.number().int().min(10).default(2000).describe(
      "sandbox time limit per component",
    ),
  }).strict().default({ samples_per_prompt: 20, seed: 12345, execute: true, timeout_ms: 2000 }),
  checkpoint_every: z.number().int().min(0).default(0).describe(
    "checkpoint every k updates (0: only the final state)",
  ),
}).strict();

export type JsxRunConfig = z.infer<typeof JsxRunSchema>;
export type JsxRunInput = z.input<typeof JsxRunSchema>;

/** Parse and default a trial config; throws {@link ConfigError} naming every bad key. */
export function parseJsxConfig(input: unknown): JsxRunConfig {
  const r = JsxRunSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, input, "jsx config"));
  const c = r.data;
  const longest = Math.max(...JSX_PROMPTS.map((p) => byteEncode(p).length));
  if (longest + c.max_new_tokens > c.model.n_positions) {
    throw new ConfigError(
      `jsx config: max_new_tokens ${c.max_new_tokens} + the longest prompt (${longest} tokens) ` +
        `exceeds model.n_positions ${c.model.n_positions}; lower max_new_tokens or raise n_positions`,
    );
  }
  return c;
}

/** The GptConfig of a model section. */
export const jsxGptConfig: (m: JsxRunConfig["model"]) => GptConfig = byteGptConfig;

// ---- the SFT stage -------------------------------------------------------------

/** Config of the SFT stage: the model and the sft sections. */
export const JsxSftStageSchema = z.object({
  model: JsxModelSchema.default(JsxModelSchema.parse({})),
  sft: JsxSftSchema.default(JsxSftSchema.parse({})),
}).strict();
export type JsxSftStageConfig = z.infer<typeof JsxSftStageSchema>;

/** The SFT stage: a tiny GPT briefly trained on the generated corpus, saved to `<outDir>/model`. */
export const jsxSftStage: SentimentStageDef<JsxSftStageConfig> = {
  name: "jsx-sft",
  description: "jsx: SFT of the starting policy on generated (prompt, component) pairs",
  schema: JsxSftStageSchema,
  async run(config, outDir, ctx) {
    const c = JsxSftStageSchema.parse(config);
    const s = c.sft;
    const corpus = (seed: number, size: number) =>
      makeJsxCorpus({ seed, size, functionShare: s.function_share });
    const m = await fitByteSft(
      jsxGptConfig(c.model),
      s,
      corpus(s.corpus_seed, s.corpus_size),
      corpus(s.corpus_seed + 1_000_003, 256),
      stageSession(ctx),
    );
    await saveSftStage(`${outDir}/model`, m, {
      stage: "jsx-sft",
      version: JSX_STAGE_VERSION,
      config: c,
    });
  },
};

/** The task's stages by name (for the experiment runner's stage cache). */
export const JSX_STAGES = {
  [jsxSftStage.name]: jsxSftStage,
} as Record<string, SentimentStageDef<unknown>>;

/**
 * A stage cache without the experiment runner, as sentiment's `localStageCache` but over
 * {@link JSX_STAGES}: `<cacheDir>/<name>-<hash>`, written in a `.tmp-` sibling and renamed
 * whole, reused by later calls with the same config.
 */
export function jsxLocalStageCache(
  cacheDir = "results/.stages",
  ctx: SentimentStageContext = {},
): SentimentStageFn {
  return localStageCache(cacheDir, ctx, {
    name: JSX_TASK,
    stages: JSX_STAGES,
    version: JSX_STAGE_VERSION,
  });
}

/** Options shared by the stage functions. */
export interface JsxStageOptions {
  /** Stage folders from here (the runner's `ctx.stage`); default {@link jsxLocalStageCache}. */
  stage?: SentimentStageFn;
  /** Cache folder of the default {@link jsxLocalStageCache} (default `results/.stages`). */
  cacheDir?: string;
  session?: SessionOptions;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** A trained (or cached) SFT policy. */
export interface JsxSftStage {
  /** Its Hugging Face folder (`<stage folder>/model`). */
  dir: string;
  hash: string;
  cfg: GptConfig;
  params: Record<string, Float32Array | Float64Array>;
  /** Held-out mean NLL per response token (nats). */
  heldOutNll: number;
  cached: boolean;
}

/** The starting policy: the `jsx-sft` stage's folder (trained once per config), loaded. */
export async function trainJsxSft(
  input: Partial<Pick<JsxRunInput, "model" | "sft">> = {},
  opts: JsxStageOptions = {},
): Promise<JsxSftStage> {
  const c = JsxSftStageSchema.parse({ model: input.model, sft: input.sft });
  const stage = opts.stage ??
    jsxLocalStageCache(opts.cacheDir, {
      threads: opts.session?.threads,
      device: opts.session?.device,
    });
  const t0 = performance.now();
  const r = await stage(jsxSftStage.name, c);
  const dir = `${r.dir}/model`;
  const f = await loadHfFolder(dir);
  const meta = f.config.proxima_stage as { held_out_nll: number };
  opts.log?.(
    `jsx sft: ${
      r.cached ? "cached" : `trained in ${((performance.now() - t0) / 1e3).toFixed(1)} s`
    }, held-out NLL ${meta.held_out_nll.toFixed(3)} nats/token: ${dir}`,
  );
  return {
    dir,
    hash: r.hash,
    cfg: f.cfg,
    params: f.params,
    heldOutNll: meta.held_out_nll,
    cached: r.cached,
  };
}

// ---- evaluation ----------------------------------------------------------------

/** What {@link evaluateJsxPolicy} reports. */
export interface JsxEval {
  /** Share of samples that are valid JSX components. */
  structure_rate: number;
  /** Share of samples that parse as JSX. */
  parse_rate: number;
  /** Share of samples that are valid components and return an element in the sandbox (null: not run). */
  exec_rate: number | null;
  /** Mean task reward ({@link jsxReward}). */
  reward: number;
  /** Mean KL(π‖π_ref) per response (Σ_t log π − log π_ref, k1). */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Share of responses that ended with EOS. */
  eos_rate: number;
  /** Structure rate per prompt. */
  per_prompt: { prompt: string; structure_rate: number }[];
  /** The first sample of each prompt, decoded and judged. */
  examples: { prompt: string; response: string; component: string | null; reward: number }[];
}

/**
 * Sample `samplesPerPrompt` responses to each of {@link JSX_PROMPTS} (plain sampling from
 * `new Rng(seed)`) from the problem's current policy and judge them — the same prompts and
 * seed before and after PPO. With `execute`, each distinct valid component runs once in the
 * sandbox (no permissions, `timeoutMs`).
 */
export async function evaluateJsxPolicy(
  problem: LmProblem,
  opts: {
    samplesPerPrompt: number;
    seed: number;
    maxNewTokens: number;
    execute?: boolean;
    timeoutMs?: number;
    session?: SessionOptions;
  },
): Promise<JsxEval> {
  const n = opts.samplesPerPrompt * JSX_PROMPTS.length;
  const promptTexts = jsxBatchPrompts(n, opts.samplesPerPrompt);
  const prompts = promptTexts.map((p) => byteEncode(p));
  const gen = await generate(
    { cfg: problem.model, params: problem.policyParams() },
    prompts,
    {
      maxNewTokens: opts.maxNewTokens,
      eosTokenId: BYTE_EOS_ID,
      padTokenId: BYTE_EOS_ID,
      rng: new Rng(opts.seed),
      session: opts.session,
    },
  );
  const ref = await problem.rescore(problem.reference, gen);
  let kl = 0, len = 0;
  for (let i = 0; i < gen.rows * gen.cols; i++) {
    if (gen.mask[i]) kl += gen.logp[i] - ref.logp[i], len++;
  }
  const texts = gen.responses.map(decodeText);
  const names = texts.map(jsxComponentName);
  const rewards = texts.map((t, i) => jsxReward(t, jsxRefLength(promptTexts[i])));
  let exec: number | null = null;
  if (opts.execute) {
    const runs = new Map<string, boolean>();
    for (const [i, name] of names.entries()) {
      if (name === null || runs.has(texts[i])) continue;
      const r = await runComponentInSandbox(texts[i], name, { timeoutMs: opts.timeoutMs });
      runs.set(texts[i], r.ok);
    }
    exec = texts.filter((t, i) => names[i] !== null && runs.get(t)).length / n;
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    structure_rate: names.filter((x) => x !== null).length / n,
    parse_rate: texts.filter(parsesAsJsx).length / n,
    exec_rate: exec,
    reward: mean(rewards),
    kl: kl / n,
    response_length: len / n,
    eos_rate: gen.ended.reduce((a, b) => a + b, 0) / n,
    per_prompt: JSX_PROMPTS.map((prompt, p) => {
      const rows = names.slice(p * opts.samplesPerPrompt, (p + 1) * opts.samplesPerPrompt);
      return { prompt, structure_rate: rows.filter((x) => x !== null).length / rows.length };
    }),
    examples: JSX_PROMPTS.map((prompt, p) => {
      const i = p * opts.samplesPerPrompt;
      return { prompt, response: texts[i], component: names[i], reward: rewards[i] };
    }),
  };
}

// ---- a whole trial -----------------------------------------------------------------

/** Options of {@link runJsxTrial} (none of them changes the results). */
export interface JsxTrialOptions extends JsxStageOptions {
  /** Continue from the newest checkpoint in outDir. */
  resume?: boolean;
  /** After each PPO update, with its metrics row. */
  onUpdate?: (row: MetricsRow, update: number) => void;
  /** Once before the first PPO update, with the update it starts from. */
  onStart?: (startUpdate: number) => void;
  /** User reward functions the config's `rewards` may name (besides jsx, parse, structure, length). */
  rewards?: Record<string, UserReward>;
  /** Called once the PPO problem exists, before any update (tests, notebooks). */
  onProblem?: (problem: LmProblem, sft: JsxSftStage) => void;
}

/** What {@link runJsxTrial} returns (also written to `<outDir>/eval.json`, minus `last`). */
export interface JsxTrialResult {
  task: typeof JSX_TASK;
  sft: { hash: string; held_out_nll: number };
  /** The SFT policy (= the reference), before PPO. */
  before: JsxEval;
  /** The policy after PPO. */
  after: JsxEval;
  /** The last PPO metrics row. */
  last: MetricsRow;
}

/** Files a trial writes in outDir (all removed again when a reward function fails). */
export const JSX_TRIAL_OUTPUTS: readonly string[] = LM_TRIAL_OUTPUTS;

/**
 * One `jsx` trial: the SFT stage (cached), PPO into `outDir` (`metrics.jsonl`,
 * `checkpoints/`, `final.safetensors`, via trainPpo), and the before/after evaluation
 * (`eval.json`). A reward function that throws or returns a non-finite value stops the trial
 * with a RewardError naming the task and the sample, and the trial's outputs in `outDir` are
 * removed (nothing partial is left).
 */
export async function runJsxTrial(
  config: JsxRunInput | JsxRunConfig,
  outDir: string,
  opts: JsxTrialOptions = {},
): Promise<JsxTrialResult> {
  const c = parseJsxConfig(config);
  const rewards = jsxRewards(c.rewards, opts.rewards); // unknown names fail before any stage
  const sft = await trainJsxSft(c, opts);
  const problem = await createLmProblem({
    model: sft.cfg,
    task: jsxTask(rewards, c.samples_per_prompt),
    cfg: c.ppo,
    seed: c.seed,
    batch: c.samples_per_prompt * JSX_PROMPTS.length,
    maxNewTokens: c.max_new_tokens,
    eosTokenId: BYTE_EOS_ID,
    padTokenId: BYTE_EOS_ID,
    init: sft.params,
    device: opts.session?.device,
    threads: opts.session?.threads,
  });
  const evalOpts = {
    samplesPerPrompt: c.eval.samples_per_prompt,
    seed: c.eval.seed,
    maxNewTokens: c.max_new_tokens,
    execute: c.eval.execute,
    timeoutMs: c.eval.timeout_ms,
    session: opts.session,
  };
  opts.onProblem?.(problem, sft);
  const { before, after, last } = await runLmPpo(
    problem,
    c,
    outDir,
    opts,
    () => evaluateJsxPolicy(problem, evalOpts),
  );
  const result: JsxTrialResult = {
    task: JSX_TASK,
    sft: { hash: sft.hash, held_out_nll: sft.heldOutNll },
    before,
    after,
    last,
  };
  // eval.json is part of the result bundle: stage hashes only (no cache paths or flags).
  const { last: _, ...saved } = result;
  await writeEvalJson(outDir, saved);
  return result;
}

/** Files that hold a finished trial's final state: when both exist the trial is done. */
export const JSX_FINAL_FILES: readonly string[] = ["final.safetensors", "eval.json"];

/** Columns this task adds to trainPpo's metrics.jsonl rows. */
export const JSX_METRIC_COLUMNS: readonly string[] = [
  "score_mean",
  "response_length",
  "eos_rate",
  "logp_gap",
  "parse_rate",
  "structure_rate",
  "reward/total",
  "reward/jsx",
  "reward/parse",
  "reward/structure",
];

/** The named metrics of a finished trial (summary.json `metrics`). */
export const JSX_NAMED_METRICS: Readonly<Record<string, string>> = {
  structure_rate: "share of evaluation samples that are valid JSX components, after PPO",
  structure_rate_before: "the same for the SFT policy (the baseline)",
  parse_rate: "share of evaluation samples that parse as JSX, after PPO",
  parse_rate_before: "the same for the SFT policy",
  exec_rate:
    "share of evaluation samples whose component returns an element in the sandbox, after PPO",
  exec_rate_before: "the same for the SFT policy",
  reward: "mean task reward of the evaluation samples after PPO",
  reward_before: "mean task reward of the SFT policy",
  kl: "KL(π‖π_ref) per response of the evaluation samples after PPO (nats)",
  response_length: "mean response length after PPO (tokens)",
  sft_nll: "held-out NLL of the SFT policy (nats/token)",
};

/**
 * Summary of a finished trial folder (deterministic, no times): the named metrics from
 * `eval.json` (in outDir or outDir/checkpoints), the last metrics row and the column means.
 */
export async function summarizeJsxTrial(outDir: string): Promise<{
  metrics: Record<string, number | null>;
  last?: MetricsRow;
  mean: Record<string, number | null>;
}> {
  const { evaluation: e, last, mean } = await readLmTrial<Omit<JsxTrialResult, "last">>(outDir);
  return {
    metrics: {
      structure_rate: e.after.structure_rate,
      structure_rate_before: e.before.structure_rate,
      parse_rate: e.after.parse_rate,
      parse_rate_before: e.before.parse_rate,
      exec_rate: e.after.exec_rate,
      exec_rate_before: e.before.exec_rate,
      reward: e.after.reward,
      reward_before: e.before.reward,
      kl: e.after.kl,
      response_length: e.after.response_length,
      sft_nll: e.sft.held_out_nll,
    },
    ...(last ? { last } : {}),
    mean,
  };
}

/**
 * The `jsx` task as a trial kind, in the shape of lib/experiment's `TrialKind` (this layer
 * does not import it); lib/experiment/jsx_kind.ts registers it, so experiment files can say
 * `task: "jsx"`, with the SFT stage in the runner's stage cache.
 */
export const JSX_TRIAL_KIND = {
  name: JSX_TASK,
  aliases: [] as string[],
  description: "RLHF-style PPO on React components: reward from a real JSX parser; structure rate",
  schema: JsxRunSchema,
  check(config: JsxRunConfig) {
    try {
      parseJsxConfig(config);
      return [];
    } catch (e) {
      return [{
        key: "max_new_tokens",
        cause: (e as Error).message,
        fix: "lower max_new_tokens or raise model.n_positions",
      }];
    }
  },
  work: (c: JsxRunConfig) => ({
    total: c.updates,
    unit: "updates",
    steps: c.samples_per_prompt * JSX_PROMPTS.length, // samples per update
  }),
  finalFiles: [...JSX_FINAL_FILES],
  async run(config: JsxRunConfig, outDir: string, ctx: SentimentRunContext): Promise<void> {
    const per = config.samples_per_prompt * JSX_PROMPTS.length;
    await runJsxTrial(config, outDir, {
      resume: ctx.resume,
      stage: ctx.stage,
      session: { threads: ctx.threads, device: ctx.device },
      onStart: (u) => ctx.onProgress({ done: u, total: config.updates, step: u * per }),
      onUpdate: (row, u) =>
        ctx.onProgress({
          done: u,
          total: config.updates,
          step: u * per,
          info: { structure: row.structure_rate, parse: row.parse_rate, kl: row.kl_ref },
        }),
    });
  },
  summarize: (outDir: string) => summarizeJsxTrial(outDir),
  metricNames: {
    named: { ...JSX_NAMED_METRICS },
    columns: [...PPO_METRIC_COLUMNS, ...JSX_METRIC_COLUMNS, "reward/length"],
  },
  stages: JSX_STAGES,
};
