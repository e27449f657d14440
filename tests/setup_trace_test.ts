/**
 * lib/setup_trace.ts: with PROXIMA_SETUP_TRACE=1 a real session compile writes its serialise,
 * hash and session lines to stderr (and nothing to stdout); without it, nothing at all.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

/** A child that compiles and runs a one-node graph, with or without the trace. */
async function child(trace: boolean): Promise<{ stdout: string; stderr: string }> {
  const code = `
    import { Graph } from "${ROOT}lib/onnx/graph.ts";
    import { compile, tensor } from "${ROOT}lib/onnx/session.ts";
    import { traced } from "${ROOT}lib/setup_trace.ts";
    const g = new Graph("double");
    const x = g.input("x", "float32", [2]);
    g.output(g.add(x, x), "y");
    const s = await compile(g, { threads: 1 });
    const y = await s.run({ x: tensor("float32", [2], [1, 2]) });
    console.log(JSON.stringify(Array.from(y.y.data)), traced("sum", () => 1 + 2));
  `;
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (trace) env.PROXIMA_SETUP_TRACE = "1";
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env,
    clearEnv: false,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert(out.success, dec.decode(out.stderr));
  return { stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("PROXIMA_SETUP_TRACE=1 traces a compile on stderr; results unchanged", async () => {
  const [on, off] = await Promise.all([child(true), child(false)]);
  // The same results, on stdout, either way: the trace never reaches it.
  assertEquals(on.stdout, "[2,4] 3\n");
  assertEquals(off.stdout, on.stdout);
  assertEquals(off.stderr.includes("setup-trace"), false);
  const labels = on.stderr.split("\n").filter((l) => l.startsWith("setup-trace"))
    .map((l) => l.replace(/^setup-trace +\d+ ms +(\+ *[\d.]+ ms)? +/, ""));
  assertEquals(labels, [
    "serialise double (2 nodes)", // the Add and the output's Identity
    labels[1], // the hash line names the model's byte count
    "session double (2 nodes)",
    "sum",
  ]);
  assert(/^hash double \(2 nodes\), \d+ B$/.test(labels[1]), labels[1]);
});
