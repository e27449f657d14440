/**
 * KTO on unpaired examples against TRL 1.13's own KTOTrainer code: for every case of
 * tests/fixtures/trl/trl_kto_losses.json (made by make_trl_kto_losses.py beside it), Proxima's
 * float64 ktoLoss on the summed response log-probs, with the reference point from the same KL
 * batch, equals TRL's loss and d loss / d per-token log-probs within 1e-6.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { ktoLoss, type KtoLossType, ktoReferencePoint } from "../../lib/ppo/dpo_losses.ts";

const fx = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/trl/trl_kto_losses.json", import.meta.url)),
) as {
  completion_mask: number[][];
  label: number[];
  logp: number[][];
  ref: number[];
  kl_logps: number[];
  ref_kl_logps: number[];
  cases: {
    config: {
      name: string;
      loss_type: KtoLossType;
      beta: number;
      calculate_KL: boolean;
      desirable_weight?: number;
      undesirable_weight?: number;
    };
    loss: number;
    grad: number[][];
  }[];
};

const N = fx.logp.length, S = fx.logp[0].length;
const respMask = fx.completion_mask.map((row) => row.slice(1)); // position t predicts t + 1

for (const c of fx.cases) {
  Deno.test(`TRL 1.13 KTO ${c.config.name}: loss and d loss / d log π within 1e-6`, async () => {
    const g = new Graph("trl_kto");
    const logp = g.input("logp", "float64", [N, S]);
    const mask = g.input("mask", "float64", [N, S]);
    const ref = g.input("ref", "float64", [N]);
    const labels = g.input("labels", "float64", [N]);
    const z = g.input("z", "float64", []);
    const beta = g.input("beta", "float64", []);
    const { loss } = ktoLoss(
      g,
      c.config.loss_type,
      g.reduceSum(g.mul(logp, mask), [1]),
      ref,
      labels,
      z,
      beta,
      {
        desirableWeight: c.config.desirable_weight ?? 1,
        undesirableWeight: c.config.undesirable_weight ?? 1,
      },
    );
    g.output(loss, "loss");
    g.output(gradients(g, loss, [logp])[0], "d_logp");
    const s = await compile(g);
    const zv = c.config.calculate_KL ? ktoReferencePoint(fx.kl_logps, fx.ref_kl_logps) : 0;
    const out = await s.run({
      logp: tensor("float64", [N, S], fx.logp.flat()),
      mask: tensor("float64", [N, S], respMask.flat()),
      ref: tensor("float64", [N], fx.ref),
      labels: tensor("float64", [N], fx.label),
      z: tensor("float64", [], [zv]),
      beta: tensor("float64", [], [c.config.beta]),
    });
    const got = Number(out.loss.data[0]);
    assert.ok(Math.abs(got - c.loss) <= 1e-6, `loss ${got} vs TRL ${c.loss}`);
    const want = c.grad.flat(), grad = out.d_logp.data as Float64Array;
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(grad[i] - want[i]) <= 1e-6, `d/dlogp[${i}] ${grad[i]} vs TRL ${want[i]}`);
    }
  });
}

Deno.test("KTO's reference point: the mean KL-batch log-ratio, floored at 0", () => {
  assert.ok(Math.abs(ktoReferencePoint(fx.kl_logps, fx.ref_kl_logps) - 0.1) < 1e-12);
  assert.equal(ktoReferencePoint([-2, -3], [-1, -1]), 0);
});
