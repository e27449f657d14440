/** Model folders of every family: config parsing, loading, saving, errors, the HF fixtures. */
import assert from "node:assert/strict";
import {
  loadModelFolder,
  MODEL_TYPES,
  modelConfigJson,
  parseModelConfig,
  readGenerationConfig,
  readModelConfig,
  saveModelFolder,
} from "../../lib/nn/checkpoint.ts";
import type { GptConfig } from "../../lib/nn/gpt.ts";
import { type LlamaConfig, llamaShapes } from "../../lib/nn/llama_config.ts";
import {
  bfloat16ToFloat32,
  encodeSafetensors,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  type NamedTensor,
} from "../../lib/onnx/safetensors.ts";
import { llamaCfg, withTmp } from "./helpers.ts";

const FIXTURES = new URL("../fixtures/hf/", import.meta.url).pathname;
const HAS_FIXTURES = (() => {
  try {
    return Deno.statSync(`${FIXTURES}/llama3-f32/config.json`).isFile;
  } catch {
    return false;
  }
})();

/** Deterministic values spread over several binades (so bf16/f16 rounding matters). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) - 0.5) * 2 ** ((s & 7) - 3);
  }
  return out;
}

function randomParams(shapes: Record<string, { shape: number[] }>, seed = 1) {
  return Object.fromEntries(
    Object.entries(shapes).map(([n, { shape }], i) => [
      n,
      values(shape.reduce((a, b) => a * b, 1), seed * 1000 + i),
    ]),
  ) as Record<string, Float32Array>;
}

/** A transformers-5 style llama config.json; `over` adds or replaces keys. */
function llamaJson(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 40,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_type: "default", rope_theta: 10000 },
    ...over,
  };
}

/** Asserts `fn` rejects with a message holding every part. */
async function rejectsWith(fn: () => Promise<unknown>, ...parts: (string | RegExp)[]) {
  const err = await fn().then(() => undefined, (e: Error) => e);
  assert.ok(err instanceof Error, `expected a rejection containing ${parts[0]}`);
  for (const p of parts) {
    assert.ok(
      typeof p === "string" ? err.message.includes(p) : p.test(err.message),
      `"${err.message}" lacks ${p}`,
    );
  }
  return err;
}

const throwsWith = (fn: () => unknown, ...parts: (string | RegExp)[]) =>
  rejectsWith(async () => await fn(), ...parts);

// ---- config.json ---------------------------------------------------------------------------

Deno.test("parseModelConfig: both RoPE styles give the same LlamaConfig", () => {
  const llama3 = {
    factor: 8,
    high_freq_factor: 4,
    low_freq_factor: 1,
    original_max_position_embeddings: 32,
  };
  const v5 = parseModelConfig(llamaJson({
    rope_parameters: { rope_type: "llama3", rope_theta: 500000, ...llama3 },
  })).cfg as LlamaConfig;
  const v4 = parseModelConfig(llamaJson({
    rope_parameters: undefined,
    rope_theta: 500000,
    rope_scaling: { type: "llama3", ...llama3 }, // the pre-`rope_type` spelling
  })).cfg as LlamaConfig;
  assert.deepEqual(v5, v4);
  assert.equal(v5.ropeTheta, 500000);
  assert.deepEqual(v5.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 32,
  });
  const linear = parseModelConfig(llamaJson({
    rope_parameters: undefined,
    rope_scaling: { rope_type: "linear", factor: 2 },
  })).cfg as LlamaConfig;
  assert.deepEqual(linear.ropeScaling, { type: "linear", factor: 2 });
  assert.equal(linear.ropeTheta, 10000, "rope_theta defaults to 10000");
  const none = parseModelConfig(llamaJson({ rope_parameters: undefined, rope_scaling: null }));
  assert.deepEqual((none.cfg as LlamaConfig).ropeScaling, { type: "default" });
  // transformers 5 may key rope_parameters by layer type; equal entries are one RoPE.
  const perType = parseModelConfig(llamaJson({
    rope_parameters: {
      full_attention: { rope_type: "default", rope_theta: 7 },
      sliding_attention: { rope_theta: 7, rope_type: "default" },
    },
  })).cfg as LlamaConfig;
  assert.equal(perType.ropeTheta, 7);
});

