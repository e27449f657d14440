/** trainPpo's metrics rows: exactly the documented columns, in order. */
import assert from "node:assert/strict";
import { PPO_METRIC_COLUMNS } from "../../lib/ppo/trainer.ts";
import { parseEnvRunConfig, readMetrics, runEnvTraining } from "../../lib/envs/run.ts";

Deno.test("every metrics row has exactly PPO_METRIC_COLUMNS (the list sweeps validate against)", async () => {
  const out = await Deno.makeTempDir({ prefix: "proxima-cols-" });
  try {
    const cfg = parseEnvRunConfig({ env: "cartpole", total_steps: 1024, steps: 128 });
    await runEnvTraining(cfg, { outDir: out });
    const rows = await readMetrics(out);
    assert.equal(rows.length, 2);
    for (const row of rows) assert.deepEqual(Object.keys(row), [...PPO_METRIC_COLUMNS]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
