/**
 * `deno task bench gpt`: a GPT-2 language model in Proxima against the references, measured
 * in ONE run on the same machine and thread count:
 *
 * - train step (ms/step): B=8, T=64, d=128, L=2, H=4, V=256, full causal LM loss (mean token
 *   cross entropy over all B·T positions), AdamW, grad-norm clip 1.0, float32 — Proxima's
 *   Trainer (one ONNX call per step) vs PyTorch 1.13 running the same math (bench/gpt_ref.py,
 *   OMP_WAIT_POLICY=PASSIVE);
 * - rollout (tokens/s): greedy generation of 64 new tokens for 8 left-padded prompts (and for
 *   1 prompt) — Proxima's `generate` (lib/nn/sample.ts) vs transformers.js `generate` on the
 *   SAME weights exported with lib/nn/export.ts (d=128, L=2, H=4, V=256, 128 positions).
 *   Greedy on both sides, so the tokens must agree (checked).
 *
 * The machine may be shared and noisy, so both comparisons alternate between the two sides
 * in rounds and report medians (train step: Proxima and a long-lived PyTorch process driven
 * over stdin, `bench/gpt_ref.py --serve`).
 * @module
 */
import { AutoModelForCausalLM, env, Tensor as HfTensor } from "@huggingface/transformers";
import { tensor } from "../lib/onnx/session.ts";
import { adamw } from "../lib/onnx/optim.ts";
import { Trainer, type TrainStepSpec } from "../lib/onnx/train.ts";
import { type GptConfig, gptForward, gptShapes, initGpt, tokenLogprobs } from "../lib/nn/gpt.ts";
import { generate } from "../lib/nn/sample.ts";
import { saveHfFolder } from "../lib/nn/hf.ts";
import { exportOnnx } from "../lib/nn/export.ts";
import { Rng } from "../lib/rng.ts";
import { flattenSpec, packFlat } from "../lib/onnx/flat.ts";
import { anchorEnv, anchorLine, anchorPython, LineChild, median, table } from "./anchor.ts";

export interface GptBenchOptions {
  threads: number;
  steps: number;
  warmup: number;
}

const B = 8, T = 64;
const cfg: GptConfig = { vocabSize: 256, nPositions: T, nEmbd: 128, nLayer: 2, nHead: 4 };
const HP = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, max_grad_norm: 1 };

/** The Proxima train step of the benchmark (exported for profiling scripts). */
export function gptLmSpec(c: GptConfig = cfg): TrainStepSpec {
  return {
    dtype: "float32",
    params: gptShapes(c),
    batch: {
      tokens: { dtype: "int64", shape: ["B", "T"] },
      targets: { dtype: "int64", shape: ["B", "T"] },
    },
    loss: (g, p, b) => {
      const { logits } = gptForward(g, c, p, b.tokens);
      return { loss: g.neg(g.reduceMean(tokenLogprobs(g, logits, b.targets))) };
    },
    optimizer: adamw,
  };
}

/** bench/gpt_ref.py --serve under the anchor (bench/anchor.ts). */
class TorchServer {
  private constructor(private readonly child: LineChild) {}

  static start(o: GptBenchOptions): TorchServer {
    const script = new URL("./gpt_ref.py", import.meta.url).pathname;
    const args = [
      script,
      ...["--serve", "--threads", o.threads, "--batch", B, "--seq", T, "--embd", cfg.nEmbd],
      ...["--layers", cfg.nLayer, "--heads", cfg.nHead, "--vocab", cfg.vocabSize],
      ...["--warmup", o.warmup],
    ].map(String);
    return new TorchServer(
      LineChild.spawn("PyTorch reference", anchorPython(), args, anchorEnv(o.threads)),
    );
  }

  read(): Promise<Record<string, unknown>> {
    return this.child.read();
  }

  async run(variant: "loop" | "foreach", steps: number): Promise<{ ms: number; loss: number }> {
    const r = await this.child.ask(`run ${variant} ${steps}`);
    return { ms: r.ms as number, loss: r.loss as number };
  }

  close(): Promise<void> {
    return this.child.close();
  }
}

/** A Proxima trainer for the benchmark step, per-tensor or flat parameters. */
async function proximaTrainer(o: GptBenchOptions, flatParams: boolean) {
  const init = initGpt(cfg, new Rng(0), "float32");
  const spec = gptLmSpec();
  const trainer = flatParams
    ? await (() => {
      const f = flattenSpec(spec);
      return Trainer.create(f.spec, { flat: packFlat(f.layout, init, "float32") }, {
        threads: o.threads,
      });
    })()
    : await Trainer.create(spec, init, { threads: o.threads });
  const rng = new Rng(1);
  const draw = () => Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
  const batch = {
    tokens: tensor("int64", [B, T], draw()),
    targets: tensor("int64", [B, T], draw()),
  };
  const run = async (steps: number) => {
    const times: number[] = [];
    let loss = NaN;
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      loss = (await trainer.step(batch, HP)).loss[0];
      times.push(performance.now() - t0);
    }
    return { ms: median(times), loss };
  };
  await run(o.warmup);
  return run;
}

