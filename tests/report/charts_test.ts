/**
 * Vega-Lite specs (one line + band per swept value, titles naming the metric and the swept
 * key) and headless rendering to SVG and PNG.
 */
import assert from "node:assert/strict";
import * as vl from "vega-lite";
import {
  curveChart,
  curvePoints,
  diagnosticsChart,
  finalChart,
  finalPoints,
  frontierChart,
} from "../../lib/report/charts.ts";
import { FontError, renderChart, renderSvg, svgToPng } from "../../lib/report/render.ts";
import { defaultCurveMetrics, firstPresent } from "../../lib/report/bundles.ts";
import { FRONTIER_KL_CANDIDATES, FRONTIER_REWARD_CANDIDATES } from "../../lib/report/bundles.ts";
import { memTrial, pngHeader, sentimentTrials, svgTexts } from "./helpers.ts";

const KEY = "ppo.kl.beta";
const BETAS = [0.2, 0.02, 0.05]; // deliberately unsorted: series must come out sorted
const exp = {
  name: "kl",
  sweptKeys: [KEY],
  trials: sentimentTrials(BETAS, [1, 2, 3]).map((t, i) => memTrial(t, [KEY], `t${i}`)),
};

// deno-lint-ignore no-explicit-any
type Any = any;

/** The series labels a layer's data holds, in first-seen order. */
function seriesIn(values: Any[]): string[] {
  return [...new Set(values.map((v) => v.series))];
}

Deno.test("curveChart: one mean line and one CI band per swept value, titles name metric and key", () => {
  const spec = curveChart(exp, "kl_ref") as Any;
  const marks = spec.layer.map((l: Any) => l.mark.type);
  assert.deepEqual(marks, ["area", "line"]);
  // Both layers colour by series with the same ordered domain: one colour per β.
  for (const l of spec.layer) {
    assert.equal(l.encoding.color.field, "series");
    assert.deepEqual(l.encoding.color.scale.domain, ["0.02", "0.05", "0.2"]);
    assert.equal(l.encoding.color.title, KEY);
  }
  assert.deepEqual(seriesIn(spec.data.values).sort(), ["0.02", "0.05", "0.2"]);
  // 3 β × 3 updates, each point pooling 3 seeds.
  assert.equal(spec.data.values.length, 9);
  assert.ok(spec.data.values.every((v: Any) => v.n === 3 && v.lo < v.mean && v.mean < v.hi));
  assert.equal(spec.layer[1].encoding.y.title, "kl_ref");
  assert.equal(spec.layer[0].encoding.x.title, "update");
  assert.match(spec.title.text, /kl_ref vs update, by ppo\.kl\.beta/);
  // The spec is valid Vega-Lite: compiling it yields one line mark per colour series.
  const vg = vl.compile(spec).spec as Any;
  const lineMark = JSON.stringify(vg.marks).match(/"type":"line"/g) ?? [];
  assert.ok(lineMark.length >= 1);

  // Band kinds: std gives mean ± std, none collapses the band (and drops the area layer).
  const std = curvePoints(exp, "kl_ref", "std");
  assert.ok(std.every((p) => Math.abs(p.hi - p.mean - (p.mean - p.lo)) < 1e-12));
  assert.deepEqual((curveChart(exp, "kl_ref", { band: "none" }) as Any).layer.length, 1);
});

Deno.test("finalChart and frontierChart: points per trial, one mean per swept value", () => {
  const { trials, stats } = finalPoints(exp, "gold_score");
  assert.equal(trials.length, 9);
  assert.deepEqual(stats.map((s) => s.series), ["0.02", "0.05", "0.2"]);
  assert.ok(stats.every((s) => s.n === 3 && s.lo !== null && s.hi !== null));
  // gold_score = 0.3 − β + 0.02·seed at the last update: mean over seeds 1..3 = 0.34 − β.
  stats.forEach((s, i) => assert.ok(Math.abs(s.mean - (0.34 - [0.02, 0.05, 0.2][i])) < 1e-12));
  const fin = finalChart(exp, "gold_score") as Any;
  assert.equal(fin.layer[0].encoding.x.title, KEY);
  assert.equal(fin.layer[0].encoding.y.title, "gold_score");
  assert.deepEqual(fin.layer[0].encoding.x.sort, ["0.02", "0.05", "0.2"]);

  const fr = frontierChart(exp, "kl", "gold_score") as Any;
  const points = fr.layer[0].data.values, means = fr.layer.at(-1).data.values;
  assert.equal(points.length, 9);
  assert.deepEqual(seriesIn(means), ["0.02", "0.05", "0.2"]);
  assert.equal(fr.layer[0].encoding.x.title, "KL: kl");
  assert.equal(fr.layer[0].encoding.y.title, "reward: gold_score");
  assert.equal(fr.layer[0].encoding.color.title, KEY);
  vl.compile(fr);
});

