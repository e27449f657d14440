/**
 * Parity with transformers itself: tiny random checkpoints written by `save_pretrained`
 * (tests/fixtures/hf/make_hf_fixtures.py) with transformers' logits, greedy tokens and reward
 * scores beside them. Proxima loads each folder and must give the same numbers:
 * logits within 1e-4 on a left-padded batch (f32 folders), the same greedy tokens, a bf16
 * folder's logits within 1e-5 of its float32 upcast, a sharded folder equal to the single file,
 * and sequence-classification rewards read at the last non-pad token.
 */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import {
  decoderForward,
  decoderHidden,
  decoderShapes,
  hiddenSize,
  trunkShapes,
} from "../../lib/nn/decoder.ts";
import { nonPadMask, rewardHead, rewardHeadFromScore } from "../../lib/nn/heads.ts";
import { ropeInvFreq } from "../../lib/nn/llama.ts";
import { generate } from "../../lib/nn/sample.ts";
import { Rng } from "../../lib/rng.ts";

const FIXTURES = new URL("../fixtures/hf/", import.meta.url).pathname;
const CAUSAL = ["gpt2", "llama3", "mistral", "qwen2", "qwen3", "smollm2"];

interface CausalReference {
  input_ids: number[][];
  attention_mask: number[][];
  logits_generate_position_ids: number[][][];
  greedy: number[][];
  rope_inv_freq?: number[];
}

