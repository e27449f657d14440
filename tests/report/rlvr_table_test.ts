/**
 * `deno task reproduce rlvr`: the table from hand-made trials (every cell from the summary
 * fields it names, the per-seed check and the verdict on Liu et al. 2025's finding both ways),
 * and its quick mode end to end: three methods, every cell filled, the same bytes again.
 */
import assert from "node:assert/strict";
import type { ReproduceTrial } from "../../lib/report/reproduce.ts";
import { buildRlvr } from "../../lib/report/rlvr_table.ts";
import { RLVR_KIND } from "../../lib/tasks/rlvr/mod.ts";
import { deno } from "../experiment/helpers.ts";

const trial = (
  advantage: string,
  seed: number,
  before: number,
  after: number,
  wrong: [number, number],
): ReproduceTrial => ({
  experiment: "rlvr",
  task: "rlvr",
  point: { "ppo.advantage": advantage, seed },
  seed,
  config: RLVR_KIND.parse({ seed, ppo: { advantage } }) as unknown as Record<string, unknown>,
  work: { total: 30, unit: "updates", steps: 64 },
  summary: {
    metrics: {
      pass1: after,
      pass1_before: before,
      passk: 0.9,
      passk_before: 0.7,
      format_rate: 1,
      response_length: 48,
      length_incorrect: wrong[1],
      length_incorrect_before: wrong[0],
      kl: 1.5,
    },
  },
});

Deno.test("rlvr table: cells from the summaries, the per-seed check, the verdict both ways", () => {
  const grow = [trial("grpo", 1, 0.3, 0.6, [40, 50]), trial("grpo", 2, 0.4, 0.65, [40, 51])];
  const flat = [trial("dr_grpo", 1, 0.3, 0.5, [40, 40]), trial("dr_grpo", 2, 0.4, 0.42, [40, 41])];
  const { markdown, json } = buildRlvr({ quick: false, trials: [...grow, ...flat] });
  assert.match(
    markdown,
    /\| GRPO \| 2 \| 0\.350 ± 0\.071 \| 0\.625 ± 0\.035 \| 0\.275 ± 0\.035 \|/,
  );
  assert.match(markdown, /\| Dr\. GRPO \| 2 \| 0\.350 ± 0\.071 \| 0\.460 ± 0\.057 \|/);
  assert.match(markdown, /\| GRPO \| 1 \| 0\.300 \| 0\.600 \| \+0\.300 \|/);
  // GRPO: gains 0.3 and 0.25 > spread 0.05; Dr. GRPO: gains 0.2, 0.02 ≤ spread 0.08.
  assert.match(markdown, /- GRPO: .* 2 of 2 seeds; smallest gain \+0\.250 > .* 0\.050: yes\./);
  assert.match(markdown, /- Dr\. GRPO: .* 2 of 2 seeds; smallest gain \+0\.020 ≤ .* 0\.080: no\./);
  // Wrong responses: GRPO +10.5 tokens, Dr. GRPO +0.5: the finding holds in direction.
  assert.match(markdown, /Verdict: Reproduced in direction: .* \+10\.50 tokens, .* \+0\.50/);
  assert.match(markdown, /43\.3% on AIME 2024/);
  assert.equal((json.methods as Record<string, { beats_spread: boolean }>).grpo.beats_spread, true);
  const same = buildRlvr({
    quick: false,
    trials: [trial("grpo", 1, 0.3, 0.6, [40, 40]), trial("dr_grpo", 1, 0.3, 0.6, [40, 40])],
  });
  assert.match(same.markdown, /Verdict: Not reproduced here: .* \+0\.00 tokens/);
  // The same trials give the same bytes.
  assert.equal(buildRlvr({ quick: false, trials: [...grow, ...flat] }).markdown, markdown);
});

Deno.test({
  name: "reproduce rlvr --quick: every cell from the bundles, identical bytes when rebuilt",
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "proxima-rlvr-" });
    const run = async () => {
      const r = await deno([
        "run",
        "-A",
        "cli/reproduce.ts",
        "rlvr",
        "--quick",
        "--quiet",
        "--jobs",
        "2",
        "--results",
        root,
      ]);
      if (r.code !== 0) throw new Error(`reproduce exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
      return await Deno.readTextFile(`${root}/reproduce/rlvr-quick/table.md`);
    };
    const a = await run();
    // The main table's rows (9 cells; the per-seed table's have 5).
    const rows = a.split("\n").filter((l) =>
      /^\| (GRPO|Dr\. GRPO|RLOO) \| 1 \|/.test(l) && l.split(" | ").length === 9
    );
    assert.equal(rows.length, 3, a);
    for (const r of rows) assert.doesNotMatch(r, /\| - \|/, r);
    assert.equal(await run(), a);
    await Deno.remove(root, { recursive: true });
  },
});
