/**
 * The online methods' remaining options: TR-DPO's reference sync (`ppo.sync_ref_model`: after
 * every `ref_model_sync_steps` optimizer steps the reference's weights equal α·policy +
 * (1 − α)·reference, computed here by hand from the weights read back after each update;
 * refused with LoRA and without a KL term, as TRL refuses it) and Skywork-OR1's adaptive entropy
 * control (`ppo.entropy.control "adaptive"`: the coefficient follows the hand-applied rule
 * from each update's measured entropy, and the loss really used it).
 */
import assert from "node:assert/strict";
import { createLmProblem, type LmTask } from "../../lib/ppo/lm_problem.ts";
import type { PpoConfig } from "../../lib/ppo/config.ts";
import { ConfigError } from "../../lib/ppo/config.ts";
import { UserError } from "../../lib/errors.ts";
import { makeEntropyController } from "../../lib/ppo/entropy_control.ts";
import { mixReference, syncsDue } from "../../lib/ppo/ref_sync.ts";
import { type MetricsRow, trainPpo } from "../../lib/ppo/trainer.ts";
import { LmPpoSchema } from "../../lib/tasks/byte_lm.ts";
import { LM_KIND } from "../../lib/tasks/lm/mod.ts";
import type { GptConfig } from "../../lib/nn/gpt.ts";

const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 };

/** Random prompts; score = share of response tokens equal to 3. */
const toyTask: LmTask = {
  prompts: (n, _i, rng) =>
    Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(3) }, () => 2 + rng.int(14))),
  score: (_p, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
};

const cfgFor = (over: Record<string, unknown>): PpoConfig =>
  LmPpoSchema.parse({
    lr: 1e-2,
    epochs: 1,
    minibatches: 1,
    advantage: "grpo",
    whiten_advantages: false,
    ...over,
  });

/** Train `updates` updates; after each, the policy's and the reference's weights (copies). */
async function run(cfg: PpoConfig, updates: number) {
  const problem = await createLmProblem({
    model: MODEL,
    task: toyTask,
    cfg,
    seed: 1,
    batch: 8,
    samplesPerPrompt: 4,
    maxNewTokens: 4,
    eosTokenId: 1,
    padTokenId: 0,
    dtype: "float64",
  });
  const copy = (o: Record<string, ArrayLike<number>>, names: string[]) =>
    Object.fromEntries(names.map((n) => [n, Float64Array.from(o[n])]));
  const names = Object.keys(problem.reference);
  const refs = [copy(problem.reference, names)], policies = [copy(problem.trainer.params(), names)];
  const rows: MetricsRow[] = [];
  const out = await Deno.makeTempDir({ prefix: "proxima-online-options-" });
  try {
    await trainPpo(problem, {
      updates,
      seed: 1,
      outDir: out,
      rng: problem.rng,
      onUpdate: (r) => rows.push(r),
      afterUpdate: () => {
        refs.push(copy(problem.reference, names));
        policies.push(copy(problem.trainer.params(), names));
        return Promise.resolve();
      },
    });
  } finally {
    await Deno.remove(out, { recursive: true });
  }
  return { refs, policies, rows, names };
}

Deno.test("sync_ref_model: after each sync step the reference is α·policy + (1 − α)·reference", async () => {
  const alpha = 0.6;
  // One optimizer step per update, a sync every 2 steps: after updates 2 and 4.
  const cfg = cfgFor({
    kl: { beta: 0.04, placement: "loss", estimator: "k3" },
    sync_ref_model: true,
    ref_model_mixup_alpha: alpha,
    ref_model_sync_steps: 2,
  });
  const { refs, policies, names } = await run(cfg, 4);
  const differs = (a: Record<string, Float64Array>, b: Record<string, Float64Array>) =>
    names.some((n) => a[n].some((v, i) => v !== b[n][i]));
  assert.ok(differs(policies[2], policies[0]), "the policy trained");
  for (let u = 1; u <= 4; u++) {
    const want = u % 2 === 0
      ? Object.fromEntries(names.map((n) => [
        n,
        refs[u - 1][n].map((r, i) => (1 - alpha) * r + alpha * policies[u][n][i]),
      ]))
      : refs[u - 1];
    for (const n of names) {
      refs[u][n].forEach((v, i) => assert.equal(v, want[n][i], `update ${u}, ${n}[${i}]`));
    }
  }
  assert.ok(differs(refs[2], refs[0]) && differs(refs[4], refs[2]), "the syncs moved it");
  // Without the sync the reference never moves.
  const off = await run(cfgFor({ kl: { beta: 0.04, placement: "loss", estimator: "k3" } }), 2);
  assert.ok(!differs(off.refs[2], off.refs[0]));
});

