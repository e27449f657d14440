/** KV-cache decoding and seeded sampling: parity with the full forward pass, determinism. */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, type Tensor, tensor } from "../../lib/onnx/session.ts";
import {
  type GptConfig,
  gptDecodeStep,
  gptForward,
  gptShapes,
  initGpt,
  type KvCache,
  tokenLogprobs,
} from "../../lib/nn/gpt.ts";
import {
  argmax,
  generate,
  GptDecoder,
  logSoftmax,
  sampleIndex,
  samplingProbs,
  topKFilter,
  topPFilter,
} from "../../lib/nn/sample.ts";
import { Rng } from "../../lib/rng.ts";
import { initLora, loraShapes, mergeLora } from "../../lib/nn/lora.ts";

type Dtype = "float32" | "float64";
type Params = Record<string, Float32Array | Float64Array>;

/** Params far from init (std 0.3, LayerNorm weights ~1): O(1) logits, varied distributions. */
function testParams(cfg: GptConfig, seed: number, dtype: Dtype): Params {
  const rng = new Rng(seed);
  const out: Params = {};
  for (const [n, { shape }] of Object.entries(gptShapes(cfg))) {
    const a = rng.fillNormal(new Float64Array(shape.reduce((x, y) => x * y, 1)), 0.3);
    if (/\.ln_(1|2|f)\.weight$/.test(n)) { for (let i = 0; i < a.length; i++) a[i] += 1; }
    out[n] = dtype === "float32" ? Float32Array.from(a) : a;
  }
  return out;
}

const paramFeeds = (cfg: GptConfig, dtype: Dtype, p: Params) =>
  Object.fromEntries(
    Object.entries(gptShapes(cfg)).map(([n, { shape }]) => [n, tensor(dtype, shape, p[n])]),
  );

