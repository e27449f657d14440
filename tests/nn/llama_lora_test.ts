/** LoRA on the Llama family (PEFT layout, q/k/v/o/gate/up/down): frozen-base training, merging. */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { adamw } from "../../lib/onnx/optim.ts";
import { Trainer } from "../../lib/onnx/train.ts";
import { tokenLogprobs } from "../../lib/nn/gpt.ts";
import { initLlama, type LlamaConfig, llamaForward, llamaShapes } from "../../lib/nn/llama.ts";
import { loraDefaults } from "../../lib/nn/decoder.ts";
import { applyLora, initLora, type LoraConfig, loraShapes, mergeLora } from "../../lib/nn/lora.ts";
import { Rng } from "../../lib/rng.ts";

type Arr = Float32Array | Float64Array;
const cfg: LlamaConfig = {
  family: "llama",
  modelType: "qwen2",
  vocabSize: 11,
  hiddenSize: 16,
  intermediateSize: 24,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  headDim: 4,
  maxPositions: 32,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScaling: { type: "default" },
  qkvBias: true,
  oBias: false,
  mlpBias: false,
  qkNorm: false,
  tieWordEmbeddings: false,
};
const TOKENS = [[3, 1, 4, 1, 5, 9, 2, 6], [0, 0, 7, 1, 8, 2, 8, 1]];
const MASK = [[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]];

/**
 * One compiled graph with two logits outputs from the same weights: the base model with
 * LoRA applied ("lora") and the base model as given ("plain").
 */
async function logitsSession(
  lora: LoraConfig,
  dtype: "float32" | "float64",
  factored = false,
) {
  const base = llamaShapes(cfg), ad = loraShapes(base, lora);
  const g = new Graph("lora_forward");
  const inputs = (shapes: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    ) as Record<string, Value>;
  const pb = inputs(base), pa = inputs(ad);
  const tokens = g.input("tokens", "int64", ["B", "T"]);
  const mask = g.input("mask", "int64", ["B", "T"]);
  g.output(
    llamaForward(g, cfg, applyLora(g, lora, pb, pa, { factored }), tokens, mask).logits,
    "lora",
  );
  g.output(llamaForward(g, cfg, pb, tokens, mask).logits, "plain");
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

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

Deno.test("LoRA training moves only the adapters; mergeLora reproduces the adapted logits", async () => {
  const lora: LoraConfig = {
    r: 2,
    alpha: 4,
    ...loraDefaults(cfg),
    targets: ["q_proj", "mlp.gate_proj"],
  };
  const baseShapes = llamaShapes(cfg);
  const base = initLlama(cfg, new Rng(1), "float32");
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
      const { logits } = llamaForward(g, cfg, applyLora(g, lora, p, p), b.tokens, b.mask);
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
  assert.ok(ad["model.layers.0.self_attn.q_proj.lora_B"].some((v) => v !== 0), "B did not move");

  const run = await logitsSession(lora, "float32");
  const { lora: adapted, plain } = await run(base, ad);
  assert.ok(maxDiff(adapted, plain) > 1e-3, `logits moved only ${maxDiff(adapted, plain)}`);
  const merged = mergeLora(base, ad, lora);
  assert.ok(merged["model.layers.0.self_attn.q_proj.weight"] instanceof Float32Array);
  assert.deepEqual(
    merged["model.layers.0.input_layernorm.weight"],
    base["model.layers.0.input_layernorm.weight"],
  );
  assert.notDeepEqual(
    merged["model.layers.1.mlp.gate_proj.weight"],
    base["model.layers.1.mlp.gate_proj.weight"],
  );
  const viaMerge = (await run(merged, ad)).plain;
  const diff = maxDiff(viaMerge, adapted);
  console.log(`  merged vs adapter graph: max logit diff ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-5, `merged logits differ by ${diff}`);
  assert.throws(() => mergeLora(base, {}, lora), /missing adapter/);
});

Deno.test("mergeLora equals the adapter graph in float64 (1e-12) for random A and B", async () => {
  const lora: LoraConfig = { r: 3, alpha: 5, ...loraDefaults(cfg) };
  const shapes = llamaShapes(cfg);
  const base = initLlama(cfg, new Rng(7), "float64");
  const rng = new Rng(8);
  const ad = Object.fromEntries(
    Object.entries(loraShapes(shapes, lora)).map((
      [n, { shape }],
    ) => [n, rng.fillNormal(new Float64Array(shape[0] * shape[1]), 0.1)]),
  );
  const run = await logitsSession(lora, "float64");
  const adapted = (await run(base, ad)).lora;
  const merged = (await run(mergeLora(base, ad, lora), ad)).plain;
  assert.ok(maxDiff(adapted, (await run(base, ad)).plain) > 1e-3);
  assert.ok(maxDiff(merged, adapted) < 1e-12, `${maxDiff(merged, adapted)}`);
});

Deno.test("llama LoRA shapes are PEFT's: lora_A [r, in], lora_B [out, r]; every projection targeted", () => {
  const shapes = loraShapes(llamaShapes(cfg), { r: 4, alpha: 8, ...loraDefaults(cfg) });
  assert.deepEqual(shapes["model.layers.0.self_attn.k_proj.lora_A"].shape, [4, 16]);
  assert.deepEqual(shapes["model.layers.0.self_attn.k_proj.lora_B"].shape, [8, 4]);
  assert.deepEqual(shapes["model.layers.1.mlp.down_proj.lora_A"].shape, [4, 24]);
  assert.deepEqual(shapes["model.layers.1.mlp.down_proj.lora_B"].shape, [16, 4]);
  assert.equal(Object.keys(shapes).length, 2 * 7 * cfg.nLayer);
});

Deno.test("factored LoRA (PEFT's x W + s (x A) B) equals the merged weights (f64, 1e-12) and forms no A·B", async () => {
  const lora: LoraConfig = { r: 3, alpha: 5, ...loraDefaults(cfg) };
  const shapes = llamaShapes(cfg);
  const base = initLlama(cfg, new Rng(7), "float64");
  const rng = new Rng(9);
  const ad = Object.fromEntries(
    Object.entries(loraShapes(shapes, lora)).map((
      [n, { shape }],
    ) => [n, rng.fillNormal(new Float64Array(shape[0] * shape[1]), 0.1)]),
  );
  const merged = (await (await logitsSession(lora, "float64"))(base, ad)).lora;
  const factored = await (await logitsSession(lora, "float64", true))(base, ad);
  assert.ok(maxDiff(factored.lora, factored.plain) > 1e-3, "the adapters act");
  assert.ok(maxDiff(factored.lora, merged) < 1e-12, `${maxDiff(factored.lora, merged)}`);
  // The factored graph never forms a merged weight: no MatMul of A and B.
  const g = new Graph("f");
  const inp = (sh: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(sh).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
    );
  const pa = inp(loraShapes(shapes, lora));
  llamaForward(
    g,
    cfg,
    applyLora(g, lora, inp(shapes), pa, { factored: true }),
    g.input("t", "int64", [1, 4]),
  );
  const adapterInputs = new Set(Object.values(pa));
  const abProducts = g.nodes.filter((n) =>
    n.op === "MatMul" && n.inputs.every((i) => i && adapterInputs.has(i))
  );
  assert.equal(abProducts.length, 0);
});
