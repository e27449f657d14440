/**
 * Example reward functions for `deno task train --task lm --reward_fn rewards/math.ts:exact`
 * (README, "Your own rewards"). A reward function takes one sample — the decoded response
 * (`text`), the prompt, token ids, whether it ended with EOS, and `row`: the prompt's dataset
 * row, every column besides `prompt` / `messages` — and returns a finite number.
 *
 * @example
 * ```ts
 * exact({ text: "<answer>4</answer>", row: { answer: 4 } } as RewardSample); // 1
 * ```
 * @module
 */
import type { RewardSample } from "../lib/tasks/rewards.ts";
import { finalAnswer, sameAnswer } from "../lib/tasks/verifiable.ts";

/** 1 when the response's final answer (answer tag, \boxed{}, last number) is the row's answer. */
export function exact(s: RewardSample): number {
  const got = finalAnswer(s.text);
  return got !== null && sameAnswer(got, s.row.answer as string | number) ? 1 : 0;
}

/** −1 per 100 characters: a gentle push toward short responses (weight it low). */
export function brevity(s: RewardSample): number {
  return -s.text.length / 100;
}
