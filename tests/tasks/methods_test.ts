/**
 * The methods on the `sentiment` task: an experiment with GRPO or RLOO and one response per
 * prompt is refused when it is planned (no trial starts), naming the key and the fix; DPO as a
 * sentiment trial (offline, the reward model's pairs, the SFT policy as reference) raises the
 * held-out preference accuracy of the policy's implicit reward above the SFT policy's, writes
 * what a PPO trial writes, and with `measure_resources` records 2 models, offline.
 */
import assert from "node:assert/strict";
import {
  defineExperiment,
  ExperimentError,
  grid,
  planExperiment,
} from "../../lib/experiment/mod.ts";
import { SENTIMENT_KIND } from "../../lib/tasks/sentiment/mod.ts";
import { ConfigError } from "../../lib/ppo/config.ts";
import { readResources } from "../../lib/tasks/resources.ts";

const CACHE = Deno.makeTempDirSync({ prefix: "proxima-methods-stages-" });
const OUT = Deno.makeTempDirSync({ prefix: "proxima-methods-runs-" });
globalThis.addEventListener("unload", () => {
  for (const d of [CACHE, OUT]) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* gone */ }
  }
});

const QUICK = {
  sft: { steps: 150, corpus_size: 800 },
  reward_model: { steps: 60, pairs: 400, held_out: 200 },
  eval: { samples: 32 },
};

Deno.test("methods: GRPO / RLOO with one response per prompt is refused before any trial starts", () => {
  for (const advantage of ["grpo", "dr_grpo", "rloo"]) {
    let err: unknown;
    try {
      planExperiment(
        defineExperiment({
          name: "x",
          task: "sentiment",
          base: { ppo: { advantage, whiten_advantages: false } },
          sweep: grid({ seed: [1, 2] }),
        }),
        { file: "experiments/x.ts", codeVersion: "test" },
      );
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ExperimentError, String(err));
    assert.match(err.message, /no trial was started/);
    assert.match(
      err.message,
      new RegExp(`samples_per_prompt .*"${advantage}" needs groups of at least 2 responses`),
    );
    assert.match(err.message, /fix: set samples_per_prompt to 2 or more/);
  }
  // The same config given to the trial directly.
  assert.throws(
    () => SENTIMENT_KIND.parse({ ppo: { advantage: "rloo", whiten_advantages: false } }),
    (e) => e instanceof ConfigError && /samples_per_prompt to 2 or more/.test(e.message),
  );
  // A group that does not divide the batch, and DPO with an odd batch.
  assert.throws(
    () =>
      SENTIMENT_KIND.parse({
        batch: 30,
        samples_per_prompt: 4,
        ppo: { advantage: "grpo", whiten_advantages: false },
      }),
    /batch 30 is not a multiple of samples_per_prompt 4/,
  );
  assert.throws(() => SENTIMENT_KIND.parse({ algorithm: "dpo", batch: 31 }), /even number/);
});

Deno.test("methods: DPO's β (and the IPO variant) are swept like any key", () => {
  const plan = planExperiment(
    defineExperiment({
      name: "dpo-beta",
      task: "sentiment",
      base: { algorithm: "dpo" },
      sweep: grid({ "dpo.beta": [0.05, 0.1, 0.5], "dpo.loss": ["sigmoid", "ipo"], seed: [1] }),
    }),
    { file: "experiments/dpo-beta.ts", codeVersion: "test" },
  );
  assert.equal(plan.trials.length, 6);
  const cfgs = plan.trials.map((t) => t.identity.config as { dpo: { beta: number; loss: string } });
  assert.deepEqual(cfgs.map((c) => `${c.dpo.loss}:${c.dpo.beta}`).sort(), [
    "ipo:0.05",
    "ipo:0.1",
    "ipo:0.5",
    "sigmoid:0.05",
    "sigmoid:0.1",
    "sigmoid:0.5",
  ]);
  assert.equal(new Set(plan.trials.map((t) => t.id)).size, 6);
});

Deno.test("methods: DPO on sentiment raises the implicit reward's held-out preference accuracy above the SFT policy's", async () => {
  const out = `${OUT}/dpo`;
  const r = await SENTIMENT_KIND.trial(
    { ...QUICK, algorithm: "dpo", updates: 20, batch: 32, measure_resources: true },
    out,
    { cacheDir: CACHE },
  );
  const before = r.before.preference!, after = r.after.preference!;
  console.log(
    `DPO: implicit-reward accuracy ${before.implicit} -> ${after.implicit.toFixed(3)}, ` +
      `likelihood accuracy ${before.likelihood.toFixed(3)} -> ${after.likelihood.toFixed(3)}, ` +
      `KL ${r.after.kl.toFixed(2)}`,
  );
  assert.equal(before.implicit, 0.5, "the SFT policy is the reference: every pair a tie");
  assert.ok(after.implicit > 0.65, `held-out accuracy ${after.implicit}`);
  assert.ok(after.implicit > before.likelihood, "and above the SFT policy's likelihood ranking");
  const s = await SENTIMENT_KIND.summarize(out);
  assert.equal(s.metrics.pref_accuracy, after.implicit);
  assert.equal(s.metrics.pref_accuracy_before, 0.5);
  assert.equal(s.last?.update, 20);
  const res = await readResources(out);
  assert.ok(res);
  assert.equal(res.online, false);
  assert.deepEqual(Object.keys(res.models), ["policy", "reference"]);
  assert.ok(res.peak_rss_bytes > 0 && res.train_seconds > 0);
  // A PPO trial of the same config keeps its metrics free of DPO's fields.
  const ppo = SENTIMENT_KIND.parse({ ...QUICK });
  assert.equal(ppo.algorithm, "ppo");
  assert.equal(ppo.measure_resources, false);
});

Deno.test("methods: KTO on sentiment (its preference pairs unpaired) raises the held-out preference accuracy above the SFT policy's", async () => {
  const out = `${OUT}/kto`;
  const r = await SENTIMENT_KIND.trial(
    { ...QUICK, method: "kto", updates: 20, batch: 32 },
    out,
    { cacheDir: CACHE },
  );
  const before = r.before.preference!, after = r.after.preference!;
  console.log(`KTO: implicit-reward accuracy ${before.implicit} -> ${after.implicit.toFixed(3)}`);
  assert.equal(before.implicit, 0.5, "the SFT policy is the reference: every pair a tie");
  assert.ok(after.implicit > 0.6, `held-out accuracy ${after.implicit}`);
  const rows = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 20);
  // Training starts at the reference (z = 0, every implicit reward 0), where each example's loss
  // is λ·(1 − σ(0)) = ½ with λ_D = λ_U = 1; the first update's mean over its steps is at most
  // that, and the loss falls.
  assert.ok(rows[0].loss <= 0.5 + 1e-9 && rows[0].loss > 0.3, `first loss ${rows[0].loss}`);
  assert.ok(rows[19].loss < rows[0].loss, `loss ${rows[0].loss} -> ${rows[19].loss}`);
});
