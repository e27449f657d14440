/**
 * ONNX export of the Hugging Face fixtures (every family: gpt2, llama 3, SmolLM2, mistral,
 * qwen2, qwen3; f32, bf16, sharded) for transformers.js: its greedy generation on the exported
 * folder equals transformers' (Python) greedy tokens stored in the fixture; I/O names and KV
 * shapes as transformers.js sizes them; generation_config.json kept or completed, never
 * clobbered; classifiers refused. Fixtures are copied to a temp folder, never written.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { AutoModelForCausalLM, env, Tensor } from "@huggingface/transformers";
import protoPkg from "onnx-proto";
import { exportOnnx } from "../../lib/nn/export.ts";
import { withTmp } from "./helpers.ts";

const FIXTURES = new URL("../fixtures/hf/", import.meta.url).pathname;

/** The causal-LM fixtures and what each one exercises. */
const CAUSAL_FIXTURES: Record<string, string> = {
  "gpt2-f32": "absolute positions, tied head",
  "gpt2-bf16": "bf16 source",
  "llama3-f32": "GQA, llama3 rope scaling, list eos",
  "llama3-bf16": "bf16 source",
  "llama3-sharded": "sharded weights",
  "smollm2-f32": "tied head",
  "smollm2-bf16": "tied head, bf16 source",
  // transformers.js knows nothing of sliding windows: the window is in the exported graph,
  // which masks keys by cache index as transformers' sliding_window_overlay does.
  "mistral-f32": "sliding window 4 (shorter than prompt + generation)",
  "mistral-bf16": "sliding window, bf16 source",
  "qwen2-f32": "q/k/v biases",
  "qwen2-bf16": "q/k/v biases, tied head, bf16 source",
  "qwen3-f32": "q/k norm, head_dim != hidden_size / heads",
  "qwen3-bf16": "q/k norm, bf16 source",
};

interface Reference {
  input_ids: number[][];
  attention_mask: number[][];
  greedy: number[][];
  greedy_max_new_tokens: number;
}

/** A temp copy of the fixture folder `name` (flat folders: files only). */
async function copyFixture(name: string, root: string): Promise<string> {
  const dst = `${root}/${name}`;
  await Deno.mkdir(dst);
  for await (const e of Deno.readDir(`${FIXTURES}${name}`)) {
    if (e.isFile) await Deno.copyFile(`${FIXTURES}${name}/${e.name}`, `${dst}/${e.name}`);
  }
  return dst;
}

const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));

const int64 = (rows: number[][]) =>
  new Tensor("int64", BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);

/** transformers.js' greedy new tokens on the fixture's left-padded batch, EOS stopping off. */
async function greedy(dir: string, ref: Reference): Promise<number[][]> {
  env.allowRemoteModels = false; // nothing may come from the hub
  const model = await AutoModelForCausalLM.from_pretrained(dir, {
    local_files_only: true,
    session_options: { intraOpNumThreads: 1 },
  });
  try {
    const seqs = await model.generate({
      input_ids: int64(ref.input_ids),
      attention_mask: int64(ref.attention_mask),
      max_new_tokens: ref.greedy_max_new_tokens,
      do_sample: false,
      // No EOS ids (as the fixture: eos_token_id=None): EOS is an ordinary token, 8 per row.
      eos_token_id: [],
    }) as unknown as { tolist(): bigint[][] };
    const width = ref.input_ids[0].length;
    return seqs.tolist().map((row) => row.slice(width).map(Number));
  } finally {
    await model.dispose();
  }
}

for (const [name, what] of Object.entries(CAUSAL_FIXTURES)) {
  Deno.test(`exportOnnx ${name} (${what}): transformers.js greedy = transformers' greedy`, async () => {
    await withTmp("proxima_export_hf_", async (root) => {
      const dir = await copyFixture(name, root);
      const genBefore = await Deno.readFile(`${dir}/generation_config.json`);
      await exportOnnx(dir);
      // The folder's own generation_config.json is complete: left byte for byte as it was.
      assert.deepEqual(await Deno.readFile(`${dir}/generation_config.json`), genBefore);

      const ref: Reference = await readJson(`${dir}/proxima_reference.json`);
      assert.deepEqual(await greedy(dir, ref), ref.greedy);
    });
  });
}

