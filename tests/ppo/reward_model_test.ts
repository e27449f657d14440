/**
 * Reward-model stage (lib/ppo/reward_model.ts): the train step's Bradley–Terry loss equals
 * −log σ(r_chosen − r_rejected) computed from the scoring session, scores do not depend on
 * the batch around a sequence, a toy preference is learned to high held-out accuracy, and the
 * Hugging Face folder round-trips (head as extra tensors).
 */
import assert from "node:assert/strict";
import { type GptConfig, initGpt } from "../../lib/nn/gpt.ts";
import { initHead, REWARD_HEAD } from "../../lib/nn/heads.ts";
import { saveHfFolder } from "../../lib/nn/hf.ts";
import {
  evaluatePreferences,
  loadRewardModel,
  makePreferenceBatch,
  normalizeRewardHead,
  type PreferencePair,
  RewardModelTrainer,
  saveRewardModel,
  scoreSequences,
} from "../../lib/ppo/reward_model.ts";
import { Rng } from "../../lib/rng.ts";

const TINY: GptConfig = { vocabSize: 8, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 };

/** Random init with a head far from 0 (std 0.5) so rewards differ visibly between sequences. */
function randomModel(cfg: GptConfig, seed: number, dtype: "float32" | "float64") {
  const rng = new Rng(seed);
  return {
    ...initGpt(cfg, rng, dtype),
    ...initHead(cfg.nEmbd, rng, dtype, { name: REWARD_HEAD, std: 0.5 }),
  };
}

/** Toy preference: responses over tokens 1..7; more 3s (per token) is better. */
function toyPairs(seed: number, n: number): PreferencePair[] {
  const rng = new Rng(seed);
  const resp = () => Array.from({ length: 2 + rng.int(5) }, () => 1 + rng.int(7));
  const gold = (r: number[]) => r.filter((t) => t === 3).length / r.length;
  const out: PreferencePair[] = [];
  while (out.length < n) {
    const prompt = [1 + rng.int(7)], a = resp(), b = resp();
    if (gold(a) === gold(b)) continue;
    out.push(
      gold(a) > gold(b) ? { prompt, chosen: a, rejected: b } : {
        prompt,
        chosen: b,
        rejected: a,
      },
    );
  }
  return out;
}

Deno.test("reward model: batch layout is chosen rows then rejected rows, right-padded", () => {
  const b = makePreferenceBatch([{ prompt: [1], chosen: [2, 3], rejected: [4] }], 0);
  assert.equal(b.rows, 2);
  assert.equal(b.width, 3);
  assert.deepEqual(Array.from(b.tokens, Number), [1, 2, 3, 1, 4, 0]);
  assert.deepEqual(Array.from(b.mask, Number), [1, 1, 1, 1, 1, 0]);
  assert.throws(() => makePreferenceBatch([]), /no pairs/);
});

Deno.test("reward model: train-step loss = mean −log σ(r_c − r_r) of the scoring session (float64); scores ignore the batch around them", async () => {
  const init = randomModel(TINY, 3, "float64");
  const pairs = toyPairs(5, 6);
  const t = await RewardModelTrainer.create(TINY, init, { dtype: "float64", flatParams: false });
  const { loss, accuracy, margin } = await t.step(pairs, { lr: 0, weight_decay: 0 });
  const rm = { cfg: TINY, params: init };
  const rc = await scoreSequences(rm, pairs.map((p) => [...p.prompt, ...p.chosen]));
  const rr = await scoreSequences(rm, pairs.map((p) => [...p.prompt, ...p.rejected]));
  const ds = Array.from(rc, (c, i) => c - rr[i]);
  const want = ds.reduce((s, d) => s - Math.log(1 / (1 + Math.exp(-d))), 0) / ds.length;
  assert.ok(ds.some((d) => Math.abs(d) > 1e-3), "rewards do not differ: the check is vacuous");
  assert.ok(Math.abs(loss - want) < 1e-12, `loss ${loss} vs ${want}`);
  assert.equal(accuracy, ds.filter((d) => d > 0).length / ds.length);
  assert.ok(Math.abs(margin - ds.reduce((a, b) => a + b, 0) / ds.length) < 1e-12);
  // Each sequence alone (no padding) scores what it scored inside the padded batch.
  for (const [i, p] of pairs.entries()) {
    const [alone] = await scoreSequences(rm, [[...p.prompt, ...p.chosen]]);
    assert.ok(Math.abs(alone - rc[i]) < 1e-12, `row ${i}: ${alone} vs ${rc[i]}`);
  }
  const ev = await evaluatePreferences(rm, pairs);
  assert.ok(Math.abs(ev.loss - want) < 1e-12);
  // Large margins do not overflow: softplus form.
  const big = normalizeRewardHead(init, 0, 1e-6);
  const evBig = await evaluatePreferences({ cfg: TINY, params: { ...init, ...big } }, pairs);
  assert.ok(Number.isFinite(evBig.loss), `loss ${evBig.loss}`);
});