/** Full forward over [B, T] (mask, targets): logits [B*T*V] and token logprobs [B*T]. */
async function fullForward(
  cfg: GptConfig,
  dtype: Dtype,
  p: Params,
  B: number,
  T: number,
  tokens: ArrayLike<number>,
  mask: ArrayLike<number>,
  targets: ArrayLike<number> = tokens,
) {
  const g = new Graph("forward");
  const params = Object.fromEntries(
    Object.entries(gptShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
  );
  const tok = g.input("tokens", "int64", ["B", "T"]);
  const m = g.input("mask", "int64", ["B", "T"]);
  const tgt = g.input("targets", "int64", ["B", "T"]);
  const { logits } = gptForward(g, cfg, params, tok, m);
  g.output(logits, "logits");
  g.output(tokenLogprobs(g, logits, tgt), "logprobs");
  const out = await (await compile(g)).run({
    ...paramFeeds(cfg, dtype, p),
    tokens: tensor("int64", [B, T], Array.from(tokens)),
    mask: tensor("int64", [B, T], Array.from(mask)),
    targets: tensor("int64", [B, T], Array.from(targets)),
  });
  return {
    logits: out.logits.data as Float32Array | Float64Array,
    logprobs: out.logprobs.data as Float32Array | Float64Array,
  };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

// Tolerances of decode vs full forward: the two differ only in summation order (softmax over
// P + S keys vs T keys with masked ones contributing exp(-1e9) = 0).
const TOL = { float64: 1e-12, float32: 1e-5 } as const;

const CFG: GptConfig = { vocabSize: 23, nPositions: 24, nEmbd: 16, nLayer: 2, nHead: 2 };

Deno.test("gptDecodeStep: prefill from an empty cache, then chunks of 1 and 2, equals gptForward", async () => {
  const cfg = CFG, V = cfg.vocabSize, H = cfg.nHead, hd = cfg.nEmbd / H;
  // Row 0 full, row 1 left-padded by 3 (pad id 4: any real id, the mask must hide it).
  const B = 2, T = 9;
  const rng = new Rng(3);
  const tokens = Array.from({ length: B * T }, () => rng.int(V));
  const mask = Array.from({ length: B * T }, (_, i) => (i >= T && i < T + 3 ? 0 : 1));
  for (let i = T; i < T + 3; i++) tokens[i] = 4;
  const positions = mask.map((_, i) => {
    const b = Math.floor(i / T), t = i % T;
    let c = 0;
    for (let s = 0; s <= t; s++) c += mask[b * T + s];
    return Math.max(c - 1, 0);
  });
  const chunks = [[0, 4], [4, 5], [5, 7], [7, 8], [8, 9]];
  for (const dtype of ["float64", "float32"] as const) {
    const p = testParams(cfg, 7, dtype);
    const ref = await fullForward(cfg, dtype, p, B, T, tokens, mask);
    const g = new Graph("decode");
    const params = Object.fromEntries(
      Object.entries(gptShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    );
    const past: KvCache[] = Array.from({ length: cfg.nLayer }, (_, i) => ({
      key: g.input(`pk${i}`, dtype, ["B", H, "P", hd]),
      value: g.input(`pv${i}`, dtype, ["B", H, "P", hd]),
    }));
    const out = gptDecodeStep(
      g,
      cfg,
      params,
      g.input("tokens", "int64", ["B", "S"]),
      past,
      g.input("mask", "int64", ["B", "K"]),
      g.input("pos", "int64", ["B", "S"]),
    );
    g.output(out.logits, "logits");
    out.presents.forEach((c, i) => (g.output(c.key, `k${i}`), g.output(c.value, `v${i}`)));
    const session = await compile(g);
    let cache: Record<string, Tensor> = {};
    for (let i = 0; i < cfg.nLayer; i++) {
      cache[`pk${i}`] = tensor(dtype, [B, H, 0, hd]);
      cache[`pv${i}`] = tensor(dtype, [B, H, 0, hd]);
    }
    let worst = 0, maxLogit = 0;
    for (const [a, e] of chunks) {
      const S = e - a;
      const cols = (x: number[], lo: number, hi: number) =>
        Array.from({ length: B }, (_, b) => x.slice(b * T + lo, b * T + hi)).flat();
      const r = await session.run({
        ...paramFeeds(cfg, dtype, p),
        ...cache,
        tokens: tensor("int64", [B, S], cols(tokens, a, e)),
        mask: tensor("int64", [B, e], cols(mask, 0, e)),
        pos: tensor("int64", [B, S], cols(positions, a, e)),
      });
      assert.deepEqual(r.logits.dims, [B, S, V]);
      assert.deepEqual(r.k0.dims, [B, H, e, hd]);
      const got = r.logits.data as Float32Array | Float64Array;
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < S; s++) {
          if (!mask[b * T + a + s]) continue; // pad queries: meaningless in both
          for (let v = 0; v < V; v++) {
            const x = got[(b * S + s) * V + v], y = ref.logits[(b * T + a + s) * V + v];
            worst = Math.max(worst, Math.abs(x - y));
            maxLogit = Math.max(maxLogit, Math.abs(y));
          }
        }
      }
      cache = {};
      for (let i = 0; i < cfg.nLayer; i++) {
        cache[`pk${i}`] = r[`k${i}`];
        cache[`pv${i}`] = r[`v${i}`];
      }
    }
    console.log(
      `  ${dtype}: max |logit| ${maxLogit.toFixed(2)}, max diff ${worst.toExponential(2)}`,
    );
    assert.ok(maxLogit > 1, "logits should be O(1) for the tolerance to mean something");
    assert.ok(worst < TOL[dtype], `${dtype}: decode vs forward differ by ${worst}`);
  }
});

Deno.test("GptDecoder token by token equals the full forward, left-padded prompts of different lengths", async () => {
  const cfg = CFG, V = cfg.vocabSize;
  const prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]];
  const B = prompts.length, W = 5, steps = 6;
  const rng = new Rng(5);
  const fed = Array.from({ length: steps }, () => prompts.map(() => rng.int(V)));
  // Row 1 "finishes" after 2 fed tokens: its later tokens are padding (real = false), which
  // must not change the other rows.
  const realAt = (b: number, t: number) => b !== 1 || t < 2;
  const T = W + steps;
  const tokens: number[] = [], mask: number[] = [];
  prompts.forEach((p, b) => {
    for (let s = 0; s < W; s++) {
      tokens.push(s < W - p.length ? 0 : p[s - (W - p.length)]);
      mask.push(s < W - p.length ? 0 : 1);
    }
    for (let t = 0; t < steps; t++) {
      tokens.push(fed[t][b]);
      mask.push(realAt(b, t) ? 1 : 0);
    }
  });
  for (const dtype of ["float64", "float32"] as const) {
    const p = testParams(cfg, 11, dtype);
    const ref = await fullForward(cfg, dtype, p, B, T, tokens, mask);
    const dec = await GptDecoder.get(cfg, dtype);
    const st = await dec.start(p, prompts, { padTokenId: 0, capacity: T });
    let worst = 0;
    for (let t = 0; t <= steps; t++) {
      if (t > 0) {
        await dec.step(st, fed[t - 1], prompts.map((_, b) => realAt(b, t - 1)));
      }
      for (let b = 0; b < B; b++) {
        if (t > 0 && !realAt(b, t - 1)) continue;
        const col = W - 1 + t;
        const want = ref.logits.subarray((b * T + col) * V, (b * T + col + 1) * V);
        worst = Math.max(worst, maxAbsDiff(st.logits.subarray(b * V, (b + 1) * V), want));
      }
    }
    console.log(`  ${dtype}: max logit diff ${worst.toExponential(2)}`);
    assert.ok(worst < TOL[dtype], `${dtype}: decoder vs forward differ by ${worst}`);
    assert.equal(st.length, T);
    await assert.rejects(() => dec.step(st, [1, 1, 1]), /capacity/);
  }
});

