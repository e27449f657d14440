/** Acceptance: CleanRL's ppo.py defaults solve CartPole-v1 within 500k steps (seed 1). */
import assert from "node:assert/strict";
import {
  parseEnvRunConfig,
  readEpisodes,
  readMetrics,
  recentReturn,
  runEnvTraining,
  solvedAt,
} from "../../lib/envs/run.ts";

Deno.test("PPO (CleanRL defaults) reaches a 100-episode mean return ≥ 475 on CartPole-v1 within 500k steps", async () => {
  const out = await Deno.makeTempDir({ prefix: "proxima-cartpole-" });
  try {
    // CleanRL ppo.py: 4 envs × 128 steps, 4 minibatches, 4 epochs, lr 2.5e-4 annealed, γ 0.99,
    // λ 0.95, clip 0.2, ent 0.01, vf 0.5, max grad norm 0.5, 64×64 tanh actor and critic.
    const cfg = parseEnvRunConfig({ env: "CartPole-v1", seed: 1, total_steps: 500_000 });
    const t0 = performance.now();
    const { updates } = await runEnvTraining(cfg, { outDir: out });
    const secs = (performance.now() - t0) / 1e3;
    const rows = await readMetrics(out), episodes = await readEpisodes(out);
    assert.equal(rows.length, updates);
    // episodes.jsonl holds exactly the episodes each metrics row summarises, in order.
    rows.forEach((row, u) => {
      const mine = episodes.filter((e) => e.update === u + 1);
      assert.equal(mine.length, row.episodes, `update ${u + 1}: episode count`);
      if (mine.length) {
        const mean = mine.reduce((s, e) => s + e.return, 0) / mine.length;
        assert.ok(Math.abs(mean - row.episodic_return!) < 1e-9, `update ${u + 1}: mean return`);
        assert.ok(mine.every((e) => e.step > Number(row.step) - 512 && e.step <= Number(row.step)));
      }
    });
    const final = recentReturn(episodes, 100)!;
    // "Reaches": Gymnasium's solved test, mean return over 100 consecutive episodes ≥ 475.
    const solved = solvedAt(episodes, 475, 100);
    console.log(
      `CartPole-v1 seed 1: solved (100-episode mean ≥ 475) at step ${solved}; ` +
        `mean of the last 100 episodes ${final.toFixed(2)}; wall time ${secs.toFixed(1)} s`,
    );
    assert.ok(solved !== null && solved <= 500_000, `never reached a 100-episode mean ≥ 475`);
    assert.ok(final >= 400, `final 100-episode mean ${final} collapsed below 400`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
