/**
 * The `lm` task on Hub-shaped folders: a tiny random Qwen3 instruct model with the real Qwen3
 * tokenizer and chat template, and a Qwen3ForSequenceClassification reward model. PPO runs,
 * resumes byte-identically, and writes a Hugging Face policy folder (and a PEFT adapter) that
 * reloads with the trained policy's logits; a reward model trains from preference pairs as a
 * cached stage; every bad input is refused before any trial starts.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import { type DecoderConfig, decoderForward, decoderShapes } from "../../lib/nn/decoder.ts";
import { applyLora, loraShapes } from "../../lib/nn/lora.ts";
import { loadPeftAdapter } from "../../lib/nn/peft.ts";
import type { FloatArray } from "../../lib/nn/sample.ts";
import { ConfigError } from "../../lib/ppo/config.ts";
import {
  defineExperiment,
  grid,
  planExperiment,
  validateInputs,
} from "../../lib/experiment/mod.ts";
import { LM_KIND, type LmRunInput } from "../../lib/tasks/lm/mod.ts";
import {
  ARENA_GROWTH,
  estimateLmMemory,
  RUNTIME_BYTES,
  WEIGHT_COPIES,
} from "../../lib/tasks/memory.ts";
import { countLmTrainStep } from "../../lib/tasks/memory_train.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import {
  LLAMA3_TOKENIZER,
  tinyQwen3Folder,
  tinyQwen3RewardModel,
} from "../../scripts/tiny_models.ts";

const tmp = await Deno.makeTempDir({ prefix: "proxima_lm_task_" });
const CACHE = `${tmp}/.stages`;
const POLICY = `${tmp}/qwen3`, RM = `${tmp}/qwen3-rm`;
await tinyQwen3Folder(POLICY, { dtype: "float32" });
await tinyQwen3RewardModel(RM);
const PROMPTS = `${tmp}/prompts.jsonl`;
await Deno.writeTextFile(
  PROMPTS,
  [
    { prompt: "Write a short poem about rain." },
    { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi!" }] },
    { prompt: "Name a colour." },
  ].map((r) => JSON.stringify(r)).join("\n") + "\n",
);

const BASE: LmRunInput = {
  policy: POLICY,
  reward_model: RM,
  prompts: PROMPTS,
  updates: 2,
  batch: 4,
  max_new_tokens: 6,
  eval: { samples: 4 },
  ppo: { epochs: 1, minibatches: 2 },
};

/** Logits of `params` (+ LoRA adapters) on a fixed batch. */
async function logitsOf(
  cfg: DecoderConfig,
  params: Record<string, FloatArray>,
  lora?: { cfg: Parameters<typeof applyLora>[1]; adapters: Record<string, FloatArray> },
): Promise<Float32Array> {
  const g = new Graph("lm_logits");
  const shapes = decoderShapes(cfg), ad = lora ? loraShapes(shapes, lora.cfg) : {};
  const inp = Object.fromEntries(
    Object.entries({ ...shapes, ...ad }).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
  );
  const p = lora ? applyLora(g, lora.cfg, inp, inp) : inp;
  const tok = g.input("tokens", "int64", ["B", "T"]);
  g.output(decoderForward(g, cfg, p, tok).logits, "logits");
  const all = { ...params, ...lora?.adapters };
  const out = await (await compile(g)).run({
    ...Object.fromEntries(
      Object.entries({ ...shapes, ...ad }).map((
        [n, { shape }],
      ) => [n, tensor("float32", shape, all[n])]),
    ),
    tokens: tensor("int64", [1, 5], [151644, 872, 198, 9707, 0]),
  });
  return out.logits.data as Float32Array;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

Deno.test({
  name:
    "lm: PPO on a Qwen3 instruct folder + Qwen3 reward model; the exported HF folder reloads with the policy's logits",
  sanitizeResources: false,
  async fn() {
    let trained: Record<string, FloatArray> = {};
    const out = `${tmp}/run`;
    const r = await LM_KIND.trial({ ...BASE, value_model: "from_reward_model" }, out, {
      cacheDir: CACHE,
      onProblem: (problem) => {
        // After the trial the same object holds the final weights.
        trained = problem.policyParams() as unknown as Record<string, FloatArray>;
      },
    });
    assert.equal(r.task, "lm");
    assert.ok(Number.isFinite(r.before.reward) && Number.isFinite(r.after.reward));
    assert.ok(r.after.rm_score !== null);
    assert.equal(r.last.update, 2);
    const folder = await loadModelFolder(`${out}/hf/policy`, { dtype: "float32" });
    assert.equal(folder.sourceDtype, "float32");
    const live = Object.fromEntries(
      Object.entries(trained).map(([n, t]) => [
        n,
        ArrayBuffer.isView(t) ? t : (t as unknown as { data: Float32Array }).data,
      ]),
    );
    const diff = maxDiff(
      await logitsOf(folder.cfg, folder.params),
      await logitsOf(folder.cfg, live),
    );
    assert.equal(diff, 0, `exported vs trained logits differ by ${diff}`);
    // The tokenizer came along: `deno task generate` can use the folder as it is.
    assert.ok((await Deno.stat(`${out}/hf/policy/tokenizer.json`)).isFile);
    const start = await loadModelFolder(POLICY, { dtype: "float32" });
    assert.ok(
      maxDiff(await logitsOf(start.cfg, start.params), await logitsOf(folder.cfg, folder.params)) >
        0,
    );
  },
});

Deno.test({
  name:
    "lm: LoRA writes a PEFT adapter that, applied to the base, gives the merged folder's logits",
  sanitizeResources: false,
  async fn() {
    const out = `${tmp}/lora`;
    await LM_KIND.trial(
      { ...BASE, updates: 1, lora: { r: 4, alpha: 8 }, ppo: { lr: 1e-2, epochs: 1 } },
      out,
      {
        cacheDir: CACHE,
      },
    );
    const base = await loadModelFolder(POLICY, { dtype: "float32" });
    const merged = await loadModelFolder(`${out}/hf/policy`, { dtype: "float32" });
    const { lora, adapters, baseModel } = await loadPeftAdapter(`${out}/hf/adapter`);
    assert.equal(baseModel, POLICY);
    const viaAdapter = await logitsOf(base.cfg, base.params, { cfg: lora, adapters });
    const viaMerged = await logitsOf(merged.cfg, merged.params);
    assert.ok(maxDiff(viaAdapter, viaMerged) < 1e-4, `${maxDiff(viaAdapter, viaMerged)}`);
    assert.ok(
      maxDiff(viaMerged, await logitsOf(base.cfg, base.params)) > 1e-5,
      "LoRA moved nothing",
    );
  },
});

Deno.test({
  name: "lm: a trial killed after update 1 and resumed ends byte-identical to an uninterrupted one",
  sanitizeResources: false,
  async fn() {
    const cfg: LmRunInput = { ...BASE, updates: 3, checkpoint_every: 1 };
    const files = [
      "final.safetensors",
      "metrics.jsonl",
      "eval.json",
      "hf/policy/model.safetensors",
    ];
    await LM_KIND.trial(cfg, `${tmp}/whole`, { cacheDir: CACHE });
    await assert.rejects(
      LM_KIND.trial(cfg, `${tmp}/cut`, {
        cacheDir: CACHE,
        resume: true,
        onUpdate: (_r, u) => {
          if (u === 2) throw new Error("killed");
        },
      }),
      /killed/,
    );
    let startedAt = -1;
    await LM_KIND.trial(cfg, `${tmp}/cut`, {
      cacheDir: CACHE,
      resume: true,
      onStart: (u) => (startedAt = u),
    });
    assert.equal(startedAt, 1, "resumed from the checkpoint after update 1");
    for (const f of files) {
      assert.deepEqual(
        await Deno.readFile(`${tmp}/cut/${f}`),
        await Deno.readFile(`${tmp}/whole/${f}`),
        `${f} differs`,
      );
    }
  },
});

Deno.test({
  name:
    "lm: a reward model trained from preference pairs as a cached stage, reused by the next trial",
  sanitizeResources: false,
  async fn() {
    const data = `${tmp}/prefs.jsonl`;
    await Deno.writeTextFile(
      data,
      Array.from(
        { length: 6 },
        (_, i) => JSON.stringify({ prompt: `Q${i}:`, chosen: " yes, gladly.", rejected: " no." }),
      ).join("\n"),
    );
    const cfg: LmRunInput = {
      ...BASE,
      reward_model: null,
      reward_model_data: data,
      reward_model_train: { steps: 3, batch_size: 2 },
      updates: 1,
    };
    const logs: string[] = [];
    const a = await LM_KIND.trial(cfg, `${tmp}/rm1`, { cacheDir: CACHE, log: (l) => logs.push(l) });
    const b = await LM_KIND.trial({ ...cfg, seed: 2 }, `${tmp}/rm2`, {
      cacheDir: CACHE,
      log: (l) => logs.push(l),
    });
    assert.equal(a.reward_model?.source, "reward_model_data");
    assert.equal(a.reward_model?.hash, b.reward_model?.hash);
    assert.match(logs[0], /lm-reward-model: trained/);
    assert.match(logs[1], /lm-reward-model: reused/);
  },
});

Deno.test("lm: bad inputs are refused before any trial starts, naming the key, the file and the fix", async () => {
  const write = async (name: string, text: string | Uint8Array) => {
    const p = `${tmp}/${name}`;
    await (typeof text === "string" ? Deno.writeTextFile(p, text) : Deno.writeFile(p, text));
    return p;
  };
  const otherTok = `${tmp}/rm-llama-tok`, otherVocab = `${tmp}/rm-vocab`;
  await tinyQwen3RewardModel(otherTok, { tokenizer: LLAMA3_TOKENIZER });
  await tinyQwen3RewardModel(otherVocab, { cfg: { vocabSize: 152000 } });
  const long = "word ".repeat(600);
  const cases: [Partial<LmRunInput>, RegExp][] = [
    [{ prompts: await write("empty.txt", "\n\n") }, /prompts: .*empty\.txt: holds no prompts/],
    [
      { prompts: await write("latin1.txt", new Uint8Array([0x63, 0x61, 0x66, 0xe9])) },
      /prompts: .*latin1\.txt: is not UTF-8 text/,
    ],
    [
      { prompts: await write("noprompt.jsonl", '{"text": "x"}\n') },
      /prompts: .*noprompt\.jsonl:1: no "prompt" or "messages"/,
    ],
    [
      { prompts: await write("long.txt", long + "\n") },
      /prompts: .*long\.txt row 0: is \d+ tokens; with max_new_tokens 6 that exceeds the model's context of 512\n {2}fix: shorten/,
    ],
    [
      { reward_model: otherTok },
      /reward_model: .*rm-llama-tok: its tokenizer\.json differs from the policy's.*\n {2}fix: set reward_input "text"/,
    ],
    [
      { reward_model: otherVocab },
      /reward_model: .*rm-vocab: vocab_size 152000 differs from the policy's 151936/,
    ],
    [
      { stop: ["not one token at all"] },
      /stop\.0: .*tokenizer\.json: "not one token at all" encodes to \d+ tokens/,
    ],
    [{ policy: `${tmp}/nope` }, /policy: .*nope: no such folder/],
    [{ reward_model: POLICY }, /reward_model: .*not a reward model|reward_model: .*ForCausalLM/],
  ];
  for (const [over, want] of cases) {
    const c = LM_KIND.parse({ ...BASE, ...over });
    const err = await LM_KIND.validate!(c).then(() => null, (e) => e);
    assert.ok(
      err instanceof ConfigError,
      `${JSON.stringify(over)}: expected a ConfigError, got ${err}`,
    );
    assert.match(err.message, /^lm config: /);
    assert.match(err.message, want, err.message);
    assert.match(err.message, /\n {2}fix: /);
  }
  // The stop string check passes for a one-token stop.
  await LM_KIND.validate!(LM_KIND.parse({ ...BASE, stop: ["<|im_end|>"] }));
});

Deno.test("lm: a sweep refuses bad inputs at planning, listing each once, before any trial starts", async () => {
  const empty = `${tmp}/no-prompts.txt`;
  await Deno.writeTextFile(empty, "\n");
  const exp = defineExperiment({
    name: "lm-bad",
    task: "lm",
    base: { ...BASE, prompts: empty },
    sweep: grid({ "ppo.kl.beta": [0.01, 0.1], seed: [1, 2] }),
  });
  const plan = planExperiment(exp, { file: "experiments/lm-bad.ts", codeVersion: "test" });
  assert.equal(plan.trials.length, 4);
  const err = await validateInputs(plan).then(() => null, (e) => e);
  assert.ok(err instanceof ConfigError, String(err));
  assert.match(err.message, /experiments\/lm-bad\.ts: 1 problem \(no trial was started\)/);
  assert.match(err.message, /prompts.*no-prompts\.txt: holds no prompts/);
});

Deno.test("lm: a trial that cannot fit in memory is refused at planning with the estimate and the key to lower", async () => {
  const fits = await LM_KIND.validate!(LM_KIND.parse(BASE));
  assert.deepEqual(fits, []);
  // ppo.micro_batches must split each minibatch's rows (4 rows, 2 minibatches of 2).
  const split = (micro: number) =>
    LM_KIND.validate!(LM_KIND.parse({ ...BASE, ppo: { ...BASE.ppo, micro_batches: micro } }));
  assert.deepEqual(await split(2), []);
  const [odd] = await split(3);
  assert.equal(odd.key, "ppo.micro_batches");
  assert.match(odd.fix, /a divisor of 2 \(1, 2\)/);
  const [p] = await LM_KIND.validate!(LM_KIND.parse({ ...BASE, batch: 1e9 }));
  assert.equal(p.key, "batch");
  assert.match(
    p.cause,
    /^estimated peak memory [\d.]+ GB \(weights .*activations [\d.]+ GB.*\) exceeds the [\d.]+ GB this machine can give a trial$/,
  );
  assert.match(p.fix, /^lower batch or max_new_tokens/);
  // And a single run (deno task train) refuses it before anything trains.
  await assert.rejects(
    LM_KIND.trial({ ...BASE, batch: 1e9 }, `${tmp}/huge`, { cacheDir: CACHE }),
    /lm config: batch: estimated peak memory/,
  );
  assert.equal(await Deno.stat(`${tmp}/huge`).then(() => true, () => false), false);
});

Deno.test("estimateLmMemory: every part by hand for a tiny GPT, the train step counted from its graph", () => {
  const model = { vocabSize: 10, nPositions: 16, nEmbd: 4, nLayer: 1, nHead: 2 };
  const N = 10 * 4 + 16 * 4 + (4 + 4 + 4 * 12 + 12 + 16 + 4 + 4 + 4 + 4 * 16 + 16 + 16 * 4 + 4) + 8;
  const e = estimateLmMemory({ model, batch: 8, minibatches: 2, seqLen: 5 });
  // The loaded weights and the reference's copy (the sampler takes them as inputs).
  assert.equal(e.parts.weights, 4 * WEIGHT_COPIES.full * N);
  assert.deepEqual(WEIGHT_COPIES, { full: 2, lora: 2 });
  // Under SPLIT_MIN trainable values: the "graph" trainer (params, m, v twice: 6 per
  // parameter); a checkpoint is streamed from them (no copies).
  assert.equal(e.parts.optimizer, 4 * 6 * N);
  // The train step: its graph's peak at 4 rows of 5 positions, the default (GAE) loss, and the
  // shared arena's growth past it.
  const step = countLmTrainStep({ model, rows: 4, seqLen: 5, ppo: parsePpoConfig({}) });
  assert.equal(ARENA_GROWTH, 0.15);
  assert.equal(e.parts.activations, step.peak * (1 + ARENA_GROWTH));
  // A scoring pass holds 6 [B, T, V] buffers (no chunked head): less than the train step's
  // arena, which it reuses; so the rollout is the KV cache alone.
  const kv = 2 * 2 * 1 * 8 * 2 * 5 * 2;
  assert.ok(4 * 6 * 8 * 5 * 10 < step.peak);
  assert.equal(e.parts.rollout, 4 * kv);
  assert.equal(e.bytes, Object.values(e.parts).reduce((a, b) => a + b, 0) + RUNTIME_BYTES);
  // Critic-free: the GRPO step (no value head), smaller.
  const free = estimateLmMemory({ model, batch: 8, minibatches: 2, seqLen: 5, criticFree: true });
  const grpo = { ...parsePpoConfig({}), advantage: "grpo" as const };
  assert.equal(
    free.parts.activations,
    countLmTrainStep({ model, rows: 4, seqLen: 5, ppo: grpo }).peak * (1 + ARENA_GROWTH),
  );
  // LoRA: the base (also the reference) and the sampler's pre-packed copy; the
  // optimizer over the adapters (A [in, 2], B [2, out]) of c_attn 4→12, attn.c_proj 4→4,
  // c_fc 4→16 and mlp.c_proj 16→4.
  const lora = estimateLmMemory({
    model,
    batch: 8,
    minibatches: 2,
    seqLen: 5,
    lora: { r: 2, alpha: 4 },
  });
  assert.equal(lora.parts.weights, 4 * WEIGHT_COPIES.lora * N);
  const adapters = (4 + 12) * 2 + (4 + 4) * 2 + (4 + 16) * 2 + (16 + 4) * 2;
  assert.equal(lora.parts.optimizer, 4 * 6 * adapters);
  // The exact KL: both full distributions kept for the update, 2·B·T·V.
  const exact = estimateLmMemory({ model, batch: 8, minibatches: 2, seqLen: 5, exactKl: true });
  assert.equal(exact.parts.rollout, 4 * (2 * 8 * 5 * 10 + kv));
  // The head at the response only (the lm task): the train step over R = 3 columns.
  const at = estimateLmMemory({
    model,
    batch: 8,
    minibatches: 2,
    seqLen: 5,
    criticFree: true,
    responseLen: 3,
  });
  assert.equal(
    at.parts.activations,
    countLmTrainStep({ model, rows: 4, seqLen: 5, responseLen: 3, ppo: grpo }).peak *
      (1 + ARENA_GROWTH),
  );
  assert.equal(at.parts.weights, e.parts.weights);
  // A batch whose scoring pass outgrows the train step (8 rows scored, 1 trained): the excess.
  const wide = estimateLmMemory({ model, batch: 8, minibatches: 8, seqLen: 5, criticFree: true });
  const one = countLmTrainStep({ model, rows: 1, seqLen: 5, ppo: grpo }).peak;
  assert.equal(
    wide.parts.rollout,
    Math.max(0, 4 * 6 * 8 * 5 * 10 - one * (1 + ARENA_GROWTH)) + 4 * kv,
  );
});

Deno.test({
  name:
    "lm: GRPO groups samples_per_prompt responses per prompt and holds no value model; a group of one is refused",
  sanitizeResources: false,
  async fn() {
    assert.throws(
      () => LM_KIND.parse({ ...BASE, ppo: { advantage: "grpo", whiten_advantages: false } }),
      /samples_per_prompt 1|samples_per_prompt is 1/,
    );
    const r = await LM_KIND.trial(
      {
        ...BASE,
        updates: 1,
        samples_per_prompt: 2,
        ppo: { advantage: "grpo", whiten_advantages: false, epochs: 1 },
      },
      `${tmp}/grpo`,
      { cacheDir: CACHE },
    );
    assert.ok(Number.isFinite(r.after.reward));
    const { decodeSafetensors } = await import("../../lib/onnx/safetensors.ts");
    const names = Object.keys(
      decodeSafetensors(await Deno.readFile(`${tmp}/grpo/final.safetensors`)).tensors,
    );
    assert.ok(
      !names.some((n) => n.includes("v_head") || n.startsWith("value_model")),
      names.join(),
    );
  },
});

globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
