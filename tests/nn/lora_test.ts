/**
 * LoRA adapters on both families (GPT-2's Conv1D layout; the Llama family's, PEFT's
 * q/k/v/o/gate/up/down): names and init, exact equality at B = 0, frozen-base training,
 * merging, factored adapters.
 */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { adamw } from "../../lib/onnx/optim.ts";
import { Trainer } from "../../lib/onnx/train.ts";
import { type GptConfig, gptForward, gptShapes, initGpt, tokenLogprobs } from "../../lib/nn/gpt.ts";
import { initLlama, llamaForward, llamaShapes } from "../../lib/nn/llama.ts";
import { loraDefaults } from "../../lib/nn/decoder.ts";
import {
  applyLora,
  hasNegativeZero,
  initLora,
  type LoraConfig,
  loraNames,
  loraShapes,
  loraTargets,
  mergeLora,
  projection,
} from "../../lib/nn/lora.ts";
import { Rng } from "../../lib/rng.ts";
import { gradcheck } from "../onnx/gradcheck.ts";
import { llamaCfg, maxAbsDiff, type Params, type Shapes } from "./helpers.ts";

type Arr = Float32Array | Float64Array;
const cfg: GptConfig = { vocabSize: 11, nPositions: 12, nEmbd: 16, nLayer: 2, nHead: 2 };
const llama = llamaCfg({
  modelType: "qwen2",
  vocabSize: 11,
  maxPositions: 32,
  rmsNormEps: 1e-6,
  qkvBias: true,
});
const TOKENS = [[3, 1, 4, 1, 5, 9, 2, 6], [0, 0, 7, 1, 8, 2, 8, 1]];
const MASK = [[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]];

/** One decoder family as the LoRA tests below use it. */
interface Family {
  shapes: Shapes;
  init: (rng: Rng, dtype: "float32" | "float64") => Params;
  forward: (g: Graph, params: Record<string, Value>, tokens: Value, mask?: Value) => Value;
  /** LoRA settings the family needs besides r and alpha (its layout and targets). */
  layout: Partial<LoraConfig>;
  /** The training test's targets, and the weights it checks. */
  train: {
    targets: string[];
    /** An adapter B that training must move. */
    movedB: string;
    /** A targeted weight (merged into a float32 copy). */
    merged: string;
    /** A weight no adapter targets (copied as is). */
    untouched: string;
    /** A targeted weight that merging changes. */
    changed: string;
  };
}

const FAMILIES: Record<string, Family> = {
  gpt2: {
    shapes: gptShapes(cfg),
    init: (rng, dtype) => initGpt(cfg, rng, dtype),
    forward: (g, p, t, m) => gptForward(g, cfg, p, t, m).logits,
    layout: {},
    train: {
      targets: ["attn.c_attn", "mlp.c_fc"],
      movedB: "transformer.h.0.attn.c_attn.lora_B",
      merged: "transformer.h.0.attn.c_attn.weight",
      untouched: "transformer.h.0.ln_1.weight",
      changed: "transformer.h.0.mlp.c_fc.weight",
    },
  },
  qwen2: {
    shapes: llamaShapes(llama),
    init: (rng, dtype) => initLlama(llama, rng, dtype),
    forward: (g, p, t, m) => llamaForward(g, llama, p, t, m).logits,
    layout: loraDefaults(llama),
    train: {
      targets: ["q_proj", "mlp.gate_proj"],
      movedB: "model.layers.0.self_attn.q_proj.lora_B",
      merged: "model.layers.0.self_attn.q_proj.weight",
      untouched: "model.layers.0.input_layernorm.weight",
      changed: "model.layers.1.mlp.gate_proj.weight",
    },
  },
};

/** float64 adapters with A and B ~ N(0, 0.1²) (B not 0, so the adapters act), seeded. */
function randomAdapters(shapes: Shapes, lora: LoraConfig, seed: number): Params {
  const rng = new Rng(seed);
  return Object.fromEntries(
    Object.entries(loraShapes(shapes, lora)).map((
      [n, { shape }],
    ) => [n, rng.fillNormal(new Float64Array(shape[0] * shape[1]), 0.1)]),
  );
}

/**
 * One compiled graph with two logits outputs from the same weights: the base model with
 * LoRA applied ("lora") and the base model as given ("plain").
 */
