/** trainPpo: the metrics columns, the kl-penalty controller, and the reference-KL check. */
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

Deno.test("kl-penalty: β_penalty follows Schulman's rule on each update's last-epoch KL(π_old‖π); the reference β is untouched", async () => {
  const out = await Deno.makeTempDir({ prefix: "proxima-penalty-" });
  try {
    const target = 0.003;
    const cfg = parseEnvRunConfig({
      env: "cartpole",
      total_steps: 8 * 512,
      ppo: { loss: "kl-penalty", lr: 3e-3, penalty: { control: "schulman", target, beta: 1 } },
    });
    await runEnvTraining(cfg, { outDir: out });
    const rows = await readMetrics(out);
    assert.equal(rows.length, 8);
    assert.equal(rows[0].penalty_beta, 1);
    const moves = new Set<string>();
    for (let u = 0; u + 1 < rows.length; u++) {
      // d = the last epoch's mean KL(π_old‖π) (penalty_kl); kl_penalty averages every epoch.
      const kl = rows[u].penalty_kl!, beta = rows[u].penalty_beta!;
      assert.ok(kl >= rows[u].kl_penalty!, "the last epoch's KL is below the all-epoch mean");
      const want = kl > 1.5 * target ? beta * 2 : kl < target / 1.5 ? beta / 2 : beta;
      moves.add(want > beta ? "up" : want < beta ? "down" : "kept");
      assert.equal(rows[u + 1].penalty_beta, want, `update ${u + 2}`);
      assert.equal(rows[u].beta, 0);
      assert.equal(rows[u].kl_ref, null);
    }
    assert.ok(
      moves.size > 1,
      `β only ever went ${[...moves]}: the test does not exercise the rule`,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("a reference-KL β on a task without a reference policy fails, naming ppo.kl and ppo.penalty", async () => {
  const out = await Deno.makeTempDir({ prefix: "proxima-kl-noref-" });
  try {
    const cfg = parseEnvRunConfig({
      env: "cartpole",
      total_steps: 512,
      ppo: { kl: { beta: 0.1 } },
    });
    await assert.rejects(
      () => runEnvTraining(cfg, { outDir: out }),
      /ppo\.kl \(the KL to a reference policy\) has β > 0 .*no reference policy.*ppo\.penalty/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
