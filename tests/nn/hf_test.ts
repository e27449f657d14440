/** Hugging Face folders (save/load, errors, layout) and the byte tokenizer (vs transformers.js). */
import assert from "node:assert/strict";
import { AutoConfig, AutoTokenizer, env } from "@huggingface/transformers";
import { type GptConfig, gptShapes, initGpt } from "../../lib/nn/gpt.ts";
import { hfConfig, loadHfFolder, saveHfFolder } from "../../lib/nn/hf.ts";
import { initHead } from "../../lib/nn/heads.ts";
import {
  BYTE_EOS_ID,
  BYTE_VOCAB_SIZE,
  byteDecode,
  byteEncode,
  bytesToUnicode,
  makeByteTokenizer,
} from "../../lib/nn/tokenizer.ts";
import { encodeSafetensors, type NamedTensor } from "../../lib/onnx/safetensors.ts";
import { Rng } from "../../lib/rng.ts";
import { withTmp } from "./helpers.ts";

const cfg: GptConfig = {
  vocabSize: BYTE_VOCAB_SIZE,
  nPositions: 16,
  nEmbd: 16,
  nLayer: 2,
  nHead: 2,
};
const TEXTS = [
  "hello world",
  "  two  spaces,\ttab\nnewline\r\n",
  "héllo wörld ✓ 日本語 한국어 🤖👍🏽 e\u0301",
  "a<|endoftext|>b<|endoftext|>",
  "\uFEFFstarts with a BOM",
  "don't , stop . ?!",
];

async function readDir(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for await (const e of Deno.readDir(dir)) out[e.name] = await Deno.readFile(`${dir}/${e.name}`);
  return out;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for (const [n, b] of Object.entries(await readDir(from))) await Deno.writeFile(`${to}/${n}`, b);
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** The safetensors header of `bytes`: [JSON length, parsed header]. */
function header(bytes: Uint8Array): [number, Record<string, unknown>] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return [n, JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))];
}

Deno.test("byteEncode/byteDecode: ids are UTF-8 bytes, 256 is <|endoftext|>, lossless round trip", () => {
  assert.deepEqual(byteEncode("a é"), [97, 32, 0xc3, 0xa9]);
  assert.deepEqual(byteEncode("x<|endoftext|>"), [120, BYTE_EOS_ID]);
  assert.equal(byteEncode("<|endoftext|>", { special: false }).length, 13);
  assert.deepEqual(byteEncode(""), []);
  for (const s of TEXTS) assert.equal(byteDecode(byteEncode(s)), s);
  assert.equal(byteDecode(byteEncode("hi<|endoftext|>"), { skipSpecialTokens: true }), "hi");
  assert.equal(byteDecode([0xe6, 0x97, 104, 0xff]), "\uFFFDh\uFFFD", "invalid UTF-8 -> U+FFFD");
  assert.equal(byteDecode(BigInt64Array.from([104n, 105n])), "hi");
  assert.throws(() => byteDecode([257]), /outside 0\.\.256/);

  const table = bytesToUnicode();
  assert.equal(new Set(table).size, 256);
  assert.equal(table[0x20], "Ġ");
  assert.equal(table[0x41], "A");
  const files = makeByteTokenizer({ modelMaxLength: 16 });
  const vocab = (files["tokenizer.json"].model as { vocab: Record<string, number> }).vocab;
  assert.equal(Object.keys(vocab).length, 256);
  assert.equal(vocab["Ġ"], 32);
  assert.equal(files["tokenizer_config.json"].model_max_length, 16);
  assert.deepEqual(makeByteTokenizer({ modelMaxLength: 16 }), files);
});

