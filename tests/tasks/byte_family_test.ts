/**
 * The byte-level tasks' model choice and memory refusal: a `sentiment` trial with
 * `model.family: "llama"` runs SFT -> reward model -> PPO end to end on a Llama-family decoder
 * (its SFT stage saved as a transformers Llama folder, its reward model as a Llama classifier,
 * LoRA with the family's targets), a GPT-2 config builds exactly the config it always did, and
 * a sweep whose batch cannot fit in memory is refused at planning, before any trial starts.
 */
import assert from "node:assert/strict";
import {
  parseSentimentConfig,
  runSentimentTrial,
  SENTIMENT_KIND,
  sentimentLora,
  sentimentMemory,
} from "../../lib/tasks/sentiment/mod.ts";
import { JSX_KIND } from "../../lib/tasks/jsx/mod.ts";
import { byteDecoderConfig } from "../../lib/tasks/byte_lm.ts";
import { LLAMA_LORA_TARGETS } from "../../lib/nn/lora.ts";
import { defineExperiment, grid } from "../../lib/experiment/mod.ts";
import { planExperiment, validateInputs } from "../../lib/experiment/spec.ts";
import { ConfigError } from "../../lib/ppo/config.ts";

const CACHE = Deno.makeTempDirSync({ prefix: "proxima-byte-family-stages-" });
const OUT = Deno.makeTempDirSync({ prefix: "proxima-byte-family-runs-" });
globalThis.addEventListener("unload", () => {
  for (const d of [CACHE, OUT]) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* already gone */ }
  }
});

Deno.test("byte tasks: model.family gpt2 (default) is GPT-2's config; llama is a Llama decoder of the same size", () => {
  const c = parseSentimentConfig({});
  assert.equal(c.model.family, "gpt2");
  assert.deepEqual(byteDecoderConfig(c.model), {
    vocabSize: 257,
    nPositions: 64,
    nEmbd: 64,
    nLayer: 2,
    nHead: 4,
  });
  const l = parseSentimentConfig({ model: { family: "llama" }, lora: { r: 4 } });
  const cfg = byteDecoderConfig(l.model);
  assert.ok("family" in cfg && cfg.family === "llama");
  assert.equal(cfg.hiddenSize, 64);
  assert.equal(cfg.intermediateSize, 256);
  assert.equal(cfg.nKvHead, 4);
  assert.equal(cfg.headDim, 16);
  assert.equal(cfg.maxPositions, 64);
  assert.equal(cfg.tieWordEmbeddings, true);
  // LoRA targets null = the family's.
  assert.deepEqual(sentimentLora(l.lora, cfg).targets, [...LLAMA_LORA_TARGETS]);
  assert.equal(sentimentLora(l.lora, cfg).fanInFanOut, false);
  assert.equal(sentimentLora(c.lora, byteDecoderConfig(c.model)).fanInFanOut, true);
  assert.throws(() => parseSentimentConfig({ model: { family: "gpt3" } }), ConfigError);
});

