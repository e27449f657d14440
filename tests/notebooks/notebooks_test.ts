/**
 * Acceptance for the notebooks: every notebooks/*.ipynb executes headless (the code path of
 * `deno task notebooks`) against bundles made by this code — a β sweep of
 * experiments/kl.ts and a quick reproduce table — without an error, and every cell tagged
 * `plot` has a Vega-Lite and a PNG output, checked here on the executed copies (not taken from
 * the runner's word). Also: outputs the Deno kernel sends after reporting `idle` are kept (and
 * are lost without the runner's fix); a failing notebook is named with its cell and problem;
 * `deno task jupyter` serves the project's Deno kernel. The sweep and the table are the suite's
 * shared runs (tests/experiment/shared_runs.ts), made once for the files that need them.
 */
import assert from "node:assert/strict";
import { pngSize } from "../../lib/report/render.ts";
import { listNotebooks, NOTEBOOKS_DIR, runNotebooks } from "../../cli/notebooks.ts";
import { findFrontend } from "../../cli/jupyter.ts";
import { REPO_ROOT, tempDir, visibleBundles } from "../experiment/helpers.ts";
import { copyShared, sharedCleanrlQuick, sharedKlQuick } from "../experiment/shared_runs.ts";

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  metadata: { tags?: string[] };
  execution_count?: number | null;
  outputs?: Output[];
}
interface Notebook {
  cells: Cell[];
  metadata: Record<string, unknown>;
}

const join = (s: string | string[] | undefined) => Array.isArray(s) ? s.join("") : s ?? "";

async function readNotebook(path: string): Promise<Notebook> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** A notebook (nbformat 4) with one code cell per source; `plot:` prefix tags a cell plot. */
function notebook(sources: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
    cells: sources.map((s, i) => ({
      cell_type: "code",
      id: `c${i}`,
      metadata: s.startsWith("plot:") ? { tags: ["plot"] } : {},
      execution_count: null,
      outputs: [],
      source: s.replace(/^plot:/, ""),
    })),
  });
}

/** text/plain of a cell's execute_result, or null. */
function resultText(cell: Cell): string | null {
  const r = cell.outputs?.find((o) => o.output_type === "execute_result");
  return r ? join(r.data?.["text/plain"] as string | string[]) : null;
}

function stdoutText(cell: Cell): string {
  return (cell.outputs ?? []).filter((o) => o.output_type === "stream" && o.name === "stdout")
    .map((o) => join(o.text)).join("");
}

