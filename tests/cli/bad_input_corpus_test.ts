/**
 * The bad-input corpus (tests/cli/bad_inputs.txt): every case runs as a real subprocess of the
 * deno.json task it names, from a fresh folder, and must end with exit code 2, a message that
 * names the input, no line of a JavaScript stack, and its folder exactly as the setup left it
 * (nothing partial: no output folder, no temporary folder, since TMPDIR points inside it). The
 * corpus must cover every task of deno.json that is ours. Cases run a few at a time.
 *
 * Also here: a finished sweep leaves no `.sweep.lock` behind.
 */
import assert from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const CORPUS = `${ROOT}/tests/cli/bad_inputs.txt`;
/** deno.json tasks that are Deno's own tools, not commands of ours. */
const DENO_TOOLS = new Set(["test", "fmt", "lint", "check"]);
/** Cases run at once (each is a deno process; the CI machine has 2 cores). */
const POOL = 3;
/** A folder nobody may write to, root included (sysfs). */
const RO = "/sys";

interface Case {
  line: number;
  task: string;
  args: string;
  setup: string[];
  expect: string[];
}

function parseCorpus(text: string): Case[] {
  const cases: Case[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const f = line.split(" | ").map((s) => s.trim());
    if (f.length !== 4) throw new Error(`${CORPUS}:${i + 1}: needs 4 fields separated by " | "`);
    cases.push({
      line: i + 1,
      task: f[0],
      args: f[1],
      setup: f[2] === "-" ? [] : f[2].split(",").map((s) => s.trim()),
      expect: f[3].split(" && ").map((s) => s.trim()),
    });
  });
  return cases;
}

// ---- shared fixtures (read only) -------------------------------------------------------------

const shared = await Deno.makeTempDir({ prefix: "proxima_corpus_" });
const QWEN = `${shared}/qwen3`, RM = `${shared}/qwen3-rm`, PROMPTS = `${shared}/prompts.jsonl`;
await tinyQwen3Folder(QWEN);
await tinyQwen3RewardModel(RM);
await Deno.writeTextFile(PROMPTS, '{"prompt": "Name three colours."}\n{"prompt": "2 + 2?"}\n');

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

const LFS_POINTER = "version https://git-lfs.github.com/spec/v1\n" +
  "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1048576\n";

async function editJson(path: string, edit: (o: Record<string, unknown>) => void) {
  const o = JSON.parse(await Deno.readTextFile(path));
  edit(o);
  await Deno.writeTextFile(path, JSON.stringify(o));
}