Deno.test("exportOnnx externalData: weights in onnx/model.onnx_data (aligned, as the model names them); transformers.js greedy unchanged", async () => {
  await withTmp("proxima_export_ext_", async (root) => {
    const dir = await copyFixture("qwen2-f32", root);
    const ref: Reference = await readJson(`${dir}/proxima_reference.json`);
    await exportOnnx(dir);
    const inline = (await Deno.stat(`${dir}/onnx/model.onnx`)).size;
    await assert.rejects(() => Deno.stat(`${dir}/onnx/model.onnx_data`), Deno.errors.NotFound);
    await exportOnnx(dir, { externalData: true });
    const model = (await Deno.stat(`${dir}/onnx/model.onnx`)).size;
    const data = await Deno.readFile(`${dir}/onnx/model.onnx_data`);
    assert.ok(model < inline / 4, `model file ${model} B, inline export ${inline} B`);
    assert.ok(data.byteLength > inline * 0.75);
    // Each initializer names the file, a page-aligned offset and its length; the bytes there
    // are the tensor (checked on the embedding, read back through ORT below).
    // deno-lint-ignore no-explicit-any
    const proto: any = (protoPkg as any).onnx.ModelProto.decode(
      await Deno.readFile(`${dir}/onnx/model.onnx`),
    );
    const inits = proto.graph.initializer as {
      name: string;
      dims: number[];
      dataLocation: number;
      externalData: { key: string; value: string }[];
    }[];
    // The weights (graph constants such as shapes stay inline).
    const weights = inits.filter((t) => t.externalData?.length);
    assert.ok(weights.length > 5);
    const kv = (t: (typeof inits)[0]) =>
      Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
    for (const t of weights) {
      const e = kv(t);
      assert.equal(t.dataLocation, 1, t.name);
      assert.equal(e.location, "model.onnx_data");
      assert.equal(Number(e.offset) % 4096, 0, `${t.name} at ${e.offset}`);
      assert.equal(Number(e.length), 4 * t.dims.reduce((a, b) => a * Number(b), 1), t.name);
    }
    const last = weights.at(-1)!;
    assert.equal(data.byteLength, Number(kv(last).offset) + Number(kv(last).length));
    // onnxruntime loads it from the path (the data file beside it), and transformers.js'
    // greedy tokens are transformers' as before.
    const s = await ort.InferenceSession.create(`${dir}/onnx/model.onnx`);
    assert.ok(s.inputNames.includes("input_ids"));
    await s.release();
    assert.deepEqual(await greedy(dir, ref), ref.greedy);
    // Exporting inline again removes the data file (no stale weights beside the model).
    await exportOnnx(dir);
    await assert.rejects(() => Deno.stat(`${dir}/onnx/model.onnx_data`), Deno.errors.NotFound);
    assert.deepEqual(await greedy(dir, ref), ref.greedy);
  });
});

Deno.test("exportOnnx mistral: the sliding window is in the graph (without it greedy differs)", async () => {
  await withTmp("proxima_export_hf_", async (root) => {
    const dir = await copyFixture("mistral-f32", root);
    const config = await readJson(`${dir}/config.json`);
    assert.equal(config.sliding_window, 4);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...config, sliding_window: null }, null, 2),
    );
    await exportOnnx(dir);
    const ref: Reference = await readJson(`${dir}/proxima_reference.json`);
    // Row 0 has 8 real tokens, so its very first prediction already sees past the window.
    const full = await greedy(dir, ref);
    assert.notEqual(full[0][0], ref.greedy[0][0]);
  });
});

