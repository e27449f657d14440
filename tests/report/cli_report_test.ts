/**
 * Acceptance: `deno task report results/<experiment>` on bundles of a real (tiny) sweep —
 * CartPole-v1, β ∈ {0.3, 3} × seeds {1, 2}, 4 updates each — writes report.md, tables and
 * plots next to the bundles; the same bundles give the same bytes; --out and --metric work;
 * bad input exits 2 with a message naming the path and the fix.
 */
import assert from "node:assert/strict";
import { deno, tempDir } from "../experiment/helpers.ts";
import { planMetrics, writeReports } from "../../cli/report.ts";
import { loadExperimentResults } from "../../lib/report/bundles.ts";
import { pngHeader, sentimentTrials, svgTexts, writeFakeBundle } from "./helpers.ts";

const FIXTURE = "tests/report/fixtures/tiny_kl.ts";

async function readTree(dir: string, rel = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${dir}/${rel}`)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await readTree(dir, r)) out.set(k, v); }
    else out.set(r, await Deno.readFile(`${dir}/${r}`));
  }
  return out;
}

Deno.test("deno task report: report.md, tables and plots from a real sweep; deterministic; errors", async (t) => {
  const root = await tempDir("report-cli");
  const exp = `${root}/tiny-kl`;
  try {
    const sw = await deno(["run", "-A", "cli/sweep.ts", FIXTURE, "--results", root, "--quiet"]);
    assert.equal(sw.code, 0, sw.stdout + sw.stderr);
    assert.match(sw.stdout, /tiny-kl: 4 trials \(4 done\)/);

    let first = new Map<string, Uint8Array>();
    await t.step("writes report.md, summary/trials .md/.csv and SVG+PNG plots", async () => {
      const r = await deno(["task", "report", exp]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`tiny-kl: wrote ${exp}/report/ \\(\\d+ files\\)`));
      first = await readTree(`${exp}/report`);
      const names = [...first.keys()].sort();
      for (
        const f of [
          "report.md",
          "summary.md",
          "summary.csv",
          "trials.md",
          "trials.csv",
          "plots/curve-episodic_return.svg",
          "plots/curve-episodic_return.png",
          "plots/curve-kl_penalty.png",
          "plots/frontier.png",
          "plots/final-return.png",
          "plots/diagnostics.png",
        ]
      ) {
        assert.ok(names.includes(f), `missing ${f} in ${names.join(", ")}`);
        assert.match(r.stdout, new RegExp(`${exp}/report/${f.replace(".", "\\.")}`));
      }
      // Every PNG is a real, non-empty PNG; every SVG has a PNG twin and a spec.
      for (const f of names.filter((n) => n.endsWith(".png"))) {
        const { width, height } = pngHeader(first.get(f)!);
        assert.ok(width > 200 && height > 100, `${f}: ${width}×${height}`);
        assert.ok(names.includes(f.replace(/\.png$/, ".svg")));
        assert.ok(names.includes(f.replace(/\.png$/, ".vl.json")));
      }
      const dec = new TextDecoder();
      const curveText = svgTexts(dec.decode(first.get("plots/curve-episodic_return.svg")));
      for (const want of ["episodic_return", "update", "ppo.penalty.beta", "0.3", "3"]) {
        assert.ok(curveText.includes(want), `curve SVG lacks "${want}"`);
      }
      const finalText = svgTexts(dec.decode(first.get("plots/final-return.svg")));
      assert.ok(finalText.includes("return") && finalText.includes("ppo.penalty.beta"));

      const md = dec.decode(first.get("report.md"));
      assert.match(md, /^# tiny-kl: report/);
      assert.match(md, /swept: `ppo\.penalty\.beta` ∈ \{0\.3, 3\}; 2 settings × 2 seeds/);
      assert.match(
        md,
        /\| ppo\.penalty\.beta \| seeds \| return \(mean ± std\) \| return 95% CI \|/,
      );
      assert.match(md, /!\[episodic_return vs update\]\(plots\/curve-episodic_return\.png\)/);
      // One summary row per β, 2 seeds each; one trials row per bundle.
      const summary = dec.decode(first.get("summary.md")).trimEnd().split("\n");
      assert.equal(summary.length, 4);
      assert.match(summary[2], /^\| 0\.3 \| 2 \| /);
      assert.match(summary[3], /^\| 3 \| 2 \| /);
      const csv = dec.decode(first.get("trials.csv")).trimEnd().split("\n");
      assert.equal(csv.length, 5);
      assert.match(csv[0], /^trial,ppo\.penalty\.beta,seed,return,/);
      // Hidden temporaries are gone: only the report folder was added.
      const hidden = (await Array.fromAsync(Deno.readDir(exp))).map((e) => e.name)
        .filter((n) => n.includes("report") && n !== "report");
      assert.deepEqual(hidden, []);
    });

    await t.step(
      "the same bundles give byte-identical reports (the old one is replaced)",
      async () => {
        await Deno.writeTextFile(`${exp}/report/stale.txt`, "from an older report");
        const r = await deno(["task", "report", exp]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const second = await readTree(`${exp}/report`);
        assert.deepEqual([...second.keys()].sort(), [...first.keys()].sort());
        for (const [k, v] of first) assert.deepEqual(second.get(k), v, `${k} differs`);
      },
    );

    await t.step("--metric and --out: chosen metrics only, written where asked", async () => {
      const out = `${root}/elsewhere`;
      const r = await deno([
        "task",
        "report",
        exp,
        "--metric",
        "clipfrac:mean",
        "--metric",
        "entropy",
        "--out",
        out,
        "--no-verify",
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const files = [...(await readTree(out)).keys()];
      assert.ok(files.includes("plots/curve-entropy.png"));
      assert.ok(files.includes("plots/curve-clipfrac.png"));
      assert.ok(files.includes("plots/final-clipfrac_mean.png"));
      assert.ok(!files.includes("plots/curve-episodic_return.png"));
      const summary = await Deno.readTextFile(`${out}/summary.md`);
      assert.match(summary, /^\| ppo\.penalty\.beta \| seeds \| clipfrac:mean \(mean ± std\) \|/);
    });

    await t.step("bad input: exit 2 and a message naming the path and the fix", async () => {
      const missing = await deno(["task", "report", `${root}/nope`]);
      assert.equal(missing.code, 2);
      assert.match(
        missing.stderr,
        new RegExp(`${root}/nope: no such folder — run \`deno task sweep experiments/nope\\.ts\``),
      );
      await Deno.mkdir(`${root}/empty`);
      const empty = await deno(["task", "report", `${root}/empty`]);
      assert.equal(empty.code, 2);
      assert.match(empty.stderr, /empty: no bundles found — run `deno task sweep/);
      const typo = await deno(["task", "report", exp, "--metric", "retrun"]);
      assert.equal(typo.code, 2);
      assert.match(typo.stderr, /no trial has metric "retrun" \(did you mean "return"\?\)/);
      const noArgs = await deno(["task", "report"]);
      assert.equal(noArgs.code, 2);
      assert.match(noArgs.stderr, /give an experiment folder, e\.g\. deno task report results\/kl/);
      // A tampered bundle is refused (verification is on by default) and named.
      const bundle = (await Array.fromAsync(Deno.readDir(exp)))
        .map((e) => e.name).filter((n) => /^[0-9a-f]{16}$/.test(n)).sort()[0];
      await Deno.writeTextFile(`${exp}/${bundle}/summary.json`, "{}\n");
      const bad = await deno(["task", "report", exp]);
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        new RegExp(`${bundle}: bundle fails verification \\(summary\\.json`),
      );
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeReports on sentiment bundles: scores and KL to the reference by default", async () => {
  const root = await tempDir("report-sentiment");
  try {
    for (const t of sentimentTrials([0, 0.05, 0.2], [1, 2])) {
      await writeFakeBundle(`${root}/kl`, t);
    }
    const plan = planMetrics(await loadExperimentResults(`${root}/kl`));
    assert.deepEqual(plan.curves, ["gold_score", "rm_score", "kl_ref"]);
    assert.deepEqual(plan.frontier, { kl: "kl", reward: "gold_score" });
    assert.deepEqual(plan.finals, ["gold_score", "kl"]);
    assert.deepEqual(plan.table.slice(0, 3), ["gold_score", "kl", "rm_score"]);
    const [w] = await writeReports([`${root}/kl`]);
    assert.equal(w.dir, `${root}/kl/report`);
    for (
      const f of ["plots/curve-kl_ref.png", "plots/frontier.svg", "plots/final-gold_score.png"]
    ) {
      assert.ok(w.files.includes(f), `${f} not in ${w.files.join(", ")}`);
    }
    const md = await Deno.readTextFile(`${root}/kl/report/report.md`);
    assert.match(md, /- task: sentiment/);
    assert.match(md, /swept: `ppo\.kl\.beta` ∈ \{0, 0\.05, 0\.2\}; 3 settings × 2 seeds/);
    const frontier = svgTexts(await Deno.readTextFile(`${root}/kl/report/plots/frontier.svg`));
    assert.ok(frontier.includes("KL: kl") && frontier.includes("reward: gold_score"));
    assert.ok(frontier.includes("ppo.kl.beta"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
