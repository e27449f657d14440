/** Value and reward heads: positions under padding, gradients, init, use on a GPT trunk. */
import assert from "node:assert/strict";
import { type DType, Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { type GptConfig, gptForward, gptShapes, initGpt } from "../../lib/nn/gpt.ts";
import {
  headShapes,
  initHead,
  lastTokenHidden,
  REWARD_HEAD,
  rewardHead,
  valueHead,
} from "../../lib/nn/heads.ts";
import { Rng } from "../../lib/rng.ts";
import { gradcheck } from "../onnx/gradcheck.ts";

Deno.test("valueHead is per token; rewardHead reads the last real token, padding on any side", async () => {
  // hidden[b, t] = [10·b + t, 1], W = [1, 0]ᵀ, bias 0.25: a head output names its position.
  const B = 6, T = 5, d = 2;
  const masks = [
    [1, 1, 1, 1, 1], // full: t = 4
    [0, 0, 1, 1, 1], // left-padded: t = 4
    [1, 1, 1, 0, 0], // right-padded: t = 2
    [0, 1, 1, 0, 0], // both sides: t = 2
    [1, 0, 1, 0, 0], // a hole: last nonzero is t = 2
    [0, 0, 0, 0, 0], // no real token: the one-hot is empty, the reward is the bias
  ];
  const want = [4.25, 14.25, 22.25, 32.25, 42.25, 0.25];
  const hidden = new Float64Array(B * T * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) hidden.set([10 * b + t, 1], (b * T + t) * d);
  }
  for (const maskType of ["int64", "float32", "bool"] as DType[]) {
    const g = new Graph("heads");
    const h = g.input("hidden", "float64", ["B", "T", d]);
    const m = g.input("mask", maskType, ["B", "T"]);
    const p = {
      "v_head.weight": g.input("vw", "float64", [d, 1]),
      "v_head.bias": g.input("vb", "float64", [1]),
      "r_head.weight": g.input("rw", "float64", [d, 1]),
      "r_head.bias": g.input("rb", "float64", [1]),
    };
    g.output(valueHead(g, h, p), "values");
    g.output(rewardHead(g, h, m, p), "rewards");
    g.output(lastTokenHidden(g, h, m), "last");
    const mask = masks.flat();
    const out = await (await compile(g)).run({
      hidden: tensor("float64", [B, T, d], hidden),
      mask: maskType === "bool"
        ? tensor("bool", [B, T], Uint8Array.from(mask))
        : tensor(maskType, [B, T], mask),
      vw: tensor("float64", [d, 1], [1, 0]),
      vb: tensor("float64", [1], [0.25]),
      rw: tensor("float64", [d, 1], [1, 0]),
      rb: tensor("float64", [1], [0.25]),
    });
    assert.deepEqual(out.values.dims, [B, T]);
    assert.deepEqual(out.rewards.dims, [B]);
    const values = Array.from(out.values.data as Float64Array);
    assert.deepEqual(
      values,
      Array.from({ length: B * T }, (_, i) => 10 * Math.floor(i / T) + (i % T) + 0.25),
    );
    assert.deepEqual(Array.from(out.rewards.data as Float64Array), want, `mask ${maskType}`);
    const last = Array.from(out.last.data as Float64Array);
    assert.deepEqual(last.slice(2, 4), [14, 1]);
    assert.deepEqual(last.slice(10, 12), [0, 0], "a row without real tokens selects nothing");
  }
});

Deno.test("head errors name the parameter; initHead: shapes, std, zero bias, one seed one head", () => {
  const g = new Graph();
  const h = g.input("h", "float32", ["B", "T", 4]);
  const m = g.input("m", "int64", ["B", "T"]);
  assert.throws(() => valueHead(g, h, {}), /missing parameter "v_head.weight"/);
  const wrong = {
    "r_head.weight": g.input("w", "float32", [3, 1]),
    "r_head.bias": g.input("b", "float32", [1]),
  };
  assert.throws(() => rewardHead(g, h, m, wrong), /"r_head.weight" is .*expected \[4, 1\]/);
  assert.throws(() => rewardHead(g, g.input("h2", "float32", ["B", 4]), m, wrong), /\[B, T, d\]/);
  assert.deepEqual(headShapes(4, REWARD_HEAD), {
    "r_head.weight": { shape: [4, 1] },
    "r_head.bias": { shape: [1] },
  });
  assert.throws(() => headShapes(0), RangeError);

  const d = 400;
  const p = initHead(d, new Rng(3), "float32");
  const w = p["v_head.weight"];
  assert.ok(w instanceof Float32Array && w.length === d);
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / d);
  assert.ok(Math.abs(std - 1 / Math.sqrt(d + 1)) < 0.1 / Math.sqrt(d), `std ${std}`);
  assert.deepEqual(Array.from(p["v_head.bias"]), [0]);
  assert.deepEqual(initHead(d, new Rng(3), "float32"), p);
  const zero = initHead(8, new Rng(3), "float64", { name: REWARD_HEAD, std: 0 });
  assert.ok(zero["r_head.weight"] instanceof Float64Array);
  assert.ok(zero["r_head.weight"].every((v) => v === 0));
});

