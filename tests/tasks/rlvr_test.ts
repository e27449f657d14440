/**
 * The `rlvr` task: worked solutions and the train / held-out split by hand; a tiny trial end
 * to end in seconds (SFT stage, GRPO on exact_match + format with each problem's answer in
 * `sample.row`, the held-out evaluation before, after and every update), byte-identical when
 * run twice.
 */
import assert from "node:assert/strict";
import { Rng } from "../../lib/rng.ts";
import {
  drawRlvrProblems,
  isHeldOut,
  makeRlvrCorpus,
  RLVR_FORMAT,
  rlvrSolution,
  runRlvrTrial,
} from "../../lib/tasks/rlvr/mod.ts";
import { exactMatch, formatReward } from "../../lib/tasks/verifiable.ts";

Deno.test("rlvr world: worked solutions, the split, the rewards on them", () => {
  assert.equal(rlvrSolution(47, 38), "<think>7+8=15,4+3+1=8</think><answer>85</answer>");
  assert.equal(rlvrSolution(5, 0), "<think>5+0=5</think><answer>5</answer>");
  assert.equal(rlvrSolution(0, 0), "<think>0+0=0</think><answer>0</answer>");
  assert.equal(
    rlvrSolution(99, 99),
    "<think>9+9=18,9+9+1=19</think><answer>198</answer>",
  );
  assert.equal(rlvrSolution(7, 45), "<think>7+5=12,0+4+1=5</think><answer>52</answer>");
  for (const [a, b] of [[47, 38], [99, 99], [3, 0]]) {
    const s = rlvrSolution(a, b);
    assert.equal(exactMatch(s, a + b), 1);
    assert.equal(formatReward(s, RLVR_FORMAT), 1);
  }
  assert.equal(isHeldOut(10, 0), true); // 10 + 0 ≡ 0 (mod 10)
  assert.equal(isHeldOut(1, 3), true); // 1 + 9
  assert.equal(isHeldOut(1, 2), false);
  const train = drawRlvrProblems(new Rng(1), 500, 99, "train");
  const held = drawRlvrProblems(new Rng(1), 100, 99, "held_out");
  assert.ok(train.every((p) => !isHeldOut(p.a, p.b) && p.answer === p.a + p.b));
  assert.ok(held.every((p) => isHeldOut(p.a, p.b)));
  const corpus = makeRlvrCorpus({ seed: 2, size: 50, max: 99 });
  assert.ok(corpus.every(({ prompt }) => {
    const [a, b] = prompt.slice(0, -1).split("+").map(Number);
    return !isHeldOut(a, b);
  }));
});

const TINY = {
  updates: 2,
  model: { n_embd: 16, n_head: 2, n_layer: 1, n_positions: 64 },
  sft: { steps: 20, corpus_size: 64, batch_size: 8 },
  prompts_per_update: 2,
  samples_per_prompt: 2,
  max_new_tokens: 24,
  eval: { problems: 3, k: 2, every: 1 },
};

Deno.test("rlvr: a tiny GRPO trial end to end, rows reach the rewards, evaluation every update", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "proxima_rlvr_" });
  const run = (dir: string) =>
    runRlvrTrial(TINY, `${tmp}/${dir}`, { cacheDir: `${tmp}/.stages`, session: { threads: 1 } });
  const r = await run("a");
  for (const e of [r.before, r.after]) {
    for (const k of ["pass1", "passk", "format_rate"] as const) {
      assert.ok(e[k] >= 0 && e[k] <= 1, `${k} ${e[k]}`);
    }
    assert.ok(e.passk >= e.pass1);
    assert.ok(e.response_length > 0 && e.response_length <= 24);
    assert.equal(e.examples.length, 3);
  }
  const rows = (await Deno.readTextFile(`${tmp}/a/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(rows.length, 2);
  for (const row of rows) {
    // accuracy is exact_match's mean (the answer comes from each problem's row); format is logged.
    assert.equal(row.accuracy, row["reward/exact_match"]);
    assert.equal(row.format_rate, row["reward/format"]);
    assert.equal(row["reward/total"], row["reward/exact_match"] + 0.1 * row["reward/format"]);
    assert.equal(typeof row["eval/pass1"], "number");
  }
  // The first update's evaluation is the starting policy's: the same as eval.json's "before".
  assert.equal(rows[0]["eval/pass1"], r.before.pass1);
  // Deterministic: a second run (stage reused) writes the same metrics bytes.
  await run("b");
  assert.equal(
    await Deno.readTextFile(`${tmp}/b/metrics.jsonl`),
    await Deno.readTextFile(`${tmp}/a/metrics.jsonl`),
  );
  await Deno.remove(tmp, { recursive: true });
});