Deno.test("notebooks: every notebook executes headless against bundles made in this run", async (t) => {
  const root = await tempDir("notebooks");
  try {
    await t.step("a β sweep (experiments/kl.ts, quick) and a quick reproduce table", async () => {
      // Both made once per suite for the files that need them (tests/experiment/shared_runs.ts:
      // each exited 0, or the call throws with its output); copied, as the notebooks read and
      // write beside them.
      const [kl, cleanrl] = await Promise.all([sharedKlQuick(), sharedCleanrlQuick()]);
      await copyShared(kl, root);
      await copyShared(cleanrl, root);
      assert.equal((await visibleBundles(`${root}/kl`)).length, 12);
      await Deno.stat(`${root}/reproduce/cleanrl-classic-control-quick/table.json`);
    });

    const sources = await listNotebooks();
    const before = await Promise.all(sources.map((p) => Deno.readTextFile(p)));

    await t.step("deno task notebooks runs them all clean", async () => {
      assert.deepEqual(
        sources.map((p) => p.slice(NOTEBOOKS_DIR.length + 1)),
        ["kl.ipynb", "lm.ipynb", "methods.ipynb", "overview.ipynb", "reproduce.ipynb"],
      );
      const r = await runNotebooks({ results: root, output: "piped" });
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /notebooks: 5 ok, 0 failed/);
      assert.equal(r.reports.length, 5);
      for (const rep of r.reports) assert.deepEqual(rep.problems, [], rep.notebook);
    });

    await t.step(
      "the executed copies: every cell ran, plots have Vega-Lite and a PNG",
      async () => {
        for (const src of sources) {
          const name = src.split("/").at(-1)!;
          const nb = await readNotebook(`${root}/notebooks/${name}`);
          const code = nb.cells.filter((c) => c.cell_type === "code");
          const plots = code.filter((c) => c.metadata.tags?.includes("plot"));
          assert.ok(plots.length >= 1, `${name}: no cell tagged plot`);
          code.forEach((c, i) => {
            const where = `${name}: code cell ${i + 1} (${join(c.source).split("\n")[0]})`;
            assert.equal(typeof c.execution_count, "number", `${where}: did not run`);
            const err = c.outputs?.find((o) => o.output_type === "error");
            assert.equal(err, undefined, `${where}: ${err?.ename}: ${err?.evalue}`);
          });
          for (const c of plots) {
            const where = `${name}: plot cell (${join(c.source).split("\n")[0]})`;
            const charts = (c.outputs ?? []).filter((o) => o.data?.["image/png"] !== undefined);
            assert.ok(charts.length >= 1, `${where}: no image/png output`);
            for (const o of charts) {
              const spec = o.data!["application/vnd.vegalite.v5+json"] as Record<string, unknown>;
              assert.ok(spec && typeof spec === "object", `${where}: no Vega-Lite beside the PNG`);
              assert.match(String(spec.$schema), /vega-lite/);
              const png = Uint8Array.from(
                atob(o.data!["image/png"] as string),
                (ch) => ch.charCodeAt(0),
              );
              const { width, height } = pngSize(png);
              assert.ok(width >= 200 && height >= 100, `${where}: PNG only ${width}×${height}`);
            }
          }
        }
        // The β sweep is what kl.ipynb summarises: one row per β.
        const kl = await readNotebook(`${root}/notebooks/kl.ipynb`);
        const table = kl.cells.flatMap((c) => c.outputs ?? [])
          .map((o) => join(o.data?.["text/markdown"] as string | string[] | undefined))
          .find((m) => m.startsWith("| ppo.kl.beta |"));
        assert.ok(table, "kl.ipynb: no summary table by ppo.kl.beta");
        for (const beta of ["0", "0.03", "0.1", "0.3"]) {
          assert.match(table, new RegExp(`\\n\\| ${beta.replace(".", "\\.")} \\| 3 \\|`));
        }
      },
    );

    await t.step(
      "notebooks/ is left as it was (executed copies go under the results root)",
      async () => {
        const after = await Promise.all(sources.map((p) => Deno.readTextFile(p)));
        assert.deepEqual(after, before);
        for (const text of before) {
          const nb = JSON.parse(text) as Notebook;
          for (const c of nb.cells) {
            if (c.cell_type === "code") assert.deepEqual(c.outputs, [], "committed with outputs");
          }
        }
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("notebooks: outputs the Deno kernel sends after idle are kept", async (t) => {
  const dir = await tempDir("nb-idle");
  try {
    // (1) The kernel publishes a cell's value after reporting idle (an un-awaited async
    // broadcast), so plain nbclient loses some of them at random. With the fix every one lands.
    const N = 20;
    await Deno.writeTextFile(
      `${dir}/values.ipynb`,
      notebook([
        'console.log("hello"); 1 + 1',
        ...Array.from({ length: N }, (_, i) => `${i} * 10`),
        '"last"',
      ]),
    );
    // (2) Output that is on its way 300 ms after idle (a timer): tagged with whatever request
    // the kernel has last received, so without the fix it lands in the next cell.
    await Deno.writeTextFile(
      `${dir}/timer.ipynb`,
      notebook([
        'setTimeout(() => console.log("late line"), 300); "scheduled"',
        'await new Promise((r) => setTimeout(r, 1000)); "waited"',
        '"done"',
      ]),
    );

    let lostWithout = 0;
    await t.step("every cell keeps its value (with the fix)", async () => {
      const r = await runNotebooks({
        notebooks: [`${dir}/values.ipynb`],
        out: `${dir}/fixed`,
        output: "piped",
      });
      assert.equal(r.code, 0, r.output);
      const nb = await readNotebook(`${dir}/fixed/values.ipynb`);
      assert.equal(resultText(nb.cells[0]), "2");
      assert.equal(stdoutText(nb.cells[0]), "hello\n");
      for (let i = 0; i < N; i++) {
        assert.equal(resultText(nb.cells[i + 1]), String(i * 10), `cell ${i + 2}`);
      }
      assert.equal(resultText(nb.cells[N + 1]), '"last"');
      // The runner counts what it kept after idle (evidence that the trap was hit and handled).
      console.log(`  outputs after idle kept: ${r.reports[0].late_outputs}`);
    });

    await t.step("plain nbclient (--no-idle-fix) loses or misplaces them", async () => {
      const r = await runNotebooks({
        notebooks: [`${dir}/values.ipynb`],
        out: `${dir}/plain`,
        noIdleFix: true,
        output: "piped",
      });
      assert.equal(r.code, 0, r.output);
      const nb = await readNotebook(`${dir}/plain/values.ipynb`);
      for (let i = 0; i < N; i++) if (resultText(nb.cells[i + 1]) !== String(i * 10)) lostWithout++;
      // Random by nature (a race in the kernel): reported, not asserted.
      console.log(`  without the fix: ${lostWithout} of ${N} values lost or misplaced`);
    });

    await t.step("late console output lands in the cell that made it (with the fix)", async () => {
      const r = await runNotebooks({
        notebooks: [`${dir}/timer.ipynb`],
        out: `${dir}/fixed`,
        quietMs: 800,
        output: "piped",
      });
      assert.equal(r.code, 0, r.output);
      const nb = await readNotebook(`${dir}/fixed/timer.ipynb`);
      assert.equal(stdoutText(nb.cells[0]), "late line\n");
      assert.equal(resultText(nb.cells[0]), '"scheduled"');
      assert.equal(stdoutText(nb.cells[1]), "");
      assert.equal(resultText(nb.cells[1]), '"waited"');
      assert.ok(r.reports[0].cells[0].late >= 1, JSON.stringify(r.reports[0].cells[0]));
    });

    await t.step("... and in the wrong cell without it", async () => {
      const r = await runNotebooks({
        notebooks: [`${dir}/timer.ipynb`],
        out: `${dir}/plain`,
        noIdleFix: true,
        output: "piped",
      });
      assert.equal(r.code, 0, r.output);
      const nb = await readNotebook(`${dir}/plain/timer.ipynb`);
      assert.equal(stdoutText(nb.cells[0]), "");
      assert.equal(stdoutText(nb.cells[1]), "late line\n");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebooks: a failing notebook is named with its cell and problem", async () => {
  const dir = await tempDir("nb-fail");
  try {
    await Deno.writeTextFile(
      `${dir}/bad.ipynb`,
      notebook([
        "const x = 1;",
        'plot:console.log("a plot cell that shows no chart")',
        'throw new Error("boom")',
        '"never runs"',
      ]),
    );
    const r = await runNotebooks({
      notebooks: [`${dir}/bad.ipynb`],
      out: `${dir}/out`,
      output: "piped",
    });
    assert.equal(r.code, 1, r.output);
    assert.match(
      r.output,
      /bad\.ipynb: cell 2 \(console\.log\("a plot cell that shows no chart"\)\): tagged 'plot' but has no image\/png or application\/vnd\.vegalite\.\* output \(outputs: \['stream\/stdout'\]\)/,
    );
    assert.match(r.output, /bad\.ipynb: cell 3 \(throw new Error\("boom"\)\): raised Error: boom/);
    assert.match(r.output, /notebooks: 0 ok, 1 failed/);
    const nb = await readNotebook(`${dir}/out/bad.ipynb`);
    assert.equal(nb.cells[3].execution_count, null, "a cell after the failure ran");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task jupyter: serves the project's Deno kernel", async () => {
  const frontend = await findFrontend();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const token = crypto.randomUUID();
  const app = frontend.module === "notebook" ? "NotebookApp" : "ServerApp";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "cli/jupyter.ts",
      "--no-browser",
      `--port=${port}`,
      `--${app}.token=${token}`,
    ],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  const api = (path: string, init?: RequestInit) =>
    fetch(`http://127.0.0.1:${port}/api/${path}?token=${token}`, init);
  let ws: WebSocket | null = null;
  try {
    type Specs = {
      kernelspecs: Record<string, { spec: { argv: string[]; display_name: string } }>;
    };
    let specs: Specs | null = null;
    for (let i = 0; i < 150 && specs === null; i++) {
      try {
        const res = await api("kernelspecs");
        if (res.ok) specs = await res.json();
        else await res.body?.cancel();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.ok(specs, "the Jupyter server did not answer");
    const spec = specs.kernelspecs.deno?.spec;
    assert.ok(spec, `no deno kernelspec: ${Object.keys(specs.kernelspecs)}`);
    assert.equal(spec.display_name, "Deno (Proxima)");
    assert.ok(spec.argv.includes(NOTEBOOKS_DIR) && spec.argv.includes(Deno.execPath()));

    // Start a kernel through the server and run a cell that uses the project's code and
    // import map, the way the browser does (JSON messages over the kernel's websocket).
    const res = await api("kernels", { method: "POST", body: JSON.stringify({ name: "deno" }) });
    assert.ok(res.ok, `starting a kernel: ${res.status}`);
    const { id } = await res.json();
    ws = new WebSocket(`ws://127.0.0.1:${port}/api/kernels/${id}/channels?token=${token}`);
    await new Promise((ok, fail) => {
      ws!.onopen = ok;
      ws!.onerror = fail;
    });
    const msgId = crypto.randomUUID();
    const result = new Promise<string>((ok) => {
      ws!.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.parent_header?.msg_id === msgId && m.msg_type === "execute_result") {
          ok(m.content.data["text/plain"]);
        }
      };
    });
    ws.send(JSON.stringify({
      header: {
        msg_id: msgId,
        username: "test",
        session: crypto.randomUUID(),
        msg_type: "execute_request",
        version: "5.3",
        date: new Date().toISOString(),
      },
      parent_header: {},
      metadata: {},
      channel: "shell",
      buffers: [],
      content: {
        code: 'import { describe } from "../lib/report/mod.ts";\n' +
          'import { z } from "zod";\n' +
          "`${describe([1, 2, 3]).mean} ${typeof z.object} ${Deno.cwd()}`",
        silent: false,
        store_history: true,
        user_expressions: {},
        allow_stdin: false,
        stop_on_error: true,
      },
    }));
    const text = await Promise.race([
      result,
      new Promise<string>((_, fail) =>
        setTimeout(() => fail(new Error("no execute_result in 60 s")), 60_000)
      ),
    ]);
    assert.match(text, new RegExp(`2 function ${NOTEBOOKS_DIR}`));
  } finally {
    ws?.close();
    child.kill("SIGTERM");
    const status = await child.status;
    const [out, err] = await logs;
    assert.equal(status.code, 0, out + err);
    assert.match(out + err, /Shutting down/, out + err);
  }
});

Deno.test("notebooks: before any results exist, every notebook runs clean and says what to run", async () => {
  const root = await tempDir("nb-empty");
  try {
    const r = await runNotebooks({ results: root, output: "piped" });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /notebooks: 5 ok, 0 failed/);
    const want: Record<string, RegExp> = {
      "kl.ipynb": /deno task sweep experiments\/kl\.ts/,
      "lm.ipynb": /deno task sweep experiments\/lm\.ts/,
      "methods.ipynb": /deno task sweep experiments\/methods\.ts/,
      "overview.ipynb": /deno task sweep experiments\/kl\.ts/,
      "reproduce.ipynb": /deno task reproduce cleanrl-classic-control --quick/,
    };
    for (const [name, command] of Object.entries(want)) {
      const nb = await readNotebook(`${root}/notebooks/${name}`);
      const text = nb.cells.flatMap((c) => c.outputs ?? [])
        .map((o) => join(o.data?.["text/markdown"] as string | string[] | undefined)).join("\n");
      assert.match(text, /No results yet/, `${name}: no note`);
      assert.match(text, command, `${name}: does not name the command`);
      for (const c of nb.cells.filter((c) => c.metadata.tags?.includes("plot"))) {
        assert.ok(
          (c.outputs ?? []).some((o) => o.data?.["image/png"] !== undefined),
          `${name}: a plot cell without its placeholder chart`,
        );
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
