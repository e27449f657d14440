/**
 * `--report_to tensorboard` on real runs: `deno task train` and `deno task sweep` write event
 * files while training whose scalars are the metrics.jsonl rows (as float32, step = update),
 * beside the results and never in a bundle: the bundles (trial ids, bundle hashes, every
 * file) are the same with and without it. A bad value exits 2 with the fix.
 */
import assert from "node:assert/strict";
import { deno, killAtFirstCheckpoint, tempDir } from "../experiment/helpers.ts";
import { decodeEventFile, readScalars, type ScalarPoint } from "../../lib/tensorboard/mod.ts";

const FIXTURE = "tests/report/fixtures/tiny_tb.ts";

/** The scalar points a metrics.jsonl holds (what the event files must hold, in order). */
async function expectedPoints(metricsPath: string) {
  const rows = (await Deno.readTextFile(metricsPath)).trim().split("\n").map((l) =>
    JSON.parse(l) as Record<string, number | null>
  );
  return rows.flatMap((r) =>
    Object.entries(r).filter(([k, v]) => k !== "update" && v !== null).map(([tag, v]) => ({
      tag,
      step: r.update!,
      value: Math.fround(v!),
    }))
  );
}
const strip = (ps: ScalarPoint[]) => ps.map(({ tag, step, value }) => ({ tag, step, value }));

async function files(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${rel}`)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await files(dir, r));
    else out.push(r);
  }
  return out.sort();
}

Deno.test("train --report_to tensorboard: event files beside the run hold its metrics rows", async () => {
  const root = await tempDir("report-to-train");
  try {
    const out = `${root}/train/cartpole-seed1`;
    const args = ["task", "-q", "train", "--env", "cartpole", "--total-steps", "1024"];
    const r = await deno([
      ...args,
      "--envs",
      "2",
      "--steps",
      "128",
      "--quiet",
      "--out",
      out,
      "--report_to",
      "tensorboard",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const tb = `${root}/train/tensorboard/cartpole-seed1`;
    const names = await files(tb);
    assert.equal(names.length, 1);
    assert.match(names[0], /^events\.out\.tfevents\.\d{10}\.[^/]+\.\d+$/);
    const points = await readScalars(tb);
    const expected = await expectedPoints(`${out}/metrics.jsonl`);
    assert.equal(new Set(expected.map((p) => p.step)).size, 4);
    assert.deepEqual(strip(points), expected);
    // Wall times are real (this run's), increasing.
    const t = points.map((p) => p.wallTime);
    assert.ok(t.every((x, i) => i === 0 || x >= t[i - 1]) && t[0] > 1.7e9);
    // The event files are beside the bundle, never in it.
    assert.deepEqual(await files(out), [
      "checkpoints/final.safetensors",
      "config.json",
      "env.json",
      "episodes.jsonl",
      "manifest.json",
      "metrics.jsonl",
      "summary.json",
    ]);

    // Killed (SIGKILL) after a checkpoint and resumed: a second event file that starts at the
    // update after the checkpoint, and TensorBoard's view (readScalars) shows each update once,
    // with the values of the metrics.jsonl the resumed run leaves.
    const resume = [
      "run",
      "-A",
      "cli/train.ts",
      "--env",
      "cartpole",
      "--total-steps",
      String(40 * 256),
      "--envs",
      "2",
      "--steps",
      "128",
      "--checkpoint-every",
      "2",
      "--quiet",
      "--out",
      `${out}-r`,
      "--report_to",
      "tensorboard",
    ];
    const work = `${root}/train/.tmp-cartpole-seed1-r`;
    await killAtFirstCheckpoint(resume, work, { timeoutMs: 60_000, pollMs: 2 });
    const at = Number(
      /update-(\d+)/.exec(await Deno.readTextFile(`${work}/checkpoints/LATEST`))![1],
    );
    const again = await deno([...resume, "--resume"]);
    assert.equal(again.code, 0, again.stderr);
    const tbr = `${root}/train/tensorboard/cartpole-seed1-r`;
    const logs = await files(tbr);
    assert.equal(logs.length, 2, logs.join());
    const second = decodeEventFile(await Deno.readFile(`${tbr}/${logs[1]}`));
    assert.deepEqual([second[1].sessionStart, second[1].step, second.at(-1)!.step], [
      true,
      at + 1,
      40,
    ]);
    assert.deepEqual(strip(await readScalars(tbr)), await expectedPoints(`${out}-r/metrics.jsonl`));

    const bad = await deno([...args, "--out", out, "--report_to", "wandb"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /train: --report_to "wandb" is not one of none, tensorboard\n {2}fix:/,
    );
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweep --report_to tensorboard: one run per trial; bundles identical to a sweep without", async () => {
  const root = await tempDir("report-to-sweep");
  try {
    const sweep = (results: string, extra: string[]) =>
      deno([
        "run",
        "-A",
        "cli/sweep.ts",
        FIXTURE,
        "--results",
        results,
        "--jobs",
        "1",
        "--quiet",
        ...extra,
      ]);
    const a = await sweep(`${root}/a`, ["--report_to", "tensorboard"]);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const b = await sweep(`${root}/b`, []);
    assert.equal(b.code, 0, b.stdout + b.stderr);

    const expA = `${root}/a/tiny-tb`, expB = `${root}/b/tiny-tb`;
    const ids = (await files(expA)).filter((f) =>
      f.endsWith("/manifest.json") && !f.startsWith("tensorboard/")
    )
      .map((f) => f.split("/")[0]);
    assert.equal(ids.length, 2);
    // Same trials, same bytes: every file of every bundle (manifest.json's bundle hash included).
    for (const id of ids) {
      const fa = await files(`${expA}/${id}`), fb = await files(`${expB}/${id}`);
      assert.deepEqual(fa, fb);
      for (const f of fa) {
        assert.deepEqual(
          await Deno.readFile(`${expA}/${id}/${f}`),
          await Deno.readFile(`${expB}/${id}/${f}`),
          f,
        );
      }
      assert.equal(
        JSON.parse(await Deno.readTextFile(`${expA}/${id}/manifest.json`)).bundle_hash,
        JSON.parse(await Deno.readTextFile(`${expB}/${id}/manifest.json`)).bundle_hash,
      );
      // The trial's TensorBoard run: its metrics rows.
      assert.deepEqual(
        strip(await readScalars(`${expA}/tensorboard/${id}`)),
        await expectedPoints(`${expA}/${id}/metrics.jsonl`),
      );
    }
    assert.deepEqual((await files(`${expA}/tensorboard`)).map((f) => f.split("/")[0]), ids.sort());
    // Without the flag nothing but the bundles.
    assert.equal((await files(expB)).some((f) => f.startsWith("tensorboard/")), false);

    const bad = await sweep(`${root}/c`, ["--report_to", "tensorbord"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /sweep: --report_to "tensorbord" is not one of none, tensorboard/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
