/**
 * The Llama-family decoder on its own: KV-cache decoding equals the full forward (float64,
 * 1e-12) for every flag (GQA, q/k/v biases, q/k norm, untied head, Llama 3 RoPE scaling,
 * sliding window), left padding, finite-difference gradients, RoPE frequencies by hand.
 * Parity with transformers itself is in hf_models_test.ts.
 */
import assert from "node:assert/strict";
import { type LlamaConfig, llamaForward, llamaShapes, ropeInvFreq } from "../../lib/nn/llama.ts";
import { GptDecoder } from "../../lib/nn/sample.ts";
import { Rng } from "../../lib/rng.ts";
import {
  type Dtype,
  forwardSession,
  llamaCfg,
  maxAbsDiff,
  nllGradcheck,
  type Params,
  testParams,
} from "./helpers.ts";

const BASE: LlamaConfig = llamaCfg({ vocabSize: 19, rmsNormEps: 1e-6 });

/** The variants transformers' families map to, each with the flags it exercises. */
const VARIANTS: Record<string, LlamaConfig> = {
  "llama3 (GQA, llama3 rope, untied)": {
    ...BASE,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 16,
    },
  },
  "qwen2 (q/k/v biases, tied)": {
    ...BASE,
    modelType: "qwen2",
    qkvBias: true,
    tieWordEmbeddings: true,
  },
  "qwen3 (q/k norm, headDim != d/H, o bias)": {
    ...BASE,
    modelType: "qwen3",
    headDim: 6,
    qkNorm: true,
    oBias: true,
    qkvBias: true,
  },
  "mistral (sliding window 3, MHA, mlp bias)": {
    ...BASE,
    modelType: "mistral",
    nKvHead: 4,
    slidingWindow: 3,
    mlpBias: true,
  },
};

/** Params far from init (std 0.3, norm weights ~1): O(1) logits, varied distributions. */
const llamaParams = (cfg: LlamaConfig, seed: number, dtype: Dtype): Params =>
  testParams(llamaShapes(cfg), seed, /norm\.weight$/, dtype);

const llamaSession = (cfg: LlamaConfig, dtype: Dtype) =>
  forwardSession(
    "llama_forward",
    llamaShapes(cfg),
    dtype,
    (g, p, t, m) => llamaForward(g, cfg, p, t, m),
  );

for (const [name, cfg] of Object.entries(VARIANTS)) {
  Deno.test(`llama ${name}: KV-cache decoding token by token equals the full forward (f64, 1e-12)`, async () => {
    const V = cfg.vocabSize;
    const prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]];
    const B = prompts.length, W = 5, steps = 5, T = W + steps;
    const rng = new Rng(3);
    const fed = Array.from({ length: steps }, () => prompts.map(() => rng.int(V)));
    const tokens = prompts.map((p, b) => [
      ...Array(W - p.length).fill(0),
      ...p,
      ...fed.map((f) => f[b]),
    ]);
    const mask = prompts.map((p) => [
      ...Array(W - p.length).fill(0),
      ...Array(T - W + p.length)
        .fill(1),
    ]);
    const p = llamaParams(cfg, 7, "float64");
    const ref = await (await llamaSession(cfg, "float64"))(p, tokens, mask);
    const dec = await GptDecoder.get(cfg, "float64");
    const st = await dec.start(p, prompts, { padTokenId: 0, capacity: T });
    let worst = 0;
    for (let t = 0; t <= steps; t++) {
      if (t > 0) await dec.step(st, fed[t - 1]);
      for (let b = 0; b < B; b++) {
        const col = W - 1 + t;
        const want = ref.logits.subarray((b * T + col) * V, (b * T + col + 1) * V);
        worst = Math.max(worst, maxAbsDiff(st.logits.subarray(b * V, (b + 1) * V), want));
      }
    }
    assert.ok(worst < 1e-12, `decoder vs forward differ by ${worst}`);
  });

  Deno.test(`llama ${name}: a left-padded row equals the unpadded sequence (f64, 1e-12)`, async () => {
    const run = await llamaSession(cfg, "float64");
    const p = llamaParams(cfg, 9, "float64");
    const seq = [3, 7, 1, 12, 0, 5];
    const alone = await run(p, [seq], [seq.map(() => 1)]);
    const padded = await run(p, [[9, 9, 9, 9, ...seq], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], [
      [0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
      Array(10).fill(1),
    ]);
    assert.ok(padded.logits.every(Number.isFinite), "pad positions must not be NaN");
    const V = cfg.vocabSize;
    const got = padded.logits.subarray(4 * V, 10 * V);
    assert.ok(maxAbsDiff(alone.logits, got) < 1e-12, `padded vs unpadded differ`);
  });

  Deno.test(`llama ${name}: gradients of the token NLL w.r.t. every parameter match finite differences`, async () => {
    const small = { ...cfg, nLayer: 1, hiddenSize: 8, intermediateSize: 12, vocabSize: 11 };
    const { maxRelError, worst } = await nllGradcheck(
      llamaShapes(small),
      (g, p, t, m) => llamaForward(g, small, p, t, m),
      // RMSNorm weights near 1 and projections small keep the loss well conditioned.
      (n, shape) => ({
        shape,
        ...(/norm\.weight$/.test(n) ? { lo: 0.8, hi: 1.2, positive: true } : { hi: 0.8 }),
      }),
    );
    assert.ok(maxRelError < 1e-6, `max relative error ${maxRelError} (${worst})`);
  });
}

