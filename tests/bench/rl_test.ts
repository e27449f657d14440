import assert from "node:assert/strict";
import { benchRl, QWEN2_43M, RL_SHAPES, rlConfig, rlTable, summarize } from "../../bench/rl.ts";
import { UsageError } from "../../lib/errors.ts";
import { rolloutBounds, rowsTable } from "../../bench/rollout_rows.ts";
import { decoderShapes } from "../../lib/nn/decoder.ts";
import { LM_KIND } from "../../lib/tasks/lm/mod.ts";

const line = (ms: number, generation: number, scoring: number, tokens: number) => ({
  ms,
  generation,
  scoring,
  training: ms - generation - scoring,
  tokens,
});

Deno.test("bench rl: summarize drops the warm-up, takes medians and tokens/s of generation", () => {
  const s = summarize([
    line(9000, 5000, 1000, 100), // warm-up: excluded
    line(3000, 1000, 500, 64),
    line(5000, 2000, 500, 64),
    line(4000, 1000, 1000, 64),
  ], 1);
  assert.equal(s.n, 3);
  assert.equal(s.ms, 4000);
  assert.equal(s.generation, 1000);
  assert.equal(s.scoring, 500);
  assert.equal(s.training, 2000); // of 1500, 2500, 2000
  assert.equal(s.tokensPerS, 192 / 4); // 192 tokens in 4 s of generation
  assert.throws(() => summarize([line(1, 1, 0, 1)], 1), /no measured updates/);
});

Deno.test("bench rl: the table prints both sides, the ratios and the estimate", () => {
  const prox = {
    updates: [line(2000, 500, 500, 320), line(2000, 500, 500, 320)],
    setupMs: 30000,
    peakRss: 4e9,
  };
  const trl = {
    updates: [line(8000, 4000, 1000, 320), line(8000, 4000, 1000, 320)],
    setupMs: 10000,
    peakRss: 5e9,
  };
  const t = rlTable(RL_SHAPES.small, prox, trl, 1, 4.4e9);
  const rows = Object.fromEntries(
    t.split("\n").slice(2).map((r) => r.split("|").slice(1, -1).map((c) => c.trim()))
      .map(([k, ...v]) => [k, v]),
  );
  assert.deepEqual(rows["s/update (median)"], ["2.00", "8.00", "0.25"]);
  assert.deepEqual(rows["generation, s"], ["0.50", "4.00", "0.13"]);
  assert.deepEqual(rows["generation tokens/s"], ["640", "80", "8.00"]);
  assert.deepEqual(rows["set-up before the first update, s"], ["30.00", "10.00", "3.00"]);
  assert.deepEqual(rows["peak RSS, GB"], ["4.00", "5.00", "0.80"]);
  assert.deepEqual(rows["Proxima's planning estimate, GB (/ measured peak)"], ["4.40", "", "1.10"]);
  assert.match(t, /1 updates/);
});

Deno.test("bench rl: the small shape has 43M parameters and both configs parse as GRPO", () => {
  const n = Object.values(decoderShapes(QWEN2_43M)).reduce(
    (a, s) => a + s.shape.reduce((x, y) => x * y, 1),
    0,
  );
  assert.ok(n > 42e6 && n < 44e6, `${n} parameters`);
  for (const shape of Object.values(RL_SHAPES)) {
    const c = LM_KIND.parse(rlConfig(shape, "/m", "/p.jsonl", 5));
    assert.equal(c.ppo.advantage, "grpo");
    assert.equal(c.batch, shape.completions);
    assert.equal(c.samples_per_prompt, 4);
    assert.equal(c.lora.r, shape.loraR);
    assert.deepEqual([c.ppo.kl.beta, c.ppo.kl.estimator, c.ppo.kl.placement], [0.04, "k3", "loss"]);
    assert.deepEqual([c.ppo.epochs, c.ppo.minibatches], [1, 1]); // one optimizer step per update
    // One pass of every completion unless the run asks for gradient accumulation (both sides).
    assert.equal(c.ppo.micro_batches, 1);
    const m = LM_KIND.parse(rlConfig(shape, "/m", "/p.jsonl", 5, 4));
    assert.equal(m.ppo.micro_batches, 4);
  }
});

Deno.test("bench rl: rollout bounds by hand and the rows table's ratios", () => {
  // 1e9 parameters (4 GB per decode step), 20 GB/s, 100 GFLOP/s (2 GFLOP per token).
  const b = rolloutBounds(8, 1e9, 20e9, 100);
  assert.equal(b.bandwidthBound, 40); // 8 rows x 5 steps/s
  assert.equal(b.matmulBound, 50);
  const t = rowsTable(
    [
      { rows: 8, tokensPerS: 20, ...rolloutBounds(8, 1e9, 20e9, 100) },
      { rows: 128, tokensPerS: 45, ...rolloutBounds(128, 1e9, 20e9, 100) },
    ],
    20e9,
    100,
  );
  assert.match(t, /\| 128 rows \(16 groups of 8\) +\| 45\.0 +\| 2\.25 +\| 640\.0 +\| 50\.0 +\|/);
  assert.match(t, /bandwidth 20\.0 GB\/s, matmul 100 GFLOP\/s/);
});

Deno.test("bench: a child killed by SIGKILL from outside the watchdog is a clear error naming the OOM killer", async () => {
  const { ChildKilledError, LineChild } = await import("../../bench/anchor.ts");
  const c = LineChild.spawn("a child", "bash", ["-c", "kill -9 $$"], {});
  await assert.rejects(() => c.read(), (e: Error) => {
    assert.ok(e instanceof ChildKilledError);
    assert.match(e.message, /a child was killed \(SIGKILL\).*out of memory.*--rl-sequential/);
    return true;
  });
  await c.close();
});

Deno.test("bench rl: --rl-micro-batches that does not divide a shape's completions is a usage error", async () => {
  await assert.rejects(
    () =>
      benchRl({
        threads: 1,
        shapes: ["qwen"],
        updates: 1,
        warmup: 0,
        maxRssGb: 1,
        microBatches: 3,
      }),
    (e: Error) =>
      e instanceof UsageError && /--rl-micro-batches 3 .* 16 completions/.test(e.message),
  );
});