async function logitsSession(
  fam: Family,
  lora: LoraConfig,
  dtype: "float32" | "float64",
  factored = false,
) {
  const base = fam.shapes, ad = loraShapes(base, lora);
  const g = new Graph("lora_forward");
  const inputs = (shapes: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    ) as Record<string, Value>;
  const pb = inputs(base), pa = inputs(ad);
  const tokens = g.input("tokens", "int64", ["B", "T"]);
  const mask = g.input("mask", "int64", ["B", "T"]);
  g.output(fam.forward(g, applyLora(g, lora, pb, pa, { factored }), tokens, mask), "lora");
  g.output(fam.forward(g, pb, tokens, mask), "plain");
  const session = await compile(g);
  return async (baseP: Record<string, Arr>, adP: Record<string, Arr>) => {
    const feeds = Object.fromEntries(
      [...Object.entries(base), ...Object.entries(ad)].map((
        [n, { shape }],
      ) => [n, tensor(dtype, shape, { ...baseP, ...adP }[n])]),
    );
    const B = TOKENS.length, T = TOKENS[0].length;
    const out = await session.run({
      ...feeds,
      tokens: tensor("int64", [B, T], TOKENS.flat()),
      mask: tensor("int64", [B, T], MASK.flat()),
    });
    return { lora: out.lora.data as Arr, plain: out.plain.data as Arr };
  };
}

Deno.test("loraShapes/initLora: targets by name, [in, r] x [r, out], B = 0, kaiming bound", () => {
  const base = gptShapes(cfg);
  const lora: LoraConfig = { r: 3, alpha: 6 };
  const shapes = loraShapes(base, lora);
  // Default targets: 4 matrices per block, 2 adapters each.
  assert.equal(Object.keys(shapes).length, 2 * 4 * cfg.nLayer);
  assert.deepEqual(shapes["transformer.h.0.attn.c_attn.lora_A"].shape, [16, 3]);
  assert.deepEqual(shapes["transformer.h.0.attn.c_attn.lora_B"].shape, [3, 48]);
  assert.deepEqual(shapes["transformer.h.1.mlp.c_proj.lora_A"].shape, [64, 3]);
  assert.deepEqual(shapes["transformer.h.1.mlp.c_proj.lora_B"].shape, [3, 16]);
  // "attn.c_proj" must not catch "mlp.c_proj"; a RegExp selects one layer.
  assert.deepEqual(
    loraTargets(base, { ...lora, targets: ["attn.c_proj"] }).map(([n]) => n),
    ["transformer.h.0.attn.c_proj.weight", "transformer.h.1.attn.c_proj.weight"],
  );
  assert.deepEqual(
    loraTargets(base, { ...lora, targets: [/\.h\.1\..*c_attn/] }).map(([n]) => n),
    ["transformer.h.1.attn.c_attn.weight"],
  );
  assert.throws(() => loraShapes(base, { ...lora, targets: ["attn.c_atn"] }), /matches no weight/);
  assert.throws(() => loraShapes(base, { ...lora, targets: ["ln_1"] }), /expected a 2-D matrix/);
  assert.throws(() => loraShapes(base, { ...lora, r: 0 }), RangeError);

  const init = initLora(base, lora, new Rng(2), "float32");
  assert.deepEqual(Object.keys(init), Object.keys(shapes));
  const A = init["transformer.h.1.mlp.c_proj.lora_A"];
  assert.ok(A instanceof Float32Array && A.length === 64 * 3);
  const bound = 1 / Math.sqrt(64);
  assert.ok(A.every((v) => Math.abs(v) <= bound) && A.some((v) => Math.abs(v) > 0.8 * bound));
  assert.ok(init["transformer.h.0.attn.c_attn.lora_B"].every((v) => v === 0));
  assert.deepEqual(initLora(base, lora, new Rng(2), "float32"), init);
  const gauss = initLora(base, { ...lora, init: "gaussian" }, new Rng(2), "float64");
  assert.ok(gauss["transformer.h.0.mlp.c_fc.lora_A"].some((v) => Math.abs(v) > bound));
});

Deno.test("LoRA with B = 0 gives exactly the base model's logits", async () => {
  const lora: LoraConfig = { r: 4, alpha: 16 };
  const base = initGpt(cfg, new Rng(1), "float32");
  const ad = initLora(gptShapes(cfg), lora, new Rng(2), "float32");
  const { lora: l, plain } = await (await logitsSession(FAMILIES.gpt2, lora, "float32"))(base, ad);
  assert.ok(plain.some((v) => v !== 0));
  assert.equal(maxAbsDiff(l, plain), 0);
});