Deno.test("topKFilter / topPFilter (which rank only the tokens that can be kept) equal a full sort, ties included", () => {
  // The definitions, by a full ranking (ties: lower id first).
  const rank = (p: ArrayLike<number>) =>
    Array.from({ length: p.length }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  const norm = (out: Float64Array) => {
    const s = out.reduce((a, b) => a + b, 0);
    return out.map((x) => x / s);
  };
  const refK = (p: ArrayLike<number>, k: number) => {
    const out = new Float64Array(p.length);
    for (const i of rank(p).slice(0, k)) out[i] = p[i];
    return norm(out);
  };
  const refP = (p: ArrayLike<number>, q: number) => {
    const out = new Float64Array(p.length);
    let mass = 0;
    for (const i of rank(p)) {
      out[i] = p[i];
      mass += p[i];
      if (mass >= q * (1 - 1e-12)) break;
    }
    return norm(out);
  };
  const rng = new Rng(41);
  let cases = 0;
  for (const V of [1, 2, 7, 50, 600, 3000]) {
    for (let r = 0; r < 12; r++) {
      // Peaked (softmax of wide logits), flat, and quantised (many exact ties) distributions.
      const logits = Array.from({ length: V }, () => rng.normal() * [8, 0.5, 3][r % 3]);
      let p: ArrayLike<number> = samplingProbs(logits, { temperature: 1 });
      if (r % 3 === 2) p = norm(Float64Array.from(p, (x) => Math.round(x * 200) / 200 + 1e-6));
      if (r % 4 === 3) p = Float32Array.from(p); // as the decode step's float32 probs
      for (const k of [1, 2, 5, V - 1, V]) {
        if (k < 1) continue;
        assert.deepEqual(topKFilter(p, k), refK(p, k), `V ${V} case ${r} k ${k}`);
        cases++;
      }
      for (const q of [0.1, 0.5, 0.9, 0.95, 0.999, 1 - 1e-9]) {
        assert.deepEqual(topPFilter(p, q), refP(p, q), `V ${V} case ${r} p ${q}`);
        cases++;
      }
    }
  }
  assert.ok(cases > 700);
});

Deno.test("temperature, top-k, top-p and the inverse-CDF draw on hand-made distributions", () => {
  const close = (a: ArrayLike<number>, b: number[], tol = 1e-12) =>
    assert.ok(maxAbsDiff(a, b) < tol, `${Array.from(a)} != ${b}`);
  const p = [0.5, 0.3, 0.2], logits = p.map(Math.log);
  // Temperature T: probabilities ∝ p^(1/T).
  const z = (e: number) => p.reduce((s, x) => s + x ** e, 0);
  close(samplingProbs(logits, { temperature: 0.5 }), p.map((x) => x ** 2 / z(2)));
  close(samplingProbs(logits, { temperature: 2 }), p.map((x) => x ** 0.5 / z(0.5)));
  close(samplingProbs(logits, { temperature: 1 }), p);
  close(samplingProbs(logits.map((x) => x + 100)), p); // shift-invariant, no overflow
  close(samplingProbs([0.1, 2, 2, -1], { temperature: 0 }), [0, 1, 0, 0]); // greedy, first max
  close(logSoftmax(logits), logits);

  // Top-p keeps exactly the smallest most-probable set with mass >= p, renormalised.
  const q = [0.1, 0.5, 0.15, 0.25]; // ranked: 1 (0.5), 3 (0.25), 2 (0.15), 0 (0.1)
  close(topPFilter(q, 0.3), [0, 1, 0, 0]);
  close(topPFilter(q, 0.5), [0, 1, 0, 0]); // exactly reached by the first token
  close(topPFilter(q, 0.6), [0, 0.5 / 0.75, 0, 0.25 / 0.75]);
  close(topPFilter(q, 0.75), [0, 0.5 / 0.75, 0, 0.25 / 0.75]); // 0.5 + 0.25 = p exactly
  close(topPFilter(q, 0.8), [0, 0.5 / 0.9, 0.15 / 0.9, 0.25 / 0.9]);
  close(topPFilter(q, 1), q);
  close(topPFilter([0.4, 0.2, 0.4], 0.5), [0.5, 0, 0.5]); // ties: lower id first
  close(topPFilter([0.4, 0.2, 0.4], 0.3), [1, 0, 0]);
  // Top-k: exactly k tokens, ties to the lower id; then top-p on the renormalised result.
  close(topKFilter(q, 2), [0, 0.5 / 0.75, 0, 0.25 / 0.75]);
  close(topKFilter([0.3, 0.4, 0.3], 2), [0.3 / 0.7, 0.4 / 0.7, 0]);
  close(topKFilter(q, 1), [0, 1, 0, 0]);
  close(samplingProbs(q.map(Math.log), { topK: 3, topP: 0.8 }), [0, 0.5 / 0.75, 0, 0.25 / 0.75]);
  close(samplingProbs(q.map(Math.log), { topK: 1, temperature: 3 }), [0, 1, 0, 0]);
  assert.throws(() => samplingProbs(q, { topP: 0 }), /topP/);
  assert.throws(() => samplingProbs(q, { temperature: -1 }), /temperature/);
  assert.throws(() => samplingProbs(q, { topK: 1.5 }), /topK/);

  // Inverse CDF in token-id order; zero-probability tokens are never picked.
  const r = [0.25, 0, 0.75];
  assert.equal(sampleIndex(r, 0), 0);
  assert.equal(sampleIndex(r, 0.2499), 0);
  assert.equal(sampleIndex(r, 0.25), 2);
  assert.equal(sampleIndex(r, 1 - 2 ** -53), 2);
  assert.equal(sampleIndex([0, 1, 0], 0.999), 1);
  // Empirical frequencies of 40000 draws within 5 sigma of the distribution.
  const rng = new Rng(1), N = 40000, counts = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) counts[sampleIndex(q, rng.uniform())]++;
  q.forEach((x, i) => {
    const sigma = Math.sqrt(N * x * (1 - x));
    assert.ok(Math.abs(counts[i] - N * x) < 5 * sigma, `token ${i}: ${counts[i]} vs ${N * x}`);
  });
  assert.equal(argmax([3, 5, 5, 1]), 1);
});

