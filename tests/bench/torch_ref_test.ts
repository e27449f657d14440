import assert from "node:assert/strict";
import { runTorch, TORCH_PYTHON, torchAvailable } from "../../bench/torch_ref.ts";

async function requireTorch(): Promise<void> {
  if (!(await torchAvailable())) {
    // CI installs python3-torch: a missing torch is a setup error, not a skip.
    throw new Error(
      `${TORCH_PYTHON} cannot import torch: install Debian's python3-torch ` +
        `(apt-get install python3-torch libopenblas0-pthread) to run the PyTorch reference`,
    );
  }
}

function assertPositive(r: Record<string, unknown>, key: string): void {
  const v = r[key];
  assert.equal(typeof v, "number", `${key} should be a number, got ${JSON.stringify(v)}`);
  assert.ok(Number.isFinite(v as number) && (v as number) > 0, `${key}=${v} not finite > 0`);
}

Deno.test("torch_ref: matmul n=128 reports finite positive timing", async () => {
  await requireTorch();
  const r = await runTorch("matmul", { n: 128, dtype: "float32", iters: 5 }, 1);
  assert.equal(r.case, "matmul");
  assert.equal(r.n, 128);
  assert.equal(r.threads, 1);
  for (const k of ["ms", "gflops"]) assertPositive(r, k);
});

Deno.test("torch_ref: tiny mlp train step reports timing, params and loss", async () => {
  await requireTorch();
  const r = await runTorch(
    "mlp",
    { batch: 8, width: 16, depth: 3, in: 16, out: 1, steps: 3, warmup: 1, dtype: "float32" },
    1,
  );
  assert.equal(r.case, "mlp");
  assert.equal(r.threads, 1);
  assert.equal(typeof r.torch, "string");
  for (const k of ["ms_per_step", "ms_mean", "params", "final_loss"]) assertPositive(r, k);
  // Linear(16,16)+2x Linear(16,16)+Linear(16,1): 3*(16*16+16) + 16+1
  assert.equal(r.params, 3 * (16 * 16 + 16) + 17);
});

Deno.test("torch_ref: a bad invocation throws an Error naming the command and exit code", async () => {
  await requireTorch();
  await assert.rejects(
    () => runTorch("no-such-case", {}, 1),
    (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /exit code 2/);
      assert.match(e.message, /torch_ref\.py no-such-case/);
      assert.match(e.message, /invalid choice/);
      return true;
    },
  );
});