for (const [name, fam] of Object.entries(FAMILIES)) {
  Deno.test(`${name}: LoRA training moves only the adapters; mergeLora reproduces the adapted logits`, async () => {
    const lora: LoraConfig = { r: 2, alpha: 4, ...fam.layout, targets: fam.train.targets };
    const baseShapes = fam.shapes;
    const base = fam.init(new Rng(1), "float32");
    const baseBytes = Object.fromEntries(
      Object.entries(base).map(([n, a]) => [n, new Uint8Array(a.buffer.slice(0))]),
    );
    const trainer = await Trainer.create({
      dtype: "float32",
      params: loraShapes(baseShapes, lora),
      frozen: baseShapes,
      batch: {
        tokens: { dtype: "int64", shape: ["B", "T"] },
        mask: { dtype: "int64", shape: ["B", "T"] },
      },
      loss: (g, p, b) => {
        // p holds the frozen base and the trainable adapters together.
        const logits = fam.forward(g, applyLora(g, lora, p, p), b.tokens, b.mask);
        return { loss: g.neg(g.reduceMean(tokenLogprobs(g, logits, b.tokens))) };
      },
      optimizer: adamw,
    }, { ...base, ...initLora(baseShapes, lora, new Rng(2), "float32") });
    const B = TOKENS.length, T = TOKENS[0].length;
    const batch = {
      tokens: tensor("int64", [B, T], TOKENS.flat()),
      mask: tensor("int64", [B, T], MASK.flat()),
    };
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) losses.push((await trainer.step(batch, { lr: 3e-2 })).loss[0]);
    console.log(`  loss ${losses.map((l) => l.toFixed(4)).join(" -> ")}`);
    assert.ok(losses[4] < losses[0], "training should lower the loss");

    for (const [n, a] of Object.entries(base)) {
      assert.deepEqual(new Uint8Array(a.buffer), baseBytes[n], `frozen "${n}" changed`);
    }
    const ad = Object.fromEntries(
      Object.entries(trainer.params()).map(([n, a]) => [n, Float32Array.from(a)]),
    );
    assert.ok(ad[fam.train.movedB].some((v) => v !== 0), "B did not move");

    const run = await logitsSession(fam, lora, "float32");
    const { lora: adapted, plain } = await run(base, ad);
    assert.ok(maxAbsDiff(adapted, plain) > 1e-3, `logits moved only ${maxAbsDiff(adapted, plain)}`);
    const merged = mergeLora(base, ad, lora);
    assert.ok(merged[fam.train.merged] instanceof Float32Array);
    assert.deepEqual(merged[fam.train.untouched], base[fam.train.untouched]);
    assert.notDeepEqual(merged[fam.train.changed], base[fam.train.changed]);
    const viaMerge = (await run(merged, ad)).plain;
    const diff = maxAbsDiff(viaMerge, adapted);
    console.log(`  merged vs adapter graph: max logit diff ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-5, `merged logits differ by ${diff}`);
    assert.throws(() => mergeLora(base, {}, lora), /missing adapter/);
    // share: the same bytes, the untargeted arrays are the base's own, changed targets new
    // (views of one buffer).
    const shared = mergeLora(base, ad, lora, { share: true });
    for (const n of Object.keys(merged)) assert.deepEqual(shared[n], merged[n]);
    assert.strictEqual(shared[fam.train.untouched], base[fam.train.untouched]);
    assert.notStrictEqual(merged[fam.train.untouched], base[fam.train.untouched]);
    assert.notStrictEqual(shared[fam.train.changed], base[fam.train.changed]);
    assert.strictEqual(
      shared[fam.train.changed].buffer.byteLength,
      4 *
        Object.keys(base).filter((n) => shared[n] !== base[n])
          .reduce((a, n) => a + base[n].length, 0),
    );
  });

  Deno.test(`${name}: mergeLora equals the adapter graph in float64 (1e-12) for random A and B`, async () => {
    const lora: LoraConfig = { r: 3, alpha: 5, ...fam.layout };
    const shapes = fam.shapes;
    const base = fam.init(new Rng(7), "float64");
    const ad = randomAdapters(shapes, lora, 8);
    const run = await logitsSession(fam, lora, "float64");
    const adapted = (await run(base, ad)).lora;
    const merged = (await run(mergeLora(base, ad, lora), ad)).plain;
    assert.ok(maxAbsDiff(adapted, (await run(base, ad)).plain) > 1e-3);
    assert.ok(maxAbsDiff(merged, adapted) < 1e-12, `${maxAbsDiff(merged, adapted)}`);
  });

  Deno.test(`${name}: mergeLora at B = 0 is the base, -0 turned +0, bit for bit; 0·Inf stays NaN; share`, () => {
    const lora: LoraConfig = { r: 2, alpha: 4, ...fam.layout };
    const base = fam.init(new Rng(3), "float32") as Record<string, Float32Array>;
    const target = fam.train.merged, other = fam.train.untouched;
    base[target][0] = -0;
    base[target][1] = NaN;
    base[other][0] = -0;
    const ad = initLora(fam.shapes, lora, new Rng(4), "float32"); // B = 0
    const merged = mergeLora(base, ad, lora);
    // W + (alpha / r)·(Σ_k 0·A) = W + (+0): every value kept, a -0 weight becomes +0 (what the
    // sums compute); a weight no adapter targets is copied as it is.
    const want = Float32Array.from(base[target]);
    want[0] = 0;
    assert.deepEqual(new Uint8Array(merged[target].buffer), new Uint8Array(want.buffer));
    assert.ok(Object.is(merged[other][0], -0));
    assert.deepEqual(merged[other], base[other]);
    assert.notEqual(merged[target], base[target]); // a copy: the base is never written
    assert.ok(Object.is(base[target][0], -0));
    // An infinite A makes 0·A NaN: the general sums run and the weights it reaches are NaN.
    const { a } = loraNames(target);
    const inf = { ...ad, [a]: Float32Array.from(ad[a]).fill(Infinity) };
    assert.ok(mergeLora(base, inf, lora)[target].every(Number.isNaN));
    // share: the same bits, the base's own arrays wherever they are unchanged (a -0 target is
    // still a copy), keys in the base's order.
    const shared = mergeLora(base, ad, lora, { share: true });
    assert.deepEqual(Object.keys(shared), Object.keys(base));
    assert.deepEqual(Object.keys(merged), Object.keys(base));
    for (const n of Object.keys(base)) {
      assert.deepEqual(new Uint8Array(shared[n].buffer), new Uint8Array(merged[n].buffer), n);
      assert.equal(shared[n] === base[n], n !== target, n);
    }
    const clean = { ...base, [target]: Float32Array.from(base[target]).fill(0.25, 0, 1) };
    assert.equal(mergeLora(clean, ad, lora, { share: true })[target], clean[target]);
    const { b } = loraNames(target);
    const moved = { ...ad, [b]: Float32Array.from(ad[b]).fill(0.5) };
    const want2 = mergeLora(base, moved, lora),
      got2 = mergeLora(base, moved, lora, { share: true });
    assert.deepEqual(got2[target], want2[target]);
    assert.notEqual(got2[target], base[target]);
    assert.notDeepEqual(got2[target], base[target]);
  });

  Deno.test(`${name}: factored LoRA (PEFT's x W + s (x A) B) equals the merged weights (f64, 1e-12) and forms no A·B`, async () => {
    const lora: LoraConfig = { r: 3, alpha: 5, ...fam.layout };
    const shapes = fam.shapes;
    const base = fam.init(new Rng(7), "float64");
    const ad = randomAdapters(shapes, lora, 9);
    const merged = (await (await logitsSession(fam, lora, "float64"))(base, ad)).lora;
    const factored = await (await logitsSession(fam, lora, "float64", true))(base, ad);
    assert.ok(maxAbsDiff(factored.lora, factored.plain) > 1e-3, "the adapters act");
    assert.ok(maxAbsDiff(factored.lora, merged) < 1e-12, `${maxAbsDiff(factored.lora, merged)}`);
    // The factored graph never forms a merged weight: no MatMul of A and B.
    const g = new Graph("f");
    const inp = (sh: Record<string, { shape: number[] }>) =>
      Object.fromEntries(
        Object.entries(sh).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
      );
    const pa = inp(loraShapes(shapes, lora));
    fam.forward(
      g,
      applyLora(g, lora, inp(shapes), pa, { factored: true }),
      g.input("t", "int64", [1, 4]),
    );
    const adapterInputs = new Set(Object.values(pa));
    const abProducts = g.nodes.filter((n) =>
      n.op === "MatMul" && n.inputs.every((i) => i && adapterInputs.has(i))
    );
    assert.equal(abProducts.length, 0);
  });
}

Deno.test("llama LoRA shapes are PEFT's: lora_A [r, in], lora_B [out, r]; every projection targeted", () => {
  const shapes = loraShapes(llamaShapes(llama), { r: 4, alpha: 8, ...loraDefaults(llama) });
  assert.deepEqual(shapes["model.layers.0.self_attn.k_proj.lora_A"].shape, [4, 16]);
  assert.deepEqual(shapes["model.layers.0.self_attn.k_proj.lora_B"].shape, [8, 4]);
  assert.deepEqual(shapes["model.layers.1.mlp.down_proj.lora_A"].shape, [4, 24]);
  assert.deepEqual(shapes["model.layers.1.mlp.down_proj.lora_B"].shape, [16, 4]);
  assert.equal(Object.keys(shapes).length, 2 * 7 * llama.nLayer);
});

Deno.test("gradients through applyLora (A, B and the base weight) match finite differences", async () => {
  // alpha / r = 5/3 is not a float32, so this also covers the [1, out] scale path.
  const lora: LoraConfig = { r: 3, alpha: 5, targets: ["lin"] };
  const { maxRelError } = await gradcheck(
    (g, [x, w, a, b]) => {
      const p = applyLora(g, lora, { "lin.weight": w }, { "lin.lora_A": a, "lin.lora_B": b });
      return g.tanh(g.matmul(x, p["lin.weight"]));
    },
    [{ shape: [3, 4] }, { shape: [4, 5] }, { shape: [4, 3] }, { shape: [3, 5] }],
  );
  assert.ok(maxRelError < 1e-7, `max relative error ${maxRelError}`);
});

Deno.test("gradients through factored LoRA (projection) and its merged fallback match finite differences", async () => {
  const lora: LoraConfig = { r: 3, alpha: 5, targets: ["lin"] };
  for (const layout of ["conv1d", "linear"] as const) {
    const fan = layout === "conv1d";
    const lo = { ...lora, fanInFanOut: fan };
    const shapes = fan
      ? [{ shape: [3, 4] }, { shape: [4, 5] }, { shape: [4, 3] }, { shape: [3, 5] }, { shape: [5] }]
      : [{ shape: [3, 4] }, { shape: [5, 4] }, { shape: [3, 4] }, { shape: [5, 3] }, {
        shape: [5],
      }];
    for (const direct of [false, true]) {
      const { maxRelError } = await gradcheck(
        (g, [x, w, a, b, bias]) => {
          const p = applyLora(g, lo, { "lin.weight": w }, { "lin.lora_A": a, "lin.lora_B": b }, {
            factored: true,
          });
          // direct: an op consumes the weight itself, which builds the merged form instead.
          const y = direct
            ? g.add(g.matmul(x, fan ? p["lin.weight"] : g.transpose(p["lin.weight"], [1, 0])), bias)
            : projection(g, x, p["lin.weight"], bias, layout);
          return g.tanh(y);
        },
        shapes,
      );
      assert.ok(
        maxRelError < 1e-7,
        `${layout} direct=${direct}: max relative error ${maxRelError}`,
      );
    }
  }
});

Deno.test("hasNegativeZero: finds a -0 by its bits, in views at an offset, float32 and float64", () => {
  const f = new Float32Array([1, 0, 2, -0, 3]);
  assert.equal(hasNegativeZero(f), true);
  assert.equal(hasNegativeZero(f.subarray(0, 3)), false); // +0 is not -0
  assert.equal(hasNegativeZero(f.subarray(3)), true);
  assert.equal(hasNegativeZero(f.subarray(4)), false);
  assert.equal(hasNegativeZero(new Float32Array([-1e-45, -Infinity, NaN])), false);
  const d = new Float64Array([0, -0]);
  assert.equal(hasNegativeZero(d), true);
  assert.equal(hasNegativeZero(d.subarray(0, 1)), false);
  assert.equal(hasNegativeZero(new Float64Array([-5e-324, -2])), false);
});
