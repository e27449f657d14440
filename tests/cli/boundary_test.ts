/**
 * The error boundary (cli/boundary.ts) and the shared flag parsing (cli/flags.ts): a user error
 * is one message and exit 2, a bug is a stack after a line saying so and exit 70; negative
 * numbers are values; ranges are named.
 */
import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import { joinNegativeValues, numberFlag, parseFlags } from "../../cli/flags.ts";
import { UsageError } from "../../lib/errors.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Run a script whose main is `body` inside runCommand; its exit code and stderr. */
async function boundary(body: string): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "proxima_boundary_" });
  try {
    const b = pathToFileURL(`${ROOT}cli/boundary.ts`).href;
    const e = pathToFileURL(`${ROOT}lib/errors.ts`).href;
    await Deno.writeTextFile(
      `${dir}/cmd.ts`,
      `import { runCommand } from "${b}";\nimport { InputError, UserError } from "${e}";\n` +
        `await runCommand(async () => { ${body} });\n`,
    );
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", `${dir}/cmd.ts`],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("boundary: a user error is its message and its fix, exit 2, no stack", async () => {
  const r = await boundary(`throw new UserError("cmd: --x 3: too big", { fix: "give 2" });`);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "cmd: --x 3: too big\n  fix: give 2\n");
  const l = await boundary(
    `throw new InputError("safetensors", "m/model.safetensors", "truncated", "re-download it");`,
  );
  assert.equal(l.code, 2);
  assert.equal(
    l.stderr,
    "cmd: safetensors: m/model.safetensors: truncated\n  fix: re-download it\n",
  );
  const fs = await boundary(`await Deno.readTextFile("/nonexistent/proxima/x.json");`);
  assert.equal(fs.code, 2);
  assert.match(fs.stderr, /^cmd: No such file or directory.*\/nonexistent\/proxima\/x\.json/);
  assert.doesNotMatch(fs.stderr, /^\s+at /m);
});

Deno.test("boundary: a bug says so, where to report it, and keeps its stack (exit 70)", async () => {
  const r = await boundary(`const o = JSON.parse("null"); return o.missing.field;`);
  assert.equal(r.code, 70);
  assert.match(
    r.stderr,
    /^cmd: internal error: this is a bug in Proxima, not a problem with your input; please report it/,
  );
  assert.match(r.stderr, /TypeError: Cannot read properties of null/);
  assert.match(r.stderr, /^\s+at .*cmd\.ts:\d+:\d+/m);
  // A rejection nobody awaited goes through the same boundary.
  const u = await boundary(
    `Promise.reject(new UserError("cmd: late")); await new Promise((r) => setTimeout(r, 50));`,
  );
  assert.equal(u.code, 2);
  assert.equal(u.stderr, "cmd: late\n");
});

Deno.test("flags: a negative number after a value flag is its value", () => {
  assert.deepEqual(joinNegativeValues(["--lr", "-1", "--x", "-.5", "--y", "-1e-3", "--z", "-v"]), [
    "--lr=-1",
    "--x=-.5",
    "--y=-1e-3",
    "--z",
    "-v",
  ]);
  assert.deepEqual(joinNegativeValues(["--", "--a", "-1"]), ["--", "--a", "-1"]);
  const { values } = parseFlags("t", ["--temperature", "-1", "--quiet"], {
    temperature: { type: "string" },
    quiet: { type: "boolean" },
  });
  assert.deepEqual({ ...values }, { temperature: "-1", quiet: true });
  // A switch takes no value: "-1" after it is not joined, and parseArgs refuses it as a flag.
  assert.throws(
    () => parseFlags("t", ["--quiet", "-1"], { quiet: { type: "boolean" } }),
    UsageError,
  );
});

Deno.test("flags: unknown flags get a did-you-mean; numbers their range", () => {
  assert.throws(
    () => parseFlags("t", ["--temprature", "1"], { temperature: { type: "string" } }),
    (e: Error) =>
      e instanceof UsageError &&
      /unknown flag --temprature \(did you mean --temperature\?\)/.test(e.message),
  );
  assert.equal(numberFlag("t", "jobs", "4", { integer: true, min: 1 }), 4);
  assert.equal(numberFlag("t", "jobs", undefined, { integer: true, min: 1 }), undefined);
  const cases: [string, Parameters<typeof numberFlag>[3], string][] = [
    ["-1", { integer: true, min: 1 }, 't: --n "-1": expected an integer >= 1'],
    ["1.5", { integer: true, min: 1 }, 't: --n "1.5": expected an integer >= 1'],
    ["0", { min: 0, minInclusive: false, max: 1 }, 't: --n "0": expected a number in (0, 1]'],
    [
      "1000000000",
      { integer: true, min: 1, max: 1e6 },
      't: --n "1000000000": expected an integer in [1, 1000000]',
    ],
    ["", {}, 't: --n "": expected a number'],
    ["abc", {}, 't: --n "abc": expected a number'],
  ];
  for (const [raw, range, msg] of cases) {
    assert.throws(() => numberFlag("t", "n", raw, range), (e: Error) => e.message === msg, raw);
  }
});
