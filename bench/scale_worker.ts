/**
 * Proxima side of `deno task bench scale`, one model per process (so its peak RSS is its own):
 * the same line protocol as bench/scale_ref.py, driven by bench/scale.ts.
 *
 *     deno run -A bench/scale_worker.ts --folder DIR --batch FILE --threads 2 [--adapter DIR]
 *
 * Train step: the model of the folder (any family) on the batch's `tokens`, loss = mean token
 * cross entropy against `targets` over all B·T positions, global grad-norm clip 1.0, AdamW
 * (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01). With `--adapter` (a PEFT folder)
 * the adapters are trained and the base is frozen. Rollout: `generate` (lib/nn/sample.ts),
 * greedy, left-padded prompts, exactly N new tokens, on the folder's weights, compiled into one
 * decoder at the first "generate" (GptDecoder.withWeights: ORT pre-packs them; its build time
 * is reported as `build_ms`, like the other sides' model load).
 *
 * Protocol: first {"ready": true, ...}; "train K" -> {"ms": [...], "loss": [...]};
 * "generate N" -> {"ms", "tokens"}; "quit" or EOF ends.
 * @module
 */
import { parseArgs } from "node:util";
import { tensor } from "../lib/onnx/session.ts";
import { adamw } from "../lib/onnx/optim.ts";
import { Trainer, type TrainStepSpec } from "../lib/onnx/train.ts";
import {
  type DecoderConfig,
  decoderForward,
  decoderShapes,
  initDecoder,
  loraDefaults,
} from "../lib/nn/decoder.ts";
import { type GptConfig, tokenLogprobs } from "../lib/nn/gpt.ts";
import type { LlamaConfig } from "../lib/nn/llama_config.ts";
import { applyLora, initLora, type LoraConfig, loraShapes } from "../lib/nn/lora.ts";
import { loadModelFolder, saveModelFolder } from "../lib/nn/checkpoint.ts";
import { loadPeftAdapter, savePeftAdapter } from "../lib/nn/peft.ts";
import { generate, GptDecoder } from "../lib/nn/sample.ts";
import { Rng } from "../lib/rng.ts";

/** The benchmark's train step for any decoder (with LoRA when `lora` is given). */
export function scaleSpec(cfg: DecoderConfig, lora?: LoraConfig): TrainStepSpec {
  const shapes = decoderShapes(cfg);
  const batch = {
    tokens: { dtype: "int64" as const, shape: ["B", "T"] },
    targets: { dtype: "int64" as const, shape: ["B", "T"] },
  };
  const loss: TrainStepSpec["loss"] = (g, p, b) => {
    const params = lora ? applyLora(g, lora, p, p, { factored: true }) : p;
    const { logits } = decoderForward(g, cfg, params, b.tokens);
    return { loss: g.neg(g.reduceMean(tokenLogprobs(g, logits, b.targets))) };
  };
  if (!lora) return { dtype: "float32", params: shapes, batch, loss, optimizer: adamw };
  return {
    dtype: "float32",
    params: {}, // filled by the caller from the adapter's shapes
    frozen: shapes,
    batch,
    loss,
    optimizer: adamw,
  };
}

const HP = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, max_grad_norm: 1 };

/** GPT-2 small (124M parameters), as the Hub's `gpt2`. */
export const GPT2_SMALL: GptConfig = {
  vocabSize: 50257,
  nPositions: 1024,
  nEmbd: 768,
  nLayer: 12,
  nHead: 12,
};

/** Qwen2.5-0.5B's shapes (494M parameters; random weights). */
export const QWEN25_05B: LlamaConfig = {
  family: "llama",
  modelType: "qwen2",
  vocabSize: 151936,
  hiddenSize: 896,
  intermediateSize: 4864,
  nLayer: 24,
  nHead: 14,
  nKvHead: 2,
  headDim: 64,
  maxPositions: 32768,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  ropeScaling: { type: "default" },
  qkvBias: true,
  oBias: false,
  mlpBias: false,
  qkNorm: false,
  tieWordEmbeddings: true,
};

/** LoRA of the Qwen case: r 16, alpha 32, all seven projections (PEFT's layout). */
export const QWEN_LORA: LoraConfig = { r: 16, alpha: 32, ...loraDefaults(QWEN25_05B) };

/**
 * Write the model folder (and the LoRA adapter folder) of a benchmark case: random weights
 * from fixed seeds, so both sides load the same bytes.
 */
