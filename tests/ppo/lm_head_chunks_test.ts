import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { decoderShapes, initDecoder } from "../../lib/nn/decoder.ts";
import type { DecoderConfig } from "../../lib/nn/decoder.ts";
import { Rng } from "../../lib/rng.ts";
import { responseOutputs } from "../../lib/ppo/lm_scoring.ts";
import { chunkedHeadOutputs } from "../../lib/ppo/lm_head_chunks.ts";
import { decoderForward } from "../../lib/nn/decoder.ts";
import { tinyQwen3Config } from "../../scripts/tiny_models.ts";

type Dt = "float32" | "float64";
const V = 40, B = 2, S = 7;

/**
 * log π(a), entropy, log π(·) and the gradients of `Σ c·logp + e·entropy` w.r.t. every
 * parameter: the head over all response columns at once (`chunk` undefined), or in chunks of
 * `chunk` positions (at most 5 positions).
 */
async function build(cfg: DecoderConfig, dtype: Dt, chunk?: number) {
  const g = new Graph("head");
  const shapes = decoderShapes(cfg);
  const p = Object.fromEntries(
    Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
  );
  const tokens = g.input("tokens", "int64", ["B", "S"]);
  const mask = g.input("mask", "int64", ["B", "S"]);
  const pos = g.input("pos", "int64", ["T"]);
  const actions = g.input("actions", "int64", ["B", "T"]);
  const c = g.input("c", dtype, ["B", "T"]), e = g.input("e", dtype, ["B", "T"]);
  let out;
  if (chunk === undefined) {
    out = responseOutputs(g, cfg, p, tokens, mask, pos, actions, false, true);
  } else {
    const d = decoderForward(g, cfg, p, tokens, mask, { at: pos });
    out = chunkedHeadOutputs(g, d.hidden, d.logits, actions, 5, chunk);
  }
  const loss = g.reduceSum(g.add(g.mul(c, out.logp), g.mul(e, out.entropy)));
  const names = Object.keys(shapes);
  const grads = gradients(g, loss, names.map((n) => p[n]));
  g.output(out.logp, "logp");
  g.output(out.entropy, "entropy");
  g.output(out.logpAll, "logp_all");
  g.output(loss, "loss");
  names.forEach((n, i) => g.output(grads[i], `grad_${n}`));
  return await compile(g, { threads: 1 });
}

