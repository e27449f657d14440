/**
 * Offline methods on the `lm` task (lib/ppo/offline through lib/tasks/lm/offline.ts): DPO on the
 * user's preference pairs and KTO on unpaired examples, on a tiny Qwen3 folder with the real
 * Qwen3 tokenizer and chat template. The policy starts as the reference, so the first update's
 * loss is each loss's value at h = 0, written out by hand below (sigmoid: ln 2); the data's
 * problems are refused naming the file, line and column before any model loads.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/ppo/config.ts";
import { createDpoTrainer, DPO_TRL_METRIC_COLUMNS, DpoSchema } from "../../lib/ppo/dpo.ts";
import type { DpoLossType } from "../../lib/ppo/dpo_losses.ts";
import { KTO_METRIC_COLUMNS } from "../../lib/ppo/offline/kto.ts";
import type { MetricsRow } from "../../lib/ppo/trainer.ts";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import { type GptConfig, initGpt } from "../../lib/nn/gpt.ts";
import { Rng } from "../../lib/rng.ts";
import { LM_KIND, type LmRunInput, planLmInputs, planLmOffline } from "../../lib/tasks/lm/mod.ts";
import { tinyQwen3Folder } from "../../scripts/tiny_models.ts";

const tmp = await Deno.makeTempDir({ prefix: "proxima_lm_offline_" });
const POLICY = `${tmp}/qwen3`;
await tinyQwen3Folder(POLICY, { dtype: "float32" });
const FIXTURES = new URL("../fixtures/lm/", import.meta.url).pathname;
const PREFS = `${FIXTURES}preferences.jsonl`, EXAMPLES = `${FIXTURES}kto_examples.jsonl`;
const PROMPTS = `${tmp}/prompts.txt`;
await Deno.writeTextFile(PROMPTS, "Name a colour.\nSay hi.\n");

const BASE: LmRunInput = {
  policy: POLICY,
  prompts: PROMPTS,
  updates: 2,
  batch: 8,
  max_new_tokens: 2,
  eval: { samples: 1 },
};

const near = (a: unknown, b: number, tol: number, what: string) =>
  assert.ok(typeof a === "number" && Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

const rowsOf = async (dir: string): Promise<MetricsRow[]> =>
  (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));

Deno.test({
  name:
    "lm --method dpo: 4 pairs, 2 updates: first loss ln 2 (π = π_ref), then lower; TRL's columns",
  sanitizeResources: false,
  async fn() {
    const out = `${tmp}/dpo`;
    const r = await LM_KIND.trial({
      ...BASE,
      method: "dpo",
      preferences: PREFS,
      // One step per update over all 4 pairs: update 1's loss is the loss at the reference.
      dpo: { epochs: 1, minibatches: 1, lr: 1e-3 },
    }, out);
    const rows = await rowsOf(out);
    assert.equal(rows.length, 2);
    assert.deepEqual(Object.keys(rows[0]), [...DPO_TRL_METRIC_COLUMNS]);
    near(rows[0].loss, Math.LN2, 1e-6, "update 1: −log σ(0)");
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/margins", "kl"]) {
      near(rows[0][k], 0, 1e-6, `update 1: ${k}`);
    }
    assert.ok((rows[1].loss as number) < (rows[0].loss as number), "the loss decreases");
    assert.ok((rows[1]["rewards/margins"] as number) > 0, "chosen pulled above rejected");
    assert.equal(rows[1]["rewards/accuracies"], 1);
    // No reward model: the evaluation reports KL and lengths, no reward.
    assert.equal(r.before.reward, null);
    assert.equal(r.before.kl, 0);
    assert.ok(r.after.kl > 0);
    // The trained policy is exported as for PPO.
    const folder = await loadModelFolder(`${out}/hf/policy`, { dtype: "float32" });
    assert.ok(Object.keys(folder.params).length > 0);
  },
});

Deno.test({
  name: "lm --method kto: unpaired rows; first loss = mean of w·(1 − σ(0)) with z = 0",
  sanitizeResources: false,
  async fn() {
    const out = `${tmp}/kto`;
    const r = await LM_KIND.trial({
      ...BASE,
      batch: 4,
      method: "kto",
      examples: EXAMPLES,
      kto: { epochs: 1, minibatches: 1, lr: 1e-3, desirable_weight: 2 },
    }, out);
    assert.equal(LM_KIND.parse({ ...BASE, method: "kto", examples: EXAMPLES }).algorithm, "kto");
    const rows = await rowsOf(out);
    assert.deepEqual(Object.keys(rows[0]), [...KTO_METRIC_COLUMNS]);
    // 2 desirable (weight 2) and 2 undesirable (weight 1) rows, each 1 − σ(0) = ½ at π = π_ref.
    near(rows[0].loss, (2 * 2 * 0.5 + 2 * 1 * 0.5) / 4, 1e-6, "update 1");
    near(rows[0].kl, 0, 1e-6, "z at π = π_ref");
    assert.ok((rows[1].loss as number) < (rows[0].loss as number));
    assert.ok((rows[1]["rewards/chosen"] as number) > (rows[1]["rewards/rejected"] as number));
    assert.equal(r.last.update, 2);
  },
});

/** Each loss type's value at h = 0 (π = π_ref), β = 0.1, ε = 0.1, τ = 0.05, by hand. */
const AT_REFERENCE: [DpoLossType | DpoLossType[], number, number[] | null][] = [
  ["sigmoid", Math.LN2, null],
  ["hinge", 1, null], // relu(1 − 0)
  ["ipo", 25, null], // (0 − 1/(2·0.1))²
  ["robust", Math.LN2, null], // ((1−ε) ln 2 − ε ln 2) / (1 − 2ε)
  ["nca_pair", 2 * Math.LN2, null], // ln 2 + ½ ln 2 + ½ ln 2
  ["bco_pair", 2 * Math.LN2, null],
  ["sppo_hard", 50, null], // 2 · (1/(2β))²
  ["apo_zero", 1, null], // 1 − ½ + ½
  ["apo_down", 1, null], // ½ + 1 − ½
  ["sigmoid_norm", Math.LN2, null],
  ["exo_pair", 0.5 * (Math.log(0.5) - Math.log(0.9)) + 0.5 * (Math.log(0.5) - Math.log(0.1)), null],
  ["discopop", (Math.LN2 + 1) / 2, null], // m = σ(0) = ½: ln 2 · ½ + e⁰ · ½
  [["sigmoid", "ipo"], 0.8 * Math.LN2 + 0.2 * 25, [0.8, 0.2]],
  [["hinge", "apo_zero", "nca_pair"], 0.5 + 1 + 2 * 2 * Math.LN2, [0.5, 1, 2]],
];

