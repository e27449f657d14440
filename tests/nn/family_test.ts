/**
 * The model-family registry: every registered family round-trips a tiny config.json (read →
 * write → read), its default LoRA targets name its own weights, an unknown `model_type` is a
 * UserError with the supported list and the closest match, and nothing in lib/ or cli/ asks
 * `isLlama` any more.
 */
import assert from "node:assert/strict";
import { UserError } from "../../lib/errors.ts";
import { familyFor, familyOf } from "../../lib/nn/decoder.ts";
import { FAMILIES, MODEL_TYPES } from "../../lib/nn/families/mod.ts";
import { modelConfigJson, parseModelConfig, readModelConfig } from "../../lib/nn/checkpoint.ts";
import { loraTargets } from "../../lib/nn/lora.ts";
import { withTmp } from "./helpers.ts";

/** The keys of a tiny Llama-family config.json (d 16, 4 heads of 4, 2 KV heads, 2 layers). */
const LLAMA_KEYS = {
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 4,
  max_position_embeddings: 32,
};

/** A tiny config.json per model_type; a family registered without one here fails the test. */
const TINY: Record<string, Record<string, unknown>> = {
  // layer_norm_epsilon given: without it GPT-2's config reads with no ε and writes the default.
  gpt2: {
    vocab_size: 40,
    n_positions: 32,
    n_embd: 16,
    n_layer: 2,
    n_head: 4,
    layer_norm_epsilon: 1e-5,
  },
  llama: LLAMA_KEYS,
  mistral: LLAMA_KEYS,
  qwen2: LLAMA_KEYS,
  qwen3: LLAMA_KEYS,
};

/** Weights each default LoRA target selects in a 2-layer model: one per layer. */
const LAYERS = 2;

Deno.test("the registry lists each family's model_types once, gpt2 first", () => {
  assert.deepEqual([...MODEL_TYPES], ["gpt2", "llama", "mistral", "qwen2", "qwen3"]);
  assert.deepEqual(FAMILIES.map((f) => f.name), ["gpt2", "llama"]);
  for (const f of FAMILIES) {
    for (const mt of f.modelTypes) assert.equal(familyOf(mt), f, mt);
  }
  assert.deepEqual(Object.keys(TINY).sort(), [...MODEL_TYPES].sort(), "a tiny config per type");
});

Deno.test("every family round-trips a tiny config.json: read, write, read", () => {
  for (const mt of MODEL_TYPES) {
    const fam = familyOf(mt);
    const first = parseModelConfig({ model_type: mt, ...TINY[mt] }, "tiny", "test");
    assert.equal(familyFor(first.cfg), fam, mt);
    assert.equal(fam.modelType(first.cfg), mt);
    assert.equal(first.architecture.name, fam.classes(mt).causal);
    const json = modelConfigJson(first.cfg);
    assert.equal(json.model_type, mt);
    // Every key of the tiny config is written back with its value, but Qwen2's head_dim: its
    // config class has no such key (it derives hidden_size / num_attention_heads, 16 / 4 here).
    for (const [k, v] of Object.entries(TINY[mt])) {
      const qwen2HeadDim = mt === "qwen2" && k === "head_dim";
      assert.deepEqual(json[k], qwen2HeadDim ? undefined : v, `${mt} ${k}`);
    }
    const again = parseModelConfig(json, "tiny", "test");
    assert.deepEqual(again.cfg, first.cfg, mt);
    assert.deepEqual(modelConfigJson(again.cfg), json, `${mt}: writing is stable`);
    // A classifier round-trips to its class too.
    const cls = modelConfigJson(first.cfg, {
      architecture: fam.classes(mt).classifier,
      numLabels: 1,
    });
    assert.deepEqual(parseModelConfig(cls).architecture, {
      name: fam.classes(mt).classifier,
      kind: "sequence-classification",
      numLabels: 1,
    });
  }
});

