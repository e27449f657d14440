/**
 * Loading bundles from disk (derived swept keys, verification, clear errors) and the
 * markdown / CSV tables built from them.
 */
import assert from "node:assert/strict";
import {
  deriveSweptKeys,
  flattenConfig,
  loadExperimentResults,
  loadResults,
  ReportError,
  trialMetric,
} from "../../lib/report/bundles.ts";
import { summaryTable, toCsv, toMarkdown, trialsTable } from "../../lib/report/tables.ts";
import { memTrial, sentimentTrials, tempDir, writeFakeBundle } from "./helpers.ts";

Deno.test("flattenConfig and deriveSweptKeys: differing keys, seed excluded", () => {
  assert.deepEqual(flattenConfig({ seed: 1, ppo: { kl: { beta: 0.1 } }, hidden: [64, 64] }), {
    seed: 1,
    "ppo.kl.beta": 0.1,
    hidden: [64, 64],
  });
  assert.deepEqual(
    deriveSweptKeys([
      { seed: 1, lr: 1e-3, hidden: [64], clip: 0.2 },
      { seed: 2, lr: 3e-4, hidden: [64], clip: 0.2 },
      { seed: 3, lr: 3e-4, hidden: [32], clip: 0.2, extra: 1 },
    ]),
    ["extra", "hidden", "lr"],
  );
  assert.deepEqual(deriveSweptKeys([{ seed: 1, lr: 1 }]), []);
});

