/** The lm task's data files: prompt sets (.txt, .jsonl, .parquet) and preference pairs. */
import assert from "node:assert/strict";
import { readPreferencePairs, readPromptSet } from "../../lib/tasks/lm/data.ts";
import { ConfigError } from "../../lib/ppo/config.ts";

const FIX = new URL("../fixtures/lm/", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "proxima_lm_data_" });
const write = (name: string, text: string | Uint8Array) =>
  typeof text === "string"
    ? Deno.writeTextFile(`${tmp}/${name}`, text).then(() => `${tmp}/${name}`)
    : Deno.writeFile(`${tmp}/${name}`, text).then(() => `${tmp}/${name}`);

Deno.test("prompt sets: .txt lines, .jsonl prompt/messages, .parquet prompt and messages columns", async () => {
  assert.deepEqual(await readPromptSet("lm", "prompts", await write("a.txt", "one\n\n two\r\n")), [
    { text: "one" },
    { text: " two" },
  ]);
  const jl = await write(
    "a.jsonl",
    '{"prompt": "p"}\n\n{"messages": [{"role": "user", "content": "m"}]}\n' +
      '{"prompt": [{"role": "user", "content": "conversational prompt"}]}\n',
  );
  assert.deepEqual(await readPromptSet("lm", "prompts", jl), [
    { text: "p" },
    { messages: [{ role: "user", content: "m" }] },
    { messages: [{ role: "user", content: "conversational prompt" }] },
  ]);
  assert.deepEqual(await readPromptSet("lm", "prompts", `${FIX}prompts.parquet`), [
    { text: "Write a haiku about rain." },
    { text: "Übersetze: hello" },
    { text: "数一数" },
  ]);
  assert.deepEqual(await readPromptSet("lm", "prompts", `${FIX}messages.parquet`), [
    { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] },
    { messages: [{ role: "user", content: "2+2?" }] },
  ]);
});

Deno.test("prompt sets: every bad file is a ConfigError naming the key, the file/line and a fix", async () => {
  const cases: [string, RegExp][] = [
    [await write("empty.txt", "\n  \n"), /prompts: .*empty\.txt: holds no prompts\n {2}fix: add/],
    [
      await write("latin1.txt", new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])),
      /is not UTF-8 text\n {2}fix: convert/,
    ],
    [
      await write("bad.jsonl", '{"prompt": "ok"}\n{"text": "no"}\n'),
      /bad\.jsonl:2: no "prompt" or "messages"/,
    ],
    [await write("notjson.jsonl", "{oops\n"), /notjson\.jsonl:1: not JSON/],
    [await write("blank.jsonl", '{"prompt": "  "}\n'), /blank\.jsonl row 0: empty prompt/],
    [
      await write("x.csv", "a\n"),
      /unknown prompt file type\n {2}fix: use \.txt, \.jsonl or \.parquet/,
    ],
    [`${tmp}/missing.txt`, /missing\.txt: cannot read/],
    [await write("bad.parquet", "not parquet"), /not a readable parquet file/],
  ];
  for (const [path, want] of cases) {
    await assert.rejects(() => readPromptSet("lm", "prompts", path), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${path}: ${e}`);
      assert.match(e.message, /^lm config: prompts: /);
      assert.match(e.message, want);
      return true;
    });
  }
});

Deno.test("preference pairs: chosen/rejected (+ prompt) per line; bad rows named", async () => {
  const ok = await write(
    "p.jsonl",
    '{"prompt": "Q", "chosen": " good", "rejected": " bad"}\n{"chosen": "a", "rejected": "b"}\n',
  );
  assert.deepEqual(await readPreferencePairs("lm", "reward_model_data", ok), [
    { prompt: "Q", chosen: " good", rejected: " bad" },
    { prompt: "", chosen: "a", rejected: "b" },
  ]);
  const bad = await write("q.jsonl", '{"chosen": "a", "rejected": "b"}\n{"chosen": "a"}\n');
  await assert.rejects(
    () => readPreferencePairs("lm", "reward_model_data", bad),
    /reward_model_data: .*q\.jsonl:2: needs "chosen" and "rejected"/,
  );
  const one = await write("one.jsonl", '{"chosen": "a", "rejected": "b"}\n');
  await assert.rejects(() => readPreferencePairs("lm", "reward_model_data", one), /holds 1 pair/);
});

globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
