/**
 * The README's methods table, generated from the method records (lib/ppo/methods): name,
 * paper, what it holds, its grouping, advantage, ratio level, clipping, loss type and KL, the
 * paper's defaults. `deno run -A scripts/methods_readme.ts` rewrites the README's block between
 * {@link README_START} and {@link README_END}; tests/report/methods_readme_test.ts keeps the two
 * in step.
 *
 * @example
 * ```ts
 * console.log(methodsReadmeTable());
 * ```
 * @module
 */
import { type MethodRecord, METHODS } from "../ppo/methods/mod.ts";
import { markdownTable } from "./reproduce.ts";

export const README_START = "<!-- methods-table:start (generated: scripts/methods_readme.ts) -->";
export const README_END = "<!-- methods-table:end -->";

const num = (x: number | null) => (x === null ? "task's" : String(x));

function holds(m: MethodRecord): string {
  return [
    "policy",
    ...(m.holds.critic ? ["value"] : []),
    ...(m.holds.reference ? ["reference"] : []),
    ...(m.holds.rewardModel ? ["reward model"] : []),
  ].join(", ");
}

function kl(m: MethodRecord): string {
  if (m.kl.placement === "none") return "none (β 0)";
  if (m.kl.placement === "implicit") return `implicit, β ${num(m.kl.beta)}`;
  return `${m.kl.placement}, ${m.kl.estimator ?? "task's"}, β ${num(m.kl.beta)}`;
}

function clipping(m: MethodRecord): string {
  if (!m.online) return "-";
  const c = m.clipping;
  const hi = c.epsilonHigh === null ? "" : ` / ${c.epsilonHigh}`;
  const d = c.delta === null ? "" : `, δ ${c.delta}`;
  return `${num(c.epsilon)}${hi}${d}`;
}

/** The methods table (markdown), one row per record. */
export function methodsReadmeTable(): string {
  return markdownTable(
    ["`method`", "Paper", "Holds", "Groups", "Advantage", "Ratio", "ε / ε_high", "Loss", "KL"],
    METHODS.map((m) => [
      `\`${m.name}\` (${m.label})`,
      `[${m.citation.short}](${m.citation.url})`,
      holds(m),
      m.grouping === "prompt" ? "per prompt" : "-",
      m.advantage ?? "offline",
      m.ratio ?? (m.online ? "token" : "-"),
      clipping(m),
      m.lossType ?? "token",
      kl(m),
    ]),
  );
}

/** The README text with its generated block replaced by the current table. */
export function withMethodsTable(readme: string): string {
  const i = readme.indexOf(README_START), j = readme.indexOf(README_END);
  if (i < 0 || j < i) throw new Error(`README: no ${README_START} … ${README_END} block`);
  return readme.slice(0, i + README_START.length) + "\n\n" + methodsReadmeTable() + "\n\n" +
    readme.slice(j);
}

/** A markdown table's rows as trimmed cells (separator rows as "---"), whitespace-insensitive. */
export function tableCells(block: string): string[][] {
  return block.split("\n").filter((l) => l.trim().startsWith("|")).map((l) =>
    l.trim().replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => {
      const t = c.trim();
      return /^:?-+:?$/.test(t) ? "---" : t;
    })
  );
}