const PROMPTS = [[1, 2, 3, 4, 5, 6], [7], [8, 9, 10], [11, 12]];

Deno.test("generate: one seed gives identical samples byte for byte, another seed differs; one uniform per token", async () => {
  const cfg = CFG;
  const params = testParams(cfg, 13, "float32");
  const run = (seed: number) =>
    generate({ cfg, params }, PROMPTS, {
      maxNewTokens: 12,
      temperature: 1,
      padTokenId: 0,
      rng: new Rng(seed),
    });
  const [a, b, c] = [await run(42), await run(42), await run(43)];
  const bytes = (x: { buffer: ArrayBufferLike }) => new Uint8Array(x.buffer);
  for (const k of ["tokens", "logp", "sampleLogp", "mask", "sequences", "sequenceMask"] as const) {
    assert.deepEqual(bytes(a[k]), bytes(b[k]), `${k} differs for one seed`);
  }
  assert.deepEqual(a.responses, b.responses);
  assert.notDeepEqual(Array.from(a.tokens), Array.from(c.tokens), "seeds 42 and 43 agree");
  // No EOS: every row runs to maxNewTokens.
  assert.equal(a.cols, 12);
  assert.ok(a.mask.every((m) => m === 1));
  // The generator advanced by exactly one uniform per sampled token, greedy included.
  for (const temperature of [1, 0]) {
    const rng = new Rng(7);
    const out = await generate({ cfg, params }, PROMPTS, {
      maxNewTokens: 5,
      temperature,
      topP: 0.9,
      eosTokenId: 3,
      padTokenId: 0,
      rng,
    });
    const ref = new Rng(7);
    const n = out.mask.reduce((s, m) => s + m, 0);
    for (let i = 0; i < n; i++) ref.uniform();
    assert.deepEqual(rng.state(), ref.state(), `temperature ${temperature}: ${n} draws expected`);
  }
});

