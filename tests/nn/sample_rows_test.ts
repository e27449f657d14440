/**
 * The sampler's batch economies change no number: a group's rows sharing their prompt's
 * prefill (`sharePrefill`) and ended rows leaving the batch (`dropFinished`) give the same
 * tokens, log-probs and sampling log-probs, byte for byte, as every row prefilled and kept
 * (the batch as it was before), for GPT-2 and Qwen3-shaped (GQA) models, float32 and float64,
 * the shared and the weights-compiled-in decoder, JS and ORT vocabulary passes; and they do cut
 * the work: the prefill runs once per distinct prompt, a step runs only the rows still sampling.
 */
import assert from "node:assert/strict";
import { type GptConfig, gptShapes } from "../../lib/nn/gpt.ts";
import { llamaShapes } from "../../lib/nn/llama.ts";
import type { DecoderConfig } from "../../lib/nn/decoder.ts";
import { generate, type Generation, GptDecoder } from "../../lib/nn/sample.ts";
import type { Tensor } from "../../lib/onnx/session.ts";
import { Rng } from "../../lib/rng.ts";
import { type Dtype, llamaCfg, type Params, testParams } from "./helpers.ts";

const GPT: GptConfig = { vocabSize: 19, nPositions: 64, nEmbd: 16, nLayer: 2, nHead: 2 };
/** Qwen3-shaped: GQA (4 heads, 2 KV heads), q/k norm, RoPE over a head of 8. */
const QWEN3 = llamaCfg({ vocabSize: 19, modelType: "qwen3", headDim: 8, qkNorm: true });
/** A head of 6: ORT's Cos/Sin give a row other bits elsewhere in the batch (not movable). */
const QWEN3_HD6 = { ...QWEN3, headDim: 6 };

const models: [string, DecoderConfig, (d: Dtype) => Params][] = [
  ["gpt2", GPT, (d) => testParams(gptShapes(GPT), 3, /\.ln_(1|2|f)\.weight$/, d)],
  ["qwen3", QWEN3, (d) => testParams(llamaShapes(QWEN3), 3, /norm\.weight$/, d)],
  ["qwen3 hd 6", QWEN3_HD6, (d) => testParams(llamaShapes(QWEN3_HD6), 3, /norm\.weight$/, d)],
];

/** 3 prompts × groups of 4 (rows of a group consecutive), one prompt shorter (left padding). */
const PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8]].flatMap((p) => [p, p, p, p]);
/** One group of 6 (one distinct prompt: its prefill still runs on two rows). */
const ONE_GROUP = Array.from({ length: 6 }, () => [2, 4]);
const EOS = [3, 5, 9];

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function sameRollout(a: Generation, b: Generation, what: string): void {
  assert.equal(a.cols, b.cols, what);
  assert.deepEqual(bytes(a.tokens), bytes(b.tokens), `${what}: tokens`);
  assert.deepEqual(bytes(a.logp), bytes(b.logp), `${what}: logp`);
  assert.deepEqual(bytes(a.sampleLogp), bytes(b.sampleLogp), `${what}: sampleLogp`);
  assert.deepEqual(bytes(a.mask), bytes(b.mask), `${what}: mask`);
}

