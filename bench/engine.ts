/**
 * `deno task bench engine`: the same MLP train step (3 hidden layers of 512, tanh,
 * batch 256, MSE, AdamW, grad-norm clip 1.0) in Proxima and in PyTorch, same thread
 * count, measured in ONE run; plus MatMul 1024³ GFLOP/s in both.
 * @module
 */
import { Graph } from "../lib/onnx/graph.ts";
import { compile, tensor } from "../lib/onnx/session.ts";
import { adamw } from "../lib/onnx/optim.ts";
import { repeatSteps, Trainer, type TrainStepSpec } from "../lib/onnx/train.ts";
import { initMlp, type MlpConfig, mlpForward, mlpShapes } from "../lib/nn/mlp.ts";
import { Rng } from "../lib/rng.ts";
import { runTorch } from "./torch_ref.ts";

export interface EngineBenchOptions {
  threads: number;
  steps: number;
  warmup: number;
  /** Steps fused per call for the extra "fused" row. */
  fuse: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function proximaMatmul(
  n: number,
  threads: number,
  iters: number,
): Promise<{ ms: number; gflops: number }> {
  const g = new Graph("matmul");
  g.output(g.matmul(g.input("a", "float32", [n, n]), g.input("b", "float32", [n, n])), "c");
  const s = await compile(g, { threads });
  const rng = new Rng(0);
  const a = tensor("float32", [n, n], rng.fillNormal(new Float32Array(n * n)));
  const b = tensor("float32", [n, n], rng.fillNormal(new Float32Array(n * n)));
  const c = tensor("float32", [n, n]);
  const times: number[] = [];
  for (let i = 0; i < iters + 3; i++) {
    const t0 = performance.now();
    await s.run({ a, b }, { c });
    if (i >= 3) times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { ms, gflops: (2 * n ** 3) / (ms / 1e3) / 1e9 };
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

async function proximaMlp(
  o: EngineBenchOptions,
  fuse: number,
): Promise<{ ms: number; loss: number }> {
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
  const times: number[] = [];
  let loss = NaN;
  const calls = Math.ceil(o.steps / fuse), warm = Math.ceil(o.warmup / fuse);
  for (let i = 0; i < calls + warm; i++) {
    const t0 = performance.now();
    const r = await trainer.step(batch, hp);
    if (i >= warm) times.push((performance.now() - t0) / fuse);
    loss = r.loss.at(-1)!;
  }
  return { ms: median(times), loss };
}

/** Run the engine benchmark and print the comparison table. */
export async function benchEngine(o: EngineBenchOptions): Promise<void> {
  console.log(
    `engine bench: threads=${o.threads}, MLP 512-512-512-512-1 tanh, batch ${BATCH}, AdamW + clip, float32`,
  );
  const torchMlp = await runTorch("mlp", {
    batch: BATCH,
    width: 512,
    depth: 3,
    in: 512,
    out: 1,
    steps: o.steps,
    warmup: o.warmup,
  }, o.threads);
  const ours = await proximaMlp(o, 1);
  const fused = await proximaMlp(o, o.fuse);
  const torchMm = await runTorch("matmul", { n: 1024, iters: 30 }, o.threads);
  const mm = await proximaMatmul(1024, o.threads, 30);
  const tms = torchMlp.ms_per_step as number;
  const rows = [
    [
      "MLP train step (ms/step)",
      "Proxima (1 step/call)",
      ours.ms.toFixed(2),
      tms.toFixed(2),
      (ours.ms / tms).toFixed(2),
    ],
    [
      `MLP train step (ms/step)`,
      `Proxima (${o.fuse} steps/call, Loop)`,
      fused.ms.toFixed(2),
      tms.toFixed(2),
      (fused.ms / tms).toFixed(2),
    ],
    [
      "MatMul 1024³ (GFLOP/s)",
      "Proxima (ORT CPU)",
      mm.gflops.toFixed(0),
      (torchMm.gflops as number).toFixed(0),
      (mm.gflops / (torchMm.gflops as number)).toFixed(2),
    ],
  ];
  const head = ["case", "engine", "Proxima", `PyTorch ${torchMlp.torch}`, "ratio Proxima/PyTorch"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(
    [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join(
      "\n",
    ),
  );
  console.log(
    `time ratio (lower is better; target <= 1.0): ${(ours.ms / tms).toFixed(2)}x single-step, ` +
      `${(fused.ms / tms).toFixed(2)}x fused. Throughput ratio for MatMul (higher is better): ` +
      `${(mm.gflops / (torchMm.gflops as number)).toFixed(2)}x`,
  );
  console.log(
    `final losses: Proxima ${ours.loss.toExponential(3)}, PyTorch ${
      (torchMlp.final_loss as number).toExponential(3)
    }`,
  );
}