Deno.test("greedy decoding equals the argmax of the full forward at every step; top-k = 1 equals greedy", async () => {
  const cfg = CFG, V = cfg.vocabSize;
  for (const dtype of ["float64", "float32"] as const) {
    const params = testParams(cfg, 17, dtype);
    const opts = { maxNewTokens: 10, padTokenId: 0 };
    const greedy = await generate({ cfg, params }, PROMPTS, {
      ...opts,
      temperature: 0,
      rng: new Rng(1),
    });
    const W = greedy.promptWidth, T = W + greedy.cols, B = PROMPTS.length;
    const ref = await fullForward(cfg, dtype, params, B, T, greedy.sequences, greedy.sequenceMask);
    let checked = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < greedy.cols; t++) {
        const col = W - 1 + t;
        const want = argmax(ref.logits.subarray((b * T + col) * V, (b * T + col + 1) * V));
        assert.equal(greedy.tokens[b * greedy.cols + t], want, `${dtype} row ${b} step ${t}`);
        checked++;
      }
    }
    assert.equal(checked, B * 10);
    // Responses are not all one token (the check would be weak otherwise).
    assert.ok(new Set(greedy.tokens).size > 3);
    const top1 = await generate({ cfg, params }, PROMPTS, {
      ...opts,
      temperature: 1.7,
      topK: 1,
      rng: new Rng(99),
    });
    assert.deepEqual(top1.tokens, greedy.tokens, `${dtype}: top-k 1 differs from greedy`);
  }
});

Deno.test("generate: logp equals tokenLogprobs of the full forward on prompt + response (f64, f32; vocabulary passes in JS and in ORT)", async () => {
  const cfg = CFG;
  for (
    const [dtype, vocabPasses] of [
      ["float64", "js"],
      ["float32", "js"],
      ["float64", "ort"],
      ["float32", "ort"],
    ] as const
  ) {
    const p = testParams(cfg, 19, dtype);
    // Params as ORT tensors, the way a Trainer's live paramTensors() are passed.
    const params = paramFeeds(cfg, dtype, p);
    const out = await generate({ cfg, params }, PROMPTS, {
      maxNewTokens: 9,
      vocabPasses,
      temperature: 1.3, // logp must be the raw policy's, not the tempered distribution's
      topP: 0.95,
      // No EOS: every row samples all 9 tokens (EOS handling has its own test).
      padTokenId: 0,
      rng: new Rng(3),
    });
    const W = out.promptWidth, T = W + out.cols, B = out.rows;
    const targets = Array.from(out.sequences, (_, i) => (i % T < T - 1 ? out.sequences[i + 1] : 0));
    const ref = await fullForward(cfg, dtype, p, B, T, out.sequences, out.sequenceMask, targets);
    let worst = 0, tempered = 0, warped = 0, n = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < out.cols; t++) {
        const i = b * out.cols + t;
        if (!out.mask[i]) {
          assert.equal(out.logp[i], 0);
          continue;
        }
        worst = Math.max(worst, Math.abs(out.logp[i] - ref.logprobs[b * T + W - 1 + t]));
        tempered = Math.max(tempered, Math.abs(out.logp[i] - out.sampleLogp[i]));
        // The decoder's tempered, nucleus-filtered distribution is samplingProbs' (the JS
        // reference) on the full forward's logits.
        const col = b * T + W - 1 + t, V = cfg.vocabSize;
        const q = samplingProbs(ref.logits.subarray(col * V, (col + 1) * V), {
          temperature: 1.3,
          topP: 0.95,
        });
        const a = out.tokens[i];
        assert.ok(q[a] > 0, `${dtype}: token ${a} is outside the reference nucleus`);
        warped = Math.max(warped, Math.abs(out.sampleLogp[i] - Math.log(q[a])));
        n++;
      }
    }
    console.log(`  ${dtype} ${vocabPasses}: ${n} tokens, max logp diff ${worst.toExponential(2)}`);
    assert.ok(n >= 20);
    assert.ok(worst < TOL[dtype], `${dtype}: logp differs from the forward by ${worst}`);
    assert.ok(tempered > 0.01, "sampleLogp should differ from logp at temperature 1.3");
    assert.ok(
      warped < TOL[dtype] * 10,
      `${dtype}: sampleLogp differs from samplingProbs by ${warped}`,
    );
  }
});

