/**
 * The dashboard's data layer and JSON API: `deno task dashboard` on a results folder with
 * four finished bundles and one trial still running lists every trial with its status, swept
 * value, final metrics and bundle hash; serves lib/report's chart specs; pushes a new metric
 * row over Server-Sent Events when the running trial appends one; and leaves the results
 * folder byte-identical. Bad flags and folders exit 2 naming the fix.
 */
import assert from "node:assert/strict";
import { deno } from "../experiment/helpers.ts";
import { tempDir, writeFakeBundle } from "./helpers.ts";
import { MetricsTail } from "../../lib/report/dashboard/live.ts";
import { startDashboard } from "../../lib/report/dashboard/server.ts";
import {
  appendRow,
  liveRow,
  resultsWithRunningTrial,
  snapshot,
  startDashboardProcess,
} from "./dashboard_helpers.ts";

Deno.test("MetricsTail reads whole appended lines only, and starts over when the file shrinks", async () => {
  const dir = await tempDir("tail");
  const path = `${dir}/metrics.jsonl`;
  try {
    const tail = new MetricsTail(path);
    assert.equal(await tail.poll(), null); // no file yet: no rows, no change
    await Deno.writeTextFile(path, '{"update":1,"x":1}\n{"update":2,"x":');
    assert.deepEqual(await tail.poll(), { from: 0, reset: false });
    assert.deepEqual(tail.rows, [{ update: 1, x: 1 }]); // the half-written row waits
    assert.equal(await tail.poll(), null);
    await Deno.writeTextFile(path, '2}\n{"update":3,"x":3}\n', { append: true });
    assert.deepEqual(await tail.poll(), { from: 1, reset: false });
    assert.deepEqual(tail.rows.map((r) => r.x), [1, 2, 3]);
    // A resumed trial cuts metrics.jsonl back to its checkpoint: read again from the start.
    await Deno.writeTextFile(path, '{"update":1,"x":1}\n');
    assert.deepEqual(await tail.poll(), { from: 0, reset: true });
    assert.deepEqual(tail.rows, [{ update: 1, x: 1 }]);
    assert.equal(tail.generation, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Read Server-Sent Events from a fetch body until `want` matches one (or time runs out). */
async function nextEvent(
  reader: ReadableStreamDefaultReader<string>,
  want: (e: Record<string, unknown>) => boolean,
  buf: { text: string },
  ms = 10_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    let i: number;
    while ((i = buf.text.indexOf("\n\n")) >= 0) {
      const block = buf.text.slice(0, i);
      buf.text = buf.text.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length) {
        const e = JSON.parse(data.join("\n"));
        if (want(e)) return e;
      }
    }
    if (Date.now() > deadline) throw new Error(`no matching event within ${ms} ms`);
    const { value, done } = await reader.read();
    if (done) throw new Error("event stream ended");
    buf.text += value;
  }
}

Deno.test("deno task dashboard: JSON API lists trials, serves chart specs, streams new rows, writes nothing", async (t) => {
  const root = await tempDir("dash-api");
  const { exp, done, liveId, live } = await resultsWithRunningTrial(root);
  const before = await snapshot(root);
  const d = await startDashboardProcess(root);
  try {
    assert.match(
      d.firstLine,
      /^dashboard: http:\/\/127\.0\.0\.1:\d+\/ — .*: 1 experiment, 5 trials/,
    );
    const get = async (path: string) => {
      const r = await fetch(new URL(path, d.url));
      assert.equal(r.status, 200, `${path}: ${r.status}`);
      return await r.json();
    };

    await t.step(
      "every trial is listed with status, swept value, seed, metrics, hash",
      async () => {
        const { experiments } = await get("/api/experiments");
        assert.equal(experiments.length, 1);
        const e = experiments[0];
        assert.equal(e.name, "kl");
        assert.deepEqual(e.sweptKeys, ["ppo.kl.beta"]);
        assert.deepEqual(
          e.trials.map((
            t: { swept: Record<string, number>; seed: number; status: string },
          ) => [t.swept["ppo.kl.beta"], t.seed, t.status]),
          [[0, 1, "done"], [0, 2, "done"], [0.1, 1, "done"], [0.1, 2, "done"], [0.3, 1, "running"]],
        );
        for (const id of done) {
          const trial = e.trials.find((t: { id: string }) => t.id === id);
          const manifest = JSON.parse(await Deno.readTextFile(`${exp}/${id}/manifest.json`));
          assert.equal(trial.bundleHash, manifest.bundle_hash);
          assert.equal(trial.rows, 3);
        }
        const running = e.trials.find((t: { id: string }) => t.id === liveId);
        assert.equal(running.bundleHash, null);
        assert.equal(running.rows, 2);
        assert.equal(running.update, 2);
        // Summary metrics of the bundles; the running trial's live column values where it has one.
        const b0s1 = e.trials[0];
        assert.equal(b0s1.final.gold_score, 3 * 0.1 - 0 + 1 * 0.02);
        assert.equal(running.final.gold_score, 0.5); // last row's gold_score (0.25 · 2)
        assert.equal(running.final.kl, null); // summary-only metric: not known until it ends
      },
    );

    const events = (await fetch(new URL("/api/events", d.url))).body!
      .pipeThrough(new TextDecoderStream()).getReader();
    const buf = { text: "" };
    await nextEvent(events, (e) => e.type === "hello", buf);

    await t.step("chart specs: curve with a seed band, frontier, diagnostics", async () => {
      const c = await get(`/api/charts?experiment=kl&metric=kl_ref&band=std`);
      assert.equal(c.metric, "kl_ref");
      const values = c.curve.data.values as { series: string; update: number; mean: number }[];
      assert.deepEqual([...new Set(values.map((v) => v.series))], ["0", "0.1", "0.3"]);
      // The live series so far: updates 1 and 2 of the running trial.
      const live03 = values.filter((v) => v.series === "0.3");
      assert.deepEqual(live03.map((v) => [v.update, v.mean]), [[1, 0.05], [2, 0.1]]);
      assert.equal(c.curve.title.subtitle, "line: mean over seeds; band: ±1 std");
      assert.equal(c.frontierNote, "kl vs gold_score");
      assert.ok(c.frontier.layer.length >= 2);
      assert.ok(done.includes(c.diagnosticsTrial));
      const only = await get(`/api/charts?experiment=kl&trials=${liveId}&diagnostics=${liveId}`);
      assert.equal(only.diagnosticsTrial, liveId);
      // No summary KL while it runs: the frontier falls back to its last logged KL to the ref.
      assert.equal(only.frontierNote, "kl_ref:last vs gold_score");
      assert.deepEqual(only.frontier.layer[0].data.values.map((p: { kl: number }) => p.kl), [0.1]);
    });

    await t.step("an appended row is pushed as an event and served", async () => {
      await appendRow(live, liveRow(3));
      const e = await nextEvent(events, (e) => e.type === "rows" && e.trial === liveId, buf);
      assert.deepEqual(
        { from: e.from, count: e.count, reset: e.reset },
        { from: 2, count: 3, reset: false },
      );
      assert.deepEqual(e.last, liveRow(3));
      const rows = await get(`/api/rows?experiment=kl&trial=${liveId}&from=2`);
      assert.deepEqual(rows, { trial: liveId, count: 3, from: 2, rows: [liveRow(3)] });
      const c = await get(`/api/charts?experiment=kl&metric=kl_ref`);
      const live03 = c.curve.data.values.filter((v: { series: string }) => v.series === "0.3");
      assert.equal(live03.length, 3);
    });

    await t.step("evaluation view, page, vendor files, read-only methods", async () => {
      const ev = await get(`/api/eval?experiment=kl&trial=${done[0]}`);
      assert.deepEqual(ev.before.samples[0], {
        prompt: "The movie was",
        response: " fairly dull.",
        scores: { rm: -1.07, gold: 0 },
      });
      assert.deepEqual(ev.after.metrics, { rm_score: 0.85, gold_score: 0.5 });
      assert.equal(ev.after.samples[1].response, " superb.");
      const none = await get(`/api/eval?experiment=kl&trial=${done[1]}`);
      assert.equal(none.before, null);
      assert.match(none.note, /no evaluation samples/);
      assert.deepEqual(await get("/api/tables"), []);
      const html = await (await fetch(d.url)).text();
      assert.match(html, /<script src="\/vendor\/vega\.js">/);
      for (const f of ["vega.js", "vega-lite.js", "vega-embed.js"]) {
        const r = await fetch(new URL(`/vendor/${f}`, d.url));
        assert.equal(r.status, 200);
        assert.ok((await r.text()).length > 50_000, f);
      }
      const post = await fetch(new URL("/api/experiments", d.url), { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    });
    await events.cancel();
  } finally {
    await d.stop();
  }
  // Only the test's own append changed a byte: the dashboard created, locked or wrote nothing.
  const after = await snapshot(root);
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  for (const [k, v] of before) {
    if (!k.endsWith(`.tmp-${liveId}/metrics.jsonl`)) assert.equal(after.get(k), v, k);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("deno task dashboard: bad flags and folders exit 2 naming the fix", async () => {
  let r = await deno(["run", "-A", "cli/dashboard.ts", "--prot", "1"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown flag --prot \(did you mean --port\?\)/);
  r = await deno(["run", "-A", "cli/dashboard.ts", "--port", "http"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--port must be a port number 0-65535 \(got "http"\)/);
  r = await deno(["run", "-A", "cli/dashboard.ts", "/nonexistent/results"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\/nonexistent\/results: no such folder — pass a results folder/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/); // no stack
});

Deno.test("paper tables from the bundles present; a work folder whose lock nobody holds is stopped", async () => {
  const root = await tempDir("dash-tables");
  try {
    // Two CartPole bundles of cleanrl-classic-control's quick experiment: returns 40 and 42.
    for (const [seed, ret] of [[1, 40], [2, 42]]) {
      await writeFakeBundle(`${root}/reproduce-cleanrl-cartpole-quick`, {
        task: "CartPole-v1",
        config: { seed, total_steps: 8192 },
        rows: [{ update: 1, episodic_return: ret }],
        metrics: { return: ret },
      });
    }
    // A running trial (its worker holds .lock-<id>) and a stopped one (the lock file is there,
    // nobody holds it), in the same experiment folder.
    const exp = `${root}/reproduce-cleanrl-cartpole-quick`;
    for (const id of ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]) {
      await Deno.mkdir(`${exp}/.tmp-${id}`);
      await Deno.writeTextFile(
        `${exp}/.tmp-${id}/config.json`,
        JSON.stringify({ task: "CartPole-v1", config: { seed: 3, total_steps: 8192 } }),
      );
      await Deno.writeTextFile(`${exp}/.lock-${id}`, "");
    }
    // A bundle that cannot be read (summary.json is not JSON): a warning, not a crash.
    await Deno.mkdir(`${exp}/cccccccccccccccc`);
    await Deno.writeTextFile(`${exp}/cccccccccccccccc/manifest.json`, '{"bundle_hash":"x"}');
    await Deno.writeTextFile(`${exp}/cccccccccccccccc/config.json`, "{");
    using held = await Deno.open(`${exp}/.lock-aaaaaaaaaaaaaaaa`, { read: true, write: true });
    await held.lock(true);

    const d = await startDashboard({ root, hostname: "127.0.0.1", port: 0, pollMs: 100 });
    try {
      const { experiments } = await (await fetch(new URL("/api/experiments", d.url))).json();
      const status = Object.fromEntries(
        experiments[0].trials.map((t: { id: string; status: string }) => [t.id, t.status]),
      );
      assert.equal(status.aaaaaaaaaaaaaaaa, "running");
      assert.equal(status.bbbbbbbbbbbbbbbb, "stopped");
      assert.equal(experiments[0].trials.length, 4);
      assert.equal(experiments[0].warnings.length, 1);
      assert.match(experiments[0].warnings[0], /cccccccccccccccc\/config\.json: not valid JSON/);
      // Nothing changed on disk: a rescan reports nothing (the broken bundle is not reread).
      assert.deepEqual(await d.watcher.refresh(), []);
      const tables = await (await fetch(new URL("/api/tables", d.url))).json();
      assert.equal(tables.length, 1);
      assert.equal(tables[0].name, "cleanrl-classic-control");
      assert.equal(tables[0].quick, true);
      assert.deepEqual(tables[0].experiments, { "reproduce-cleanrl-cartpole-quick": 2 });
      // Mean 41, std with divisor n (as the published ±) 1.
      assert.match(
        tables[0].markdown,
        /\| CartPole-v1 \| 8192 \| 2 \| 41\.00 ± 1\.00 \| 1: 40\.00, 2: 42\.00 \| 490\.04 ± 6\.12 \|/,
      );
      assert.match(tables[0].markdown, /\| Acrobot-v1 \| - \| 0 \|/);
    } finally {
      await d.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
