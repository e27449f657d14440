/**
 * `deno task bench scale`: real-size models in Proxima against PyTorch 2.13 (the anchor: torch
 * with the tuned glibc allocator, MALLOC_MMAP_THRESHOLD_=1073741824
 * MALLOC_TRIM_THRESHOLD_=1073741824, same threads, same math), measured in ONE run:
 *
 * - GPT-2 small (124M parameters), B=4, T=128, every weight trained, AdamW + clip 1.0;
 * - a Qwen2.5-0.5B-shaped model (494M), LoRA r=16 on all seven projections, B=4, T=256;
 *
 * each: ms per train step (median of the measured steps, warm-up excluded), peak RSS of the
 * training phase, the first steps' times (second step / median), and rollout tokens/s (8 left-
 * padded prompts, 64 new tokens, greedy, KV cache) against transformers' `generate`.
 *
 * Both sides are long-lived child processes on the same weights (a model folder written once
 * from fixed seeds; the LoRA case also an adapter folder) and the same batch, driven over stdin
 * in alternating rounds (the order flips each round), so a slow patch of the shared machine
 * hits both. Each side's peak RSS is its own process's VmHWM (reset between the rollout and
 * training phases). A watchdog kills a child above `--max-rss-gb`.
 * @module
 */
import { anchorEnv, anchorPython, LineChild, median, table } from "./anchor.ts";
import { exportOnnx } from "../lib/nn/export.ts";

export interface ScaleBenchOptions {
  threads: number;
  /** Alternating rounds of train steps (after the warm-up). */
  rounds: number;
  /** Train steps per side per round. */
  roundSteps: number;
  /** Warm-up train steps per side (timed, reported as the first steps, excluded from medians). */
  warmup: number;
  /** Alternating rollout rounds (after one warm-up rollout per side). */
  rollRounds: number;
  /** Cases to run: "gpt2", "qwen". */
  models: string[];
  /** Kill a child whose RSS exceeds this many GB. */
  maxRssGb: number;
  /** Folder for the model folders (reused when present); default a temporary one, removed. */
  cache?: string;
  /** Skip rollouts. */
  noRollout?: boolean;
  /** Skip training (rollouts only). */
  noTrain?: boolean;
}

const PROMPTS = 8, NEW_TOKENS = 64;

export interface Case {
  name: string;
  title: string;
  batch: number;
  seq: number;
  lora: boolean;
  vocab: number;
  /** Also time transformers.js' generate on the folder's ONNX export (external data past 2 GB). */
  tjs?: boolean;
}

export const CASES: Record<string, Case> = {
  gpt2: {
    name: "gpt2",
    title: "GPT-2 small (124M), B=4 T=128, full AdamW",
    batch: 4,
    seq: 128,
    lora: false,
    vocab: 50257,
    tjs: true,
  },
  qwen: {
    name: "qwen",
    title: "Qwen2.5-0.5B shape (494M), LoRA r=16, B=4 T=256",
    batch: 4,
    seq: 256,
    lora: true,
    vocab: 151936,
    tjs: true,
  },
};

/** Deterministic ints in [lo, hi) (a 32-bit LCG; the batch only needs to be fixed). */
function ints(seed: number, n: number, lo: number, hi: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo));
  });
}

export function batchFile(c: Case) {
  const rows = (seed: number) =>
    Array.from({ length: c.batch }, (_, b) => ints(seed + b, c.seq, 0, c.vocab));
  return {
    tokens: rows(100),
    targets: rows(200),
    prompts: Array.from({ length: PROMPTS }, (_, b) => ints(300 + b, 8 + b, 1, c.vocab)),
  };
}

const here = (f: string) => new URL(`./${f}`, import.meta.url).pathname;

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

async function makeFolders(c: Case, dir: string, threads: number): Promise<void> {
  if (await exists(`${dir}/model/config.json`) && (!c.lora || await exists(`${dir}/adapter`))) {
    return;
  }
  await Deno.mkdir(dir, { recursive: true });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", here("scale_worker.ts"), "--make", c.name, "--out", dir],
    env: { OMP_NUM_THREADS: String(threads) },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`bench scale: writing the ${c.name} folders failed`);
}

interface CaseResult {
  c: Case;
  ours: SideResult;
  torch: SideResult;
  meta: Record<string, unknown>;
  tokensAgree?: number;
  /** transformers.js rollouts (ms each) and its token agreement with Proxima's. */
  tjs?: { ms: number[]; agree: number };
}

