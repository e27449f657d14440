/**
 * The `jsx` world: six templates over small word lists ({@link JSX_WORDS}), each a prompt and
 * a one-line component, written as an arrow function (or, in `function_share` of the corpus,
 * as a function declaration); the five PPO and evaluation prompts ({@link JSX_PROMPTS}) with
 * their references (the arrow form) and reference lengths. See lib/tasks/jsx/task.ts.
 *
 * @example
 * ```ts
 * jsxPrompt({ kind: "button", word: "save" }); // "A button labelled Save"
 * jsxReference("A link to help"); // ' const HelpLink = () => <a href="/help">Help</a>;'
 * ```
 * @module
 */
import { Rng } from "../../rng.ts";
import type { TextPair } from "../../nn/corpus.ts";

/** The task's name (in errors and registries). */
export const JSX_TASK = "jsx";

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