/** Feeds of T response positions (T ≤ 5) of a left-padded batch. */
function feeds(cfg: DecoderConfig, dtype: Dt, T: number, params: Record<string, Float64Array>) {
  const rng = new Rng(7);
  const W = S - T;
  const tok = Array.from({ length: B * S }, () => 1 + Math.floor(rng.uniform() * (V - 1)));
  const act = Array.from({ length: B * T }, (_, i) => tok[Math.floor(i / T) * S + W + (i % T)]);
  const f = (n: number) => Array.from({ length: n }, () => rng.uniform() * 2 - 1);
  return {
    ...Object.fromEntries(
      Object.entries(decoderShapes(cfg)).map(([n, s]) => [n, tensor(dtype, s.shape, params[n])]),
    ),
    tokens: tensor("int64", [B, S], tok),
    mask: tensor("int64", [B, S], [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    pos: tensor("int64", [T], Array.from({ length: T }, (_, t) => W - 1 + t)),
    actions: tensor("int64", [B, T], act),
    c: tensor(dtype, [B, T], f(B * T)),
    e: tensor(dtype, [B, T], f(B * T)),
  };
}

const cfgs: [string, DecoderConfig][] = [
  ["llama (Qwen3 shape)", tinyQwen3Config({ vocabSize: V, maxPositions: 16 })],
  ["gpt", { vocabSize: V, nPositions: 16, nEmbd: 8, nLayer: 1, nHead: 2 }],
];

for (const [name, cfg] of cfgs) {
  const params = initDecoder(cfg, new Rng(3), "float64") as Record<string, Float64Array>;
  const names = Object.keys(decoderShapes(cfg));

  Deno.test(`head in chunks: ${name}: float32 log-probs, entropy, log π(·) are the same bits`, async () => {
    const full = await build(cfg, "float32"), chunked = await build(cfg, "float32", 2);
    for (const T of [5, 3, 1]) { // 3 chunks (the last partial), 2, 1 (the rest empty)
      const f = feeds(cfg, "float32", T, params);
      const a = await full.run(f), b = await chunked.run(f);
      for (const k of ["logp", "entropy", "logp_all"]) {
        assert.deepEqual(b[k].dims, a[k].dims, `${k} dims at T=${T}`);
        assert.deepEqual(
          new Uint8Array((b[k].data as Float32Array).buffer.slice(0)),
          new Uint8Array((a[k].data as Float32Array).buffer.slice(0)),
          `${k} bits at T=${T}`,
        );
      }
    }
  });

  Deno.test(`head in chunks: ${name}: float64 gradients = unchunked, and = finite differences`, async () => {
    const full = await build(cfg, "float64"), chunked = await build(cfg, "float64", 2);
    for (const T of [5, 3]) {
      const f = feeds(cfg, "float64", T, params);
      const a = await full.run(f), b = await chunked.run(f);
      for (const n of names) {
        const ga = a[`grad_${n}`].data as Float64Array, gb = b[`grad_${n}`].data as Float64Array;
        const scale = Math.max(1e-3, ...Array.from(ga, Math.abs));
        for (let i = 0; i < ga.length; i++) {
          assert.ok(Math.abs(ga[i] - gb[i]) <= 1e-12 * scale, `${n}[${i}] at T=${T}`);
        }
      }
      // Central differences of the chunked loss in a few weights of the embedding (= LM head
      // when tied) and of the last norm.
      for (const n of names.filter((x) => /embed|wte|norm\.weight|ln_f\.weight/.test(x))) {
        const grad = b[`grad_${n}`].data as Float64Array;
        for (const i of [0, 3, params[n].length - 1]) {
          const h = 1e-6,
            at = (d: number) => {
              const q = { ...params, [n]: params[n].slice() };
              q[n][i] += d;
              return chunked.run(feeds(cfg, "float64", T, q)).then((r) =>
                (r.loss.data as Float64Array)[0]
              );
            };
          const fd = ((await at(h)) - (await at(-h))) / (2 * h);
          assert.ok(Math.abs(fd - grad[i]) < 1e-6 * Math.max(1, Math.abs(fd)), `${n}[${i}]`);
        }
      }
      assert.ok(names.some((n) => (b[`grad_${n}`].data as Float64Array).some((x) => x !== 0)));
    }
  });
}

Deno.test("head in chunks: each chunk's entropy is placed with its chunk, so its backward comes with that chunk's", () => {
  const cfg = cfgs[1][1];
  const g = new Graph("head");
  const p = Object.fromEntries(
    Object.entries(decoderShapes(cfg)).map(([n, s]) => [n, g.input(n, "float32", s.shape)]),
  );
  const tokens = g.input("tokens", "int64", ["B", "S"]);
  const mask = g.input("mask", "int64", ["B", "S"]);
  const pos = g.input("pos", "int64", ["T"]);
  const actions = g.input("actions", "int64", ["B", "T"]);
  const d = decoderForward(g, cfg, p, tokens, mask, { at: pos });
  const out = chunkedHeadOutputs(g, d.hidden, d.logits, actions, 6, 2);
  const entropy = out.entropy; // read after every chunk's log-probs were built
  g.output(entropy, "entropy");
  const at = (op: string) => g.nodes.flatMap((n, i) => (n.op === op ? [i] : []));
  const logSoftmax = at("LogSoftmax"), exp = at("Exp");
  assert.equal(logSoftmax.length, 3);
  // Chunk k's entropy (its Exp of the log-softmax) comes before chunk k+1's log-softmax.
  const chunkExp = exp.filter((i) =>
    logSoftmax.includes(g.nodes.indexOf(g.producer.get(g.nodes[i].inputs[0]!)!))
  );
  assert.equal(chunkExp.length, 3);
  chunkExp.forEach((e, k) => {
    assert.ok(e > logSoftmax[k], `chunk ${k}'s entropy after its log-softmax`);
    if (k + 1 < 3) assert.ok(e < logSoftmax[k + 1], `chunk ${k}'s entropy before chunk ${k + 1}`);
  });
});
