/** PPO losses in the graph against hand-computed values; masked positions contribute nothing. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import {
  actionLogp,
  categoricalEntropy,
  klTerm,
  ppoLoss,
  type PpoLossVariant,
} from "../../lib/ppo/losses.ts";
import { klEstimate, klFull } from "../../lib/ppo/kl.ts";
import { gradcheck } from "../onnx/gradcheck.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

// Three real positions and one pad position (index 3) with absurd values.
const D = {
  logp: [-0.5, -1.0, -0.2, -3.0],
  old_logp: [-0.7, -0.9, -0.6, 0.0],
  advantages: [1.0, -2.0, 0.5, 100],
  mask: [1, 1, 1, 0],
  value: [1, 2, 0, 7],
  old_values: [0.5, 2.5, 0.1, 0],
  returns: [2, 1, 0.5, -5],
  entropy: [0.6, 0.5, 0.4, 99],
};
const HP = { clip: 0.2, clip_value: 0.2, vf_coef: 0.5, ent_coef: 0.01, beta: 0, penalty_beta: 0 };

async function evalLoss(variant: PpoLossVariant, data: Record<string, number[]> = D, hp = HP) {
  const g = new Graph("ppo_loss");
  const v = Object.fromEntries(
    Object.keys(data).map((k) => [k, g.input(`in_${k}`, "float64", [4])]),
  );
  const h = Object.fromEntries(Object.keys(hp).map((k) => [k, g.input(`hp_${k}`, "float64", [])]));
  const { loss, metrics } = ppoLoss(
    g,
    variant,
    { logp: v.logp, entropy: v.entropy, value: v.value },
    {
      oldLogp: v.old_logp,
      advantages: v.advantages,
      returns: v.returns,
      oldValues: v.old_values,
      mask: v.mask,
      refLogp: v.ref_logp,
    },
    h as never,
  );
  g.output(loss, "loss");
  for (const [k, m] of Object.entries(metrics)) g.output(m, k);
  const s = await compile(g);
  const feeds = {
    ...Object.fromEntries(
      Object.entries(data).map(([k, a]) => [`in_${k}`, tensor("float64", [4], a)]),
    ),
    ...Object.fromEntries(
      Object.entries(hp).map(([k, x]) => [`hp_${k}`, tensor("float64", [], [x])]),
    ),
  };
  const out = await s.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Number(t.data[0])]));
}

Deno.test("clipped surrogate, clipped value loss, entropy, clipfrac and approx KL by hand", async () => {
  const r = await evalLoss({ loss: "clip", valueClip: true });
  // ratios e^0.2, e^−0.1, e^0.4. Surrogate max(−A·r, −A·clip(r, 0.8, 1.2)):
  // pos0 max(−1.2214, −1.2) = −1.2; pos1 max(1.8097, 1.8097); pos2 max(−0.7459, −0.6) = −0.6
  const pg = (-1.2 + 2 * Math.exp(-0.1) - 0.6) / 3;
  near(r.policy_loss, pg);
  near(r.policy_loss, 0.0032249, 1e-6);
  // value: max((V−R)², (V_old + clip(V−V_old, ±0.2) − R)²) = 1.69, 1.69, 0.25 -> ½·mean
  near(r.value_loss, 0.5 * (1.69 + 1.69 + 0.25) / 3);
  near(r.entropy, 0.5);
  near(r.clipfrac, 2 / 3); // |r−1| > 0.2 at pos0 and pos2
  near(r.approx_kl_k1, (-0.2 + 0.1 - 0.4) / 3);
  const k3 = (x: number) => Math.exp(x) - 1 - x;
  near(r.approx_kl_k3, (k3(0.2) + k3(-0.1) + k3(0.4)) / 3);
  near(r.loss, pg + 0.5 * r.value_loss - 0.01 * 0.5);
});

Deno.test("unclipped surrogate and plain value loss by hand", async () => {
  const r = await evalLoss({ loss: "no-clip", valueClip: false });
  const rs = [Math.exp(0.2), Math.exp(-0.1), Math.exp(0.4)], A = [1, -2, 0.5];
  near(r.policy_loss, -(A[0] * rs[0] + A[1] * rs[1] + A[2] * rs[2]) / 3);
  near(r.value_loss, 0.5 * (1 + 1 + 0.25) / 3);
});

Deno.test("kl-penalty surrogate adds β_penalty·KL(π_old‖π) (k1 here) to the unclipped loss", async () => {
  // β (the reference KL's) is set too: without a reference it must not act.
  const hp = { ...HP, penalty_beta: 3, beta: 5 };
  const r = await evalLoss(
    { loss: "kl-penalty", valueClip: false, penalty: { estimator: "k1" } },
    D,
    hp,
  );
  const plain = await evalLoss({ loss: "no-clip", valueClip: false }, D, hp);
  // KL(old‖new) by k1 with x ~ old: log old − log new = −0.2, 0.1, −0.4
  near(r.kl_penalty, (-0.2 + 0.1 - 0.4) / 3);
  near(r.loss, plain.loss + 3 * r.kl_penalty);
  assert.equal(r.kl_ref_loss, undefined);
});

Deno.test("kl-penalty with the reference KL in the loss: both terms, each with its own β", async () => {
  const data = { ...D, ref_logp: [-0.4, -1.3, -0.1, 9] };
  const hp = { ...HP, penalty_beta: 3, beta: 0.5 };
  const r = await evalLoss(
    {
      loss: "kl-penalty",
      valueClip: false,
      penalty: { estimator: "k1" },
      kl: { estimator: "k2", placement: "loss" },
      hasReference: true,
    },
    data,
    hp,
  );
  const plain = await evalLoss({ loss: "no-clip", valueClip: false }, data, hp);
  near(r.kl_penalty, (-0.2 + 0.1 - 0.4) / 3);
  // KL(π‖ref) by k2 with x ~ π: ½(log π − log ref)² = ½(−0.1)², ½(0.3)², ½(−0.1)²
  near(r.kl_ref_loss, 0.5 * (0.01 + 0.09 + 0.01) / 3);
  near(r.loss, plain.loss + 3 * r.kl_penalty + 0.5 * r.kl_ref_loss);
});

Deno.test("padded positions contribute nothing to any loss term or metric", async () => {
  const variants: PpoLossVariant[] = [
    { loss: "clip", valueClip: true },
    { loss: "kl-penalty", valueClip: false, penalty: { estimator: "k3" } },
  ];
  for (const variant of variants) {
    const a = await evalLoss(variant, D, { ...HP, penalty_beta: 0.7 });
    const changed = Object.fromEntries(
      Object.entries(D).map((
        [k, arr],
      ) => [k, k === "mask" ? arr : [...arr.slice(0, 3), -arr[3] * 3 + 1]]),
    ) as typeof D;
    const b = await evalLoss(variant, changed, { ...HP, penalty_beta: 0.7 });
    assert.deepEqual(a, b);
  }
});

Deno.test("graph KL terms equal the TypeScript estimators, exact KL included", async () => {
  const logpAll = [[-0.3, -1.5, -2.9], [-1.1, -0.8, -1.4]].map((r) => {
    const z = Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
    return r.map((x) => x - z);
  });
  const logqAll = [[-1.0, -1.0, -1.2], [-0.2, -2.0, -3.0]].map((r) => {
    const z = Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
    return r.map((x) => x - z);
  });
  const actions = [1, 2];
  for (const est of ["k1", "k2", "k3", "full"] as const) {
    const g = new Graph("kl");
    const pa = g.input("pa", "float64", [2, 3]), qa = g.input("qa", "float64", [2, 3]);
    const act = g.input("a", "int64", [2]);
    g.output(
      klTerm(g, est, { logp: actionLogp(g, pa, act), logpAll: pa }, {
        logp: actionLogp(g, qa, act),
        logpAll: qa,
      }),
      "kl",
    );
    const out = await (await compile(g)).run({
      pa: tensor("float64", [2, 3], logpAll.flat()),
      qa: tensor("float64", [2, 3], logqAll.flat()),
      a: tensor("int64", [2], actions),
    });
    const got = out.kl.data as Float64Array;
    for (let i = 0; i < 2; i++) {
      const want = est === "full"
        ? klFull(logpAll[i], logqAll[i])
        : klEstimate(est, logpAll[i][actions[i]], logqAll[i][actions[i]]);
      near(got[i], want, 1e-14);
    }
  }
});

Deno.test("PPO loss gradient w.r.t. logits and values matches finite differences", async () => {
  const actions = [0, 2, 1, 1];
  for (
    const variant of [
      { loss: "clip", valueClip: true },
      { loss: "kl-penalty", valueClip: false, penalty: { estimator: "full" } },
    ] as PpoLossVariant[]
  ) {
    const { maxRelError } = await gradcheck((g, [logits, value, oldLogits]) => {
      const logpAll = g.logSoftmax(logits, -1), oldAll = g.logSoftmax(oldLogits, -1);
      const a = g.constant({ dtype: "int64", shape: [4], data: actions.map(BigInt) });
      const c = (xs: number[]) => g.constant({ dtype: "float64", shape: [4], data: xs });
      const hp = Object.fromEntries(
        Object.entries({ ...HP, clip: 0.1, penalty_beta: 0.5 }).map((
          [k, x],
        ) => [k, g.scalar(x, "float64")]),
      );
      return ppoLoss(
        g,
        variant,
        {
          logp: actionLogp(g, logpAll, a),
          entropy: categoricalEntropy(g, logpAll),
          value,
          logpAll,
        },
        {
          oldLogp: actionLogp(g, oldAll, a),
          oldLogpAll: oldAll,
          advantages: c([0.7, -1.3, 0.4, 2.0]),
          returns: c([1.0, -0.5, 0.3, 0.9]),
          oldValues: c([0.8, -0.2, 0.45, 1.0]),
          mask: c([1, 1, 1, 0]),
        },
        hp as never,
      ).loss;
    }, [{ shape: [4, 3] }, { shape: [4] }, { shape: [4, 3] }]);
    assert.ok(maxRelError < 1e-6, `${variant.loss}: max relative error ${maxRelError}`);
  }
});