Deno.test("loadResults: a sentiment β sweep on disk, swept key derived, sorted by β then seed", async () => {
  const root = await tempDir("load");
  try {
    for (const t of sentimentTrials([0.1, 0.01], [2, 1])) await writeFakeBundle(`${root}/kl`, t);
    // Stage cache and unfinished trials must not be read as bundles of the experiment.
    await writeFakeBundle(`${root}/.stages/sft`, sentimentTrials([9], [9])[0]);
    await Deno.mkdir(`${root}/kl/.tmp-0123456789abcdef`);
    const exps = await loadResults([root], { verify: true });
    assert.deepEqual(exps.map((e) => e.name), ["kl"]);
    const kl = exps[0];
    assert.deepEqual(kl.sweptKeys, ["ppo.kl.beta"]);
    assert.deepEqual(kl.tasks, ["sentiment"]);
    assert.deepEqual(
      kl.trials.map((t) => [t.swept["ppo.kl.beta"], t.seed]),
      [[0.01, 1], [0.01, 2], [0.1, 1], [0.1, 2]],
    );
    assert.match(kl.warnings.join("\n"), /1 unfinished trial \(0123456789abcdef\) left out/);
    const t0 = kl.trials[0];
    assert.match(t0.bundleHash, /^[0-9a-f]{64}$/);
    assert.equal(t0.rows.length, 3);
    assert.ok(t0.columns.includes("kl_ref") && !t0.columns.includes("episodic_return"));
    // Named metric, column last value, column mean.
    assert.equal(trialMetric(t0, "gold_score"), t0.summary.metrics.gold_score);
    assert.equal(trialMetric(t0, "entropy"), 2 - 0.3);
    assert.ok(Math.abs(trialMetric(t0, "clipfrac:mean")! - 0.02) < 1e-12);
    assert.equal(trialMetric(t0, "nope"), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadResults: errors name the path and the fix", async () => {
  const root = await tempDir("errors");
  try {
    await assert.rejects(
      () => loadResults([`${root}/kl`]),
      (e: Error) =>
        e instanceof ReportError &&
        e.message.includes(`${root}/kl: no such folder`) &&
        e.message.includes("deno task sweep experiments/kl.ts"),
    );
    await Deno.mkdir(`${root}/empty`);
    await assert.rejects(
      () => loadExperimentResults(`${root}/empty`),
      /empty: no bundles found — run `deno task sweep experiments\/empty\.ts` first/,
    );
    await Deno.writeTextFile(`${root}/file.txt`, "");
    await assert.rejects(() => loadResults([`${root}/file.txt`]), /file\.txt: not a folder/);
    await assert.rejects(() => loadResults([]), /no results folder given/);

    // A changed byte: refused with verification, named file; loads without it.
    const dir = await writeFakeBundle(`${root}/kl`, sentimentTrials([0.1], [1])[0]);
    const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, text.replace('"update":1', '"update":7'));
    await assert.rejects(
      () => loadResults([`${root}/kl`], { verify: true }),
      /fails verification \(metrics\.jsonl: differs.*deno task verify/,
    );
    assert.equal((await loadResults([`${root}/kl`]))[0].trials[0].rows[0].update, 7);
    // A broken line is named by file and line number.
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, text + "{oops\n");
    await assert.rejects(() => loadResults([`${root}/kl`]), /metrics\.jsonl:4: not JSON/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("summaryTable: one row per swept value with mean ± std, CI and seeds (by hand)", () => {
  const KEY = "ppo.kl.beta";
  const trials = sentimentTrials([0.1, 0.01], [1, 2, 3]).map((t, i) => memTrial(t, [KEY], `${i}`));
  // Drop gold_score from one seed of β = 0.1: that cell must say n=2.
  trials[0].summary.metrics.gold_score = null; // β = 0.1, seed 1
  const exp = { sweptKeys: [KEY], trials };
  const { markdown, csv, rows } = summaryTable(exp, ["kl", "gold_score"]);
  assert.deepEqual(rows.map((r) => r.series), ["0.01", "0.1"]);
  // β = 0.01, kl at update 3 = 0.3/1.1 + 0.001·seed = 0.272727 + {0.001, 0.002, 0.003}:
  // mean 0.274727, std 0.001 (deviations −0.001, 0, 0.001 -> var 2e-6/2), sem 0.001/√3,
  // t(2) = 4.3027 -> half width 0.0024841.
  const kl = rows[0].stats.kl;
  assert.ok(Math.abs(kl.mean! - 0.2747273) < 1e-6);
  assert.ok(Math.abs(kl.std! - 0.001) < 1e-12);
  assert.ok(Math.abs(kl.ci95![1] - kl.mean! - 0.0024841) < 1e-6);
  assert.equal(rows[1].stats.gold_score.n, 2);

  const md = toMarkdown(markdown);
  const lines = md.trimEnd().split("\n");
  assert.equal(lines.length, 4, md); // header, rule, one row per β
  assert.equal(
    lines[0],
    "| ppo.kl.beta | seeds | kl (mean ± std) | kl 95% CI | gold_score (mean ± std) | gold_score 95% CI |",
  );
  assert.match(lines[2], /^\| 0\.01 \| 3 \| 0\.2747 ± 0\.001 \| \[0\.2722, 0\.2772\] \|/);
  assert.match(lines[3], /^\| 0\.1 \| 3 \| .* \(n=2\) \|/);

  const csvLines = toCsv(csv).trimEnd().split("\n");
  assert.equal(
    csvLines[0],
    "ppo.kl.beta,seeds,kl_mean,kl_std,kl_ci95_lo,kl_ci95_hi,kl_n,gold_score_mean,gold_score_std," +
      "gold_score_ci95_lo,gold_score_ci95_hi,gold_score_n",
  );
  const cells = csvLines[1].split(",");
  assert.equal(cells[0], "0.01");
  assert.equal(Number(cells[2]), kl.mean); // full precision round-trips
});

Deno.test("trialsTable and toCsv/toMarkdown: one row per trial, quoting and escaping", () => {
  const KEY = "ppo.kl.beta";
  const trials = sentimentTrials([0.1], [1, 2]).map((t, i) => memTrial(t, [KEY], `id${i}`));
  const t = trialsTable({ sweptKeys: [KEY], trials }, ["gold_score"]);
  assert.deepEqual(t.markdown.headers, ["trial", KEY, "seed", "gold_score", "bundle"]);
  assert.equal(t.markdown.rows.length, 2);
  assert.deepEqual(t.csv.rows.map((r) => r[0]), ["id0", "id1"]);
  assert.equal(
    toCsv({ headers: ["a", "b"], rows: [['x,"y"', null], [1.5, "z"]] }),
    'a,b\n"x,""y""",\n1.5,z\n',
  );
  assert.equal(
    toMarkdown({ headers: ["k"], rows: [["a|b"]] }),
    "| k |\n| --- |\n| a\\|b |\n",
  );
});