Deno.test("exportOnnx: a llama-family graph has transformers.js' I/O with kv heads and head_dim from config.json", async () => {
  await withTmp("proxima_export_hf_", async (root) => {
    for (const name of ["llama3-f32", "qwen3-f32"]) {
      const dir = await copyFixture(name, root);
      const path = await exportOnnx(dir);
      assert.equal(path, `${dir}/onnx/model.onnx`);
      const c = await readJson(`${dir}/config.json`);
      const s = await ort.InferenceSession.create(path);
      try {
        const meta = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
          Object.fromEntries(
            list.map((m) => [m.name, m.isTensor ? `${m.type}[${m.shape.join(",")}]` : "?"]),
          );
        const kv = `${c.num_key_value_heads},%,${c.head_dim}`;
        const past = `float32[batch_size,${kv.replace("%", "past_sequence_length")}]`;
        const present = `float32[batch_size,${kv.replace("%", "total_sequence_length")}]`;
        const inputs: Record<string, string> = {
          input_ids: "int64[batch_size,sequence_length]",
          attention_mask: "int64[batch_size,total_sequence_length]",
          position_ids: "int64[batch_size,sequence_length]",
        };
        const outputs: Record<string, string> = {
          logits: `float32[batch_size,sequence_length,${c.vocab_size}]`,
        };
        for (let i = 0; i < c.num_hidden_layers; i++) {
          for (const k of ["key", "value"]) {
            inputs[`past_key_values.${i}.${k}`] = past;
            outputs[`present.${i}.${k}`] = present;
          }
        }
        assert.deepEqual(meta(s.inputMetadata), inputs, name);
        assert.deepEqual(meta(s.outputMetadata), outputs, name);
      } finally {
        await s.release();
      }
    }
  });
});

Deno.test("exportOnnx: generation_config.json keeps the folder's keys, fills only missing ids from config.json", async () => {
  await withTmp("proxima_export_hf_", async (root) => {
    const dir = await copyFixture("llama3-f32", root);
    // A Hub-style file: sampling defaults and no ids.
    const own = { do_sample: true, temperature: 0.6, top_p: 0.9, transformers_version: "4.45.0" };
    await Deno.writeTextFile(`${dir}/generation_config.json`, JSON.stringify(own));
    await exportOnnx(dir);
    assert.deepEqual(await readJson(`${dir}/generation_config.json`), {
      ...own,
      bos_token_id: 1,
      eos_token_id: [2, 62],
      pad_token_id: 0,
    });

    // Ids the file has win over config.json's; extra keys from the options go over it.
    await Deno.writeTextFile(
      `${dir}/generation_config.json`,
      JSON.stringify({ eos_token_id: 62, do_sample: false }),
    );
    await exportOnnx(dir, { generationConfig: { max_new_tokens: 32 } });
    const text = await Deno.readTextFile(`${dir}/generation_config.json`);
    assert.deepEqual(Object.keys(JSON.parse(text)), [
      "bos_token_id",
      "do_sample",
      "eos_token_id",
      "max_new_tokens",
      "pad_token_id",
    ]);
    assert.deepEqual(JSON.parse(text), {
      bos_token_id: 1,
      do_sample: false,
      eos_token_id: 62,
      max_new_tokens: 32,
      pad_token_id: 0,
    });

    // No file: config.json's ids (here with pad_token_id absent: pad = the first EOS).
    const c = await readJson(`${dir}/config.json`);
    delete c.pad_token_id;
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c, null, 2));
    await Deno.remove(`${dir}/generation_config.json`);
    await exportOnnx(dir);
    assert.deepEqual(await readJson(`${dir}/generation_config.json`), {
      bos_token_id: 1,
      eos_token_id: [2, 62],
      pad_token_id: 2,
    });
  });
});

Deno.test("exportOnnx refuses a sequence classifier (reward model) folder", async () => {
  await withTmp("proxima_export_hf_", async (root) => {
    for (const name of ["llama-rm", "qwen2-rm", "gpt2-rm"]) {
      const dir = await copyFixture(name, root);
      await assert.rejects(exportOnnx(dir), /sequence classifier.*Fix:/s, name);
      await assert.rejects(Deno.stat(`${dir}/onnx/model.onnx`), Deno.errors.NotFound);
    }
  });
});