Deno.test("parseModelConfig: defaults and flags per family, as transformers' config classes", () => {
  const base = llamaJson();
  const llama = parseModelConfig(base).cfg as LlamaConfig;
  assert.deepEqual(llama, llamaCfg());
  const noKv = parseModelConfig(llamaJson({ num_key_value_heads: null, head_dim: null }));
  assert.equal((noKv.cfg as LlamaConfig).nKvHead, 4, "llama: num_key_value_heads = heads");
  assert.equal((noKv.cfg as LlamaConfig).headDim, 4, "head_dim = hidden_size / heads");
  const biased = parseModelConfig(llamaJson({ attention_bias: true, mlp_bias: true }));
  assert.deepEqual(
    [biased.cfg as LlamaConfig].map((c) => [c.qkvBias, c.oBias, c.mlpBias]),
    [[true, true, true]],
  );

  const as = (mt: string, over: Record<string, unknown> = {}) =>
    parseModelConfig(
      llamaJson({ model_type: mt, architectures: undefined, ...over }),
    ).cfg as LlamaConfig;
  const mistral = as("mistral", { num_attention_heads: 8, num_key_value_heads: undefined });
  assert.equal(mistral.nKvHead, 8, "MistralConfig: num_key_value_heads 8");
  assert.equal(mistral.headDim, 2);
  assert.equal(mistral.slidingWindow, 4096, "MistralConfig: sliding_window 4096");
  assert.equal(as("mistral", { sliding_window: null }).slidingWindow, undefined);
  assert.equal(as("mistral", { attention_bias: true }).qkvBias, false, "mistral has no biases");

  const qwen2 = as("qwen2");
  assert.deepEqual([qwen2.qkvBias, qwen2.oBias, qwen2.qkNorm], [true, false, false]);
  assert.equal(qwen2.slidingWindow, undefined, "use_sliding_window defaults to false");
  assert.equal(as("qwen2", { use_sliding_window: true, max_window_layers: 0 }).slidingWindow, 4096);
  assert.equal(
    as("qwen2", { use_sliding_window: true, sliding_window: 8, max_window_layers: 2 })
      .slidingWindow,
    undefined,
    "every layer below max_window_layers: full attention",
  );
  assert.equal(
    as("qwen2", {
      use_sliding_window: true,
      sliding_window: 8,
      layer_types: ["sliding_attention", "sliding_attention"],
    }).slidingWindow,
    8,
  );
  assert.equal(
    as("qwen2", { use_sliding_window: false, sliding_window: 8 }).slidingWindow,
    undefined,
  );

  const qwen3 = as("qwen3", { head_dim: undefined });
  assert.equal(qwen3.headDim, 128, "Qwen3Config: head_dim 128");
  assert.deepEqual([qwen3.qkvBias, qwen3.oBias, qwen3.qkNorm], [false, false, true]);
  const qwen3b = as("qwen3", { attention_bias: true });
  assert.deepEqual([qwen3b.qkvBias, qwen3b.oBias], [true, true]);
  for (const mt of ["llama", "mistral", "qwen2", "qwen3"]) {
    assert.equal(as(mt).tieWordEmbeddings, false, `${mt}: tie_word_embeddings defaults to false`);
  }

  const gpt = parseModelConfig({
    model_type: "gpt2",
    vocab_size: 10,
    n_positions: 8,
    n_embd: 8,
    n_layer: 1,
    n_head: 2,
  });
  assert.deepEqual(gpt.cfg, { vocabSize: 10, nPositions: 8, nEmbd: 8, nLayer: 1, nHead: 2 });
  assert.deepEqual(gpt.architecture, { name: "GPT2LMHeadModel", kind: "causal-lm" });
});

Deno.test("parseModelConfig: architectures, classifiers and num_labels", () => {
  const arch = (over: Record<string, unknown>) => parseModelConfig(llamaJson(over)).architecture;
  assert.deepEqual(arch({}), { name: "LlamaForCausalLM", kind: "causal-lm" });
  assert.deepEqual(arch({ architectures: ["LlamaForSequenceClassification"] }), {
    name: "LlamaForSequenceClassification",
    kind: "sequence-classification",
    numLabels: 2,
  });
  assert.equal(
    arch({
      architectures: ["LlamaForSequenceClassification"],
      id2label: { "0": "LABEL_0" },
    }).numLabels,
    1,
  );
  assert.equal(
    arch({ architectures: ["LlamaForSequenceClassification"], num_labels: 3 }).numLabels,
    3,
  );
});

