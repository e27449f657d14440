/**
 * Sweep planning reads no weights: `validateInputs` over an `lm` sweep reads config.json, the
 * tokenizers, the prompts and each safetensors file's header — never a byte of its data
 * section — so a sweep's parent process, which runs no trial, never holds a model. Every read
 * of a file is counted through `Deno.open`, `Deno.readFile` and `Deno.readTextFile` (what the
 * readers in lib/ go through); a full `loadLmInputs` of the same config is the control that the count sees
 * weight reads.
 */
import { mapStats } from "../../lib/onnx/file_map.ts";
import assert from "node:assert/strict";
import {
  defineExperiment,
  grid,
  planExperiment,
  validateInputs,
} from "../../lib/experiment/mod.ts";
import { LM_KIND, type LmRunInput } from "../../lib/tasks/lm/mod.ts";
import { loadLmInputs } from "../../lib/tasks/lm/inputs.ts";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

const tmp = await Deno.makeTempDir({ prefix: "proxima_lm_planning_" });
const POLICY = `${tmp}/qwen3`, RM = `${tmp}/qwen3-rm`, PROMPTS = `${tmp}/prompts.jsonl`;
await tinyQwen3Folder(POLICY, { dtype: "float32" });
await tinyQwen3RewardModel(RM);
await Deno.writeTextFile(PROMPTS, JSON.stringify({ prompt: "Name a colour." }) + "\n");
const BASE: LmRunInput = {
  policy: POLICY,
  reward_model: RM,
  prompts: PROMPTS,
  updates: 1,
  batch: 2,
  max_new_tokens: 4,
};

/** A safetensors file's header bytes (8 + its length field): what a header-only read needs. */
async function headerBytes(path: string): Promise<number> {
  const f = await Deno.open(path);
  try {
    const b = new Uint8Array(8);
    await f.read(b);
    return 8 + Number(new DataView(b.buffer).getBigUint64(0, true));
  } finally {
    f.close();
  }
}

/** Bytes read per file (resolved path) while `fn` runs: Deno.open, readFile, readTextFile. */
async function bytesRead(fn: () => Promise<unknown>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const add = (p: string | URL, n: number) => {
    const key = Deno.realPathSync(p);
    counts.set(key, (counts.get(key) ?? 0) + n);
  };
  const { open, readFile, readTextFile } = Deno;
  Deno.open = async (p, o) => {
    const f = await open(p, o);
    const read = f.read.bind(f);
    f.read = async (buf) => {
      const n = await read(buf);
      if (n) add(p, n);
      return n;
    };
    return f;
  };
  Deno.readFile = async (p, o) => {
    const b = await readFile(p, o);
    add(p as string | URL, b.length);
    return b;
  };
  Deno.readTextFile = async (p, o) => {
    const t = await readTextFile(p, o);
    add(p, new TextEncoder().encode(t).length);
    return t;
  };
  try {
    await fn();
  } finally {
    Object.assign(Deno, { open, readFile, readTextFile });
  }
  return counts;
}

const weightFiles = [`${POLICY}/model.safetensors`, `${RM}/model.safetensors`];

Deno.test("lm: sweep planning reads each safetensors header and no weight data", async () => {
  const exp = defineExperiment({
    name: "lm-plan",
    task: "lm",
    base: BASE,
    sweep: grid({ "ppo.kl.beta": [0.01, 0.1], seed: [1, 2] }),
  });
  const plan = planExperiment(exp, { file: "experiments/lm-plan.ts", codeVersion: "test" });
  assert.equal(plan.trials.length, 4);
  const planning = await bytesRead(() => validateInputs(plan));
  for (const path of weightFiles) {
    const real = Deno.realPathSync(path), size = (await Deno.stat(path)).size;
    const head = await headerBytes(path);
    assert.ok(head < size / 10, `${path}: the header is a small part of the file`);
    const got = planning.get(real) ?? 0;
    // The 4 trials share one read of the inputs (the plan's memo): one header read (its
    // length field, then the header with the field again: head + 8 bytes).
    assert.ok(got > 0 && got <= head + 8, `${path}: planning read ${got} bytes, header ${head}`);
  }
  // The control: loading the inputs for a trial reads every weight, or maps the whole file
  // (the policy's: lib/onnx/file_map.ts).
  const mapped = new Map(mapStats.bytes);
  const loading = await bytesRead(() => loadLmInputs(LM_KIND.parse(BASE)));
  for (const path of weightFiles) {
    const real = Deno.realPathSync(path), size = (await Deno.stat(path)).size;
    const got = (loading.get(real) ?? 0) +
      (mapStats.bytes.get(real) ?? 0) - (mapped.get(real) ?? 0);
    assert.ok(got >= size, `${path}: a trial's load read or mapped ${got} of ${size} bytes`);
  }
});

Deno.test("lm: a planning memo is per plan — the next plan reads the folders again", async () => {
  const exp = defineExperiment({
    name: "lm-plan2",
    task: "lm",
    base: BASE,
    sweep: grid({ seed: [1] }),
  });
  const plan = planExperiment(exp, { file: "experiments/lm-plan2.ts", codeVersion: "test" });
  const policy = Deno.realPathSync(`${POLICY}/config.json`);
  const first = await bytesRead(() => validateInputs(plan));
  const second = await bytesRead(() => validateInputs(plan));
  // No module-level cache: each pass reads config.json itself.
  assert.ok(first.get(policy)! > 0);
  assert.equal(second.get(policy), first.get(policy));
});
