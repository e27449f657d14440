/**
 * The shared PPO core drives a GPT policy on token-level episodes (lib/ppo/lm_problem.ts):
 * the rollout's log-probs agree with the train step's (ratio 1 before the first update), a
 * toy task with a known optimum is learned, the KL to the frozen reference is reported and
 * held down by β (in the reward, or in the loss), the reference never changes, and a run
 * interrupted and resumed from its checkpoint ends byte-identical to an uninterrupted one.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLmProblem, type LmProblem, type LmTask } from "../../lib/tasks/mod.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { gae } from "../../lib/ppo/gae.ts";
import { gatherPpoBatch, type MetricsRow, trainPpo } from "../../lib/ppo/trainer.ts";
import { ppoHparams } from "../../lib/ppo/losses.ts";
import { type GptConfig, gptShapes } from "../../lib/nn/gpt.ts";
import { Rng } from "../../lib/rng.ts";

// A tiny GPT: 16 tokens (0 = pad, 1 = EOS), d = 32, one block, two heads.
const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
const PAD = 0, EOS = 1, TARGET = 3, MAX_NEW = 8, BATCH = 32, UPDATES = 30;

/**
 * Toy task: random prompts of 1–4 tokens from 2..15; the score is the fraction of response
 * tokens (EOS included) equal to 3. Optimum 1: answer 3 and never stop. A uniform policy
 * scores about 1/16.
 */
const toyTask: LmTask = {
  prompts: (n, _index, rng) =>
    Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(4) }, () => 2 + rng.int(14))),
  score: (_prompts, responses) =>
    responses.map((r) => r.filter((t) => t === TARGET).length / r.length),
};

type KlOpts = { beta: number; placement?: "reward" | "loss"; estimator?: "k1" | "k2" | "k3" };
const ppoCfg = (kl: KlOpts) =>
  parsePpoConfig({
    gamma: 1,
    lambda: 0.95,
    lr: 3e-3,
    lr_anneal: false,
    ent_coef: 0,
    epochs: 4,
    minibatches: 4,
    kl,
  });

const problemFor = (
  cfg: ReturnType<typeof ppoCfg>,
  extra: Partial<Parameters<typeof createLmProblem>[0]> = {},
) =>
  createLmProblem({
    model: MODEL,
    task: toyTask,
    cfg,
    seed: 1,
    batch: BATCH,
    maxNewTokens: MAX_NEW,
    eosTokenId: EOS,
    padTokenId: PAD,
    ...extra,
  });

const sha = (arrays: Record<string, Float32Array | Float64Array>) => {
  const h = createHash("sha256");
  for (const n of Object.keys(arrays).sort()) {
    h.update(n).update(
      new Uint8Array(arrays[n].buffer, arrays[n].byteOffset, arrays[n].byteLength),
    );
  }
  return h.digest("hex");
};

/** KL(π‖π_ref) per response (k1, summed over tokens), measured on a fresh evaluation rollout. */
async function klToReference(p: LmProblem): Promise<number> {
  const roll = await p.rollout(new Rng(4242));
  let sum = 0;
  for (let i = 0; i < roll.rows * roll.cols; i++) {
    if (roll.mask![i]) sum += roll.logp[i] - roll.refLogp![i];
  }
  return sum / roll.rows;
}

const mean = (rows: MetricsRow[], key: string) =>
  rows.reduce((s, r) => s + (r[key] as number), 0) / rows.length;

async function train(cfg: ReturnType<typeof ppoCfg>) {
  const problem = await problemFor(cfg);
  const refBefore = sha(problem.reference);
  const policyBefore = sha(problem.trainer.params());
  const out = await Deno.makeTempDir({ prefix: "proxima-lm-ppo-" });
  const rows: MetricsRow[] = [];
  const t0 = performance.now();
  try {
    await trainPpo(problem, {
      updates: UPDATES,
      seed: 1,
      outDir: out,
      rng: problem.rng,
      onUpdate: (r) => rows.push(r),
    });
  } finally {
    await Deno.remove(out, { recursive: true });
  }
  const secs = (performance.now() - t0) / 1e3;
  return { problem, rows, secs, refBefore, policyBefore, kl: await klToReference(problem) };
}