for (const [name, cfg, params] of models) {
  for (const dtype of ["float32", "float64"] as const) {
    Deno.test(`${name} ${dtype}: shared prefill and dropped rows sample the same bytes`, async () => {
      const p = params(dtype);
      const packed = dtype === "float32" ? await GptDecoder.withWeights(cfg, p) : undefined;
      // What the seeds exercised: rows ending at 3+ different steps, one row sampling alone.
      let varied = 0, alone = 0;
      try {
        for (
          const [variant, extra] of [
            ["shared decoder, js passes", { vocabPasses: "js" }],
            ["shared decoder, ort passes, top-p", { vocabPasses: "ort", topP: 0.9 }],
            ...(packed ? [["packed decoder, ort passes", { decoder: packed }]] : []),
          ] as [string, object][]
        ) {
          for (const prompts of [PROMPTS, ONE_GROUP]) {
            for (const seed of [11, 12, 13, 14]) {
              const run = (o: object) =>
                generate({ cfg, params: p }, prompts, {
                  maxNewTokens: 12,
                  temperature: 1,
                  eosTokenId: EOS,
                  padTokenId: 0,
                  rng: new Rng(seed),
                  ...extra,
                  ...o,
                });
              const before = await run({ sharePrefill: false, dropFinished: false });
              const ends = before.responses.map((r) => r.length).sort((a, b) => b - a);
              if (new Set(ends).size >= 3) varied++;
              if (ends[0] > ends[1]) alone++; // the last step(s): one row and a ballast
              const what = `${name} ${dtype} ${variant}, ${prompts.length} rows, seed ${seed}`;
              sameRollout(await run({}), before, what);
              sameRollout(await run({ sharePrefill: false }), before, `${what}, drop only`);
              sameRollout(await run({ dropFinished: false }), before, `${what}, share only`);
            }
          }
        }
      } finally {
        packed?.release();
      }
      assert.ok(varied >= 6 && alone >= 2, `varied ${varied}, alone ${alone}`);
    });
  }
}

Deno.test("the prefill runs once per distinct prompt; a step runs only the rows still sampling; the state is the same bytes", async () => {
  const p = testParams(llamaShapes(QWEN3), 3, /norm\.weight$/, "float32");
  const dec = await GptDecoder.withWeights(QWEN3, p);
  // Count the rows of every ORT run of this decoder.
  const runRows: number[] = [];
  const session = dec.session as unknown as {
    run: (f: Record<string, Tensor>, o: Record<string, Tensor>) => Promise<unknown>;
  };
  const orig = session.run.bind(session);
  session.run = (f, o) => (runRows.push(f.tokens.dims[0]), orig(f, o));
  try {
    const opts = { padTokenId: 0, capacity: 8 };
    const shared = await dec.start(undefined, PROMPTS, opts);
    const each = await dec.start(undefined, PROMPTS, { ...opts, sharePrefill: false });
    assert.deepEqual(runRows, [3, 12]);
    assert.equal(shared.rows, 12);
    for (const k of ["logits", "logprobs", "probs"] as const) {
      assert.deepEqual(bytes(shared[k]), bytes(each[k]), k);
    }
    shared.kv.forEach((c, i) => {
      assert.deepEqual(bytes(c.key[0]), bytes(each.kv[i].key[0]), `layer ${i} key`);
      assert.deepEqual(bytes(c.value[0]), bytes(each.kv[i].value[0]), `layer ${i} value`);
    });
    assert.deepEqual(shared.mask, each.mask);
    assert.deepEqual(shared.realCount, each.realCount);
    // Rows 0, 5 and 11 carry on: the step runs 3 rows, whose outputs are theirs in the full one.
    const keep = PROMPTS.map((_, b) => b === 0 || b === 5 || b === 11);
    dec.keep(shared, keep);
    assert.equal(shared.rows, 3);
    await dec.step(shared, [7, 8, 9]);
    await dec.step(each, PROMPTS.map((_, b) => b === 0 ? 7 : b === 5 ? 8 : 9), keep);
    assert.deepEqual(runRows.slice(2), [3, 12]);
    const V = QWEN3.vocabSize;
    [0, 5, 11].forEach((b, j) => {
      assert.deepEqual(
        bytes(shared.logprobs.subarray(j * V, (j + 1) * V)),
        bytes(each.logprobs.subarray(b * V, (b + 1) * V)),
        `row ${b}`,
      );
    });
    assert.throws(() => dec.keep(shared, [true]), /1 flags for 3 rows/);
  } finally {
    dec.release();
  }
  // A head of 6 is not movable: every row prefilled, no row dropped.
  const hd6 = await GptDecoder.get(QWEN3_HD6, "float32");
  assert.equal(hd6.rowsMovable, false);
  const p6 = testParams(llamaShapes(QWEN3_HD6), 3, /norm\.weight$/, "float32");
  const st = await hd6.start(p6, PROMPTS, { padTokenId: 0, capacity: 8 });
  assert.equal(st.rows, 12);
  assert.throws(() => hd6.keep(st, PROMPTS.map(() => true)), /not movable/);
});
