/**
 * `deno task export`: finished bundles as TensorBoard runs, one CSV table, one Parquet table
 * (read back with hyparquet); outputs are replaced whole; bad input exits 2 with a message.
 */
import assert from "node:assert/strict";
import { parquetReadObjects } from "hyparquet";
import { deno } from "../experiment/helpers.ts";
import { exportResults, metricsTable } from "../../lib/report/export.ts";
import { loadExperimentResults } from "../../lib/report/bundles.ts";
import { readScalars } from "../../lib/tensorboard/mod.ts";
import { sentimentTrials, tempDir, writeFakeBundle } from "./helpers.ts";

/** An experiment folder `kl` of 2 β × 2 seeds × 3 updates; returns its path. */
async function klBundles(root: string): Promise<string> {
  const exp = `${root}/kl`;
  for (const t of sentimentTrials([0.05, 0.2], [1, 2])) await writeFakeBundle(exp, t);
  return exp;
}

const COLUMNS = [
  "update",
  "step",
  "kl_ref",
  "rm_score",
  "gold_score",
  "clipfrac",
  "entropy",
  "explained_variance",
  "episodic_return",
];

Deno.test("export --to csv: a row per metrics row with experiment, trial, swept keys, seed", async () => {
  const root = await tempDir("export-csv");
  try {
    const exp = await klBundles(root);
    const r = await exportResults([exp], { to: "csv" });
    assert.deepEqual(r.files, [`${exp}/export/metrics.csv`]);
    assert.equal(r.trials, 4);
    assert.equal(r.rows, 12);
    const lines = (await Deno.readTextFile(`${exp}/export/metrics.csv`)).trimEnd().split("\n");
    assert.equal(lines[0], ["experiment", "trial", "ppo.kl.beta", "seed", ...COLUMNS].join(","));
    assert.equal(lines.length, 1 + 12);
    // Trials sorted by β then seed: the first row is β 0.05, seed 1, update 1 (values by hand:
    // kl = 0.1 / 1.5 + 0.001, rm = 0.2 + 0.01, gold = 0.1 - 0.05 + 0.02).
    const res = await loadExperimentResults(exp);
    const first = res.trials[0];
    assert.equal(
      lines[1],
      `kl,${first.id},0.05,1,1,32,${0.1 / 1.5 + 0.001},${0.2 + 0.01},${0.1 - 0.05 + 0.02},0.01,` +
        `1.9,0.1,`,
    );
    const last = res.trials[3];
    assert.ok(lines[12].startsWith(`kl,${last.id},0.2,2,3,96,`));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("export --to parquet: hyparquet reads back the same table (INT32, DOUBLE, STRING, nulls)", async () => {
  const root = await tempDir("export-parquet");
  try {
    const exp = await klBundles(root);
    await exportResults([exp], { to: "parquet", out: `${root}/out` });
    const bytes = await Deno.readFile(`${root}/out/metrics.parquet`);
    const objects = await parquetReadObjects({ file: bytes.buffer as ArrayBuffer });
    const table = metricsTable([await loadExperimentResults(exp)]);
    assert.equal(objects.length, 12);
    assert.deepEqual(Object.keys(objects[0]), table.headers);
    assert.deepEqual(objects.map((o) => table.headers.map((h) => o[h])), table.rows);
    assert.equal(objects[0].episodic_return, null);
    assert.equal(typeof objects[0].trial, "string");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("export --to tensorboard: one run per trial with the rows' scalars; same bytes again", async () => {
  const root = await tempDir("export-tb");
  try {
    const exp = await klBundles(root);
    const res = await loadExperimentResults(exp);
    await exportResults([exp], { to: "tensorboard" });
    const tb = `${exp}/export/tensorboard`;
    const runs = JSON.parse(await Deno.readTextFile(`${tb}/runs.json`));
    assert.deepEqual(Object.keys(runs).sort(), res.trials.map((t) => t.id).sort());
    for (const t of res.trials) {
      assert.deepEqual(runs[t.id].swept, t.swept);
      assert.equal(runs[t.id].bundle_hash, t.bundleHash);
      const points = await readScalars(`${tb}/${t.id}`);
      const expected = t.rows.flatMap((r) =>
        Object.entries(r).filter(([k, v]) => k !== "update" && typeof v === "number").map((
          [tag, v],
        ) => ({ tag, step: r.update, value: Math.fround(v as number), wallTime: 0 }))
      );
      assert.equal(expected.length, 3 * 7);
      assert.deepEqual(points, expected);
    }
    // Exported again: the folder is replaced by the same bytes (no times in it).
    const file = `${tb}/${res.trials[0].id}/events.out.tfevents.0.proxima-export.0`;
    const before = await Deno.readFile(file);
    await exportResults([exp], { to: "tensorboard", verify: false });
    assert.deepEqual(await Deno.readFile(file), before);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task export: writes; a missing folder, an unknown --to or flag exit 2 without a stack", async () => {
  const root = await tempDir("export-cli");
  try {
    const exp = await klBundles(root);
    const ok = await deno(["task", "-q", "export", exp, "--to", "csv", "--out", `${root}/o`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`4 trials, 12 metrics rows -> ${root}/o/metrics.csv`));
    const missing = await deno(["task", "-q", "export", `${root}/nope`, "--to", "csv"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, new RegExp(`${root}/nope: no such folder`));
    const bad = await deno(["task", "-q", "export", exp, "--to", "tensorbord"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /export: unknown --to "tensorbord" \(did you mean tensorboard\?\)/);
    const flag = await deno(["task", "-q", "export", exp, "--to", "csv", "--outt", "x"]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /unknown flag --outt \(did you mean --out\?\)/);
    for (const r of [missing, bad, flag]) assert.doesNotMatch(r.stderr, /\n\s+at /);
    // A folder that is not an earlier export is never replaced.
    await Deno.mkdir(`${root}/keep/tensorboard`, { recursive: true });
    await Deno.writeTextFile(`${root}/keep/tensorboard/mine.txt`, "x");
    const refuse = await deno([
      "task",
      "-q",
      "export",
      exp,
      "--to",
      "tensorboard",
      "--out",
      `${root}/keep`,
    ]);
    assert.equal(refuse.code, 2);
    assert.match(refuse.stderr, /refusing to replace a non-empty folder without runs\.json/);
    assert.equal(await Deno.readTextFile(`${root}/keep/tensorboard/mine.txt`), "x");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("export of a results root: several experiments need --out; runs are <experiment>/<trial-id>", async () => {
  const root = await tempDir("export-root");
  try {
    await klBundles(root);
    for (const t of sentimentTrials([0.1], [1], 2)) await writeFakeBundle(`${root}/clip`, t);
    await assert.rejects(
      () => exportResults([root], { to: "csv" }),
      /export: 2 experiment folders \(clip, kl\) — give --out DIR for their one export/,
    );
    await exportResults([root], { to: "tensorboard", out: `${root}/all` });
    const runs = JSON.parse(await Deno.readTextFile(`${root}/all/tensorboard/runs.json`));
    const names = Object.keys(runs).sort();
    assert.equal(names.length, 5);
    assert.deepEqual(names.map((n) => n.split("/")[0]), ["clip", "kl", "kl", "kl", "kl"]);
    assert.equal((await readScalars(`${root}/all/tensorboard/${names[0]}`)).length, 2 * 7);
    await exportResults([root], { to: "csv", out: `${root}/all` });
    const csv = (await Deno.readTextFile(`${root}/all/metrics.csv`)).trimEnd().split("\n");
    assert.equal(csv.length, 1 + 2 + 12);
    assert.deepEqual([...new Set(csv.slice(1).map((l) => l.split(",")[0]))].sort(), ["clip", "kl"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