Deno.test({
  name:
    "lm DPO: every TRL loss type (and loss_weights mixes) runs an update from its value at π = π_ref",
  sanitizeResources: false,
  async fn() {
    const c = LM_KIND.parse({ ...BASE, method: "dpo", preferences: PREFS });
    const plan = await planLmInputs(c);
    const data = await planLmOffline(c, plan.policy, plan.eosIds);
    assert.ok(data?.algorithm === "dpo");
    assert.equal(data.pairs.length, 4);
    // Every completion ends with the tokenizer's end of turn, as TRL appends EOS.
    for (const p of data.pairs) assert.equal(p.chosen.at(-1), plan.eosIds[0]);
    // The losses on a tiny GPT over the same pairs' shapes (ids folded into its 32-token
    // vocabulary): a 150K-row Qwen3 embedding per loss type would take minutes.
    const fold = (ids: number[]) => ids.map((t) => t % 32);
    const pairs = data.pairs.map((p) => ({
      prompt: fold(p.prompt),
      chosen: fold(p.chosen),
      rejected: fold(p.rejected),
    }));
    const width = Math.max(
      ...pairs.map((p) => p.prompt.length + p.chosen.length + p.rejected.length),
    );
    const model: GptConfig = { vocabSize: 32, nPositions: width, nEmbd: 16, nLayer: 1, nHead: 2 };
    const init = initGpt(model, new Rng(1), "float32");
    for (const [loss, want, weights] of AT_REFERENCE) {
      const dpo = await createDpoTrainer({
        model,
        cfg: DpoSchema.parse({
          loss,
          loss_weights: weights,
          label_smoothing: 0.1,
          epochs: 1,
          minibatches: 1,
        }),
        init,
        pairs,
        pairsPerUpdate: 4,
        columns: "trl",
      });
      const out = await Deno.makeTempDir({ dir: tmp });
      await dpo.train({ updates: 1, seed: 1, outDir: out });
      const [row] = await rowsOf(out);
      near(row.loss, want, 1e-5 * Math.max(1, want), `${loss}`);
    }
  },
});

Deno.test("lm offline: the data's problems name the file, line and column before any model loads", async () => {
  const write = async (name: string, lines: unknown[]) => {
    const p = `${tmp}/${name}`;
    await Deno.writeTextFile(p, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    return p;
  };
  const ok = { prompt: "Hi", chosen: "a", rejected: "b" };
  const cases: [Partial<LmRunInput>, RegExp][] = [
    [
      { method: "dpo", preferences: await write("p1.jsonl", [ok, { prompt: "Hi", chosen: "a" }]) },
      /preferences: .*p1\.jsonl:2: no "rejected" column/,
    ],
    [
      { method: "dpo", preferences: await write("p2.jsonl", [{ ...ok, chosen: 3 }]) },
      /p2\.jsonl:1: "chosen" is 3, not a string/,
    ],
    [
      { method: "dpo", preferences: await write("p3.jsonl", [{ chosen: "a", rejected: "b" }]) },
      /p3\.jsonl:1: no "prompt" column/,
    ],
    [
      {
        method: "kto",
        examples: await write("k1.jsonl", [{ prompt: "Hi", completion: "a", label: "yes" }]),
      },
      /examples: .*k1\.jsonl:1: "label" is "yes", not true or false/,
    ],
    [{ method: "dpo" }, /algorithm "dpo" trains on preferences, and preferences is null/],
    [{ method: "kto", preferences: PREFS }, /preferences is read by algorithm "dpo" only/],
    [{ method: "dpo", preferences: PREFS, batch: 7 }, /batch \/ 2 preference pairs/],
  ];
  for (const [input, want] of cases) {
    // Planning's path: parse (cross-key problems), then validate (the files, no weights read).
    let err: unknown = null;
    try {
      const c = LM_KIND.parse({ ...BASE, ...input });
      await LM_KIND.validate!(c, { memo: new Map() });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, `${want}: ${err}`);
    assert.match(err.message, want);
  }
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(tmp, { recursive: true });
  } catch { /* already gone */ }
});