Deno.test("parseModelConfig errors name the key and a fix", async () => {
  const bad = (over: Record<string, unknown>, ...parts: (string | RegExp)[]) =>
    throwsWith(
      () => parseModelConfig(llamaJson(over), "some/dir"),
      "some/dir/config.json",
      "Fix: ",
      ...parts,
    );
  await bad({ model_type: "bert" }, `key "model_type"`, `"bert" is not supported`, "qwen3");
  await bad({ hidden_act: "gelu" }, `key "hidden_act"`, "silu");
  await bad(
    { rope_parameters: undefined, rope_scaling: { rope_type: "yarn", factor: 4 } },
    `key "rope_scaling.rope_type"`,
    `"yarn" is not supported`,
    "default, linear, llama3",
  );
  await bad(
    { rope_parameters: { rope_type: "dynamic", rope_theta: 1e4, factor: 2 } },
    `key "rope_parameters.rope_type"`,
    `"dynamic"`,
  );
  await bad(
    { rope_parameters: { rope_type: "longrope", rope_theta: 1e4 } },
    `"longrope" is not supported`,
  );
  await bad(
    { rope_parameters: { rope_type: "llama3", rope_theta: 1e4, factor: 8 } },
    "original_max_position_embeddings",
  );
  await bad(
    {
      rope_parameters: {
        full_attention: { rope_type: "default", rope_theta: 1e4 },
        sliding_attention: { rope_type: "default", rope_theta: 1e6 },
      },
    },
    "differs between layer types",
  );
  await bad({ hidden_size: 0 }, `key "hidden_size"`, "positive integer");
  await bad({ vocab_size: undefined }, `key "vocab_size"`);
  await bad({ num_key_value_heads: 3 }, "nKvHead 3");
  await bad(
    { architectures: ["LlamaForTokenClassification"] },
    `key "architectures"`,
    "LlamaForCausalLM",
  );
  await bad(
    {
      model_type: "qwen2",
      use_sliding_window: true,
      sliding_window: 4,
      layer_types: ["full_attention", "sliding_attention"],
    },
    `key "layer_types"`,
    "mixes full and sliding attention (layers 1 slide)",
  );
  await bad(
    { model_type: "qwen3", use_sliding_window: true, max_window_layers: 1 },
    `key "max_window_layers"`,
    "mixes",
  );
  await bad({ partial_rotary_factor: 0.5 }, "partial_rotary_factor");
});

Deno.test("readModelConfig / readGenerationConfig read a folder", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    await Deno.writeTextFile(`${root}/config.json`, JSON.stringify(llamaJson()));
    assert.deepEqual((await readModelConfig(root)).cfg, llamaCfg());
    assert.equal(await readGenerationConfig(root), undefined, "the file is optional");
    const raw = {
      eos_token_id: [2, 7],
      bos_token_id: 1,
      pad_token_id: 0,
      do_sample: true,
      temperature: 0.6,
      top_p: 0.9,
      top_k: 50,
      max_new_tokens: 12,
      transformers_version: "5.18.0",
    };
    await Deno.writeTextFile(`${root}/generation_config.json`, JSON.stringify(raw));
    assert.deepEqual(await readGenerationConfig(root), {
      eosTokenIds: [2, 7],
      bosTokenId: 1,
      padTokenId: 0,
      doSample: true,
      temperature: 0.6,
      topP: 0.9,
      topK: 50,
      maxNewTokens: 12,
      raw,
    });
    await Deno.writeTextFile(`${root}/generation_config.json`, JSON.stringify({ eos_token_id: 5 }));
    assert.deepEqual((await readGenerationConfig(root))?.eosTokenIds, [5]);
    await Deno.writeTextFile(`${root}/generation_config.json`, JSON.stringify({ top_p: 2 }));
    await rejectsWith(
      () => readGenerationConfig(root),
      "generation_config.json",
      `key "top_p"`,
      "Fix: ",
    );
    await rejectsWith(() => readModelConfig(`${root}/none`), "none/config.json: missing. Fix: ");
  });
});

// ---- save / load ---------------------------------------------------------------------------

