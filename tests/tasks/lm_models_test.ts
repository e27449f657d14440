/**
 * The value model and LoRA options of LM PPO (lib/ppo/lm_problem.ts): a separate value model
 * keeps the value loss out of the policy (one update's policy weights do not depend on
 * vf_coef, while a shared trunk's do), and LoRA trains only adapters and heads on a frozen base,
 * with the merged policy the sampler uses agreeing with the train step's adapted graph.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLmProblem, type LmTask, VALUE_MODEL_PREFIX } from "../../lib/ppo/lm_problem.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { type MetricsRow, trainPpo } from "../../lib/ppo/trainer.ts";
import { type GptConfig, gptShapes } from "../../lib/nn/gpt.ts";
import type { FloatArray } from "../../lib/nn/sample.ts";

const MODEL: GptConfig = { vocabSize: 16, nPositions: 16, nEmbd: 32, nLayer: 1, nHead: 2 };
const task: LmTask = {
  prompts: (n, _index, rng) =>
    Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(4) }, () => 2 + rng.int(14))),
  score: (_p, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
};
const cfg = (extra: Record<string, unknown> = {}) =>
  parsePpoConfig({
    gamma: 1,
    lambda: 0.95,
    lr: 3e-3,
    lr_anneal: false,
    ent_coef: 0,
    epochs: 2,
    minibatches: 2,
    max_grad_norm: null, // AdamW is per parameter, so without a joint clip the models decouple
    kl: { beta: 0 },
    ...extra,
  });

const hashOf = (params: Record<string, FloatArray>, names: string[]) => {
  const h = createHash("sha256");
  for (const n of names) {
    const a = params[n];
    h.update(n).update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest("hex");
};

async function oneUpdate(
  valueModel: "shared" | "separate",
  vfCoef: number,
  extra: Parameters<typeof createLmProblem>[0]["lora"] = undefined,
) {
  const c = cfg({ vf_coef: vfCoef });
  const problem = await createLmProblem({
    model: MODEL,
    task,
    cfg: c,
    seed: 1,
    batch: 16,
    maxNewTokens: 6,
    eosTokenId: 1,
    padTokenId: 0,
    valueModel,
    lora: extra,
    valueHeadStd: 0.1,
  });
  const out = await Deno.makeTempDir({ prefix: "proxima-lm-models-" });
  const rows: MetricsRow[] = [];
  try {
    await trainPpo(problem, {
      updates: 1,
      seed: 1,
      outDir: out,
      rng: problem.rng,
      onUpdate: (r) => rows.push(r),
    });
  } finally {
    await Deno.remove(out, { recursive: true });
  }
  return { problem, params: problem.trainer.params(), row: rows[0] };
}

Deno.test("lm ppo: a separate value model keeps the value loss out of the policy", async () => {
  const policyNames = Object.keys(gptShapes(MODEL));
  const valueNames = Object.keys(gptShapes({ ...MODEL, prefix: VALUE_MODEL_PREFIX }));
  const sepA = await oneUpdate("separate", 0.1), sepB = await oneUpdate("separate", 1);
  // Its own trunk, initialised as a copy of the policy's weights.
  assert.ok(valueNames.every((n) => n in sepA.params), "value_model.* parameters");
  assert.equal(
    sepA.problem.trainer.params()[valueNames[0]].length,
    sepA.params[policyNames[0]].length,
  );
  // Separate: the policy after one update does not depend on vf_coef, the value model does.
  assert.equal(hashOf(sepA.params, policyNames), hashOf(sepB.params, policyNames));
  assert.notEqual(hashOf(sepA.params, valueNames), hashOf(sepB.params, valueNames));
  // Shared trunk: the value loss moves the policy, so vf_coef changes it.
  const shA = await oneUpdate("shared", 0.1), shB = await oneUpdate("shared", 1);
  assert.notEqual(hashOf(shA.params, policyNames), hashOf(shB.params, policyNames));
  assert.ok(!(valueNames[0] in shA.params));
  // The value model learns something: its value loss is finite and the metrics are logged.
  assert.ok(Number.isFinite(sepA.row.value_loss as number));
});

Deno.test("lm ppo: LoRA trains adapters and heads only; the merged policy is what the graph computes", async () => {
  const lora = { r: 2, alpha: 4, targets: ["attn.c_attn", "mlp.c_fc"] };
  const { problem, params, row } = await oneUpdate("shared", 0.1, lora);
  const names = Object.keys(params).sort();
  assert.ok(names.length > 0);
  for (const n of names) {
    assert.ok(/\.lora_[AB]$|^v_head\./.test(n), `trainable parameter ${n}`);
  }
  assert.equal(names.filter((n) => n.endsWith(".lora_A")).length, 2); // 2 targets × 1 block
  // The adapters moved the policy away from the (frozen) base = the reference.
  const merged = problem.policyParams() as Record<string, Float32Array>;
  const w = "transformer.h.0.attn.c_attn.weight";
  assert.ok(merged[w].some((v, i) => v !== problem.reference[w][i]), "adapters did nothing");
  const untouched = "transformer.h.0.attn.c_proj.weight"; // not a target
  assert.deepEqual(merged[untouched], problem.reference[untouched]);
  // Freed at once: the merged copies are detached; the base (= the reference) is untouched.
  const refBytes = Float32Array.from(problem.reference[w]);
  problem.releasePolicyParams!(merged);
  assert.equal(merged[w].length, 0, "the merged target is freed");
  assert.deepEqual(problem.reference[w], refBytes);
  assert.ok(problem.reference[untouched].length > 0, "the base's own array is left alone");
  // A later call merges afresh (the same values as before the release).
  assert.ok(
    (problem.policyParams() as Record<string, Float32Array>)[w].some((v, i) => v !== refBytes[i]),
  );
  // Sampling with the merged weights and scoring with the adapter graph agree (first
  // update: ratio 1 up to float32 rounding), and the next rollout does too.
  assert.ok((row.logp_gap as number) < 1e-4, `logp_gap ${row.logp_gap}`);
  const roll = await problem.rollout(problem.rng);
  assert.ok((roll.metrics!.logp_gap as number) < 1e-4, `logp_gap ${roll.metrics!.logp_gap}`);
});

Deno.test("lm ppo: LoRA on a separate value model adapts both trunks", async () => {
  const lora = { r: 2, alpha: 4, targets: ["attn.c_attn"] };
  const { params } = await oneUpdate("separate", 0.5, lora);
  const a = Object.keys(params).filter((n) => n.endsWith(".lora_A")).sort();
  assert.deepEqual(
    a,
    [
      "transformer.h.0.attn.c_attn.lora_A",
      `${VALUE_MODEL_PREFIX}.h.0.attn.c_attn.lora_A`,
    ].sort(),
  );
});