Deno.test("diagnosticsChart: one panel per logged diagnostic; default metrics follow the bundles", () => {
  const d = diagnosticsChart(exp) as Any;
  assert.deepEqual(d.concat.map((c: Any) => c.title), [
    "clipfrac",
    "entropy",
    "explained_variance",
  ]);
  for (const panel of d.concat) assert.equal(seriesIn(panel.data.values).length, 3);
  assert.throws(() => diagnosticsChart(exp, ["nope"]), /log none of nope/);
  // Sentiment bundles: scores and KL to the reference, frontier on eval KL and gold score.
  assert.deepEqual(defaultCurveMetrics(exp.trials), ["gold_score", "rm_score", "kl_ref"]);
  assert.equal(firstPresent(exp.trials, FRONTIER_KL_CANDIDATES), "kl");
  assert.equal(firstPresent(exp.trials, FRONTIER_REWARD_CANDIDATES), "gold_score");
  // Env-like bundles (episodic_return, kl_penalty logged, kl_ref null): the env family.
  const envTrial = memTrial(
    {
      config: { seed: 1 },
      rows: [{ update: 1, episodic_return: 20, kl_penalty: 0.01, kl_ref: null }],
      metrics: { return: 20 },
    },
    [],
    "e",
  );
  assert.deepEqual(defaultCurveMetrics([envTrial]), ["episodic_return", "kl_penalty"]);
  assert.equal(firstPresent([envTrial], FRONTIER_KL_CANDIDATES), "kl_penalty:mean");
  assert.equal(firstPresent([envTrial], FRONTIER_REWARD_CANDIDATES), "return");
});

Deno.test("render: SVG text holds the axis titles; PNG is a valid PNG of the SVG's size × scale with text drawn", async () => {
  const { svg, png } = await renderChart(curveChart(exp, "kl_ref"));
  const texts = svgTexts(svg);
  for (const want of ["kl_ref", "update", KEY, "0.02", "0.05", "0.2"]) {
    assert.ok(texts.includes(want), `SVG text lacks "${want}": ${texts.join(" | ")}`);
  }
  assert.ok(texts.some((t) => t.includes("kl_ref vs update, by ppo.kl.beta")));
  assert.match(svg, /font-family="DejaVu Sans"/);
  const svgW = Number(/<svg[^>]*\bwidth="([\d.]+)"/.exec(svg)![1]);
  const svgH = Number(/<svg[^>]*\bheight="([\d.]+)"/.exec(svg)![1]);
  const { width, height } = pngHeader(png);
  assert.equal(width, Math.round(svgW * 2));
  assert.equal(height, Math.round(svgH * 2));
  assert.ok(png.length > 10_000, `PNG only ${png.length} bytes`);
  // Text is drawn: the same SVG without its <text> elements rasterises to different pixels
  // (with no usable font resvg silently drops text, and the two PNGs would be equal).
  const noText = svgToPng(svg.replace(/<text[^>]*>[\s\S]*?<\/text>/g, ""));
  assert.notDeepEqual(noText, png);

  // Deterministic: the same spec renders to the same bytes.
  const again = await renderChart(curveChart(exp, "kl_ref"));
  assert.equal(again.svg, svg);
  assert.deepEqual(again.png, png);
});

Deno.test("render: a missing font fails clearly, before any rendering", async () => {
  await assert.rejects(
    () => renderChart(curveChart(exp, "kl_ref"), { fontFile: "/nonexistent/font.ttf" }),
    (e: Error) => {
      assert.ok(e instanceof FontError);
      assert.match(e.message, /\/nonexistent\/font\.ttf is missing/);
      assert.match(e.message, /fonts-dejavu-core/);
      assert.match(e.message, /PROXIMA_FONT/);
      return true;
    },
  );
  // An invalid spec is vega-lite's error, not an empty picture.
  await assert.rejects(
    () => renderSvg({ mark: "nope" } as Any),
    /not a valid Vega-Lite spec \(mark "nope"\)/,
  );
});