for (const dtype of ["float32", "float64"] as const) {
  Deno.test(`lm ppo (${dtype}): first minibatch of a fresh policy has ratio 1 (rollout logp = train-step logp)`, async () => {
    // Weights far from GPT-2's init (std 0.3, not 0.02) so the policy is far from uniform and a
    // misplaced position, pad or off-by-one in the response columns would show in the ratio.
    const wrng = new Rng(7);
    const init = Object.fromEntries(
      Object.entries(gptShapes(MODEL)).map(([n, { shape }]) => {
        const a = wrng.fillNormal(new Float64Array(shape.reduce((x, y) => x * y, 1)), 0.3);
        if (/\.ln_(1|2|f)\.weight$/.test(n)) a.forEach((_, i) => (a[i] += 1));
        return [n, a];
      }),
    );
    const cfg = ppoCfg({ beta: 0.1, placement: "loss", estimator: "k3" });
    const p = await problemFor(cfg, { init, dtype, valueHeadStd: 0.1 });
    const roll = await p.rollout(new Rng(3));
    // Mixed prompt lengths (left padding) and responses ending at different lengths.
    const lens = new Set(Array.from({ length: roll.rows }, (_, r) => {
      let n = 0;
      for (let t = 0; t < roll.cols; t++) n += roll.mask![r * roll.cols + t];
      return n;
    }));
    assert.ok(lens.size > 1, "all responses have the same length: padding is not exercised");
    const { advantages, returns } = gae({ ...roll, gamma: 1, lambda: 0.95 });
    const idx = new Rng(5).permutation(roll.rows).slice(0, BATCH / 4);
    const r = await p.trainer.step({
      ...gatherPpoBatch(roll, idx, advantages, returns, true, dtype),
      ...p.inputs(roll, idx),
    }, { ...ppoHparams(cfg), lr: cfg.lr });
    // k3 = (r − 1) − log r cancels: in float32 it is rounding noise of ~1e-8, either sign.
    const tol = dtype === "float32" ? 1e-5 : 1e-12;
    console.log(
      `${dtype}: logp_gap ${roll.metrics!.logp_gap.toExponential(2)}, approx_kl_k1 ` +
        `${r.metrics.approx_kl_k1[0].toExponential(2)}, approx_kl_k3 ` +
        `${r.metrics.approx_kl_k3[0].toExponential(2)}, clipfrac ${r.metrics.clipfrac[0]}, ` +
        `kl_ref_loss ${r.metrics.kl_ref_loss[0].toExponential(2)}`,
    );
    assert.ok(roll.metrics!.logp_gap < tol, `logp gap ${roll.metrics!.logp_gap}`);
    assert.ok(Math.abs(r.metrics.approx_kl_k1[0]) < tol, `approx_kl_k1 ${r.metrics.approx_kl_k1}`);
    assert.ok(
      Math.abs(r.metrics.approx_kl_k3[0]) < tol,
      `approx_kl_k3 ${r.metrics.approx_kl_k3}`,
    );
    assert.equal(r.metrics.clipfrac[0], 0);
    // The reference is the initial policy: its log-probs match, so the KL term starts at 0.
    assert.ok(Math.abs(r.metrics.kl_ref_loss[0]) < tol, `kl_ref_loss ${r.metrics.kl_ref_loss}`);
    for (let i = 0; i < roll.rows * roll.cols; i++) {
      if (!roll.mask![i]) continue;
      assert.ok(Math.abs(roll.logp[i] - roll.refLogp![i]) < tol, `ref logp at ${i}`);
      assert.ok(roll.logp[i] < 0 && roll.logp[i] > -20);
    }
    // Layout: one score per row at its last real token, where the episode ends.
    for (let row = 0; row < roll.rows; row++) {
      let last = -1;
      for (let t = 0; t < roll.cols; t++) if (roll.mask![row * roll.cols + t]) last = t;
      for (let t = 0; t < roll.cols; t++) {
        assert.equal(roll.dones[row * roll.cols + t], t === last ? 1 : 0);
        if (t !== last) assert.equal(roll.rewards[row * roll.cols + t], 0);
      }
    }
  });
}

// Shared between the tests below: beta = 0 is the baseline the KL-penalised runs compare to.
let baseline: Awaited<ReturnType<typeof train>> | undefined;
const getBaseline = async () => (baseline ??= await train(ppoCfg({ beta: 0 })));

Deno.test("lm ppo: the toy task is learned; kl_ref starts at 0 and grows; the reference is untouched", async () => {
  const { problem, rows, secs, refBefore, policyBefore, kl } = await getBaseline();
  assert.equal(rows.length, UPDATES);
  const first = rows[0].score_mean as number, last = mean(rows.slice(-5), "score_mean");
  console.log(
    `β = 0: score ${first.toFixed(3)} -> ${last.toFixed(3)} (mean of the last 5 updates); ` +
      `kl_ref ${(rows[0].kl_ref as number).toExponential(2)} -> ` +
      `${mean(rows.slice(-5), "kl_ref").toFixed(2)}; eval KL ${kl.toFixed(2)} nats/response; ` +
      `response length ${rows[0].response_length} -> ${rows.at(-1)!.response_length}; ` +
      `${UPDATES} updates in ${secs.toFixed(1)} s`,
  );
  assert.ok(first < 0.15, `initial score ${first} (a near-uniform policy scores ~1/16)`);
  assert.ok(last > 0.8, `final score ${last}`);
  // KL to the reference: reported every update, ~0 while the policy is the reference, then up.
  for (const r of rows) assert.equal(typeof r.kl_ref, "number");
  assert.ok(Math.abs(rows[0].kl_ref as number) < 1e-3, `first kl_ref ${rows[0].kl_ref}`);
  assert.ok(mean(rows.slice(-5), "kl_ref") > 1, "kl_ref did not grow");
  assert.ok(kl > 1);
  assert.equal(sha(problem.reference), refBefore, "reference params changed");
  assert.notEqual(sha(problem.trainer.params()), policyBefore, "policy params did not change");
});

