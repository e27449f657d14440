/** README.md's methods table is the one the method records generate (scripts/methods_readme.ts). */
import assert from "node:assert/strict";
import {
  methodsReadmeTable,
  README_END,
  README_START,
  tableCells,
} from "../../lib/report/methods_readme.ts";
import { METHODS } from "../../lib/ppo/methods/mod.ts";

Deno.test("README's methods table is generated from the records (run scripts/methods_readme.ts)", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const i = readme.indexOf(README_START), j = readme.indexOf(README_END);
  assert.ok(i >= 0 && j > i, "the README has the generated block");
  const ours = tableCells(methodsReadmeTable());
  assert.deepEqual(tableCells(readme.slice(i, j)), ours);
  // One row per record, the header and the separator above them.
  assert.equal(ours.length, METHODS.length + 2);
  assert.ok(ours.some((r) => r[0] === "`grpo` (GRPO)" && r.at(-1) === "loss, k3, β 0.04"));
});