/** transformers.js' greedy generate on the folder's ONNX export, in this process. */
async function transformersJs(dir: string, prompts: number[][], threads: number) {
  const { AutoModelForCausalLM, env, Tensor } = await import("@huggingface/transformers");
  await exportOnnx(`${dir}/model`);
  env.allowRemoteModels = false;
  const model = await AutoModelForCausalLM.from_pretrained(`${dir}/model`, {
    local_files_only: true,
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  });
  const n = prompts.length, W = Math.max(...prompts.map((p) => p.length));
  const ids = new BigInt64Array(n * W), mask = new BigInt64Array(n * W);
  prompts.forEach((p, b) =>
    p.forEach((t, i) => {
      ids[b * W + W - p.length + i] = BigInt(t);
      mask[b * W + W - p.length + i] = 1n;
    })
  );
  const generate = async (): Promise<number[][]> => {
    const seqs = await model.generate({
      input_ids: new Tensor("int64", ids, [n, W]),
      attention_mask: new Tensor("int64", mask, [n, W]),
      max_new_tokens: NEW_TOKENS,
      do_sample: false,
      eos_token_id: null,
    } as Record<string, unknown>);
    return (seqs as unknown as { tolist(): bigint[][] }).tolist().map((r) =>
      r.slice(W).map(Number)
    );
  };
  return { generate, dispose: () => model.dispose() };
}

interface SideResult {
  first: number[];
  ms: number[];
  loss: number[];
  peak: number;
  buildMs?: number;
  rollMs: number[];
  rollPeak?: number;
  /** Building the rollout's decoder (Proxima: the packed weights), ms. */
  rollBuildMs?: number;
}

async function runCase(c: Case, o: ScaleBenchOptions, dir: string): Promise<CaseResult> {
  await makeFolders(c, dir, o.threads);
  const batchPath = `${dir}/batch.json`;
  await Deno.writeTextFile(batchPath, JSON.stringify(batchFile(c)));
  const common = ["--folder", `${dir}/model`, "--batch", batchPath, "--threads", String(o.threads)];
  const extra = c.lora ? ["--adapter", `${dir}/adapter`] : [];
  const t = String(o.threads);
  const torch = LineChild.spawn(
    "PyTorch reference",
    anchorPython(),
    [here("scale_ref.py"), ...common, ...extra],
    anchorEnv(o.threads),
    o.maxRssGb,
  );
  // Proxima runs with its own defaults: no allocator environment.
  const ours = LineChild.spawn(
    "Proxima worker",
    Deno.execPath(),
    ["run", "-A", here("scale_worker.ts"), ...common, ...extra],
    { OMP_NUM_THREADS: t },
    o.maxRssGb,
  );
  try {
    const [meta] = await Promise.all([torch.read(), ours.read()]);
    const sides = { ours, torch };
    const res: Record<"ours" | "torch", SideResult> = {
      ours: { first: [], ms: [], loss: [], peak: 0, rollMs: [] },
      torch: { first: [], ms: [], loss: [], peak: 0, rollMs: [] },
    };
    const order = (
      r: number,
    ) => (r % 2 ? (["torch", "ours"] as const) : (["ours", "torch"] as const));
    let tokensAgree: number | undefined;
    let tjs: CaseResult["tjs"];
    if (!o.noRollout) {
      const js = c.tjs ? await transformersJs(dir, batchFile(c).prompts, o.threads) : undefined;
      const toks: Record<string, number[][]> = {};
      for (const k of order(0)) {
        const x = await sides[k].ask(`generate ${NEW_TOKENS}`);
        toks[k] = x.tokens as number[][];
        if (x.build_ms !== undefined) res[k].rollBuildMs = x.build_ms as number;
      }
      if (js) toks.js = await js.generate();
      const jsMs: number[] = [];
      for (let r = 0; r < o.rollRounds; r++) {
        for (const k of order(r)) {
          const x = await sides[k].ask(`generate ${NEW_TOKENS}`);
          res[k].rollMs.push(x.ms as number);
        }
        if (js) {
          const t0 = performance.now();
          toks.js = await js.generate();
          jsMs.push(performance.now() - t0);
        }
      }
      const agree = (other: number[][]) => {
        let same = 0;
        toks.ours.forEach((row, b) => row.forEach((x, i) => (same += x === other[b][i] ? 1 : 0)));
        return same / (PROMPTS * NEW_TOKENS);
      };
      tokensAgree = agree(toks.torch);
      if (js) {
        tjs = { ms: jsMs, agree: agree(toks.js) };
        await js.dispose();
      }
      for (const k of ["ours", "torch"] as const) res[k].rollPeak = sides[k].status().VmHWM;
    }
    if (o.noTrain) return { c, ours: res.ours, torch: res.torch, meta, tokensAgree, tjs };
    for (const k of ["ours", "torch"] as const) sides[k].resetPeak();
    for (const k of order(0)) {
      const x = await sides[k].ask(`train ${o.warmup}`);
      res[k].first.push(...(x.ms as number[]));
      res[k].loss.push(...(x.loss as number[]));
      if (x.build_ms !== undefined) res[k].buildMs = x.build_ms as number;
    }
    for (let r = 0; r < o.rounds; r++) {
      for (const k of order(r)) {
        const x = await sides[k].ask(`train ${o.roundSteps}`);
        res[k].ms.push(...(x.ms as number[]));
        res[k].loss.push(...(x.loss as number[]));
      }
    }
    for (const k of ["ours", "torch"] as const) res[k].peak = sides[k].status().VmHWM ?? NaN;
    return { c, ours: res.ours, torch: res.torch, meta, tokensAgree, tjs };
  } finally {
    await Promise.all([ours.close(), torch.close()]);
  }
}