/** Steps per round of the alternating measurement. */
const ROUND_STEPS = 10;

/**
 * Train-step times of the four variants, measured in alternating rounds of ROUND_STEPS steps
 * (Proxima per-tensor, Proxima flat, PyTorch loop, PyTorch foreach), so a slow patch of the
 * machine hits every variant alike. Per variant: the median over rounds of the round medians.
 */
async function trainSteps(o: GptBenchOptions) {
  const torch = TorchServer.start(o);
  try {
    const meta = await torch.read();
    const ours = { tensor: await proximaTrainer(o, false), flat: await proximaTrainer(o, true) };
    const rounds = Math.max(3, Math.ceil(o.steps / ROUND_STEPS));
    const ms: Record<string, number[]> = { tensor: [], flat: [], loop: [], foreach: [] };
    const loss: Record<string, number> = {};
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const v of ["tensor", "flat"] as const) {
        const x = await ours[v](ROUND_STEPS);
        ms[v].push(x.ms);
        loss[v] = x.loss;
      }
      for (const v of ["loop", "foreach"] as const) {
        const x = await torch.run(v, ROUND_STEPS);
        ms[v].push(x.ms);
        loss[v] = x.loss;
      }
      ratios.push(
        Math.min(ms.tensor[r], ms.flat[r]) / Math.min(ms.loop[r], ms.foreach[r]),
      );
    }
    const med = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)]));
    return { meta, med, loss, rounds, ratio: median(ratios) };
  } finally {
    await torch.close();
  }
}

/** Prompts of 8..8+n-1 tokens (different lengths, so the batch is left-padded). */
function prompts(n: number): number[][] {
  const rng = new Rng(7);
  return Array.from(
    { length: n },
    (_, b) => Array.from({ length: 8 + b }, () => rng.int(cfg.vocabSize - 1)),
  );
}

const NEW_TOKENS = 64;

/** Rounds of the alternating rollout measurement. */
const ROLL_ROUNDS = 15;

/**
 * Wall times of each side measured in rounds (one warm-up call each first; the order rotates
 * every round), so a slow patch of the machine hits every side; the median per side, and each
 * side's last result.
 */