Deno.test("lm ppo: β > 0 with the KL in the reward keeps the policy closer to the reference", async () => {
  const base = await getBaseline();
  const { rows, kl, secs, problem, refBefore } = await train(ppoCfg({ beta: 0.05 }));
  const first = rows[0].score_mean as number, last = mean(rows.slice(-5), "score_mean");
  console.log(
    `β = 0.05 (reward): score ${first.toFixed(3)} -> ${last.toFixed(3)}; kl_ref ` +
      `${mean(rows.slice(-5), "kl_ref").toFixed(2)} (β = 0: ` +
      `${mean(base.rows.slice(-5), "kl_ref").toFixed(2)}); eval KL ${kl.toFixed(2)} vs ` +
      `${base.kl.toFixed(2)} nats/response; ${secs.toFixed(1)} s`,
  );
  assert.ok(last > first + 0.2, `score did not rise: ${first} -> ${last}`);
  assert.ok(kl < 0.7 * base.kl, `KL ${kl} not below β = 0's ${base.kl}`);
  assert.ok(mean(rows.slice(-5), "kl_ref") < 0.7 * mean(base.rows.slice(-5), "kl_ref"));
  assert.equal(sha(problem.reference), refBefore);
});

Deno.test("lm ppo: KL in the loss (ref_logp batch input) is reported and keeps the policy closer", async () => {
  const base = await getBaseline();
  // k2: its gradient in the loss is the gradient of KL(π‖π_ref); k1's expectation is 0.
  const { rows, kl, secs } = await train(ppoCfg({ beta: 0.2, placement: "loss", estimator: "k2" }));
  const first = rows[0].score_mean as number, last = mean(rows.slice(-5), "score_mean");
  console.log(
    `β = 0.2 (loss, k2): score ${first.toFixed(3)} -> ${last.toFixed(3)}; kl_ref_loss ` +
      `${(rows[0].kl_ref_loss as number).toExponential(2)} -> ` +
      `${mean(rows.slice(-5), "kl_ref_loss").toFixed(3)}; eval KL ${kl.toFixed(2)} vs ` +
      `${base.kl.toFixed(2)} nats/response; ${secs.toFixed(1)} s`,
  );
  for (const r of rows) assert.ok(Number.isFinite(r.kl_ref_loss), "kl_ref_loss not reported");
  assert.ok(
    Math.abs(rows[0].kl_ref_loss as number) < 0.05,
    `first kl_ref_loss ${rows[0].kl_ref_loss}`,
  );
  assert.ok(last > first + 0.2, `score did not rise: ${first} -> ${last}`);
  assert.ok(kl < 0.7 * base.kl, `KL ${kl} not below β = 0's ${base.kl}`);
});

Deno.test("lm ppo: interrupted and resumed from a checkpoint = uninterrupted, byte for byte", async () => {
  // A dataset task: prompts come from a fixed list at the problem's cursor, which must be
  // restored on resume (the sampling rng is trainPpo's and is checkpointed by it).
  const data = Array.from({ length: 11 }, (_, i) => [2 + (i % 14), 2 + ((3 * i) % 14)]);
  const task: LmTask = {
    prompts: (n, index) => Array.from({ length: n }, (_, k) => data[(index + k) % data.length]),
    score: (_p, rs) => rs.map((r) => r.filter((t) => t === TARGET).length / r.length),
  };
  const cfg = ppoCfg({ beta: 0.05 });
  const updates = 6;
  const run = async (dir: string, stopAfter?: number) => {
    const p = await problemFor(cfg, { task, batch: 8 });
    await trainPpo(p, {
      updates,
      seed: 1,
      outDir: dir,
      rng: p.rng,
      checkpointEvery: 1,
      resume: true,
      onUpdate: (_r, u) => {
        if (u === stopAfter) throw new Error("interrupted");
      },
    });
  };
  const tmp = await Deno.makeTempDir({ prefix: "proxima-lm-resume-" });
  try {
    await run(`${tmp}/ref`);
    // Stops after update 4's metrics row, before its checkpoint: resumes from update 3.
    await assert.rejects(run(`${tmp}/cut`, 4), /interrupted/);
    await run(`${tmp}/cut`);
    for (const f of ["final.safetensors", "metrics.jsonl"]) {
      const a = await Deno.readFile(`${tmp}/ref/${f}`), b = await Deno.readFile(`${tmp}/cut/${f}`);
      assert.ok(
        a.length > 0 && a.length === b.length && a.every((x, i) => x === b[i]),
        `${f} differs`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