async function make(model: string, out: string): Promise<void> {
  const cfg = model === "gpt2" ? GPT2_SMALL : model === "qwen" ? QWEN25_05B : undefined;
  if (!cfg) throw new Error(`scale_worker --make: unknown model "${model}" (gpt2, qwen)`);
  const params = initDecoder(cfg, new Rng(0), "float32");
  await saveModelFolder(`${out}/model`, cfg, params);
  if (model === "qwen") {
    const adapters = initLora(decoderShapes(cfg), QWEN_LORA, new Rng(1), "float32");
    // B starts at zero (PEFT's init), which would make the first steps' adapter gradients of
    // A zero; small random B values make every adapter tensor train from step 1.
    const rng = new Rng(2);
    for (const [n, a] of Object.entries(adapters)) {
      if (n.endsWith(".lora_B")) rng.fillNormal(a, 1e-3);
    }
    await savePeftAdapter(`${out}/adapter`, QWEN_LORA, adapters);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      folder: { type: "string" },
      batch: { type: "string" },
      threads: { type: "string", default: "2" },
      adapter: { type: "string" },
      make: { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.make) return await make(values.make, values.out ?? ".");
  if (!values.folder || !values.batch) throw new Error("scale_worker: --folder and --batch");
  const threads = Number(values.threads);
  const t0 = performance.now();
  const m = await loadModelFolder(values.folder);
  const data = JSON.parse(await Deno.readTextFile(values.batch)) as {
    tokens: number[][];
    targets: number[][];
    prompts: number[][];
  };
  // The trainer is built at the first "train" (rollouts run first, on the initial weights).
  let trainer: Trainer | undefined;
  let decoder: GptDecoder | undefined;
  let spec: TrainStepSpec | undefined;
  const B = data.tokens.length, T = data.tokens[0].length;
  const batch = {
    tokens: tensor("int64", [B, T], data.tokens.flat()),
    targets: tensor("int64", [B, T], data.targets.flat()),
  };
  const lora = values.adapter ? await loadPeftAdapter(values.adapter) : undefined;
  const getTrainer = async () => {
    if (trainer) return trainer;
    // The rollouts are over: their packed weights go (the training phase's RSS is its own).
    decoder?.release();
    decoder = undefined;
    if (lora) {
      spec = scaleSpec(m.cfg, lora.lora);
      spec.params = loraShapes(decoderShapes(m.cfg), lora.lora);
      trainer = await Trainer.create(spec, { ...m.params, ...lora.adapters }, {
        threads,
        adopt: true,
      });
    } else {
      spec = scaleSpec(m.cfg);
      // The loaded weights become the live params (held once, as torch holds its model).
      trainer = await Trainer.create(spec, m.params, { threads, adopt: true });
    }
    return trainer;
  };
  const write = (o: unknown) =>
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\n"));
  write({
    ready: true,
    engine: "proxima",
    threads,
    trainable: Object.values(lora ? lora.adapters : m.params).reduce((s, a) => s + a.length, 0),
    load_ms: performance.now() - t0,
  });
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buf = "";
  for await (const chunk of lines) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const cmd = buf.slice(0, i).trim().split(/\s+/);
      buf = buf.slice(i + 1);
      if (cmd[0] === "quit") return;
      try {
        if (cmd[0] === "train" && cmd.length === 2) {
          const ms: number[] = [], loss: number[] = [];
          const t = performance.now();
          const trainer = await getTrainer();
          const buildMs = performance.now() - t;
          for (let s = 0; s < Number(cmd[1]); s++) {
            const t = performance.now();
            loss.push((await trainer.step(batch, HP)).loss[0]);
            ms.push(performance.now() - t);
          }
          write({ ms, loss, build_ms: buildMs });
        } else if (cmd[0] === "generate" && cmd.length === 2) {
          // One decoder with the weights compiled in, built at the first call (as the other
          // sides load their model once): the build is reported, not timed in the rollout.
          const t0 = performance.now();
          const built = !decoder;
          decoder ??= await GptDecoder.withWeights(m.cfg, m.params, { threads });
          const buildMs = performance.now() - t0;
          const t = performance.now();
          const r = await generate({ cfg: m.cfg, params: m.params }, data.prompts, {
            maxNewTokens: Number(cmd[1]),
            temperature: 0,
            padTokenId: 0,
            rng: new Rng(0),
            decoder,
          });
          write({
            ms: performance.now() - t,
            tokens: r.responses,
            ...(built ? { build_ms: buildMs } : {}),
          });
        } else write({ error: `bad command: ${cmd.join(" ")}` });
      } catch (e) {
        write({ error: String((e as Error).stack ?? e) });
      }
    }
  }
}

if (import.meta.main) await main();