Deno.test("each family's LoRA targets name its own weights, one per layer", () => {
  for (const mt of MODEL_TYPES) {
    const fam = familyOf(mt);
    const { cfg } = parseModelConfig({ model_type: mt, ...TINY[mt] });
    const shapes = fam.shapes(cfg);
    const picked = loraTargets(shapes, { r: 2, alpha: 4, targets: [...fam.lora.targets] });
    assert.equal(picked.length, fam.lora.targets.length * LAYERS, mt);
    for (const t of fam.lora.targets) {
      const hits = Object.keys(shapes).filter((n) => n.endsWith(`.${t}.weight`));
      assert.equal(hits.length, LAYERS, `${mt}: ${t}`);
    }
    // Names and sizes the family reports are those of its shapes.
    const d = fam.dims(cfg);
    assert.deepEqual(shapes[fam.embedName(cfg)].shape, [40, 16], mt);
    assert.deepEqual([d.hidden, d.layers, d.heads, d.context], [16, 2, 4, 32], mt);
    assert.equal(fam.lmHeadName(cfg) in shapes, !fam.tied(cfg), mt);
  }
  // GPT-2's Conv1D [in, out] against the Llama family's Linear [out, in], as PEFT stores them.
  assert.equal(familyOf("gpt2").lora.fanInFanOut, true);
  assert.equal(familyOf("qwen2").lora.fanInFanOut, false);
  assert.deepEqual(
    familyOf("gpt2").dims(parseModelConfig({ model_type: "gpt2", ...TINY.gpt2 }).cfg),
    {
      hidden: 16,
      mlp: 64,
      layers: 2,
      heads: 4,
      kvHeads: 4,
      headDim: 4,
      context: 32,
    },
  );
  assert.deepEqual(
    familyOf("qwen3").dims(parseModelConfig({ model_type: "qwen3", ...TINY.qwen3 }).cfg),
    { hidden: 16, mlp: 24, layers: 2, heads: 4, kvHeads: 2, headDim: 4, context: 32 },
  );
});

Deno.test("an unknown model_type is a UserError naming config.json, the value and the list", async () => {
  await withTmp("proxima-family-", async (dir) => {
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ model_type: "qwen", ...LLAMA_KEYS }),
    );
    const err = await readModelConfig(dir).then(() => null, (e) => e);
    assert.ok(err instanceof UserError, String(err));
    assert.match(err.message, new RegExp(`${dir}/config\\.json`));
    assert.match(
      err.message,
      /Fix: use a model of a supported family, or add the family \(a file in lib\/nn\/families\/\)/,
    );
    assert.match(
      err.message,
      /key "model_type": "qwen" is not supported \(did you mean "qwen2"\?\) \(supported: gpt2, llama, mistral, qwen2, qwen3\)/,
    );
  });
  assert.throws(
    () => familyOf("lama", "models/x/config.json"),
    (e: Error) =>
      e instanceof UserError &&
      e.message ===
        'models/x/config.json: key "model_type": "lama" is not supported (did you mean "llama"?) ' +
          "(supported: gpt2, llama, mistral, qwen2, qwen3)",
  );
  // Far from every name: no guess, the list still given.
  assert.throws(() => familyOf("bert"), /"bert" is not supported \(supported: gpt2, /);
  assert.throws(() => familyOf(undefined), /undefined is not supported/);
});

Deno.test("nothing in lib/ or cli/ asks isLlama: the family is looked up", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts") && /\bisLlama/.test(await Deno.readTextFile(root + path))) {
        offenders.push(path);
      }
    }
  };
  await walk("lib");
  await walk("cli");
  assert.deepEqual(offenders, []);
});

Deno.test("each family's sized config has those sizes and round-trips through config.json", () => {
  for (const f of FAMILIES) {
    const fam = familyOf(f.modelTypes[0]); // typed for any config of the registry
    const cfg = fam.sized({ vocabSize: 40, positions: 32, hidden: 16, layers: 2, heads: 4 });
    assert.equal(familyFor(cfg), fam, fam.name);
    const d = fam.dims(cfg);
    assert.deepEqual([d.hidden, d.layers, d.heads, d.headDim, d.context], [16, 2, 4, 4, 32]);
    assert.deepEqual(fam.shapes(cfg)[fam.embedName(cfg)].shape, [40, 16], fam.name);
    const back = parseModelConfig(modelConfigJson(cfg)).cfg;
    assert.deepEqual(fam.normalize(back), fam.normalize(cfg), fam.name);
  }
});
