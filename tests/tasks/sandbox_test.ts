/**
 * The sandbox for generated code (lib/tasks/sandbox.ts): code runs in a Worker with no
 * permissions — it cannot read files, open the network, run subprocesses or read the
 * environment — and code still running at the time limit is terminated; a plain module and a
 * JSX component return their results. The test process itself runs with -A, so every denial
 * below comes from the sandbox, not from the test's own permissions.
 */
import assert from "node:assert/strict";
import {
  isElementLike,
  runComponentInSandbox,
  runInSandbox,
  type SandboxResult,
} from "../../lib/tasks/sandbox.ts";

const denied = (r: SandboxResult, what: RegExp) => {
  assert.equal(r.ok, false, `expected a denial, got ${JSON.stringify(r)}`);
  assert.equal(r.timedOut, false);
  assert.match(r.error ?? "", what);
};

Deno.test("sandbox: a module's default export (value, function, async function) comes back", async () => {
  const a = await runInSandbox("export default 6 * 7;");
  assert.deepEqual({ ok: a.ok, result: a.result, timedOut: a.timedOut }, {
    ok: true,
    result: 42,
    timedOut: false,
  });
  const b = await runInSandbox("export default () => ({ xs: [1, 2, 3].map((x) => x * x) });");
  assert.deepEqual(b.result, { xs: [1, 4, 9] });
  const c = await runInSandbox(
    "export default async () => { await new Promise((r) => setTimeout(r, 10)); return 'late'; };",
  );
  assert.equal(c.result, "late");
});

Deno.test("sandbox: generated code cannot read or write files", async () => {
  // The test process can read the file; the sandbox cannot.
  const path = await Deno.makeTempFile({ prefix: "proxima-sandbox-" });
  await Deno.writeTextFile(path, "secret");
  try {
    assert.equal(await Deno.readTextFile(path), "secret");
    denied(
      await runInSandbox(`export default await Deno.readTextFile(${JSON.stringify(path)});`),
      /NotCapable: Requires read access/,
    );
    denied(
      await runInSandbox(`export default Deno.readFileSync(${JSON.stringify(path)}).length;`),
      /Requires read access/,
    );
    denied(
      await runInSandbox(`await Deno.writeTextFile(${JSON.stringify(path)}, "pwned");`),
      /Requires write access/,
    );
    // Nor through the module loader.
    denied(
      await runInSandbox(
        `export default (await import(${
          JSON.stringify(`file://${path}`)
        }, { with: { type: "text" } })).default;`,
      ),
      /Requires read access/,
    );
    assert.equal(await Deno.readTextFile(path), "secret", "the file is unchanged");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("sandbox: generated code cannot open the network", async () => {
  // A server on this machine that the test process itself reaches; the sandbox may not, and
  // the denial comes before any connection (the server counts no request from it).
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    hits++;
    return new Response("hello");
  });
  const url = `http://127.0.0.1:${server.addr.port}/`;
  try {
    assert.equal(await (await fetch(url)).text(), "hello");
    assert.equal(hits, 1);
    denied(
      await runInSandbox(`export default await (await fetch(${JSON.stringify(url)})).text();`),
      new RegExp(`NotCapable: Requires net access to "127\\.0\\.0\\.1:${server.addr.port}"`),
    );
    denied(
      await runInSandbox(
        `const c = await Deno.connect({ hostname: "127.0.0.1", port: ${server.addr.port} });
         c.close(); export default 1;`,
      ),
      /Requires net access/,
    );
    denied(
      await runInSandbox(`export default (await import(${JSON.stringify(url + "x.js")})).default;`),
      /Requires import access/,
    );
    denied(
      await runInSandbox('export default (await fetch("https://example.com/")).status;'),
      /Requires net access to "example\.com/,
    );
    denied(
      await runInSandbox("Deno.listen({ port: 0 }); export default 1;"),
      /Requires net access/,
    );
    assert.equal(hits, 1, "no request from the sandbox reached the server");
  } finally {
    await server.shutdown();
  }
});

Deno.test("sandbox: generated code cannot run subprocesses, read the environment or ask for permissions", async () => {
  denied(
    await runInSandbox('export default new Deno.Command("ls").outputSync().code;'),
    /NotCapable: Requires run access to "ls"/,
  );
  denied(
    await runInSandbox(
      'export default (await new Deno.Command("sh", { args: ["-c", "id"] }).output()).code;',
    ),
    /Requires run access/,
  );
  // Deno.run is gone in Deno 2: the call itself fails.
  const run = await runInSandbox('export default Deno.run({ cmd: ["ls"] });');
  assert.equal(run.ok, false);
  denied(await runInSandbox('export default Deno.env.get("HOME");'), /Requires env access/);
  const ask = await runInSandbox(
    'export default (await Deno.permissions.request({ name: "read" })).state;',
  );
  assert.deepEqual([ask.ok, ask.result], [true, "denied"], "no prompt, no escalation");
});

Deno.test("sandbox: an infinite loop is terminated at the time limit", async () => {
  for (
    const code of [
      "while (true) {}", // at module evaluation
      "export default () => { for (;;) {} };", // in the called export
      "export default () => new Promise(() => {});", // never settles
    ]
  ) {
    const t0 = performance.now();
    const r = await runInSandbox(code, { timeoutMs: 300 });
    const wall = performance.now() - t0;
    assert.equal(r.ok, false, code);
    assert.equal(r.timedOut, true, code);
    assert.match(r.error ?? "", /time limit of 300 ms/);
    assert.ok(r.ms >= 290 && r.ms < 2000, `${code}: stopped after ${r.ms} ms`);
    assert.ok(wall < 12_000, `${code}: ${wall} ms in all`);
  }
  // The host is fine and the next sandbox runs normally.
  assert.equal((await runInSandbox("export default 'next';")).result, "next");
});

Deno.test("sandbox: errors are results (throw, syntax error, uncloneable value)", async () => {
  const t = await runInSandbox('throw new Error("boom");');
  assert.equal(t.ok, false);
  assert.match(t.error!, /boom/);
  assert.equal((await runInSandbox("export default = ;")).ok, false);
  const f = await runInSandbox("export default () => ({ f: () => 1 });");
  assert.equal(f.ok, false);
  assert.match(f.error!, /DataCloneError|could not be cloned/);
});

Deno.test("sandbox: a JSX component runs with the JSX shim and returns an element", async () => {
  const r = await runComponentInSandbox(
    ' const NameInput = () => <label><input placeholder="Name" /> {1 + 1}</label>;',
    "NameInput",
  );
  assert.equal(r.ok, true, r.error ?? "");
  assert.ok(isElementLike(r.result));
  assert.deepEqual(r.result, {
    type: "label",
    props: {},
    children: [{ type: "input", props: { placeholder: "Name" }, children: [] }, " ", 2],
  });
  const notElement = await runComponentInSandbox(" const Nope = () => 3;", "Nope");
  assert.equal(notElement.ok, false);
  assert.match(notElement.error!, /returned 3, not an element/);
  const missing = await runComponentInSandbox(" const A = () => <b/>;", "B");
  assert.equal(missing.ok, false);
  assert.match(missing.error!, /B is not defined/);
  const denial = await runComponentInSandbox(
    ' const Leak = () => <p>{Deno.readTextFileSync("/etc/hostname")}</p>;',
    "Leak",
  );
  assert.equal(denial.ok, false);
  assert.match(denial.error!, /Requires read access/);
});
