/**
 * `ppo.micro_batches` (lib/ppo/micro_batches.ts, lib/onnx/train_accumulate.ts): one update with
 * each minibatch's rows in 2 or 4 accumulated pieces gives the parameters and metrics of the
 * whole minibatch in one piece, up to float rounding, for a token-level aggregate (PPO with a
 * value loss) and a sequence-level one (GRPO), both with the KL in the loss; a minibatch that
 * does not split evenly is refused naming the key.
 */
import assert from "node:assert/strict";
import { createLmProblem, type LmTask } from "../../lib/tasks/mod.ts";
import { ConfigError, parsePpoConfig } from "../../lib/ppo/config.ts";
import { microBatchProblems } from "../../lib/ppo/micro_batches.ts";
import { type MetricsRow, trainPpo } from "../../lib/ppo/trainer.ts";
import type { GptConfig } from "../../lib/nn/gpt.ts";

const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
const task: LmTask = {
  prompts: (n, _index, rng) =>
    Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(4) }, () => 2 + rng.int(14))),
  score: (_prompts, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
};

const base = {
  gamma: 1,
  lr: 3e-2,
  lr_anneal: false,
  epochs: 2,
  minibatches: 2,
  max_grad_norm: 0.5,
  kl: { beta: 0.1, placement: "loss", estimator: "k3" },
};
const VARIANTS: Record<string, { ppo: Record<string, unknown>; k: number }> = {
  // Token-level masked means: policy, value loss (clipped), entropy bonus, KL.
  token: { ppo: { ...base, ent_coef: 0.01 }, k: 1 },
  // Sequence-level: GRPO's mean over responses of each response's token mean.
  sequence: { ppo: { ...base, advantage: "grpo", whiten_advantages: false }, k: 4 },
  // Dr. GRPO: Σ over tokens / (rows · max_new_tokens).
  dr_grpo: { ppo: { ...base, advantage: "dr_grpo", whiten_advantages: false }, k: 4 },
};

async function oneUpdate(name: string, micro: number) {
  const v = VARIANTS[name];
  // The LM-only keys (advantage) ride beside the shared schema's, as LM tasks' schemas add them.
  const { advantage, ...shared } = v.ppo;
  const cfg = {
    ...parsePpoConfig({ ...shared, micro_batches: micro }),
    ...(advantage ? { advantage: advantage as "grpo" } : {}),
  };
  const problem = await createLmProblem({
    model: MODEL,
    task,
    cfg,
    seed: 7,
    batch: 8,
    samplesPerPrompt: v.k,
    maxNewTokens: 6,
    eosTokenId: 1,
    padTokenId: 0,
  });
  const before = Object.fromEntries(
    Object.entries(problem.trainer.params()).map(([n, a]) => [n, Float64Array.from(a)]),
  );
  const outDir = await Deno.makeTempDir({ prefix: "micro_" });
  try {
    const row = await trainPpo(problem, { updates: 1, seed: 7, outDir, rng: problem.rng });
    const after = Object.fromEntries(
      Object.entries(problem.trainer.params()).map(([n, a]) => [n, Float64Array.from(a)]),
    );
    return { before, after, row, mode: problem.trainer.mode };
  } finally {
    problem.release();
    await Deno.remove(outDir, { recursive: true });
  }
}

/** Largest |a − b| over every parameter, and the largest |a| (the scale the tolerance is of). */
function paramGap(a: Record<string, Float64Array>, b: Record<string, Float64Array>) {
  let gap = 0, scale = 0;
  for (const n of Object.keys(a)) {
    for (let i = 0; i < a[n].length; i++) {
      gap = Math.max(gap, Math.abs(a[n][i] - b[n][i]));
      scale = Math.max(scale, Math.abs(a[n][i]));
    }
  }
  return { gap, scale };
}

const METRICS = [
  "loss",
  "policy_loss",
  "value_loss",
  "entropy",
  "approx_kl_k1",
  "approx_kl_k3",
  "clipfrac",
  "kl_ref_loss",
  "grad_norm",
] as const;