Deno.test("generate with the weights compiled in (packWeights, GptDecoder.withWeights): same tokens, logp within f32 rounding", async () => {
  const cfg = CFG;
  const params = testParams(cfg, 23, "float32");
  const opts = { maxNewTokens: 12, padTokenId: 0, temperature: 0.9 };
  const fed = await generate({ cfg, params }, PROMPTS, {
    ...opts,
    rng: new Rng(5),
    packWeights: false,
  });
  const packed = await generate({ cfg, params }, PROMPTS, {
    ...opts,
    rng: new Rng(5),
    packWeights: true,
  });
  assert.deepEqual(packed.tokens, fed.tokens);
  let worst = 0;
  for (let i = 0; i < fed.logp.length; i++) {
    worst = Math.max(worst, Math.abs(packed.logp[i] - fed.logp[i]));
  }
  assert.ok(worst < 1e-4, `logp differs by ${worst}`);
  // One decoder kept by the caller serves several calls (params are then not needed).
  const dec = await GptDecoder.withWeights(cfg, params);
  for (const seed of [5, 6]) {
    const again = await generate({ cfg, params: {} }, PROMPTS, {
      ...opts,
      rng: new Rng(seed),
      decoder: dec,
    });
    if (seed === 5) assert.deepEqual(again.tokens, packed.tokens);
    else assert.notDeepEqual(again.tokens, packed.tokens);
  }
  dec.release();
  const other = { ...cfg, nLayer: cfg.nLayer + 1 };
  await assert.rejects(
    () => generate({ cfg: other, params }, PROMPTS, { ...opts, rng: new Rng(1), decoder: dec }),
    /another model config/,
  );
});

Deno.test("a LoRA decoder (base compiled in, adapters fed) samples what the merged model samples", async () => {
  const cfg = CFG, lora = { r: 2, alpha: 4 };
  for (const dtype of ["float64", "float32"] as const) {
    const base = testParams(cfg, 29, dtype);
    const adapters = initLora(gptShapes(cfg), lora, new Rng(3), dtype);
    // B starts at 0 (PEFT's init): give it values so the adapters change the model.
    const rng = new Rng(4);
    for (const [n, a] of Object.entries(adapters)) if (n.endsWith("lora_B")) rng.fillNormal(a, 0.5);
    assert.deepEqual(
      Object.keys(adapters).sort(),
      Object.keys(loraShapes(gptShapes(cfg), lora)).sort(),
    );
    const opts = { maxNewTokens: 10, padTokenId: 0, temperature: 1 };
    const merged = await generate({ cfg, params: mergeLora(base, adapters, lora) }, PROMPTS, {
      ...opts,
      rng: new Rng(8),
    });
    const plain = await generate({ cfg, params: base }, PROMPTS, { ...opts, rng: new Rng(8) });
    assert.notDeepEqual(plain.tokens, merged.tokens, "the adapters should change the samples");
    const dec = await GptDecoder.withWeights(cfg, base, {}, lora);
    // Names beyond the adapters (the base, a value head) are ignored, as a trainer passes them.
    const got = await generate(
      { cfg, params: { ...adapters, "v.weight": new Float32Array(1) } },
      PROMPTS,
      {
        ...opts,
        rng: new Rng(8),
        decoder: dec,
      },
    );
    dec.release();
    assert.deepEqual(got.tokens, merged.tokens, dtype);
    let worst = 0;
    for (let i = 0; i < got.logp.length; i++) {
      worst = Math.max(worst, Math.abs(got.logp[i] - merged.logp[i]));
    }
    assert.ok(worst < TOL[dtype] * 10, `${dtype}: logp differs by ${worst}`);
  }
});