async function reference<T>(folder: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURES}${folder}/proxima_reference.json`));
}

type Params = Record<string, Float32Array | Float64Array>;

/** Logits and hidden states of a loaded folder on a padded batch. */
async function forward(
  cfg: Parameters<typeof decoderShapes>[0],
  params: Params,
  ids: number[][],
  mask: number[][],
) {
  const g = new Graph("hf_forward");
  const shapes = decoderShapes(cfg);
  const p: Record<string, Value> = Object.fromEntries(
    Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
  );
  const tok = g.input("tokens", "int64", ["B", "T"]);
  const m = g.input("mask", "int64", ["B", "T"]);
  g.output(decoderForward(g, cfg, p, tok, m).logits, "logits");
  const B = ids.length, T = ids[0].length;
  const out = await (await compile(g)).run({
    ...Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, tensor("float32", shape, params[n])]),
    ),
    tokens: tensor("int64", [B, T], ids.flat()),
    mask: tensor("int64", [B, T], mask.flat()),
  });
  return { logits: out.logits.data as Float32Array };
}

/** Max |ours - theirs| over the real (mask 1) positions. */
function maxRealDiff(ours: Float32Array, theirs: number[][][], mask: number[][]): number {
  const T = mask[0].length, V = theirs[0][0].length;
  let worst = 0;
  mask.forEach((row, b) =>
    row.forEach((real, t) => {
      if (!real) return;
      for (let v = 0; v < V; v++) {
        worst = Math.max(worst, Math.abs(ours[(b * T + t) * V + v] - theirs[b][t][v]));
      }
    })
  );
  return worst;
}

for (const name of CAUSAL) {
  for (const dtype of ["f32", "bf16"]) {
    const folder = `${name}-${dtype}`;
    // f32: the acceptance tolerance. bf16: transformers' reference is the float32 upcast of
    // the same bf16 weights, which Proxima must reproduce as closely as float32 allows.
    const tol = dtype === "f32" ? 1e-4 : 1e-5;
    Deno.test(`transformers parity ${folder}: logits on a left-padded batch within ${tol}, greedy tokens equal`, async () => {
      const ref = await reference<CausalReference>(folder);
      const m = await loadModelFolder(`${FIXTURES}${folder}`, { dtype: "float32" });
      const { logits } = await forward(m.cfg, m.params, ref.input_ids, ref.attention_mask);
      const diff = maxRealDiff(logits, ref.logits_generate_position_ids, ref.attention_mask);
      assert.ok(diff < tol, `${folder}: max logit difference ${diff}`);

      // Greedy: the prompts without their padding, 8 new tokens, no EOS stop (as recorded).
      const prompts = ref.input_ids.map((row, b) => row.filter((_, t) => ref.attention_mask[b][t]));
      const out = await generate({ cfg: m.cfg, params: m.params }, prompts, {
        maxNewTokens: ref.greedy[0].length,
        temperature: 0,
        padTokenId: 0,
        rng: new Rng(0),
      });
      assert.deepEqual(out.responses, ref.greedy, `${folder}: greedy tokens differ`);
      if (ref.rope_inv_freq && "family" in m.cfg) {
        const ours = ropeInvFreq(m.cfg);
        ref.rope_inv_freq.forEach((f, i) =>
          assert.ok(
            Math.abs(ours[i] - f) <= 1e-6 * Math.abs(f),
            `inv_freq[${i}] ${ours[i]} vs ${f}`,
          )
        );
      }
    });
  }
}

Deno.test("a sharded folder (model.safetensors.index.json) loads the same tensors as the single file", async () => {
  const one = await loadModelFolder(`${FIXTURES}llama3-f32`, { dtype: "float32" });
  const sharded = await loadModelFolder(`${FIXTURES}llama3-sharded`, { dtype: "float32" });
  assert.deepEqual(Object.keys(sharded.params).sort(), Object.keys(one.params).sort());
  for (const [n, a] of Object.entries(one.params)) assert.deepEqual(sharded.params[n], a, n);
});

interface RewardBatch {
  input_ids: number[][];
  attention_mask: number[][];
  rewards: number[];
}

for (const name of ["llama-rm", "qwen2-rm", "gpt2-rm"]) {
  Deno.test(`transformers parity ${name}: a *ForSequenceClassification score at the last non-pad token`, async () => {
    const ref = await reference<{ pad_token_id: number; batches: Record<string, RewardBatch> }>(
      name,
    );
    const m = await loadModelFolder(`${FIXTURES}${name}`, { dtype: "float32" });
    const score = m.extra["score.weight"];
    assert.ok(score, `${name}: no score.weight`);
    const head = rewardHeadFromScore(score);
    const d = hiddenSize(m.cfg);
    const g = new Graph("rm");
    const shapes = trunkShapes(m.cfg); // a classifier folder has no lm_head
    const p: Record<string, Value> = Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
    );
    p["r_head.weight"] = g.input("r_head.weight", "float32", [d, 1]);
    p["r_head.bias"] = g.input("r_head.bias", "float32", [1]);
    const tok = g.input("tokens", "int64", ["B", "T"]);
    const mask = g.input("mask", "int64", ["B", "T"]);
    const hidden = decoderHidden(g, m.cfg, p, tok, mask);
    g.output(rewardHead(g, hidden, nonPadMask(g, tok, ref.pad_token_id), p), "reward");
    const session = await compile(g);
    // gpt2-rm left-padded: transformers' reference ran without position ids (0..T-1 through
    // the pads), which moves GPT-2's absolute positions; Proxima counts real tokens only.
    const batches = Object.keys(ref.batches).filter((b) =>
      !(name === "gpt2-rm" && b === "left_padded")
    );
    for (const b of batches) {
      const { input_ids: ids, attention_mask: am, rewards } = ref.batches[b];
      const B = ids.length, T = ids[0].length;
      const out = await session.run({
        ...Object.fromEntries(
          Object.entries(shapes).map((
            [n, { shape }],
          ) => [n, tensor("float32", shape, m.params[n])]),
        ),
        "r_head.weight": tensor("float32", [d, 1], head["r_head.weight"]),
        "r_head.bias": tensor("float32", [1], head["r_head.bias"]),
        tokens: tensor("int64", [B, T], ids.flat()),
        mask: tensor("int64", [B, T], am.flat()),
      });
      const got = out.reward.data as Float32Array;
      rewards.forEach((r, i) =>
        assert.ok(Math.abs(got[i] - r) < 1e-4, `${name} ${b}[${i}]: ${got[i]} vs ${r}`)
      );
    }
    assert.ok(batches.includes("pad_id_inside_content"));
  });
}
