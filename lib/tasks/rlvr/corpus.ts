/**
 * The `rlvr` world: seeded two-number addition problems (`"47+38="`), each with a worked
 * solution in the R1 format — the column sums inside `<think>`, the sum inside `<answer>`:
 *
 *     "47+38="  ->  "<think>7+8=15,4+3+1=8</think><answer>85</answer>"
 *
 * (ones column, then tens column with its carry; a third column only when the sum has one).
 * The answer is what `exact_match` checks (lib/tasks/verifiable.ts), the tags what `format`
 * checks. Operands are drawn uniformly from [0, max_operand]. The problems split by a fixed
 * rule into train (SFT corpus and RL prompts) and held-out (evaluation, never trained on):
 * held out when (a + 3b) mod 10 = 0 — one problem in ten, spread over every operand range.
 *
 * @example
 * ```ts
 * rlvrSolution(47, 38); // "<think>7+8=15,4+3+1=8</think><answer>85</answer>"
 * drawRlvrProblems(new Rng(1), 2, 99, "train"); // [{ a: .., b: .., answer: .. }, ...]
 * ```
 * @module
 */
import type { TextPair } from "../../nn/corpus.ts";
import { Rng } from "../../rng.ts";

/** The task's name. */
export const RLVR_TASK = "rlvr";

/** One problem: a + b, and its answer. */
export interface RlvrProblem {
  a: number;
  b: number;
  answer: number;
}

/** The prompt of a problem. */
export const rlvrPrompt = (p: { a: number; b: number }): string => `${p.a}+${p.b}=`;

/** The worked solution: each column's sum (with the carry in), then the answer. */
export function rlvrSolution(a: number, b: number): string {
  const steps: string[] = [];
  let carry = 0;
  for (let x = a, y = b; x > 0 || y > 0 || steps.length === 0;) {
    const dx = x % 10, dy = y % 10, s = dx + dy + carry;
    steps.push(`${dx}+${dy}${carry ? `+${carry}` : ""}=${s}`);
    carry = s >= 10 ? 1 : 0;
    x = Math.floor(x / 10), y = Math.floor(y / 10);
  }
  return `<think>${steps.join(",")}</think><answer>${a + b}</answer>`;
}

/** Whether a problem is held out (evaluation only): (a + 3b) mod 10 = 0. */
export const isHeldOut = (a: number, b: number): boolean => (a + 3 * b) % 10 === 0;

/** `n` problems of one split, operands uniform in [0, max], drawn from `rng`. */
export function drawRlvrProblems(
  rng: Rng,
  n: number,
  max: number,
  split: "train" | "held_out",
): RlvrProblem[] {
  const out: RlvrProblem[] = [];
  while (out.length < n) {
    const a = rng.int(max + 1), b = rng.int(max + 1);
    if (isHeldOut(a, b) === (split === "held_out")) out.push({ a, b, answer: a + b });
  }
  return out;
}

/** The SFT corpus: `size` training problems from `seed`, each with its worked solution. */
export function makeRlvrCorpus(opts: { seed: number; size: number; max: number }): TextPair[] {
  return drawRlvrProblems(new Rng(opts.seed), opts.size, opts.max, "train").map((p) => ({
    prompt: rlvrPrompt(p),
    response: rlvrSolution(p.a, p.b),
  }));
}

/** The `format` pattern of the task: `<think>` column sums `</think><answer>` a number `</answer>`. */
export const RLVR_FORMAT = String.raw`^<think>[0-9+=,]+</think><answer>-?[0-9]+</answer>$`;