Deno.test("generate: rows stop at EOS, later positions are pad with mask 0; maxNewTokens respected", async () => {
  const cfg = CFG;
  const params = testParams(cfg, 23, "float64");
  const base = { temperature: 0, padTokenId: 0, rng: new Rng(1) };
  // Greedy without EOS, then with EOS = a token row 0 produces at step 3: every row must equal
  // its EOS-free greedy response up to and including its first EOS.
  const free = await generate({ cfg, params }, PROMPTS, { ...base, maxNewTokens: 10 });
  assert.equal(free.cols, 10);
  const eos = free.responses[0][3];
  const out = await generate({ cfg, params }, PROMPTS, {
    ...base,
    maxNewTokens: 10,
    eosTokenId: eos,
    padTokenId: 22,
  });
  let anyCut = false;
  for (let b = 0; b < out.rows; b++) {
    const first = free.responses[b].indexOf(eos);
    const want = first < 0 ? free.responses[b] : free.responses[b].slice(0, first + 1);
    assert.deepEqual(out.responses[b], want, `row ${b}`);
    assert.equal(out.ended[b], first < 0 ? 0 : 1);
    if (first < 0) anyCut = true;
    for (let t = 0; t < out.cols; t++) {
      const i = b * out.cols + t, real = t < want.length;
      assert.equal(out.mask[i], real ? 1 : 0);
      if (!real) {
        assert.equal(out.tokens[i], 22);
        assert.equal(out.logp[i], 0);
        assert.equal(out.sequences[b * (out.promptWidth + out.cols) + out.promptWidth + t], 22);
      }
    }
  }
  assert.equal(out.responses[0].at(-1), eos);
  assert.ok(out.responses[0].length <= 4);
  assert.equal(out.cols, Math.max(...out.responses.map((r) => r.length)));
  assert.ok(anyCut || out.cols < 10);

  // Sampling with a small vocabulary: every row hits EOS early, so decoding stops before
  // maxNewTokens once all rows are done.
  const small: GptConfig = { vocabSize: 4, nPositions: 64, nEmbd: 8, nLayer: 1, nHead: 2 };
  const sp = testParams(small, 2, "float32");
  const s = await generate({ cfg: small, params: sp }, [[1], [2, 3], [1, 1, 1]], {
    maxNewTokens: 50,
    temperature: 1,
    eosTokenId: 0,
    padTokenId: 3,
    rng: new Rng(5),
  });
  assert.ok(s.ended.every((e) => e === 1), "every row should have sampled EOS");
  assert.ok(s.cols < 50);
  assert.equal(s.cols, Math.max(...s.responses.map((r) => r.length)));
  for (const r of s.responses) {
    assert.equal(r.at(-1), 0);
    assert.equal(r.indexOf(0), r.length - 1, "nothing after the first EOS");
  }
  // maxNewTokens caps every row; prompts too long for nPositions are rejected up front.
  const capped = await generate({ cfg: small, params: sp }, [[1]], {
    maxNewTokens: 3,
    temperature: 1,
    padTokenId: 3,
    rng: new Rng(5),
  });
  assert.equal(capped.cols, 3);
  assert.equal(capped.responses[0].length, 3);
  await assert.rejects(
    () =>
      generate({ cfg: small, params: sp }, [[1, 2]], {
        maxNewTokens: 63,
        padTokenId: 3,
        rng: new Rng(1),
      }),
    /context length/,
  );
  await assert.rejects(
    () =>
      generate({ cfg: small, params: sp }, [[]], {
        maxNewTokens: 1,
        padTokenId: 3,
        rng: new Rng(1),
      }),
    /empty/,
  );
});

Deno.test("generate: throughput of a small model (d=128, L=2, H=4, V=256, B=8, 64 tokens)", async () => {
  const cfg: GptConfig = { vocabSize: 256, nPositions: 128, nEmbd: 128, nLayer: 2, nHead: 4 };
  const params = initGpt(cfg, new Rng(1), "float32");
  const prompts = Array.from({ length: 8 }, (_, b) => Array.from({ length: 8 + b }, (_, i) => i));
  const opts = { maxNewTokens: 64, temperature: 1, topP: 0.95, padTokenId: 0 };
  // Best of 3 after a warm-up run (compile, JIT): the steady state a PPO loop sees.
  let best = Infinity, n = 0;
  for (let rep = 0; rep < 4; rep++) {
    const t0 = performance.now();
    const out = await generate({ cfg, params }, prompts, { ...opts, rng: new Rng(rep) });
    if (rep > 0) best = Math.min(best, performance.now() - t0);
    n = out.mask.reduce((s, m) => s + m, 0);
  }
  console.log(`  ${n} tokens in ${best.toFixed(0)} ms: ${(n / best * 1000).toFixed(0)} tokens/s`);
  assert.equal(n, 8 * 64);
});