Deno.test("sliding window: a token more than `window` positions back does not reach a 1-layer model's logits", async () => {
  const cfg = { ...VARIANTS["mistral (sliding window 3, MHA, mlp bias)"], nLayer: 1 };
  const run = await llamaSession(cfg, "float64");
  const p = llamaParams(cfg, 2, "float64");
  const a = [1, 2, 3, 4, 5, 6], b = [9, 2, 3, 4, 5, 6]; // differ at position 0 only
  const ones = [a.map(() => 1)];
  const [la, lb] = [await run(p, [a], ones), await run(p, [b], ones)];
  const V = cfg.vocabSize;
  // Position 3 sees keys 1..3 (window 3): identical; position 2 sees key 0: different.
  assert.ok(maxAbsDiff(la.logits.subarray(3 * V), lb.logits.subarray(3 * V)) < 1e-12);
  assert.ok(maxAbsDiff(la.logits.subarray(2 * V, 3 * V), lb.logits.subarray(2 * V, 3 * V)) > 1e-3);
});

Deno.test("ropeInvFreq: θ^(-2i/d) by hand, linear divides, llama3 keeps high, divides low, ramps the middle", () => {
  const cfg = { ...BASE, headDim: 8, ropeTheta: 10000 };
  const base = [1, 0.1, 0.01, 0.001];
  ropeInvFreq(cfg).forEach((f, i) => assert.ok(Math.abs(f - base[i]) < 1e-15));
  ropeInvFreq({ ...cfg, ropeScaling: { type: "linear", factor: 4 } }).forEach((f, i) =>
    assert.ok(Math.abs(f - base[i] / 4) < 1e-15)
  );
  // Wavelengths 2π/f: 6.28, 62.8, 628, 6283. With original 1000, low 1, high 10: high-freq
  // wavelen bound 100, low-freq bound 1000 -> kept, kept, ramped, divided.
  const l3 = ropeInvFreq({
    ...cfg,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 10,
      originalMaxPositions: 1000,
    },
  });
  assert.equal(l3[0], 1);
  assert.equal(l3[1], 0.1);
  const smooth = (1000 / (2 * Math.PI / 0.01) - 1) / (10 - 1);
  assert.ok(Math.abs(l3[2] - ((1 - smooth) * 0.01 / 8 + smooth * 0.01)) < 1e-15);
  assert.ok(Math.abs(l3[3] - 0.001 / 8) < 1e-15);
});