Deno.test("sync_ref_model: a checkpoint taken after a sync is not resumed (the reference is not in it)", async () => {
  const problem = await createLmProblem({
    model: MODEL,
    task: toyTask,
    cfg: cfgFor({ kl: { beta: 0.04 }, sync_ref_model: true, ref_model_sync_steps: 2 }),
    seed: 1,
    batch: 8,
    samplesPerPrompt: 4,
    maxNewTokens: 4,
    eosTokenId: 1,
    padTokenId: 0,
  });
  problem.load({ cursor: 4, optimizer_steps: 1 }); // before the first sync: fine
  assert.deepEqual(problem.state(), { cursor: 4, optimizer_steps: 1 });
  assert.throws(
    () => problem.load({ cursor: 8, optimizer_steps: 2 }),
    (e) => e instanceof UserError && /synced 1 time\(s\) before its checkpoint/.test(e.message),
  );
});

Deno.test("sync_ref_model: the steps that sync and the mix, by hand", () => {
  assert.equal(syncsDue(0, 4, 512), 0);
  assert.equal(syncsDue(510, 514, 512), 1);
  assert.equal(syncsDue(0, 1024, 512), 2);
  const ref = { w: new Float64Array([0, 1, -2]) };
  mixReference(ref, { w: [1, 1, 2] }, 0.25);
  assert.deepEqual([...ref.w], [0.25, 1, -1]);
  assert.throws(() => mixReference(ref, { v: [1] }, 0.5), /no weight "w"/);
});

Deno.test("sync_ref_model: refused with LoRA and without a KL term, naming the keys", () => {
  const LM = { policy: "p", prompts: "p.txt", reward_model: "rm", samples_per_prompt: 4 };
  assert.throws(
    () => LM_KIND.parse({ ...LM, method: "grpo", lora: { r: 4 }, ppo: { sync_ref_model: true } }),
    (e) =>
      e instanceof ConfigError && /ppo\.sync_ref_model/.test(e.message) &&
      /lora\.r/.test(e.message),
  );
  assert.throws(
    () => LM_KIND.parse({ ...LM, method: "dapo", ppo: { sync_ref_model: true } }),
    /ppo\.sync_ref_model syncs the reference, and ppo\.kl\.beta is 0/,
  );
  const ok = LM_KIND.parse({ ...LM, method: "grpo", ppo: { sync_ref_model: true } });
  assert.equal(ok.ppo.ref_model_mixup_alpha, 0.6); // TRL's defaults
  assert.equal(ok.ppo.ref_model_sync_steps, 512);
});

Deno.test("adaptive entropy control: Skywork-OR1's rule, by hand", () => {
  const c = makeEntropyController({
    ent_coef: 0.01,
    entropy: { control: "adaptive", target: 0.2, delta: 0.005 },
  });
  assert.equal(c.coef, 0.01); // c₀ = ent_coef
  c.update(0.1); // below target: c + Δ, active
  assert.equal(c.coef, 0.01 + 0.005);
  c.update(0.3); // above: c − Δ, and the bonus is off
  assert.equal(c.coef, 0);
  assert.deepEqual(c.state(), { coef: 0.01 + 0.005 - 0.005, active: false });
  c.update(0.5), c.update(0.5), c.update(0.5); // never below 0
  assert.equal(c.state().coef, 0);
  c.update(0.2); // at the target: unchanged, active
  assert.deepEqual(c.state(), { coef: 0, active: true });
  const fixed = makeEntropyController({ ent_coef: 0.01, entropy: undefined });
  fixed.update(0);
  assert.equal(fixed.adaptive, false);
  assert.equal(fixed.coef, 0.01);
});

Deno.test("adaptive entropy control: the coefficient follows each update's entropy and the loss uses it", async () => {
  // A target above the toy policy's entropy (≤ log 16 ≈ 2.77): the coefficient rises by Δ
  // every update and acts; critic-free, β 0: loss = policy_loss − c·entropy exactly.
  const cfg = cfgFor({ ent_coef: 0, entropy: { control: "adaptive", target: 5, delta: 0.1 } });
  const { rows } = await run(cfg, 3);
  let c = 0;
  for (const r of rows) {
    assert.equal(r.ent_coef, c);
    const e = r.entropy as number, pl = r.policy_loss as number;
    assert.ok(Math.abs((r.loss as number) - (pl - c * e)) < 1e-9, `${r.loss} vs ${pl - c * e}`);
    c = e < 5 ? c + 0.1 : Math.max(0, c - 0.1);
  }
  // A target below it: the coefficient stays 0 and the bonus is off.
  const low = await run(
    cfgFor({ ent_coef: 0.05, entropy: { control: "adaptive", target: 1e-3, delta: 0.1 } }),
    2,
  );
  assert.equal(low.rows[0].ent_coef, 0.05);
  assert.equal(low.rows[1].ent_coef, 0);
  // Fixed control (the default) writes no ent_coef column: existing metrics are unchanged.
  assert.ok(!("ent_coef" in (await run(cfgFor({}), 1)).rows[0]));
});
