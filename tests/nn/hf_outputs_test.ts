/**
 * What Proxima writes, read by Python: PEFT adapters loaded by `peft` onto the base give
 * Proxima's LoRA logits, and merged folders (float32 and bf16) reloaded by transformers give
 * the same logits (references from tests/fixtures/hf/check_proxima_outputs.py). The committed
 * folders are regenerated here and must be byte-identical, so the fixture is what the code
 * writes today.
 */
import assert from "node:assert/strict";
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import { type DecoderConfig, decoderForward, decoderShapes } from "../../lib/nn/decoder.ts";
import { applyLora, type LoraConfig, loraShapes } from "../../lib/nn/lora.ts";
import { loadPeftAdapter } from "../../lib/nn/peft.ts";
import {
  FIXTURES,
  makeProximaOutputs,
  testAdapters,
  testLora,
} from "../fixtures/hf/make_proxima_outputs.ts";

const OUT = `${FIXTURES}proxima-out`;

interface PyLogits {
  input_ids: number[][];
  attention_mask: number[][];
  logits: number[][][];
  stored_dtypes?: string[];
}
const python: Record<string, PyLogits> = JSON.parse(
  await Deno.readTextFile(`${OUT}/python_reference.json`),
);

/** Logits of `cfg` (with `lora` adapters when given) on a padded batch. */
async function logits(
  cfg: DecoderConfig,
  params: Record<string, Float32Array | Float64Array>,
  ids: number[][],
  mask: number[][],
  lora?: { cfg: LoraConfig; adapters: Record<string, Float32Array> },
): Promise<Float32Array> {
  const g = new Graph("outputs");
  const inputs = (shapes: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
    ) as Record<string, Value>;
  const shapes = decoderShapes(cfg);
  const adShapes = lora ? loraShapes(shapes, lora.cfg) : {};
  const base = inputs(shapes), ad = inputs(adShapes);
  const p = lora ? applyLora(g, lora.cfg, base, ad) : base;
  const tok = g.input("tokens", "int64", ["B", "T"]);
  const m = g.input("mask", "int64", ["B", "T"]);
  g.output(decoderForward(g, cfg, p, tok, m).logits, "logits");
  const all = { ...params, ...lora?.adapters };
  const B = ids.length, T = ids[0].length;
  const out = await (await compile(g)).run({
    ...Object.fromEntries(
      Object.entries({ ...shapes, ...adShapes }).map((
        [n, { shape }],
      ) => [n, tensor("float32", shape, all[n])]),
    ),
    tokens: tensor("int64", [B, T], ids.flat()),
    mask: tensor("int64", [B, T], mask.flat()),
  });
  return out.logits.data as Float32Array;
}

function maxRealDiff(ours: Float32Array, ref: PyLogits): number {
  const T = ref.attention_mask[0].length, V = ref.logits[0][0].length;
  let worst = 0;
  ref.attention_mask.forEach((row, b) =>
    row.forEach((real, t) => {
      if (!real) return;
      for (let v = 0; v < V; v++) {
        worst = Math.max(worst, Math.abs(ours[(b * T + t) * V + v] - ref.logits[b][t][v]));
      }
    })
  );
  return worst;
}

Deno.test("the committed proxima-out folders are byte for byte what Proxima writes today", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "proxima_outputs_" });
  try {
    await makeProximaOutputs(tmp);
    let files = 0;
    for await (const d of Deno.readDir(tmp)) {
      for await (const f of Deno.readDir(`${tmp}/${d.name}`)) {
        const ours = await Deno.readFile(`${tmp}/${d.name}/${f.name}`);
        const committed = await Deno.readFile(`${OUT}/${d.name}/${f.name}`);
        assert.deepEqual(ours, committed, `${d.name}/${f.name} differs from the committed file`);
        files++;
      }
    }
    assert.ok(files >= 10, `only ${files} files compared`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

for (const name of ["llama3", "gpt2", "qwen3"]) {
  Deno.test(`a PEFT adapter Proxima wrote (${name}), loaded by Python peft onto the base, gives Proxima's logits`, async () => {
    const base = await loadModelFolder(`${FIXTURES}${name}-f32`, { dtype: "float32" });
    const { lora, adapters, baseModel } = await loadPeftAdapter(`${OUT}/${name}-peft`);
    assert.equal(baseModel, `${name}-f32`);
    // The adapter round-trips: what was trained is what loads.
    const want = testAdapters(decoderShapes(base.cfg), testLora(base.cfg), 0);
    assert.deepEqual(Object.keys(adapters).sort(), Object.keys(want).sort());
    const ref = python[`${name}-peft`];
    const ours = await logits(base.cfg, base.params, ref.input_ids, ref.attention_mask, {
      cfg: lora,
      adapters,
    });
    const plain = await logits(base.cfg, base.params, ref.input_ids, ref.attention_mask);
    assert.ok(maxRealDiff(plain, ref) > 1e-2, "the adapter should change the logits");
    const diff = maxRealDiff(ours, ref);
    assert.ok(diff < 1e-4, `${name}: Proxima LoRA vs peft: max logit difference ${diff}`);
  });
}

for (const folder of ["llama3-merged-f32", "qwen2-merged-bf16"]) {
  Deno.test(`a merged folder Proxima saved (${folder}) reloads in transformers and in Proxima with the same logits`, async () => {
    const m = await loadModelFolder(`${OUT}/${folder}`, { dtype: "float32" });
    const ref = python[folder];
    const diff = maxRealDiff(
      await logits(m.cfg, m.params, ref.input_ids, ref.attention_mask),
      ref,
    );
    assert.ok(diff < 1e-4, `${folder}: max logit difference ${diff}`);
    const bf16 = folder.endsWith("bf16");
    assert.equal(m.sourceDtype, bf16 ? "bfloat16" : "float32");
    assert.deepEqual(ref.stored_dtypes, [bf16 ? "BF16" : "F32"]); // as safetensors names them
  });
}