async function alternate(
  sides: Record<string, () => Promise<number[][]>>,
): Promise<Record<string, { ms: number; out: number[][] }>> {
  const names = Object.keys(sides);
  const out: Record<string, number[][]> = {}, ms: Record<string, number[]> = {};
  for (const n of names) [out[n], ms[n]] = [await sides[n](), []];
  for (let r = 0; r < ROLL_ROUNDS; r++) {
    for (let i = 0; i < names.length; i++) {
      const n = names[(i + r) % names.length];
      const t0 = performance.now();
      out[n] = await sides[n]();
      ms[n].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(names.map((n) => [n, { ms: median(ms[n]), out: out[n] }]));
}

/** The rollout model: the benchmark's, with room for prompt + 64 new tokens. */
const rollCfg: GptConfig = { ...cfg, nPositions: 128 };

async function rollouts(o: GptBenchOptions, dir: string) {
  const params = initGpt(rollCfg, new Rng(3), "float32");
  await saveHfFolder(`${dir}/m`, rollCfg, params);
  await exportOnnx(`${dir}/m`);
  env.allowRemoteModels = false;
  const model = await AutoModelForCausalLM.from_pretrained(`${dir}/m`, {
    local_files_only: true,
    session_options: { intraOpNumThreads: o.threads, interOpNumThreads: 1 },
  });
  // transformers' generate in PyTorch 2.13 (the anchor), on the same folder.
  await Deno.writeTextFile(
    `${dir}/batch.json`,
    JSON.stringify({ tokens: [[0]], targets: [[0]], prompts: prompts(8) }),
  );
  const torch = LineChild.spawn(
    "PyTorch reference",
    anchorPython(),
    [
      new URL("./scale_ref.py", import.meta.url).pathname,
      ...["--folder", `${dir}/m`, "--batch", `${dir}/batch.json`, "--threads", String(o.threads)],
    ],
    anchorEnv(o.threads),
  );
  const rows: {
    n: number;
    ours: number;
    tjs: number;
    torch: number;
    match: boolean;
    torchMatch: boolean;
  }[] = [];
  try {
    await torch.read();
    for (const n of [8, 1]) {
      const ps = prompts(n);
      const W = Math.max(...ps.map((p) => p.length));
      const ids = new BigInt64Array(n * W), mask = new BigInt64Array(n * W);
      ps.forEach((p, b) =>
        p.forEach((t, i) => {
          ids[b * W + W - p.length + i] = BigInt(t);
          mask[b * W + W - p.length + i] = 1n;
        })
      );
      const r = await alternate({
        ours: async () =>
          (await generate({ cfg: rollCfg, params }, ps, {
            maxNewTokens: NEW_TOKENS,
            temperature: 0,
            padTokenId: 0,
            rng: new Rng(0),
            session: { threads: o.threads },
          })).responses,
        tjs: async () => {
          const seqs = await model.generate({
            input_ids: new HfTensor("int64", ids, [n, W]),
            attention_mask: new HfTensor("int64", mask, [n, W]),
            max_new_tokens: NEW_TOKENS,
            do_sample: false,
            eos_token_id: null, // never stop early: exactly NEW_TOKENS per row, as on our side
          } as Record<string, unknown>);
          return (seqs as unknown as { tolist(): bigint[][] }).tolist().map((row) =>
            row.slice(W).map(Number)
          );
        },
        torch: async () => (await torch.ask(`generate ${NEW_TOKENS} ${n}`)).tokens as number[][],
      });
      const same = (rows: number[][]) =>
        rows.every((row, b) => row.join() === r.ours.out[b].join());
      const tokens = n * NEW_TOKENS;
      rows.push({
        n,
        ours: tokens / r.ours.ms * 1e3,
        tjs: tokens / r.tjs.ms * 1e3,
        torch: tokens / r.torch.ms * 1e3,
        match: same(r.tjs.out),
        torchMatch: same(r.torch.out),
      });
    }
  } finally {
    await torch.close();
  }
  return rows;
}

/** Run the GPT benchmark and print the comparison tables. */
export async function benchGpt(o: GptBenchOptions): Promise<void> {
  console.log(
    `gpt bench: threads=${o.threads}, GPT-2 B=${B} T=${T} d=${cfg.nEmbd} L=${cfg.nLayer} ` +
      `H=${cfg.nHead} V=${cfg.vocabSize}, full causal LM loss, AdamW + clip 1.0, float32`,
  );
  const t = await trainSteps(o);
  const torchName = `PyTorch ${t.meta.torch}`;
  const f = (x: number) => x.toFixed(2);
  console.log(table(["train step (ms/step, median)", "Proxima", torchName, "ratio", "loss"], [
    [
      "Proxima per-tensor params vs torch AdamW(foreach=False)",
      f(t.med.tensor),
      f(t.med.loop),
      f(t.med.tensor / t.med.loop),
      `${t.loss.tensor.toFixed(3)} / ${t.loss.loop.toFixed(3)}`,
    ],
    [
      "Proxima flat params vs torch AdamW(foreach=True)",
      f(t.med.flat),
      f(t.med.foreach),
      f(t.med.flat / t.med.foreach),
      `${t.loss.flat.toFixed(3)} / ${t.loss.foreach.toFixed(3)}`,
    ],
  ]));
  const best = Math.min(t.med.tensor, t.med.flat), bestTorch = Math.min(t.med.loop, t.med.foreach);
  console.log(
    `train-step time ratio, best Proxima / best PyTorch: ${(best / bestTorch).toFixed(2)}x ` +
      `(median of ${t.rounds} alternating rounds: ${t.ratio.toFixed(2)}x; lower is better; ` +
      `target <= 1.0, goal <= 0.67). Loss column: Proxima / PyTorch after the same number of ` +
      `steps on a fixed random batch (own init and batch per side; both start near ln 256 = 5.55).`,
  );

  const dir = await Deno.makeTempDir({ prefix: "proxima_bench_gpt_" });
  try {
    const rs = await rollouts(o, dir);
    console.log(table(
      [
        "rollout (greedy, 64 new tokens)",
        "Proxima tok/s",
        `transformers (PyTorch ${t.meta.torch}) tok/s`,
        "ratio",
        "transformers.js tok/s",
        "ratio",
        "same tokens",
      ],
      rs.map((r) => [
        `${r.n} prompt${r.n > 1 ? "s (left-padded)" : ""}`,
        r.ours.toFixed(0),
        r.torch.toFixed(0),
        (r.ours / r.torch).toFixed(2),
        r.tjs.toFixed(0),
        (r.ours / r.tjs).toFixed(2),
        r.match && r.torchMatch ? "yes" : `NO (torch ${r.torchMatch}, js ${r.match})`,
      ]),
    ));
    console.log(
      `rollout ratio = Proxima tokens/s / theirs (higher is better); median of ${ROLL_ROUNDS} ` +
        `rounds, the three sides in rotating order, same weights, ${o.threads} threads`,
    );
    console.log(anchorLine(t.meta, o.threads));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
