import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { decoderForward, decoderShapes, initDecoder } from "../../lib/nn/decoder.ts";
import type { DecoderConfig } from "../../lib/nn/decoder.ts";
import { Rng } from "../../lib/rng.ts";
import { tinyQwen3Config } from "../../scripts/tiny_models.ts";

/** Logits and hidden states at columns `pos` of a left-padded batch: gathered, and with `at`. */
async function both(cfg: DecoderConfig) {
  const params = initDecoder(cfg, new Rng(3), "float64");
  const g = new Graph("at");
  const p = Object.fromEntries(
    Object.entries(decoderShapes(cfg)).map(([n, s]) => [n, g.input(n, "float64", s.shape)]),
  );
  const tokens = g.input("tokens", "int64", [2, 6]), mask = g.input("mask", "int64", [2, 6]);
  const pos = g.input("pos", "int64", [3]);
  const full = decoderForward(g, cfg, p, tokens, mask);
  const at = decoderForward(g, cfg, p, tokens, mask, { at: pos });
  g.output(g.gather(full.logits, pos, 1), "full_logits");
  g.output(g.gather(full.hidden, pos, 1), "full_hidden");
  g.output(at.logits, "at_logits");
  g.output(at.hidden, "at_hidden");
  const s = await compile(g, { threads: 1 });
  const feeds = Object.fromEntries(
    Object.entries(decoderShapes(cfg)).map((
      [n, sh],
    ) => [n, tensor("float64", sh.shape, params[n])]),
  );
  return await s.run({
    ...feeds,
    tokens: tensor("int64", [2, 6], [0, 0, 5, 9, 2, 7, 4, 8, 1, 3, 6, 2]),
    mask: tensor("int64", [2, 6], [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    pos: tensor("int64", [3], [2, 3, 4]),
  });
}

for (
  const [name, cfg] of [
    ["llama (Qwen3 shape)", tinyQwen3Config({ vocabSize: 40, maxPositions: 16 })],
    ["gpt", { vocabSize: 40, nPositions: 16, nEmbd: 8, nLayer: 1, nHead: 2 }],
  ] as [string, DecoderConfig][]
) {
  Deno.test(`decoderForward at: ${name}: the head at chosen columns = the gathered full logits`, async () => {
    const r = await both(cfg);
    assert.deepEqual(r.at_logits.dims, [2, 3, 40]);
    const a = r.at_logits.data as Float64Array, f = r.full_logits.data as Float64Array;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - f[i]) < 1e-12, `logit ${i}`);
    const h = r.at_hidden.data as Float64Array, fh = r.full_hidden.data as Float64Array;
    for (let i = 0; i < h.length; i++) assert.ok(Math.abs(h[i] - fh[i]) < 1e-12, `hidden ${i}`);
    assert.ok(a.some((x) => x !== 0));
  });
}