Deno.test("gradients of the reward and value heads match finite differences", async () => {
  const B = 3, T = 4, d = 3;
  // Left-padded, right-padded and full rows: the gradient w.r.t. hidden must land on the
  // last real position of each row and nowhere else.
  const mask = [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1];
  const { maxRelError, perInput } = await gradcheck(
    (g, [h, w, b, vw, vb, m]) => {
      const p = { "r_head.weight": w, "r_head.bias": b, "v_head.weight": vw, "v_head.bias": vb };
      // Both heads in one scalar-per-row output: reward [B] plus the masked value sum [B].
      const values = g.reduceSum(g.mul(valueHead(g, h, p), g.cast(m, "float64")), [1]);
      return g.add(rewardHead(g, h, m, p), values);
    },
    [
      { shape: ["B", "T", d], feed: [B, T, d] },
      { shape: [d, 1] },
      { shape: [1] },
      { shape: [d, 1] },
      { shape: [1] },
      { shape: ["B", "T"], feed: [B, T], ints: mask },
    ],
  );
  console.log(
    `  max relative error ${maxRelError.toExponential(2)} [${
      perInput.map((e) => e.toExponential(1))
    }]`,
  );
  assert.ok(maxRelError < 1e-7, `max relative error ${maxRelError}`);
});

Deno.test("reward head on a GPT trunk: left- and right-padded rows score like the unpadded sequence", async () => {
  const cfg: GptConfig = { vocabSize: 17, nPositions: 12, nEmbd: 16, nLayer: 2, nHead: 2 };
  const params = {
    ...initGpt(cfg, new Rng(4), "float64"),
    ...initHead(cfg.nEmbd, new Rng(5), "float64", { name: REWARD_HEAD }),
    ...initHead(cfg.nEmbd, new Rng(6), "float64"),
  };
  const shapes = {
    ...gptShapes(cfg),
    ...headShapes(cfg.nEmbd, REWARD_HEAD),
    ...headShapes(cfg.nEmbd),
  };
  const g = new Graph("reward_model");
  const p = Object.fromEntries(
    Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, "float64", shape)]),
  );
  const tokens = g.input("tokens", "int64", ["B", "T"]);
  const mask = g.input("mask", "int64", ["B", "T"]);
  const { hidden } = gptForward(g, cfg, p, tokens, mask);
  g.output(rewardHead(g, hidden, mask, p), "reward");
  g.output(valueHead(g, hidden, p), "values"); // shared trunk: both heads on one hidden
  const session = await compile(g);
  const run = async (rows: number[][], masks: number[][]) => {
    const B = rows.length, T = rows[0].length;
    const feeds = Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, tensor("float64", shape, params[n])]),
    );
    const out = await session.run({
      ...feeds,
      tokens: tensor("int64", [B, T], rows.flat()),
      mask: tensor("int64", [B, T], masks.flat()),
    });
    return {
      reward: Array.from(out.reward.data as Float64Array),
      values: Array.from(out.values.data as Float64Array),
    };
  };
  const seq = [3, 1, 4, 1, 5, 9];
  const alone = await run([seq], [[1, 1, 1, 1, 1, 1]]);
  const padded = await run(
    [[0, 0, 0, ...seq], [...seq, 0, 0, 0], [16, ...seq, 16, 16]],
    [[0, 0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1, 1, 0, 0]],
  );
  for (const r of padded.reward) {
    assert.ok(Math.abs(r - alone.reward[0]) < 1e-12, `${r} vs ${alone.reward[0]}`);
  }
  // The value at each real position is the unpadded one too (row 0 is shifted by 3).
  for (let t = 0; t < seq.length; t++) {
    assert.ok(Math.abs(padded.values[3 + t] - alone.values[t]) < 1e-12);
  }
  // A shorter prefix scores differently: the head really reads the last real token.
  const prefix = await run([seq.slice(0, 4)], [[1, 1, 1, 1]]);
  assert.ok(Math.abs(prefix.reward[0] - alone.reward[0]) > 1e-6);
});