Deno.test("save float32 -> load is identical; config, generation, tokenizer files and extras kept", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg({
      modelType: "qwen2",
      qkvBias: true,
      ropeTheta: 1e6,
      tieWordEmbeddings: true,
    });
    const params = randomParams(llamaShapes(cfg));
    const vHead = { dtype: "float32" as const, shape: [16, 1], data: values(16, 9) };
    const steps = { dtype: "int64" as const, shape: [1], data: new BigInt64Array([7n]) };
    const tokenizer = { model: { type: "BPE" }, added_tokens: [] };
    await saveModelFolder(`${root}/m/`, cfg, params, {
      generation: { eos_token_id: [3, 4], pad_token_id: 0 },
      tokenizerFiles: { "tokenizer.json": tokenizer, "merges.txt": new Uint8Array([104, 105]) },
      extraTensors: { "v_head.weight": vHead, "steps": steps },
      config: { bos_token_id: 1, custom_key: "kept" },
    });
    const m = await loadModelFolder(`${root}/m`);
    assert.deepEqual(m.cfg, cfg);
    assert.equal(m.sourceDtype, "float32");
    assert.deepEqual(Object.keys(m.params), Object.keys(llamaShapes(cfg)));
    for (const [n, v] of Object.entries(params)) assert.deepEqual(m.params[n], v, n);
    assert.deepEqual(m.extra, { "v_head.weight": vHead, steps });
    assert.deepEqual(m.generation?.eosTokenIds, [3, 4]);
    assert.equal(m.config.custom_key, "kept");
    assert.equal(m.config.bos_token_id, 1);
    assert.equal(m.config.dtype, "float32");
    assert.deepEqual(m.config.architectures, ["Qwen2ForCausalLM"]);
    assert.deepEqual(m.weightFiles, ["model.safetensors"]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${root}/m/tokenizer.json`)), tokenizer);
    assert.equal(await Deno.readTextFile(`${root}/m/merges.txt`), "hi");

    // Deterministic: saving what was loaded gives the same bytes, file by file.
    await saveModelFolder(`${root}/again`, m.cfg, m.params, {
      config: m.config,
      generation: m.generation,
      extraTensors: m.extra,
      tokenizerFiles: {
        "tokenizer.json": tokenizer,
        "merges.txt": new Uint8Array([104, 105]),
      },
    });
    for (
      const f of ["config.json", "model.safetensors", "generation_config.json", "tokenizer.json"]
    ) {
      assert.deepEqual(
        await Deno.readFile(`${root}/again/${f}`),
        await Deno.readFile(`${root}/m/${f}`),
        f,
      );
    }
    // float64 loads widen exactly; a prefix renames.
    const wide = await loadModelFolder(`${root}/m`, { dtype: "float64", prefix: "" });
    assert.ok(wide.params["embed_tokens.weight"] instanceof Float64Array);
    assert.deepEqual(
      Array.from(wide.params["embed_tokens.weight"]),
      Array.from(params["model.embed_tokens.weight"]),
    );
    assert.ok(wide.extra["v_head.weight"].data instanceof Float64Array);
  });
});

Deno.test("save bfloat16 / float16 -> load equals the rounded values exactly", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg({ modelType: "qwen3", qkNorm: true, qkvBias: true, oBias: true });
    const params = randomParams(llamaShapes(cfg), 3);
    for (const dtype of ["bfloat16", "float16"] as const) {
      await saveModelFolder(`${root}/${dtype}`, cfg, params, { dtype });
      const m = await loadModelFolder(`${root}/${dtype}`);
      assert.equal(m.sourceDtype, dtype);
      assert.equal(m.config.dtype, dtype);
      for (const [n, v] of Object.entries(params)) {
        const want = dtype === "bfloat16"
          ? bfloat16ToFloat32(float32ToBfloat16(v))
          : float16ToFloat32(float32ToFloat16(v));
        assert.deepEqual(m.params[n], want, n);
      }
      const st = await Deno.readFile(`${root}/${dtype}/model.safetensors`);
      const n = Number(new DataView(st.buffer).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n)));
      assert.equal(
        header["model.embed_tokens.weight"].dtype,
        dtype === "bfloat16" ? "BF16" : "F16",
      );
      assert.deepEqual(header.__metadata__, { format: "pt" });
      assert.equal(st.length, 8 + n + 2 * Object.values(params).reduce((a, p) => a + p.length, 0));
    }
    // Float64 params round to float32 first, as torch's double -> bfloat16 does.
    const p64 = Object.fromEntries(
      Object.entries(params).map(([k, v]) => [k, Float64Array.from(v, (x) => x + 1e-12)]),
    );
    await saveModelFolder(`${root}/from64`, cfg, p64, { dtype: "bfloat16" });
    await saveModelFolder(`${root}/from32`, cfg, params, { dtype: "bfloat16" });
    assert.deepEqual(
      await Deno.readFile(`${root}/from64/model.safetensors`),
      await Deno.readFile(`${root}/from32/model.safetensors`),
    );
  });
});

/** Save `tensors` as a sharded folder: one shard per group, plus the index. */
async function writeSharded(
  dir: string,
  config: Record<string, unknown>,
  groups: Record<string, NamedTensor>[],
) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  const weightMap: Record<string, string> = {};
  for (const [i, g] of groups.entries()) {
    const file = `model-0000${i + 1}-of-0000${groups.length}.safetensors`;
    await Deno.writeFile(`${dir}/${file}`, encodeSafetensors(g, { format: "pt" }));
    for (const n of Object.keys(g)) weightMap[n] = file;
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
}

function asTensors(params: Record<string, Float32Array>): Record<string, NamedTensor> {
  const shapes = llamaShapes(llamaCfg());
  return Object.fromEntries(
    Object.entries(params).map((
      [n, d],
    ) => [n, { dtype: "float32", shape: shapes[n].shape, data: d }]),
  );
}

Deno.test("a sharded folder loads like the unsharded one", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg();
    const params = randomParams(llamaShapes(cfg), 5);
    await saveModelFolder(`${root}/one`, cfg, params);
    const all = Object.entries(asTensors(params));
    const half = Math.floor(all.length / 2);
    await writeSharded(`${root}/sharded`, llamaJson(), [
      Object.fromEntries(all.slice(half)),
      Object.fromEntries(all.slice(0, half)),
    ]);
    const a = await loadModelFolder(`${root}/one`), b = await loadModelFolder(`${root}/sharded`);
    assert.deepEqual(b.params, a.params);
    assert.deepEqual(Object.keys(b.params), Object.keys(a.params));
    // Mapped: the same values, each param a view of its own shard's mapping.
    const m = await loadModelFolder(`${root}/sharded`, { map: true });
    assert.deepEqual(m.params, a.params);
    assert.deepEqual(Object.keys(m.params), Object.keys(a.params));
    const buffers = new Set(Object.values(m.params).map((p) => p.buffer));
    assert.equal(buffers.size, 2);
    assert.deepEqual(
      [...buffers].map((b) => b.byteLength).sort(),
      (await Promise.all(
        b.weightFiles.map((f) => Deno.stat(`${root}/sharded/${f}`).then((s) => s.size)),
      )).sort(),
    );
    assert.deepEqual(b.weightFiles, [
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
    ]);
  });
});

Deno.test("classifiers: score.weight comes back in extra and is saved from extraTensors", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg();
    const { ["lm_head.weight"]: _, ...trunk } = randomParams(llamaShapes(cfg), 6);
    const score = { dtype: "float32" as const, shape: [1, 16], data: values(16, 4) };
    await saveModelFolder(`${root}/rm`, cfg, trunk, {
      architecture: "LlamaForSequenceClassification",
      extraTensors: { "score.weight": score },
    });
    const m = await loadModelFolder(`${root}/rm`);
    assert.deepEqual(m.architecture, {
      name: "LlamaForSequenceClassification",
      kind: "sequence-classification",
      numLabels: 1,
    });
    assert.deepEqual(m.config.id2label, { "0": "LABEL_0" });
    assert.deepEqual(m.params, trunk, "no lm_head for a classifier");
    assert.deepEqual(m.extra, { "score.weight": score });
    await rejectsWith(
      () =>
        saveModelFolder(`${root}/rm2`, cfg, trunk, {
          architecture: "LlamaForSequenceClassification",
        }),
      `extraTensors["score.weight"] of shape [2, 16]`,
    );
  });
});

Deno.test("saveModelFolder checks its input and replaces only model folders", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg();
    const params = randomParams(llamaShapes(cfg), 8);
    const { ["model.norm.weight"]: _, ...missing } = params;
    await rejectsWith(
      () => saveModelFolder(`${root}/x`, cfg, missing),
      `missing parameter "model.norm.weight"`,
    );
    await rejectsWith(
      () => saveModelFolder(`${root}/x`, cfg, { ...params, "v_head.weight": new Float32Array(16) }),
      `parameter "v_head.weight" is not part of this model`,
      "extraTensors",
    );
    await rejectsWith(
      () => saveModelFolder(`${root}/x`, { ...cfg, modelType: "qwen2" }, params),
      "a qwen2 config.json needs qkvBias true and oBias false",
    );
    await rejectsWith(
      () => saveModelFolder(`${root}/x`, cfg, params, { tokenizerFiles: { "config.json": {} } }),
      "is not allowed",
    );
    await rejectsWith(
      () => saveModelFolder(`${root}/x`, cfg, params, { config: { architectures: ["BertModel"] } }),
      `architecture "BertModel" is not one of LlamaForCausalLM, LlamaForSequenceClassification`,
    );
    await assert.rejects(() => Deno.stat(`${root}/x`), Deno.errors.NotFound);

    await Deno.mkdir(`${root}/notes`);
    await Deno.writeTextFile(`${root}/notes/todo.txt`, "keep me");
    await rejectsWith(() => saveModelFolder(`${root}/notes`, cfg, params), "refusing to replace");
    assert.equal(await Deno.readTextFile(`${root}/notes/todo.txt`), "keep me");

    await saveModelFolder(`${root}/m`, cfg, params, { generation: { eos_token_id: 1 } });
    await saveModelFolder(`${root}/m`, cfg, params); // replaced whole: no generation file left
    assert.equal(await readGenerationConfig(`${root}/m`), undefined);
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names.sort(), ["m", "notes"], "no temp folders left behind");
  });
});

Deno.test("modelConfigJson writes transformers-5 keys and parses back to the config", () => {
  const cfg = llamaCfg({
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 32,
    },
  });
  const j = modelConfigJson(cfg, {
    dtype: "bfloat16",
    config: { rope_theta: 1, torch_dtype: "float32", rope_scaling: null },
  });
  assert.equal(j.dtype, "bfloat16");
  assert.equal(j.torch_dtype, undefined);
  assert.equal(j.rope_theta, undefined);
  assert.equal(j.rope_scaling, undefined);
  assert.deepEqual(j.rope_parameters, {
    factor: 8,
    high_freq_factor: 4,
    low_freq_factor: 1,
    original_max_position_embeddings: 32,
    rope_theta: 500000,
    rope_type: "llama3",
  });
  assert.deepEqual(Object.keys(j), Object.keys(j).sort(), "sorted keys");
  assert.deepEqual(parseModelConfig(j).cfg, cfg);
  for (const mt of MODEL_TYPES.filter((t) => t !== "gpt2")) {
    const c = llamaCfg({
      modelType: mt as LlamaConfig["modelType"],
      qkvBias: mt === "qwen2",
      qkNorm: mt === "qwen3",
      ...(mt === "mistral" || mt === "qwen3" ? { slidingWindow: 8 } : {}),
    });
    assert.deepEqual(parseModelConfig(modelConfigJson(c)).cfg, c, mt);
  }
  const gpt: GptConfig = { vocabSize: 10, nPositions: 8, nEmbd: 8, nLayer: 1, nHead: 2 };
  const g = modelConfigJson(gpt, { dtype: "float16" });
  assert.equal(g.model_type, "gpt2");
  assert.equal(g.dtype, "float16");
  assert.deepEqual(g.architectures, ["GPT2LMHeadModel"]);
  assert.deepEqual(parseModelConfig(g).cfg, { ...gpt, layerNormEps: 1e-5 });
});

// ---- load errors ---------------------------------------------------------------------------

Deno.test("loadModelFolder errors: one clear error naming folder, file, tensor or key, and a fix", async () => {
  await withTmp("proxima_ckpt_", async (root) => {
    const cfg = llamaCfg();
    const params = randomParams(llamaShapes(cfg), 2);
    const good = `${root}/good`;
    await saveModelFolder(good, cfg, params);
    let i = 0;
    /** A broken copy of `good`; loading must fail with the folder, "Fix: " and every part. */
    const broken = async (
      damage: (dir: string) => Promise<void>,
      ...parts: (string | RegExp)[]
    ) => {
      const dir = `${root}/bad${i++}`;
      await Deno.mkdir(dir);
      for await (const e of Deno.readDir(good)) {
        await Deno.copyFile(`${good}/${e.name}`, `${dir}/${e.name}`);
      }
      await damage(dir);
      await rejectsWith(() => loadModelFolder(dir), `${dir}/`, "Fix: ", ...parts);
      // Mapping the files (the lm task's policy) finds the same problems, in the same words.
      await rejectsWith(() => loadModelFolder(dir, { map: true }), `${dir}/`, "Fix: ", ...parts);
    };
    const editConfig = (edit: (c: Record<string, unknown>) => void) => async (dir: string) => {
      const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      edit(c);
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
    };
    const rewrite = (edit: (t: Record<string, NamedTensor>) => void) => async (dir: string) => {
      const t = asTensors(params);
      edit(t);
      await Deno.writeFile(`${dir}/model.safetensors`, encodeSafetensors(t, { format: "pt" }));
    };

    await broken(
      editConfig((c) => (c.model_type = "gemma")),
      "config.json",
      `key "model_type"`,
      `"gemma" is not supported`,
    );
    // A weight in a dtype we cannot read (an int8-quantised matrix).
    await broken(
      async (dir) => {
        const t = asTensors(params);
        const q = "model.layers.0.mlp.up_proj.weight";
        delete t[q];
        const bytes = encodeSafetensors(t, { format: "pt" });
        await Deno.writeFile(`${dir}/model.safetensors`, withInt8(bytes, q, [24, 16]));
      },
      "model.safetensors",
      `tensor "model.layers.0.mlp.up_proj.weight" has dtype I8, which is not supported`,
      "dequantize",
    );
    await broken(
      rewrite((t) => delete t["model.layers.1.self_attn.k_proj.weight"]),
      "model.safetensors",
      `missing tensor "model.layers.1.self_attn.k_proj.weight"`,
      `also looked for "layers.1.self_attn.k_proj.weight"`,
      "searched model.safetensors",
      "num_key_value_heads=2",
    );
    await broken(
      editConfig((c) => (c.intermediate_size = 32)),
      "model.safetensors",
      `tensor "model.layers.0.mlp.gate_proj.weight" has shape [24,16]`,
      "config.json (intermediate_size=32, hidden_size=16) implies [32,16]",
    );
    await broken(
      async (dir) => {
        const b = await Deno.readFile(`${dir}/model.safetensors`);
        await Deno.writeFile(`${dir}/model.safetensors`, b.subarray(0, b.length - 10));
      },
      "model.safetensors: corrupt: truncated file",
      /data section has \d+ bytes, the header's tensors need \d+/,
    );
    await broken(
      rewrite((t) => delete t["lm_head.weight"]),
      `missing tensor "lm_head.weight"`,
      `"tie_word_embeddings": true`,
    );
    await broken(
      async (dir) => {
        await editConfig((c) => (c.tie_word_embeddings = true))(dir);
        await rewrite(() => {})(dir); // lm_head.weight stays, but differs from the embedding
      },
      `"lm_head.weight" differs from the token embedding`,
      `"tie_word_embeddings": false`,
    );
    await broken(
      editConfig((c) => (c.architectures = ["LlamaForSequenceClassification"])),
      `missing tensor "score.weight"`,
    );
    await broken((dir) => Deno.remove(`${dir}/model.safetensors`), "model.safetensors: missing");
    await broken(
      (dir) => Deno.writeTextFile(`${dir}/generation_config.json`, `{"eos_token_id": "x"}`),
      "generation_config.json",
      `key "eos_token_id"`,
    );

    // Sharded: the index names a shard that is not there.
    const tensors = Object.entries(asTensors(params));
    const sharded = `${root}/sharded`;
    await writeSharded(sharded, llamaJson(), [
      Object.fromEntries(tensors.slice(0, 5)),
      Object.fromEntries(tensors.slice(5)),
    ]);
    await Deno.remove(`${sharded}/model-00002-of-00002.safetensors`);
    await rejectsWith(
      () => loadModelFolder(sharded),
      `${sharded}/model.safetensors.index.json`,
      `names shard "model-00002-of-00002.safetensors"`,
      "which is missing",
      "Fix: ",
    );
    // A tensor missing from every shard: the message lists the shards searched.
    await writeSharded(`${root}/sharded2`, llamaJson(), [
      Object.fromEntries(tensors.slice(0, 5)),
      Object.fromEntries(tensors.slice(6)),
    ]);
    await rejectsWith(
      () => loadModelFolder(`${root}/sharded2`),
      `missing tensor "${tensors[5][0]}"`,
      "searched model-00001-of-00002.safetensors, model-00002-of-00002.safetensors",
    );
  });
});

/** `bytes` (a safetensors file) plus an I8 tensor `name` of `shape`, appended. */
function withInt8(bytes: Uint8Array, name: string, shape: number[]): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.subarray(8 + n);
  const size = shape.reduce((a, b) => a * b, 1);
  header[name] = { dtype: "I8", shape, data_offsets: [data.length, data.length + size] };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

// ---- the transformers fixtures -------------------------------------------------------------

const FAMILIES = ["gpt2", "llama3", "mistral", "qwen2", "qwen3", "smollm2"];
const fixture = (name: string) => `${FIXTURES}${name}`;

Deno.test({
  name: "fixtures: every folder loads; config fields per family",
  ignore: !HAS_FIXTURES,
  fn: async () => {
    for (const fam of FAMILIES) {
      for (const dt of ["f32", "bf16"]) {
        const m = await loadModelFolder(fixture(`${fam}-${dt}`));
        assert.equal(m.sourceDtype, dt === "f32" ? "float32" : "bfloat16", `${fam}-${dt}`);
        assert.equal(m.architecture.kind, "causal-lm");
        assert.deepEqual(Object.keys(m.extra), [], `${fam}-${dt}: nothing unexpected`);
        const gen = JSON.parse(
          await Deno.readTextFile(`${fixture(`${fam}-${dt}`)}/generation_config.json`),
        );
        assert.deepEqual(m.generation?.eosTokenIds, [gen.eos_token_id].flat());
      }
    }
    const llama = async (name: string) => (await loadModelFolder(fixture(name))).cfg as LlamaConfig;
    const l3 = await llama("llama3-f32");
    assert.equal(l3.ropeScaling.type, "llama3");
    assert.equal(l3.ropeTheta, 500000);
    assert.equal(l3.nKvHead, 2);
    assert.equal(l3.tieWordEmbeddings, false);
    const q3 = await llama("qwen3-f32");
    assert.deepEqual([q3.qkNorm, q3.qkvBias, q3.headDim], [true, false, 16]);
    const q2 = await llama("qwen2-f32");
    assert.deepEqual([q2.qkvBias, q2.oBias, q2.tieWordEmbeddings], [true, false, true]);
    assert.equal(q2.slidingWindow, undefined);
    assert.equal((await llama("smollm2-f32")).tieWordEmbeddings, true);
    assert.equal((await llama("mistral-f32")).slidingWindow, 4);
    const gpt = (await loadModelFolder(fixture("gpt2-f32"))).cfg as GptConfig;
    assert.deepEqual(gpt, {
      vocabSize: 96,
      nPositions: 64,
      nEmbd: 32,
      nLayer: 2,
      nHead: 4,
      layerNormEps: 1e-5,
    });
  },
});

Deno.test({
  name: "fixtures: reward models load with their score head",
  ignore: !HAS_FIXTURES,
  fn: async () => {
    for (
      const [name, cls] of [
        ["gpt2-rm", "GPT2ForSequenceClassification"],
        ["llama-rm", "LlamaForSequenceClassification"],
        ["qwen2-rm", "Qwen2ForSequenceClassification"],
      ]
    ) {
      const m = await loadModelFolder(fixture(name));
      assert.deepEqual(m.architecture, {
        name: cls,
        kind: "sequence-classification",
        numLabels: 1,
      });
      assert.deepEqual(Object.keys(m.extra), ["score.weight"], name);
      assert.deepEqual(m.extra["score.weight"].shape, [1, 32]);
      assert.ok(!("lm_head.weight" in m.params), name);
    }
  },
});

Deno.test({
  name: "fixtures: bf16 folders are the f32 models rounded to bf16; sharded equals unsharded",
  ignore: !HAS_FIXTURES,
  fn: async () => {
    for (const fam of FAMILIES) {
      const f32 = await loadModelFolder(fixture(`${fam}-f32`));
      const bf16 = await loadModelFolder(fixture(`${fam}-bf16`));
      assert.deepEqual(bf16.cfg, f32.cfg, fam);
      assert.deepEqual(Object.keys(bf16.params), Object.keys(f32.params), fam);
      for (const [n, v] of Object.entries(f32.params)) {
        assert.deepEqual(bf16.params[n], bfloat16ToFloat32(float32ToBfloat16(v)), `${fam} ${n}`);
      }
    }
    const one = await loadModelFolder(fixture("llama3-f32"));
    const sharded = await loadModelFolder(fixture("llama3-sharded"));
    assert.equal(sharded.weightFiles.length, 3);
    assert.deepEqual(sharded.params, one.params);
    assert.deepEqual(sharded.cfg, one.cfg);
  },
});

Deno.test({
  name: "fixtures: load -> save in the source dtype reproduces save_pretrained's tensor bytes",
  ignore: !HAS_FIXTURES,
  fn: async () => {
    await withTmp("proxima_ckpt_", async (root) => {
      const names = FAMILIES.flatMap((f) => [`${f}-f32`, `${f}-bf16`]).concat([
        "gpt2-rm",
        "llama-rm",
        "qwen2-rm",
      ]);
      for (const name of names) {
        const m = await loadModelFolder(fixture(name));
        const out = `${root}/${name}`;
        await saveModelFolder(out, m.cfg, m.params, {
          dtype: m.sourceDtype as "float32" | "bfloat16",
          config: m.config,
          generation: m.generation,
          extraTensors: m.extra,
        });
        // The whole file: same header (names, layout, metadata) and the same bytes.
        assert.deepEqual(
          await Deno.readFile(`${out}/model.safetensors`),
          await Deno.readFile(`${fixture(name)}/model.safetensors`),
          name,
        );
        const json = async (d: string, f: string) =>
          JSON.parse(await Deno.readTextFile(`${d}/${f}`));
        assert.deepEqual(
          await json(out, "config.json"),
          await json(fixture(name), "config.json"),
          name,
        );
        if (m.generation) {
          assert.deepEqual(
            await json(out, "generation_config.json"),
            await json(fixture(name), "generation_config.json"),
            name,
          );
        }
      }
      // The sharded folder saved unsharded is llama3-f32's file.
      const s = await loadModelFolder(fixture("llama3-sharded"));
      await saveModelFolder(`${root}/unsharded`, s.cfg, s.params, { config: s.config });
      assert.deepEqual(
        await Deno.readFile(`${root}/unsharded/model.safetensors`),
        await Deno.readFile(`${fixture("llama3-f32")}/model.safetensors`),
      );
    });
  },
});
