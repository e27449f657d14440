/**
 * The built-in verifiable rewards on hand-written cases: exact_match (answer tag, \boxed{},
 * last number; right, wrong, no answer, malformed tags; numbers normalised), format (default
 * and custom patterns, a bad pattern refused), code_tests (passing, failing, partial, broken,
 * and a function that loops forever, stopped at the time limit).
 */
import assert from "node:assert/strict";
import {
  codeOf,
  codeTests,
  exactMatch,
  finalAnswer,
  formatReward,
  verifiableRewards,
} from "../../lib/tasks/verifiable.ts";
import type { RewardSample } from "../../lib/tasks/rewards.ts";
import { ConfigError } from "../../lib/ppo/config.ts";

const sample = (text: string, row: Record<string, unknown>): RewardSample => ({
  index: 0,
  prompt: [],
  response: [],
  promptText: "Q",
  text,
  ended: true,
  row,
});

Deno.test("exact_match: the final answer (tag, then boxed, then last number) against row.answer", () => {
  // Right answers, each way of giving one.
  assert.equal(exactMatch("<think>7+5=12</think><answer>12</answer>", 12), 1);
  assert.equal(exactMatch("so the answer is \\boxed{12}.", "12"), 1);
  assert.equal(exactMatch("7 + 5 makes 12", 12), 1);
  assert.equal(exactMatch("<answer> 1,000 </answer>", 1000), 1); // commas, spaces
  assert.equal(exactMatch("<answer>4.0</answer>", "4"), 1);
  assert.equal(exactMatch("<answer>$7</answer>", 7), 1);
  assert.equal(exactMatch("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"), 1); // nested braces
  assert.equal(exactMatch("<answer>Paris</answer>", "Paris"), 1); // text answers
  // The LAST tag counts; a tag wins over numbers elsewhere.
  assert.equal(exactMatch("<answer>3</answer> no wait <answer>12</answer>", 12), 1);
  assert.equal(exactMatch("<think>12? 13?</think><answer>11</answer>", 12), 0);
  // Wrong answers.
  assert.equal(exactMatch("<answer>13</answer>", 12), 0);
  assert.equal(exactMatch("7 + 5 makes 13", 12), 0);
  assert.equal(exactMatch("<answer>paris</answer>", "Paris"), 0);
  // No answer at all.
  assert.equal(finalAnswer("I do not know"), null);
  assert.equal(exactMatch("I do not know", 12), 0);
  assert.equal(exactMatch("", 0), 0);
  // Malformed tags: an <answer> opened and never closed (or a boxed never closed) is no answer.
  assert.equal(finalAnswer("<answer>12"), null);
  assert.equal(exactMatch("<answer>12", 12), 0);
  assert.equal(exactMatch("<answer>12</answr>", 12), 0);
  assert.equal(finalAnswer("\\boxed{12"), "12"); // an unclosed box falls through to the number
  assert.equal(finalAnswer("</answer>12<answer>"), null);
});

Deno.test("exact_match needs the row's answer column; says so", () => {
  const r = verifiableRewards();
  assert.equal(
    r.exact_match instanceof Function && r.exact_match(sample("<answer>5</answer>", { answer: 5 })),
    1,
  );
  assert.throws(
    () => (r.exact_match as (s: RewardSample) => number)(sample("5", { level: 1 })),
    /exact_match needs an "answer" column .*no "answer" \(columns: level\)/,
  );
});

Deno.test("format: the whole response must match (default <think>…</think><answer>…</answer>)", () => {
  assert.equal(formatReward("<think>5+7=12</think><answer>12</answer>"), 1);
  assert.equal(formatReward("  <think>\nx\n</think>\n<answer>12</answer>\n"), 1);
  assert.equal(formatReward("<answer>12</answer>"), 0); // no think
  assert.equal(formatReward("<think>x</think><answer>12</answer> trailing"), 0);
  assert.equal(formatReward("<think>x<answer>12</answer>"), 0); // malformed: think never closed
  assert.equal(formatReward("<think>x</think><answer>12"), 0); // answer never closed
  assert.equal(formatReward("12"), 0);
  // A custom pattern from the reward's options; a bad one is refused up front.
  const r = verifiableRewards([{ name: "format", weight: 1, options: { pattern: "^\\d+$" } }]);
  const f = r.format as (s: RewardSample) => number;
  assert.equal(f(sample("42", {})), 1);
  assert.equal(f(sample("<answer>42</answer>", {})), 0);
  assert.throws(
    () => verifiableRewards([{ name: "format", weight: 1, options: { pattern: "(" } }]),
    (e: unknown) =>
      e instanceof ConfigError &&
      /rewards\.0: options\.pattern "\(" is not a regular expression/.test((e as Error).message),
  );
});

Deno.test("code_tests: the response's function against the row's tests, in the sandbox, with a time limit", async () => {
  const tests = [{ args: [1, 2], expected: 3 }, { args: [-4, 4], expected: 0 }];
  assert.equal(await codeTests("function add(a, b) { return a + b; }", tests), 1);
  assert.equal(await codeTests("const add = (a, b) => a + b + (a < 0 ? 1 : 0);", tests), 0.5); // one of two
  assert.equal(await codeTests("```js\nconst f = (a, b) => a * b;\n```", tests), 0);
  assert.equal(codeOf("x\n```javascript\nlet y = 1;\n```"), "let y = 1;\n");
  assert.equal(await codeTests("<answer>function g(a,b){return a+b}</answer>", tests), 1);
  assert.equal(await codeTests("no code here", tests), 0); // no function
  assert.equal(await codeTests("function add(a, b) { return a + ; }", tests), 0); // syntax error
  assert.equal(await codeTests("function add() { throw new Error('x'); }", tests), 0);
  // The entry point by name (row.entry_point): the helper declared first is not it.
  const r = verifiableRewards();
  const ct = r.code_tests as (s: RewardSample) => Promise<number>;
  const code = "function helper(x) { return x; }\nfunction add(a, b) { return helper(a) + b; }";
  assert.equal(await ct(sample(code, { tests, entry_point: "add" })), 1);
  // Code that never returns is stopped at the limit and earns nothing.
  const t0 = performance.now();
  assert.equal(
    await codeTests("function add(a, b) { while (true) {} }", tests, { timeoutMs: 300 }),
    0,
  );
  assert.ok(performance.now() - t0 < 20_000);
  // The sandbox has no permissions: reading a file fails the test, not the host.
  assert.equal(
    await codeTests(
      "function add(a, b) { return Deno.readTextFileSync('/etc/hostname').length; }",
      tests,
    ),
    0,
  );
  await assert.rejects(async () => await ct(sample(code, {})), /code_tests needs a "tests" column/);
});

Deno.test("rewards/math.ts (the README's example module): exact and brevity", async () => {
  const { exact, brevity } = await import("../../rewards/math.ts");
  assert.equal(exact(sample("<think>2+2</think><answer>4</answer>", { answer: 4 })), 1);
  assert.equal(exact(sample("it is 5", { answer: "4" })), 0);
  assert.equal(exact(sample("no idea", { answer: 4 })), 0);
  assert.equal(brevity(sample("x".repeat(50), {})), -0.5);
});