Deno.test("reward model: learns a toy preference to held-out accuracy ≥ 0.9", async () => {
  const cfg: GptConfig = { vocabSize: 8, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
  const train = toyPairs(1, 1000), heldOut = toyPairs(2, 300);
  const init = randomModel(cfg, 1, "float32");
  const rm = await RewardModelTrainer.create(cfg, init, { hparams: { lr: 3e-3, weight_decay: 0 } });
  const before = await evaluatePreferences({ cfg, params: rm.params() }, heldOut);
  const t0 = performance.now();
  const losses = await rm.fit(train, { steps: 250, batchSize: 32, rng: new Rng(9) });
  const after = await evaluatePreferences({ cfg, params: rm.params() }, heldOut);
  console.log(
    `toy RM: held-out accuracy ${before.accuracy.toFixed(3)} -> ${after.accuracy.toFixed(3)}, ` +
      `loss ${losses[0].toFixed(3)} -> ${after.loss.toFixed(3)}; 250 steps in ` +
      `${((performance.now() - t0) / 1e3).toFixed(1)} s`,
  );
  assert.ok(after.accuracy >= 0.9, `held-out accuracy ${after.accuracy}`);
  assert.ok(after.loss < before.loss);
});

Deno.test("reward model: HF folder round trip (r_head as extra tensors), byte-identical re-save, clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxima-rm-" });
  try {
    const params = randomModel(TINY, 4, "float32");
    await saveRewardModel(`${dir}/a`, { cfg: TINY, params }, { config: { note: "x" } });
    const loaded = await loadRewardModel(`${dir}/a`);
    assert.equal(loaded.config.proxima_reward_head, "r_head");
    for (const [n, v] of Object.entries(params)) assert.deepEqual(loaded.params[n], v, n);
    const seqs = [[1, 2, 3], [4]];
    assert.deepEqual(
      await scoreSequences(loaded, seqs),
      await scoreSequences({ cfg: TINY, params }, seqs),
    );
    await saveRewardModel(`${dir}/b`, loaded, { config: loaded.config });
    for (const f of ["config.json", "model.safetensors"]) {
      assert.deepEqual(await Deno.readFile(`${dir}/a/${f}`), await Deno.readFile(`${dir}/b/${f}`));
    }
    // A plain policy folder is not a reward model.
    await saveHfFolder(`${dir}/policy`, TINY, initGpt(TINY, new Rng(1), "float32"));
    await assert.rejects(
      loadRewardModel(`${dir}/policy`),
      /no "r_head.weight": not a reward model/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reward model: normalizeRewardHead scores (r − mean) / std", async () => {
  const params = randomModel(TINY, 6, "float64");
  const seqs = [[1, 2], [3, 4, 5], [6]];
  const r = await scoreSequences({ cfg: TINY, params }, seqs);
  const head = normalizeRewardHead(params, 0.3, 2);
  const n = await scoreSequences({ cfg: TINY, params: { ...params, ...head } }, seqs);
  n.forEach((x, i) => assert.ok(Math.abs(x - (r[i] - 0.3) / 2) < 1e-12));
  assert.throws(() => normalizeRewardHead(params, 0, 0), /std > 0/);
});
