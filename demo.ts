/**
 * `deno task demo`: the main job until the sweep runner lands. Trains an MLP
 * classifier (two concentric rings) through the ONNX engine, with a progress bar,
 * and writes a safetensors checkpoint + metrics.jsonl under results/demo/.
 *
 *   deno task demo [--steps 600] [--seed 1] [--threads 2] [--device cpu|cuda] [--fuse 10]
 * @module
 */
import cliProgress from "cli-progress";
import { adamw, repeatSteps, saveSafetensors, tensor, Trainer } from "./lib/onnx/mod.ts";
import { initMlp, type MlpConfig, mlpForward, mlpShapes } from "./lib/nn/mod.ts";
import { Rng } from "./lib/rng.ts";
import { UsageError } from "./lib/errors.ts";
import { runCommand } from "./cli/boundary.ts";
import { numberFlag, parseFlags } from "./cli/flags.ts";
import { checkOutputDir } from "./cli/preflight.ts";

async function main(): Promise<number> {
  const { values } = parseFlags("demo", Deno.args, {
    steps: { type: "string", default: "600" },
    seed: { type: "string", default: "1" },
    threads: { type: "string", default: "2" },
    device: { type: "string", default: "cpu" },
    fuse: { type: "string", default: "10" },
    out: { type: "string", default: "results/demo" },
  });
  const int = (name: "steps" | "seed" | "threads" | "fuse", min?: number) =>
    numberFlag("demo", name, values[name], { integer: true, min })!;
  const steps = int("steps", 1), seed = int("seed"), fuse = int("fuse", 1);
  int("threads", 1);
  if (steps % fuse !== 0) {
    throw new UsageError(
      `demo: --steps must be a positive multiple of --fuse (${fuse}), got ${values.steps}`,
    );
  }
  if (values.device !== "cpu" && values.device !== "cuda") {
    throw new UsageError(`demo: --device must be cpu or cuda, got ${values.device}`);
  }
  await checkOutputDir("demo", "--out", values.out);

  const cfg: MlpConfig = { sizes: [2, 64, 64, 2], activation: "tanh" };
  const N = 512, rng = new Rng(seed);
  const x = new Float32Array(N * 2), label = new BigInt64Array(N);
  for (let i = 0; i < N; i++) {
    const inner = i % 2 === 1, r = inner ? 0.2 + 0.6 * rng.uniform() : 1.1 + 0.6 * rng.uniform();
    const th = 2 * Math.PI * rng.uniform();
    x[2 * i] = r * Math.cos(th);
    x[2 * i + 1] = r * Math.sin(th);
    label[i] = inner ? 1n : 0n;
  }

  const trainer = await Trainer.create(
    {
      dtype: "float32",
      params: mlpShapes(cfg),
      batch: { x: { dtype: "float32", shape: [N, 2] }, label: { dtype: "int64", shape: [N, 1] } },
      loss: (g, p, b) => {
        const logp = g.logSoftmax(mlpForward(g, cfg, p, b.x), -1);
        const picked = g.node(
          "GatherElements",
          [logp, b.label],
          { axis: { kind: "int", value: 1 } },
          undefined,
          [
            { dtype: "float32", shape: [N, 1] },
          ],
        )[0];
        return { loss: g.neg(g.reduceMean(picked)) };
      },
      optimizer: adamw,
      fuse,
    },
    initMlp(cfg, rng, "float32"),
    { device: values.device as "cpu" | "cuda", threads: Number(values.threads) },
  );

  const batch = {
    x: repeatSteps(tensor("float32", [N, 2], x), fuse),
    label: repeatSteps(tensor("int64", [N, 1], label), fuse),
  };
  await Deno.mkdir(values.out, { recursive: true });
  const metrics: string[] = [];
  const bar = new cliProgress.SingleBar({
    format: "demo |{bar}| {value}/{total} steps | loss {loss} | {rate} steps/s | ETA {eta}s",
  }, cliProgress.Presets.shades_classic);
  bar.start(steps, 0, { loss: "-", rate: "-" });
  const t0 = performance.now();
  let last = NaN;
  while (trainer.steps < steps) {
    const r = await trainer.step(batch, { lr: 1e-2, weight_decay: 0, max_grad_norm: 1 });
    r.loss.forEach((l, i) =>
      metrics.push(JSON.stringify({ step: trainer.steps - fuse + i + 1, loss: l }))
    );
    last = r.loss.at(-1)!;
    const rate = trainer.steps / ((performance.now() - t0) / 1e3);
    bar.update(trainer.steps, { loss: last.toFixed(4), rate: rate.toFixed(0) });
  }
  bar.stop();
  await Deno.writeTextFile(`${values.out}/metrics.jsonl`, metrics.join("\n") + "\n");
  await saveSafetensors(`${values.out}/checkpoint.safetensors`, trainer.stateDict(), {
    step: String(trainer.steps),
  });
  console.log(
    `demo: ${steps} AdamW steps in ${
      ((performance.now() - t0) / 1e3).toFixed(2)
    }s, final cross-entropy ${last.toFixed(4)}; ` +
      `wrote ${values.out}/metrics.jsonl and checkpoint.safetensors`,
  );
  if (!(last < 0.1)) {
    console.error(
      `demo: final loss ${last} did not reach 0.1 — the engine is not training correctly`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) await runCommand(main);