/** Setup steps: each prepares or corrupts something under the case folder `t`. */
const SETUPS: Record<string, (t: string) => Promise<void>> = {
  qwen: (t) => copyDir(QWEN, `${t}/m`),
  sharded: (t) => copyDir(`${ROOT}/tests/fixtures/hf/llama3-sharded`, `${t}/m`),
  "rm-pad": async (t) => {
    await copyDir(RM, `${t}/rm`);
    await editJson(`${t}/rm/config.json`, (o) => o.pad_token_id = 999999);
  },
  empty: (t) => Deno.mkdir(`${t}/m`),
  truncate: async (t) => {
    const p = `${t}/m/model.safetensors`;
    await Deno.truncate(p, Math.floor((await Deno.stat(p)).size / 2));
  },
  // One tensor's end offset past the end of the data (the header rewritten, its length too).
  offsets: async (t) => {
    const p = `${t}/m/model.safetensors`;
    const b = await Deno.readFile(p);
    const n = Number(new DataView(b.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
    const last = Object.entries(header).filter(([k]) => k !== "__metadata__")
      .sort(([, a], [, c]) =>
        (c as { data_offsets: number[] }).data_offsets[1] -
        (a as { data_offsets: number[] }).data_offsets[1]
      )[0][1] as { data_offsets: number[] };
    last.data_offsets[1] += 4096;
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + b.length - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(b.subarray(8 + n), 8 + h.length);
    await Deno.writeFile(p, out);
  },
  "bad-config": (t) => Deno.writeTextFile(`${t}/m/config.json`, '{"model_type": "qwen3",'),
  "no-tokenizer": (t) => Deno.remove(`${t}/m/tokenizer.json`),
  "drop-shard": (t) => Deno.remove(`${t}/m/model-00002-of-00003.safetensors`),
  lfs: (t) => Deno.writeTextFile(`${t}/m/model.safetensors`, LFS_POINTER),
  "lfs-tokenizer": (t) => Deno.writeTextFile(`${t}/m/tokenizer.json`, LFS_POINTER),
  "eos-out": (t) => editJson(`${t}/m/config.json`, (o) => o.eos_token_id = 999999),
  // Offline data with a bad row (lm --method dpo / kto): line 2 lacks "rejected"; a text label.
  "prefs-no-rejected": (t) =>
    Deno.writeTextFile(
      `${t}/prefs.jsonl`,
      '{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n{"prompt": "Hi", "chosen": "a"}\n',
    ),
  "kto-bad-label": (t) =>
    Deno.writeTextFile(`${t}/ex.jsonl`, '{"prompt": "Hi", "completion": "a", "label": "yes"}\n'),
  // An experiment file in a folder whose name holds `#`, with a misspelt key (so it must load).
  "hash-dir": async (t) => {
    await Deno.mkdir(`${t}/a#b`);
    const mod = pathToFileURL(`${ROOT}/lib/experiment/mod.ts`).href;
    await Deno.writeTextFile(
      `${t}/a#b/exp.ts`,
      `import { defineExperiment, grid } from "${mod}";\n` +
        `export default defineExperiment({ name: "hash", task: "CartPole-v1", ` +
        `base: { total_stepz: 512 }, sweep: grid({ seed: [1] }) });\n`,
    );
  },
};

/** Every path under `dir` with its size (folders marked), sorted: what "unchanged" compares. */
async function snapshot(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}${rel}`)) {
    const p = `${rel}/${e.name}`;
    if (e.isDirectory) out.push(`${p}/`, ...await snapshot(dir, p));
    else out.push(`${p} ${(await Deno.lstat(`${dir}${p}`)).size}`);
  }
  return out.sort();
}

const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
const TASKS: Record<string, string> = denoJson.tasks;

/** `s` with the corpus variables of case folder `t` filled in. */
const sub = (s: string, t: string) =>
  s.replaceAll("$TMP", t).replaceAll("$ROOT", ROOT).replaceAll("$QWEN", QWEN)
    .replaceAll("$RM", RM).replaceAll("$PROMPTS", PROMPTS).replaceAll("$FILE", `${t}/file.txt`)
    .replaceAll("$RO", RO);

/** The case's command line: the task's own (`deno run -A cli/x.ts`) from the case folder. */
function commandOf(c: Case, t: string): string[] {
  const task = TASKS[c.task];
  assert.ok(task, `${CORPUS}:${c.line}: no deno.json task "${c.task}"`);
  const words = task.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"], `task ${c.task}: ${task}`);
  const script = `${ROOT}/${words.at(-1)}`;
  return ["run", "--config", `${ROOT}/deno.json`, ...words.slice(2, -1), script]
    .concat(c.args.split(/\s+/).filter(Boolean).map((a) => sub(a, t)));
}

interface Outcome {
  c: Case;
  problems: string[];
  seconds: number;
}

async function runCase(c: Case): Promise<Outcome> {
  const t = await Deno.makeTempDir({ prefix: "proxima_case_" });
  try {
    await Deno.writeTextFile(`${t}/file.txt`, "a plain file\n");
    await Deno.mkdir(`${t}/.tmp`); // TMPDIR: a temporary folder left behind shows up below
    for (const s of c.setup) {
      assert.ok(SETUPS[s], `${CORPUS}:${c.line}: unknown setup "${s}"`);
      await SETUPS[s](t);
    }
    const before = await snapshot(t);
    const env = Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("PROXIMA_")),
    );
    const t0 = performance.now();
    const r = await new Deno.Command(Deno.execPath(), {
      args: commandOf(c, t),
      cwd: t,
      env: { ...env, NO_COLOR: "1", TMPDIR: `${t}/.tmp` },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - t0) / 1e3;
    const dec = new TextDecoder();
    const stderr = dec.decode(r.stderr), stdout = dec.decode(r.stdout);
    const problems: string[] = [];
    if (r.code !== 2) problems.push(`exit code ${r.code}, expected 2`);
    const said = stderr + stdout;
    for (const e of c.expect) {
      const want = sub(e, t);
      if (!said.includes(want)) problems.push(`the message lacks ${JSON.stringify(want)}`);
    }
    if (/^\s+at .*(:\d+:\d+\)?|<anonymous>)$/m.test(stderr) || /error: Uncaught/.test(stderr)) {
      problems.push("a JavaScript stack was printed");
    }
    const after = await snapshot(t);
    const added = after.filter((p) => !before.includes(p));
    const removed = before.filter((p) => !after.includes(p));
    if (added.length || removed.length) {
      problems.push(`left its folder changed: +[${added.join(", ")}] -[${removed.join(", ")}]`);
    }
    if (problems.length) problems.push(`output:\n${said.trim().replaceAll(t, "$TMP")}`);
    return { c, problems, seconds };
  } finally {
    await Deno.remove(t, { recursive: true });
  }
}

const cases = parseCorpus(await Deno.readTextFile(CORPUS));

Deno.test("bad-input corpus: covers every command of deno.json", () => {
  const covered = new Set(cases.map((c) => c.task));
  const missing = Object.keys(TASKS).filter((t) => !DENO_TOOLS.has(t) && !covered.has(t));
  assert.deepEqual(missing, [], `tasks without a bad-input case: ${missing.join(", ")}`);
  for (const c of cases) for (const s of c.setup) assert.ok(SETUPS[s], `unknown setup ${s}`);
});

Deno.test({
  name: "bad-input corpus: exit 2, the input named, no stack, nothing left behind",
  // Subprocesses of other tests' sanitizers are not ours to check; ours are awaited.
  sanitizeResources: false,
  async fn() {
    const outcomes: Outcome[] = [];
    // The slow cases (those that load models) first, so that no one starts last.
    const weight = (c: Case) =>
      c.args.includes("--task lm") ? 3 : c.task === "generate" || c.task === "sweep" ? 2 : 1;
    const queue = cases.toSorted((a, b) => weight(b) - weight(a));
    let next = 0;
    await Promise.all(Array.from({ length: POOL }, async () => {
      while (next < queue.length) outcomes.push(await runCase(queue[next++]));
    }));
    const failed = outcomes.filter((o) => o.problems.length);
    const slowest = outcomes.toSorted((a, b) => b.seconds - a.seconds).slice(0, 3);
    console.log(
      `${cases.length} cases; slowest: ` +
        slowest.map((o) => `line ${o.c.line} ${o.seconds.toFixed(1)} s`).join(", "),
    );
    const report = failed.map((o) =>
      `${CORPUS.replace(`${ROOT}/`, "")}:${o.c.line}: ${o.c.task} ${o.c.args}\n  ` +
      o.problems.join("\n  ")
    );
    assert.equal(
      failed.length,
      0,
      `${failed.length} of ${cases.length} cases:\n${report.join("\n\n")}`,
    );
  },
});

Deno.test("sweep: a finished sweep leaves no .sweep.lock", async () => {
  const t = await Deno.makeTempDir({ prefix: "proxima_lock_" });
  try {
    const kinds = pathToFileURL(`${ROOT}/tests/experiment/fixtures/kinds.ts`).href;
    const mod = pathToFileURL(`${ROOT}/lib/experiment/mod.ts`).href;
    await Deno.writeTextFile(
      `${t}/one.ts`,
      `import { defineExperiment, grid } from "${mod}";\nimport { DUMMY_KIND } from "${kinds}";\n` +
        `export default defineExperiment({ name: "one", task: DUMMY_KIND, sweep: grid({ seed: [1] }) });\n`,
    );
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}/deno.json`,
        `${ROOT}/cli/sweep.ts`,
        `${t}/one.ts`,
        "--results",
        `${t}/results`,
        "--jobs",
        "1",
        "--quiet",
      ],
      cwd: t,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(r.code, 0, dec.decode(r.stdout) + dec.decode(r.stderr));
    const names = [];
    for await (const e of Deno.readDir(`${t}/results/one`)) names.push(e.name);
    assert.equal(names.filter((n) => !n.startsWith(".")).length, 1, names.join(", ")); // the bundle
    assert.ok(!names.includes(".sweep.lock"), `left behind: ${names.join(", ")}`);
  } finally {
    await Deno.remove(t, { recursive: true });
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(shared, { recursive: true }));
