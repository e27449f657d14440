/**
 * Proxima's offline preference losses against TRL 1.13's own DPOTrainer code: for every case of
 * tests/fixtures/trl/trl_dpo_losses.json (made by make_trl_dpo_losses.py beside it) the `dpo`
 * config's loss, built as the DPO train step builds it (float64: per-token log-probs summed over
 * the response, or averaged for a lone "ipo" with the reference averaged too), equals TRL's
 * loss and d loss / d per-token log-probs within 1e-6.
 */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { dpoAveraged, dpoLoss, DpoSchema } from "../../lib/ppo/dpo.ts";
import { dpoLossTypes } from "../../lib/ppo/dpo_losses.ts";
import { SENTIMENT_KIND } from "../../lib/tasks/sentiment/mod.ts";

interface Case {
  config: {
    name: string;
    loss_type: string[];
    beta: number;
    loss_weights?: number[];
    label_smoothing?: number;
    discopop_tau?: number;
  };
  loss: number;
  grad: number[][];
}

const fx = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/trl/trl_dpo_losses.json", import.meta.url)),
) as {
  completion_mask: number[][];
  logp: number[][];
  ref_chosen: number[];
  ref_rejected: number[];
  cases: Case[];
};

const R = fx.logp.length, S = fx.logp[0].length, N = R / 2;
// The shifted response mask: position t predicts token t + 1 (TRL's completion_mask[..., 1:]).
const respMask = fx.completion_mask.map((row) => row.slice(1));
const count = respMask.map((row) => row.reduce((a, b) => a + b, 0));

async function proxima(c: Case["config"]) {
  const cfg = DpoSchema.parse({
    loss: c.loss_type,
    beta: c.beta,
    loss_weights: c.loss_weights ?? null,
    label_smoothing: c.label_smoothing ?? 0,
    discopop_tau: c.discopop_tau ?? 0.05,
  });
  const averaged = dpoAveraged(cfg.loss);
  const needCounts = !averaged &&
    dpoLossTypes(cfg.loss).some((t) => t === "ipo" || t === "sigmoid_norm");
  const g = new Graph("trl_dpo");
  const logp = g.input("logp", "float64", [R, S]);
  const mask = g.input("mask", "float64", [R, S]);
  const ref = g.input("ref", "float64", [R]);
  const beta = g.input("beta", "float64", []);
  const sum = g.reduceSum(g.mul(logp, mask), [1]);
  const n = g.reduceSum(mask, [1]);
  // As sequenceLogps: the sum, or its per-token mean.
  const seq = averaged ? g.div(sum, g.max(n, 1)) : sum;
  const halves = (x: Value) => {
    const h = g.reshape(x, g.ints([2, -1]), [2, N]);
    const pick = (i: number) => g.gather(h, g.scalar(i, "int64"), 0);
    return { chosen: pick(0), rejected: pick(1) };
  };
  const { loss } = dpoLoss(g, cfg.loss, halves(seq), halves(ref), beta, {
    ...(cfg.loss_weights ? { weights: cfg.loss_weights } : {}),
    ...(needCounts ? { counts: halves(n) } : {}),
    labelSmoothing: cfg.label_smoothing,
    discopopTau: cfg.discopop_tau,
  });
  g.output(loss, "loss");
  g.output(gradients(g, loss, [logp])[0], "d_logp");
  const s = await compile(g);
  const refSums = [...fx.ref_chosen, ...fx.ref_rejected];
  // The reference scored as the policy is: per-token means for a lone "ipo".
  const refFeed = averaged ? refSums.map((x, i) => x / Math.max(count[i], 1)) : refSums;
  const out = await s.run({
    logp: tensor("float64", [R, S], fx.logp.flat()),
    mask: tensor("float64", [R, S], respMask.flat()),
    ref: tensor("float64", [R], refFeed),
    beta: tensor("float64", [], [cfg.beta]),
  });
  return { loss: Number(out.loss.data[0]), grad: out.d_logp.data as Float64Array };
}

Deno.test("the DPO fixture covers sigmoid, hinge, ipo, robust, nca_pair, apo_zero and weighted lists", () => {
  const single = new Set(
    fx.cases.filter((c) => c.config.loss_type.length === 1).map((c) => c.config.loss_type[0]),
  );
  for (const t of ["sigmoid", "hinge", "ipo", "robust", "nca_pair", "apo_zero"]) {
    assert.ok(single.has(t), t);
  }
  assert.ok(fx.cases.some((c) => c.config.loss_type.length > 1 && c.config.loss_weights));
});

for (const c of fx.cases) {
  Deno.test(`TRL 1.13 DPO ${c.config.name}: loss and d loss / d log π within 1e-6`, async () => {
    const ours = await proxima(c.config);
    assert.ok(Math.abs(ours.loss - c.loss) <= 1e-6, `loss ${ours.loss} vs TRL ${c.loss}`);
    const want = c.grad.flat();
    for (let i = 0; i < want.length; i++) {
      assert.ok(
        Math.abs(ours.grad[i] - want[i]) <= 1e-6,
        `d/dlogp[${i}] ${ours.grad[i]} vs TRL ${want[i]}`,
      );
    }
  });
}

Deno.test("planning refuses loss_weights that do not match the loss types, and exo_pair without ε", () => {
  assert.throws(
    () =>
      SENTIMENT_KIND.parse({
        algorithm: "dpo",
        dpo: { loss: ["sigmoid", "ipo"], loss_weights: [1] },
      }),
    /1 weights for 2 loss types \(sigmoid, ipo\)/,
  );
  assert.throws(
    () => SENTIMENT_KIND.parse({ algorithm: "dpo", dpo: { loss: "exo_pair" } }),
    /"exo_pair" needs label_smoothing > 0/,
  );
  const ok = SENTIMENT_KIND.parse({
    algorithm: "dpo",
    dpo: { loss: ["sigmoid", "hinge"], loss_weights: [0.5, 0.5] },
  });
  assert.deepEqual(ok.dpo.loss, ["sigmoid", "hinge"]);
});
