import assert from "node:assert/strict";
import { codeFiles, codeVersion } from "../../lib/experiment/code_version.ts";

Deno.test("code version: trial code and the lockfile count, bundle readers do not", async () => {
  const files = await codeFiles();
  for (const f of ["lib/experiment/runner.ts", "lib/ppo/trainer.ts", "cli/sweep.ts", "deno.lock"]) {
    assert.ok(files.includes(f), f);
  }
  assert.ok(!files.some((f) => f.startsWith("lib/report/") || f === "cli/verify.ts"), files.join());
  // The TensorBoard writer and the exports write beside bundles, never into them.
  for (
    const f of [
      "lib/tensorboard/writer.ts",
      "cli/export.ts",
      "cli/report_to.ts",
      "cli/dashboard.ts",
    ]
  ) {
    assert.ok(!files.includes(f), f);
  }
  assert.deepEqual(files, [...files].sort());
});

Deno.test("code version: a change to a trial source changes it, a report source does not", async () => {
  const root = await Deno.makeTempDir({ prefix: "proxima-codever-" });
  try {
    await Deno.mkdir(`${root}/lib/ppo`, { recursive: true });
    await Deno.mkdir(`${root}/lib/report`, { recursive: true });
    await Deno.writeTextFile(`${root}/lib/ppo/a.ts`, "export const a = 1;\n");
    await Deno.writeTextFile(`${root}/lib/report/r.ts`, "export const r = 1;\n");
    await Deno.writeTextFile(`${root}/deno.lock`, "{}\n");
    const v0 = await codeVersion(root);
    await Deno.writeTextFile(`${root}/lib/report/r.ts`, "export const r = 2;\n");
    assert.equal(await codeVersion(root), v0);
    await Deno.writeTextFile(`${root}/lib/ppo/a.ts`, "export const a = 2;\n");
    assert.notEqual(await codeVersion(root), v0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