for (const name of Object.keys(VARIANTS)) {
  Deno.test(`micro_batches 2 and 4 give micro_batches 1's update (${name})`, async () => {
    const whole = await oneUpdate(name, 1);
    const moved = paramGap(whole.after, whole.before);
    for (const micro of [2, 4]) {
      const parts = await oneUpdate(name, micro);
      assert.equal(parts.mode, "split");
      const { gap, scale } = paramGap(parts.after, whole.after);
      // The update itself is far above the tolerance: the comparison can fail.
      assert.ok(moved.gap > 1e-3, `${name}: the update moved the params by ${moved.gap}`);
      assert.ok(gap <= 1e-5 * scale, `${name} × ${micro}: params differ by ${gap} (${scale})`);
      for (const k of METRICS) {
        const a = whole.row[k] as number | null, b = parts.row[k] as number | null;
        if (a === null || a === undefined) {
          assert.equal(b ?? null, null, `${name} × ${micro}: ${k}`);
          continue;
        }
        assert.ok(
          Math.abs(a - (b as number)) <= 1e-5 * Math.max(Math.abs(a), 1e-3),
          `${name} × ${micro}: ${k} ${b} vs ${a}`,
        );
      }
      assert.equal(parts.row.epochs, whole.row.epochs);
    }
  });
}

Deno.test("micro_batches that do not divide a minibatch's rows are refused, naming the key", async () => {
  // 8 rows, 2 minibatches of 4: 3 pieces do not divide them.
  await assert.rejects(
    () => oneUpdateWith({ ...VARIANTS.token.ppo, micro_batches: 3 }),
    (e: Error) =>
      e instanceof ConfigError && /ppo\.micro_batches/.test(e.message) &&
      /minibatch of 4 rows/.test(e.message) && /1, 2, 4/.test(e.message),
  );
  const cfg = parsePpoConfig({ minibatches: 2, micro_batches: 3 });
  const [p] = microBatchProblems(cfg, 8);
  assert.equal(p.key, "ppo.micro_batches");
  assert.match(p.fix, /divisor of 4 \(1, 2, 4\)/);
  // The key once: the problem's key, not again at the start of its cause.
  assert.match(p.cause, /^a minibatch of 4 rows/);
  assert.deepEqual(microBatchProblems({ ...cfg, micro_batches: 4 }, 8), []);
  assert.equal(microBatchProblems({ ...cfg, micro_batches: 2 }, 6).length, 1); // 3 + 3 rows
});

async function oneUpdateWith(ppo: Record<string, unknown>): Promise<MetricsRow> {
  VARIANTS.custom = { ppo, k: 1 };
  const { row } = await oneUpdate("custom", ppo.micro_batches as number);
  return row;
}

Deno.test("micro_batches on a classic-control run (positions, not rows): the same update", async () => {
  const { parseEnvRunConfig, readMetrics, runEnvTraining } = await import(
    "../../lib/envs/run.ts"
  );
  const rows: MetricsRow[] = [];
  for (const micro of [1, 4]) {
    const out = await Deno.makeTempDir({ prefix: "micro_env_" });
    try {
      // CleanRL's CartPole set-up, one update of 4 envs × 128 steps, 4 minibatches of 128.
      const cfg = parseEnvRunConfig({
        env: "CartPole-v1",
        seed: 3,
        total_steps: 512,
        ppo: { micro_batches: micro, epochs: 2 },
      });
      await runEnvTraining(cfg, { outDir: out });
      rows.push((await readMetrics(out))[0]);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  }
  for (const k of METRICS) {
    const a = rows[0][k] as number | null, b = rows[1][k] as number | null;
    if (a === null || a === undefined) continue;
    assert.ok(Math.abs(a - b!) <= 1e-5 * Math.max(Math.abs(a), 1e-3), `${k}: ${b} vs ${a}`);
  }
  assert.ok((rows[0].clipfrac as number) > 0 || (rows[0].approx_kl_k3 as number) > 0);
});
