/**
 * `deno task bench engine`: the same MLP train step (3 hidden layers of 512, tanh,
 * batch 256, MSE, AdamW, grad-norm clip 1.0) in Proxima and in PyTorch 2.13 (the anchor,
 * bench/anchor.ts: tuned allocator, same threads), measured in ONE run in alternating rounds
 * against a long-lived `bench/torch_ref.py serve`; plus MatMul 1024³ GFLOP/s in both.
 * @module
 */
import { Graph } from "../lib/onnx/graph.ts";
import { compile, tensor } from "../lib/onnx/session.ts";
import { adamw } from "../lib/onnx/optim.ts";
import { repeatSteps, Trainer, type TrainStepSpec } from "../lib/onnx/train.ts";
import { initMlp, type MlpConfig, mlpForward, mlpShapes } from "../lib/nn/mlp.ts";
import { Rng } from "../lib/rng.ts";
import { anchorEnv, anchorLine, anchorPython, LineChild, median, table } from "./anchor.ts";

export interface EngineBenchOptions {
  threads: number;
  steps: number;
  warmup: number;
  /** Steps fused per call for the extra "fused" row. */
  fuse: number;
}

/** A Proxima MatMul n×n×n runner: `run(k)` times k products (ms each). */
async function proximaMatmul(n: number, threads: number) {
  const g = new Graph("matmul");
  g.output(g.matmul(g.input("a", "float32", [n, n]), g.input("b", "float32", [n, n])), "c");
  const s = await compile(g, { threads });
  const rng = new Rng(0);
  const a = tensor("float32", [n, n], rng.fillNormal(new Float32Array(n * n)));
  const b = tensor("float32", [n, n], rng.fillNormal(new Float32Array(n * n)));
  const c = tensor("float32", [n, n]);
  return async (k: number) => {
    const times: number[] = [];
    for (let i = 0; i < k; i++) {
      const t0 = performance.now();
      await s.run({ a, b }, { c });
      times.push(performance.now() - t0);
    }
    return times;
  };
}

const cfg: MlpConfig = { sizes: [512, 512, 512, 512, 1], activation: "tanh" };
const BATCH = 256;

function mlpSpec(fuse: number): TrainStepSpec {
  return {
    dtype: "float32",
    params: mlpShapes(cfg),
    batch: {
      x: { dtype: "float32", shape: [BATCH, 512] },
      y: { dtype: "float32", shape: [BATCH, 1] },
    },
    loss: (g, p, b) => {
      const e = g.sub(mlpForward(g, cfg, p, b.x), b.y);
      return { loss: g.reduceMean(g.mul(e, e)) };
    },
    optimizer: adamw,
    fuse,
  };
}

/** A Proxima MLP trainer: `run(k)` times k optimizer steps (ms per step), `fuse` per call. */
async function proximaMlp(o: EngineBenchOptions, fuse: number) {
  const trainer = await Trainer.create(mlpSpec(fuse), initMlp(cfg, new Rng(0), "float32"), {
    threads: o.threads,
  });
  const rng = new Rng(1);
  const x = rng.fillNormal(new Float32Array(BATCH * 512)),
    y = rng.fillNormal(new Float32Array(BATCH));
  const batch = {
    x: repeatSteps(tensor("float32", [BATCH, 512], x), fuse),
    y: repeatSteps(tensor("float32", [BATCH, 1], y), fuse),
  };
  const hp = {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.01,
    max_grad_norm: 1,
  };
  let loss = NaN;
  const run = async (k: number) => {
    const times: number[] = [];
    for (let i = 0; i < Math.ceil(k / fuse); i++) {
      const t0 = performance.now();
      loss = (await trainer.step(batch, hp)).loss.at(-1)!;
      times.push((performance.now() - t0) / fuse);
    }
    return times;
  };
  return { run, loss: () => loss };
}

/** Steps (or products) per side per round. */
const ROUND = 10;

/** Run the engine benchmark and print the comparison table. */
export async function benchEngine(o: EngineBenchOptions): Promise<void> {
  console.log(
    `engine bench: threads=${o.threads}, MLP 512-512-512-512-1 tanh, batch ${BATCH}, AdamW + ` +
      `clip, float32; MatMul 1024³`,
  );
  const torch = LineChild.spawn(
    "PyTorch reference",
    anchorPython(),
    [
      new URL("./torch_ref.py", import.meta.url).pathname,
      "serve",
      ...["--threads", o.threads, "--batch", BATCH, "--width", 512, "--depth", 3],
      ...["--in", 512, "--out", 1, "--n", 1024, "--warmup", o.warmup],
    ].map(String),
    anchorEnv(o.threads),
  );
  try {
    const meta = await torch.read();
    const single = await proximaMlp(o, 1), fused = await proximaMlp(o, o.fuse);
    const mm = await proximaMatmul(1024, o.threads);
    await single.run(o.warmup);
    await fused.run(Math.max(o.warmup, o.fuse));
    await mm(3);
    const ms: Record<string, number[]> = { single: [], fused: [], torch: [], mm: [], torchMm: [] };
    let torchLoss = NaN;
    const rounds = Math.max(3, Math.ceil(o.steps / ROUND));
    for (let r = 0; r < rounds; r++) {
      const ours = async () => {
        ms.single.push(...await single.run(ROUND));
        ms.fused.push(...await fused.run(Math.max(ROUND, o.fuse)));
        ms.mm.push(...await mm(ROUND));
      };
      const theirs = async () => {
        const t = await torch.ask(`mlp ${ROUND}`);
        ms.torch.push(...(t.ms as number[]));
        torchLoss = t.loss as number;
        ms.torchMm.push(...((await torch.ask(`matmul ${ROUND}`)).ms as number[]));
      };
      if (r % 2) await theirs(), await ours();
      else await ours(), await theirs();
    }
    const m = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)]));
    const gf = (t: number) => (2 * 1024 ** 3) / (t / 1e3) / 1e9;
    console.log(table(
      ["case", "engine", "Proxima", `PyTorch ${meta.torch}`, "ratio Proxima/PyTorch"],
      [
        [
          "MLP train step (ms/step)",
          "Proxima (1 step/call)",
          m.single.toFixed(2),
          m.torch.toFixed(2),
          (m.single / m.torch).toFixed(2),
        ],
        [
          "MLP train step (ms/step)",
          `Proxima (${o.fuse} steps/call, Loop)`,
          m.fused.toFixed(2),
          m.torch.toFixed(2),
          (m.fused / m.torch).toFixed(2),
        ],
        [
          "MatMul 1024³ (GFLOP/s)",
          "Proxima (ORT CPU)",
          gf(m.mm).toFixed(0),
          gf(m.torchMm).toFixed(0),
          (m.torchMm / m.mm).toFixed(2),
        ],
      ],
    ));
    console.log(
      `time ratio (lower is better; target <= 1.0): ${(m.single / m.torch).toFixed(2)}x ` +
        `single-step, ${(m.fused / m.torch).toFixed(2)}x fused; MatMul throughput ratio ` +
        `(higher is better) ${(m.torchMm / m.mm).toFixed(2)}x. Medians over ${rounds} ` +
        `alternating rounds of ${ROUND} after ${o.warmup} warm-up steps per side.`,
    );
    console.log(anchorLine(meta, o.threads));
    console.log(
      `final losses: Proxima ${single.loss().toExponential(3)}, PyTorch ${
        torchLoss.toExponential(3)
      } (own init per side)`,
    );
  } finally {
    await torch.close();
  }
}