Deno.test("sentiment: a Llama-family policy trains end to end (SFT -> reward model -> PPO with LoRA)", async () => {
  const input = {
    model: { family: "llama" as const, n_embd: 32, n_layer: 1, n_head: 2 },
    sft: { steps: 30, corpus_size: 200 },
    reward_model: { steps: 30, pairs: 64, held_out: 32 },
    updates: 2,
    batch: 8,
    max_new_tokens: 12,
    lora: { r: 4 },
    eval: { samples: 8 },
  };
  const out = `${OUT}/llama`;
  const r = await runSentimentTrial(input, out, { cacheDir: CACHE });
  for (const e of [r.before, r.after]) {
    for (const k of ["rm_score", "gold_score", "kl", "response_length"] as const) {
      assert.ok(Number.isFinite(e[k]), `${k}: ${e[k]}`);
    }
  }
  assert.ok(r.reward_model.held_out_accuracy >= 0 && r.reward_model.held_out_accuracy <= 1);
  assert.ok(Number.isFinite(r.sft.held_out_nll));
  const rows = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(rows.length, 2);
  for (const row of rows) {
    for (const k of ["loss", "kl_ref", "rm_score"]) {
      assert.ok(Number.isFinite(row[k]), `${k}: ${row[k]}`);
    }
  }
  const s = await SENTIMENT_KIND.summarize(out);
  assert.ok(Number.isFinite(s.metrics.rm_accuracy as number));
  assert.ok(Number.isFinite(s.metrics.gold_score_before as number));
  // The SFT stage folder is a transformers Llama folder with the byte tokenizer.
  const stageDirs = (stage: string) =>
    [...Deno.readDirSync(`${CACHE}/${stage}`)].map((e) => e.name).filter((n) => !n.startsWith("."));
  const sftDirs = stageDirs("sentiment-sft");
  assert.equal(sftDirs.length, 1);
  const sftDir = `${CACHE}/sentiment-sft/${sftDirs[0]}/model`;
  const config = JSON.parse(await Deno.readTextFile(`${sftDir}/config.json`));
  assert.equal(config.model_type, "llama");
  assert.equal(config.vocab_size, 257);
  assert.equal(config.intermediate_size, 128);
  assert.ok(config.proxima_stage.held_out_nll > 0);
  await Deno.stat(`${sftDir}/tokenizer.json`);
  const rmDirs = stageDirs("sentiment-rm");
  const rmConfig = JSON.parse(
    await Deno.readTextFile(`${CACHE}/sentiment-rm/${rmDirs[0]}/model/config.json`),
  );
  assert.equal(rmConfig.architectures[0], "LlamaForSequenceClassification");
  // Either family's folders are accepted as inputs by path.
  const r2 = await runSentimentTrial(
    {
      ...input,
      lora: { r: 0 },
      policy_path: sftDir,
      reward_model_path: `${CACHE}/sentiment-rm/${rmDirs[0]}/model`,
      updates: 1,
    },
    `${OUT}/llama-paths`,
    { cacheDir: CACHE },
  );
  assert.ok(Number.isFinite(r2.after.rm_score));
});

Deno.test("sentiment: a sweep whose batch cannot fit in memory is refused at planning, before any trial", async () => {
  assert.deepEqual(await SENTIMENT_KIND.validate!(parseSentimentConfig({})), []);
  const exp = defineExperiment({
    name: "huge",
    task: "sentiment",
    base: { batch: 1e9 },
    sweep: grid({ seed: [1, 2] }),
  });
  const plan = planExperiment(exp, { file: "experiments/huge.ts", codeVersion: "test" });
  const err = await validateInputs(plan).then(() => null, (e) => e);
  assert.ok(err instanceof ConfigError, String(err));
  assert.match(err.message, /experiments\/huge\.ts: 1 problem \(no trial was started\)/);
  assert.match(err.message, /batch/);
  assert.match(err.message, /estimated peak memory [\d.]+ GB .*exceeds/);
  assert.match(err.message, /lower batch or model\.n_positions/);
  // A single trial refuses it before anything trains (the stage cache stays empty).
  const cache = Deno.makeTempDirSync();
  await assert.rejects(
    runSentimentTrial({ batch: 1e9 }, `${OUT}/huge`, { cacheDir: cache }),
    /sentiment config: batch: estimated peak memory .* exceeds[^]*fix: lower batch/,
  );
  assert.deepEqual([...Deno.readDirSync(cache)], []);
  Deno.removeSync(cache, { recursive: true });
  // A separate value trunk and LoRA enter the estimate.
  const m = sentimentMemory(parseSentimentConfig({ value_model: "separate" }));
  assert.ok((m.valueParams ?? 0) > 0);
  // jsx names its own batch key.
  const [p] = await JSX_KIND.validate!(JSX_KIND.parse({ samples_per_prompt: 1e8 }));
  assert.equal(p.key, "samples_per_prompt");
  assert.match(p.fix, /lower samples_per_prompt or model\.n_positions/);
});