Deno.test("saveHfFolder -> loadHfFolder -> saveHfFolder is byte-identical, file by file", async () => {
  await withTmp("proxima_hf_", async (root) => {
    const params = initGpt(cfg, new Rng(1), "float32");
    const head = initHead(cfg.nEmbd, new Rng(2), "float32");
    const extraTensors: Record<string, NamedTensor> = {
      "v_head.weight": { dtype: "float32", shape: [cfg.nEmbd, 1], data: head["v_head.weight"] },
    };
    const tok = makeByteTokenizer({ modelMaxLength: cfg.nPositions });
    await saveHfFolder(`${root}/a/`, cfg, params, tok, {
      extraTensors,
      config: { pad_token_id: 256 },
    });
    const a = await loadHfFolder(`${root}/a`);
    assert.deepEqual(a.cfg, { ...cfg, layerNormEps: 1e-5 });
    for (const [n, v] of Object.entries(params)) assert.deepEqual(a.params[n], v, n);
    assert.deepEqual(Object.keys(a.params), Object.keys(gptShapes(cfg)));
    assert.deepEqual(Object.keys(a.extra), ["v_head.weight"]);
    assert.deepEqual(a.tokenizer, tok);
    assert.equal(a.config.model_type, "gpt2");
    assert.deepEqual(a.config.architectures, ["GPT2LMHeadModel"]);
    assert.equal(a.config.pad_token_id, 256);
    assert.equal(a.config.eos_token_id, 256);

    await saveHfFolder(`${root}/b`, a.cfg, a.params, a.tokenizer, {
      config: a.config,
      extraTensors: a.extra,
    });
    const fa = await readDir(`${root}/a`), fb = await readDir(`${root}/b`);
    assert.deepEqual(Object.keys(fa).sort(), [
      "config.json",
      "model.safetensors",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    assert.deepEqual(Object.keys(fb).sort(), Object.keys(fa).sort());
    for (const n of Object.keys(fa)) assert.ok(sameBytes(fa[n], fb[n]), `${n} differs`);

    // float64 load widens exactly; prefix "" renames.
    const wide = await loadHfFolder(`${root}/a`, { dtype: "float64", prefix: "" });
    assert.ok(wide.params["h.0.ln_1.weight"] instanceof Float64Array);
    assert.deepEqual(
      Array.from(wide.params["wte.weight"]),
      Array.from(params["transformer.wte.weight"]),
    );
  });
});

Deno.test("model.safetensors: HF names, float32, format pt, tensors sorted and 4-byte aligned", async () => {
  await withTmp("proxima_hf_", async (root) => {
    await saveHfFolder(`${root}/m`, cfg, initGpt(cfg, new Rng(1), "float64"));
    const bytes = await Deno.readFile(`${root}/m/model.safetensors`);
    const [n, h] = header(bytes);
    assert.equal((8 + n) % 8, 0, "data section starts 8-aligned");
    assert.deepEqual(h.__metadata__, { format: "pt" });
    const names = Object.keys(h).filter((k) => k !== "__metadata__");
    assert.ok(names.includes("transformer.h.1.mlp.c_proj.weight"));
    assert.ok(!names.includes("lm_head.weight"), "tied head is not stored");
    assert.deepEqual(names, [...names].sort());
    let end = 0;
    for (const k of names) {
      const t = h[k] as { dtype: string; data_offsets: number[] };
      assert.equal(t.dtype, "F32");
      assert.equal(t.data_offsets[0], end, "contiguous in name order");
      assert.equal(t.data_offsets[0] % 4, 0);
      end = t.data_offsets[1];
    }
    const config = JSON.parse(await Deno.readTextFile(`${root}/m/config.json`));
    assert.deepEqual(Object.keys(config), Object.keys(config).sort());
    assert.equal(config.activation_function, "gelu_new");
    assert.equal(config.n_ctx, 16);
    assert.equal(config.tie_word_embeddings, true);
    assert.ok(!(await readDir(`${root}/m`))["tokenizer.json"], "no tokenizer given, none written");
  });
});

Deno.test("loadHfFolder: names without 'transformer.', attn.bias buffers, tied lm_head", async () => {
  await withTmp("proxima_hf_", async (root) => {
    const params = initGpt(cfg, new Rng(3), "float32");
    await saveHfFolder(`${root}/m`, cfg, params);
    // Rewrite the weights the way the hub's gpt2 stores them: bare names plus buffers.
    const tensors: Record<string, NamedTensor> = {};
    for (const [n, { shape }] of Object.entries(gptShapes(cfg))) {
      tensors[n.slice("transformer.".length)] = { dtype: "float32", shape, data: params[n] };
    }
    const T = cfg.nPositions;
    tensors["h.0.attn.bias"] = {
      dtype: "float32",
      shape: [1, 1, T, T],
      data: new Float32Array(T * T),
    };
    tensors["h.1.attn.masked_bias"] = {
      dtype: "float32",
      shape: [],
      data: new Float32Array([-1e4]),
    };
    const wte = params["transformer.wte.weight"];
    tensors["lm_head.weight"] = { dtype: "float32", shape: [cfg.vocabSize, cfg.nEmbd], data: wte };
    await Deno.writeFile(`${root}/m/model.safetensors`, encodeSafetensors(tensors));
    const f = await loadHfFolder(`${root}/m`);
    for (const [n, v] of Object.entries(params)) assert.deepEqual(f.params[n], v, n);
    assert.deepEqual(f.extra, {});

    const untied = Float32Array.from(wte, (v) => v + 1);
    tensors["lm_head.weight"] = { ...tensors["lm_head.weight"], data: untied };
    await Deno.writeFile(`${root}/m/model.safetensors`, encodeSafetensors(tensors));
    await assert.rejects(() => loadHfFolder(`${root}/m`), /"lm_head.weight" differs.*Fix: /);

    delete tensors["lm_head.weight"];
    tensors["transformer.h.0.ln_1.weight"] = tensors["h.0.ln_1.weight"];
    await Deno.writeFile(`${root}/m/model.safetensors`, encodeSafetensors(tensors));
    await assert.rejects(() => loadHfFolder(`${root}/m`), /holds both "h.0.ln_1.weight" and/);
  });
});

Deno.test("loadHfFolder errors name the folder, the file, the key and a fix", async () => {
  await withTmp("proxima_hf_", async (root) => {
    const good = `${root}/good`;
    await saveHfFolder(good, cfg, initGpt(cfg, new Rng(1), "float32"), makeByteTokenizer());
    let i = 0;
    /** A broken copy of the good folder; loading it must fail with every pattern in the error. */
    const broken = async (
      damage: (dir: string) => Promise<void>,
      ...patterns: (string | RegExp)[]
    ) => {
      const dir = `${root}/bad${i++}`;
      await copyDir(good, dir);
      await damage(dir);
      const err = await loadHfFolder(dir).then(() => undefined, (e: Error) => e);
      assert.ok(err, `${patterns[0]}: loading should fail`);
      for (const p of [dir, "Fix: ", ...patterns]) {
        assert.ok(
          typeof p === "string" ? err.message.includes(p) : p.test(err.message),
          `"${err.message}" lacks ${p}`,
        );
      }
    };
    const editConfig = (edit: (c: Record<string, unknown>) => void) => async (dir: string) => {
      const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      edit(c);
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
    };
    const truncate = (n: number) => async (dir: string) => {
      const b = await Deno.readFile(`${dir}/model.safetensors`);
      await Deno.writeFile(`${dir}/model.safetensors`, b.subarray(0, n < 0 ? b.length + n : n));
    };

    await assert.rejects(
      () => loadHfFolder(`${root}/nowhere`),
      /nowhere\/config.json: missing\. Fix: /,
    );
    await broken((d) => Deno.writeTextFile(`${d}/config.json`, "{ no"), "config.json", "corrupt");
    await broken(editConfig((c) => delete c.n_embd), "config.json", `key "n_embd"`, "positive");
    await broken(editConfig((c) => (c.activation_function = "relu")), `"activation_function"`);
    await broken(editConfig((c) => (c.model_type = "llama")), `key "model_type"`);
    await broken((d) => Deno.remove(`${d}/model.safetensors`), "model.safetensors: missing");
    await broken(
      async (d) => {
        await Deno.remove(`${d}/model.safetensors`);
        await Deno.writeFile(`${d}/pytorch_model.bin`, new Uint8Array(4));
      },
      "model.safetensors: missing",
      "safe_serialization=True",
    );
    await broken(truncate(-100), "model.safetensors: corrupt", /data section has \d+ bytes/);
    await broken(truncate(3), "model.safetensors: corrupt", "truncated");
    // Shape mismatch: config.json says a wider model than the weights hold.
    await broken(
      editConfig((c) => (c.n_embd = 32)),
      "model.safetensors",
      `tensor "transformer.wte.weight" has shape [257,16]`,
      "n_embd=32",
      "implies [257,32]",
    );
    // A missing weight: config.json says one more layer than stored.
    await broken(
      editConfig((c) => (c.n_layer = 3)),
      `missing tensor "transformer.h.2.ln_1.weight"`,
    );
    await broken((d) => Deno.writeTextFile(`${d}/tokenizer.json`, "[1, 2"), "tokenizer.json");
  });
});

Deno.test("saveHfFolder replaces a model folder whole, refuses other folders, checks its input", async () => {
  await withTmp("proxima_hf_", async (root) => {
    const p1 = initGpt(cfg, new Rng(1), "float32"), p2 = initGpt(cfg, new Rng(2), "float32");
    await saveHfFolder(`${root}/m`, cfg, p1, makeByteTokenizer());
    await saveHfFolder(`${root}/m`, cfg, p2); // replaced: the old tokenizer files go too
    const f = await loadHfFolder(`${root}/m`);
    assert.deepEqual(f.params["transformer.wte.weight"], p2["transformer.wte.weight"]);
    assert.equal(f.tokenizer, undefined);
    const entries = [];
    for await (const e of Deno.readDir(root)) entries.push(e.name);
    assert.deepEqual(entries, ["m"], "no temp folders left behind");

    await Deno.mkdir(`${root}/notes`);
    await Deno.writeTextFile(`${root}/notes/todo.txt`, "keep me");
    await assert.rejects(() => saveHfFolder(`${root}/notes`, cfg, p1), /refusing to replace/);
    assert.equal(await Deno.readTextFile(`${root}/notes/todo.txt`), "keep me");

    const { ["transformer.wpe.weight"]: _, ...missing } = p1;
    await assert.rejects(
      () => saveHfFolder(`${root}/x`, cfg, missing),
      /missing parameter "transformer.wpe.weight"/,
    );
    const small = { ...cfg, vocabSize: 200 };
    await assert.rejects(
      () =>
        saveHfFolder(
          `${root}/x`,
          small,
          initGpt(small, new Rng(1), "float32"),
          makeByteTokenizer(),
        ),
      /token id 256 but vocab_size is 200/,
    );
    assert.throws(() => hfConfig(cfg, { n_embd: 8 }), /"n_embd" = 8 contradicts/);
    await assert.rejects(() => Deno.stat(`${root}/x`), Deno.errors.NotFound);
  });
});

Deno.test("transformers.js loads a saved folder offline; its tokenizer agrees with byteEncode/byteDecode", async () => {
  await withTmp("proxima_hf_", async (root) => {
    const tokFiles = makeByteTokenizer({ modelMaxLength: 16 });
    await saveHfFolder(`${root}/m`, cfg, initGpt(cfg, new Rng(1), "float32"), tokFiles);
    // Nothing may come from the hub: only the local folder is allowed.
    env.allowRemoteModels = false;
    env.localModelPath = `${root}/`;
    const config = await AutoConfig.from_pretrained("m", { local_files_only: true });
    assert.equal((config as unknown as { model_type: string }).model_type, "gpt2");
    const tok = await AutoTokenizer.from_pretrained("m", { local_files_only: true });
    const byPath = await AutoTokenizer.from_pretrained(`${root}/m`, { local_files_only: true });
    assert.deepEqual(byPath.encode("abc"), [97, 98, 99]);
    assert.equal(tok.eos_token_id, BYTE_EOS_ID);
    assert.equal(tok.pad_token_id, BYTE_EOS_ID);
    assert.equal(tok.model_max_length, 16);
    for (const s of TEXTS) {
      const ids = tok.encode(s);
      assert.deepEqual(ids, byteEncode(s), `encode ${JSON.stringify(s)}`);
      assert.equal(tok.decode(ids), s);
      assert.equal(tok.decode(ids), byteDecode(ids));
      assert.equal(
        tok.decode(ids, { skip_special_tokens: true }),
        byteDecode(ids, { skipSpecialTokens: true }),
      );
    }
    const invalid = [0xe6, 0x97, 104, 0xff, BYTE_EOS_ID, 0xf0, 0x9f];
    assert.equal(tok.decode(invalid), byteDecode(invalid));
    const batch = tok(["ab", "abcd"], { padding: true });
    assert.deepEqual(batch.input_ids.tolist(), [[97n, 98n, 256n, 256n], [97n, 98n, 99n, 100n]]);
    assert.deepEqual(batch.attention_mask.tolist(), [[1n, 1n, 0n, 0n], [1n, 1n, 1n, 1n]]);
  });
});

const FIXTURES = new URL("../fixtures/hf/", import.meta.url).pathname;
const HAS_FIXTURES = (() => {
  try {
    return Deno.statSync(`${FIXTURES}gpt2-bf16/config.json`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "loadHfFolder reads transformers' GPT-2 folders in F32 and BF16 and refuses other families",
  ignore: !HAS_FIXTURES,
  fn: async () => {
    const f32 = await loadHfFolder(`${FIXTURES}gpt2-f32`);
    const bf16 = await loadHfFolder(`${FIXTURES}gpt2-bf16`, { dtype: "float64" });
    assert.deepEqual(bf16.cfg, f32.cfg);
    assert.deepEqual(Object.keys(bf16.params), Object.keys(gptShapes(f32.cfg)));
    for (const [n, v] of Object.entries(f32.params)) {
      const b = bf16.params[n];
      assert.ok(b instanceof Float64Array, n);
      // bf16 keeps 8 significant bits: within 2^-8 relative of the float32 weights.
      assert.ok(v.every((x, i) => Math.abs(b[i] - x) <= Math.abs(x) * 2 ** -8), n);
    }
    assert.equal(f32.tokenizer, undefined);
    const rm = await loadHfFolder(`${FIXTURES}gpt2-rm`);
    assert.deepEqual(Object.keys(rm.extra), ["score.weight"]);
    await assert.rejects(
      () => loadHfFolder(`${FIXTURES}llama3-f32`),
      /loadHfFolder: .*llama3-f32\/config.json: key "model_type": "llama" is not supported \(supported: gpt2\)\. Fix: /,
    );
  },
});