/** Run the scale benchmark and print the comparison. */
export async function benchScale(o: ScaleBenchOptions): Promise<void> {
  const root = o.cache ?? await Deno.makeTempDir({ prefix: "proxima_bench_scale_" });
  const results: CaseResult[] = [];
  try {
    for (const name of o.models) {
      const c = CASES[name];
      if (!c) throw new Error(`bench scale: unknown model "${name}" (${Object.keys(CASES)})`);
      console.log(`bench scale: ${c.title} ...`);
      const r = await runCase(c, o, `${root}/${name}`);
      results.push(r);
      report(r, o);
    }
  } finally {
    if (!o.cache) await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  if (results.length) {
    const m = results[0].meta;
    console.log(
      `anchor: PyTorch ${m.torch} + transformers ${m.transformers} (AdamW ${m.optim}), ` +
        `MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824, ${o.threads} threads both sides; ` +
        `medians over ${o.rounds} alternating rounds x ${o.roundSteps} steps after ${o.warmup} ` +
        `warm-up steps; time ratio = Proxima / PyTorch (target <= 1.0, goal 0.67), RSS ratio ` +
        `target <= 1.3, rollout ratio = Proxima tokens/s / PyTorch tokens/s (target >= 1.0).`,
    );
  }
}

function report(r: CaseResult, o: ScaleBenchOptions): void {
  const f0 = (x: number) => x.toFixed(0), f2 = (x: number) => x.toFixed(2);
  const gb = (x: number | undefined) => (x === undefined ? "-" : (x / 1e9).toFixed(2));
  const med = { ours: median(r.ours.ms), torch: median(r.torch.ms) };
  const second = (s: SideResult) => (s.first.length > 1 ? s.first[1] : NaN);
  const train = r.ours.ms.length
    ? [
      ["train step, ms (median)", f0(med.ours), f0(med.torch), f2(med.ours / med.torch)],
      [
        "peak RSS, GB (training)",
        gb(r.ours.peak),
        gb(r.torch.peak),
        f2(r.ours.peak / r.torch.peak),
      ],
      [
        "2nd step / median",
        f2(second(r.ours) / med.ours),
        f2(second(r.torch) / med.torch),
        "",
      ],
      [
        `first ${o.warmup} steps, ms`,
        r.ours.first.map(f0).join(" "),
        r.torch.first.map(f0).join(" "),
        "",
      ],
      [
        "loss first / last",
        `${f2(r.ours.loss[0])} / ${f2(r.ours.loss.at(-1)!)}`,
        `${f2(r.torch.loss[0])} / ${f2(r.torch.loss.at(-1)!)}`,
        "",
      ],
    ]
    : [];
  const roll = r.ours.rollMs.length
    ? [
      [
        `rollout tok/s (${PROMPTS}x${NEW_TOKENS}, greedy)`,
        f0(PROMPTS * NEW_TOKENS / median(r.ours.rollMs) * 1e3),
        f0(PROMPTS * NEW_TOKENS / median(r.torch.rollMs) * 1e3),
        f2(median(r.torch.rollMs) / median(r.ours.rollMs)),
      ],
      ["peak RSS, GB (rollout)", gb(r.ours.rollPeak), gb(r.torch.rollPeak), ""],
    ]
    : [];
  console.log(table([r.c.title, "Proxima", "PyTorch 2.13", "ratio"], [...train, ...roll]));
  if (r.tjs) {
    const tps = PROMPTS * NEW_TOKENS / median(r.tjs.ms) * 1e3;
    console.log(
      `  transformers.js (onnxruntime-node, ONNX export of the same weights): ${f0(tps)} tok/s; ` +
        `Proxima / transformers.js ${
          f2(PROMPTS * NEW_TOKENS / median(r.ours.rollMs) * 1e3 / tps)
        }; same greedy tokens as Proxima: ${(r.tjs.agree * 100).toFixed(0)}%`,
    );
  }
  if (r.ours.rollBuildMs !== undefined) {
    console.log(
      `  Proxima rollout decoder build (weights compiled in and pre-packed, once per set of ` +
        `weights, not in the rollout times): ${f0(r.ours.rollBuildMs)} ms`,
    );
  }
  if (r.ours.buildMs !== undefined) {
    console.log(
      `  Proxima session build ${f0(r.ours.buildMs)} ms (before step 1, not in the step times)`,
    );
  }
  if (r.tokensAgree !== undefined) {
    console.log(`  greedy tokens equal to transformers': ${(r.tokensAgree * 100).toFixed(0)}%`);
  }
}
