/**
 * `deno task bench rl --rollout-rows 8,32,128`: Proxima's rollout throughput on the Qwen2.5-0.5B
 * shape at several batch sizes (rows in groups of 8 samples of one prompt, temperature 1, 32 new
 * tokens, no row ending early, the weights compiled into the sampler as an `lm` LoRA trial
 * does), printed beside two bounds measured on the same machine in the same child process:
 *
 * - weight bandwidth: a decode step reads every weight once (4 bytes × N), so at R rows
 *   tokens/s ≤ R × bandwidth / (4 N); the bandwidth is that of an ORT ReduceSum over the
 *   model's largest weight (the 0.5B's embedding: 545 MB);
 * - matmul: a token costs ≈ 2 N multiply-adds (the tied LM head included), so tokens/s ≤
 *   GFLOP/s / (2 N); GFLOP/s of an ORT MatMul [512, 896] × [896, 4864] (the 0.5B MLP's shape,
 *   the weight a constant, pre-packed as the sampler's).
 * Both probes take their best run (bounds: the machine may be shared).
 *
 * A group's 8 rows share their prompt's prefill (GptDecoder.start); the child also times the
 * prefill of 32 rows (4 groups) shared and with every row prefilled.
 *
 * The child: `deno run -A bench/rollout_rows.ts --folder DIR --rows 8,32,128 --threads N`
 * prints one JSON line.
 * @module
 */
import { parseArgs } from "node:util";
import { LineChild, table } from "./anchor.ts";
import { Graph } from "../lib/onnx/graph.ts";
import { compile, compileWithConstants, tensor } from "../lib/onnx/session.ts";
import { loadModelFolder } from "../lib/nn/checkpoint.ts";
import { decoderShapes } from "../lib/nn/decoder.ts";
import { generate, GptDecoder } from "../lib/nn/sample.ts";
import { Rng } from "../lib/rng.ts";

/** One rows count's measured and bound tokens/s. */
export interface RowsResult {
  rows: number;
  tokensPerS: number;
  bandwidthBound: number;
  matmulBound: number;
}

/** The bounds of `rows` rows for N parameters, a bandwidth (bytes/s) and GFLOP/s. */
export function rolloutBounds(rows: number, params: number, bandwidth: number, gflops: number) {
  return {
    bandwidthBound: rows * bandwidth / (4 * params),
    matmulBound: gflops * 1e9 / (2 * params),
  };
}

/** The table of a rows sweep (ratios against the first, smallest batch). */
export function rowsTable(rs: RowsResult[], bandwidth: number, gflops: number): string {
  const base = rs[0].tokensPerS;
  return table(
    [
      `rollout, 0.5B shape, 32 tokens (bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s, ` +
      `matmul ${gflops.toFixed(0)} GFLOP/s)`,
      "tokens/s",
      `× ${rs[0].rows} rows`,
      "bandwidth bound",
      "matmul bound",
    ],
    rs.map((r) => [
      `${r.rows} rows (${r.rows / 8} group${r.rows === 8 ? "" : "s"} of 8)`,
      r.tokensPerS.toFixed(1),
      (r.tokensPerS / base).toFixed(2),
      r.bandwidthBound.toFixed(1),
      r.matmulBound.toFixed(1),
    ]),
  );
}

const here = (f: string) => new URL(`./${f}`, import.meta.url).pathname;

/** Run the child on a model folder and print the table. */
export async function benchRolloutRows(
  folder: string,
  rows: number[],
  threads: number,
  maxRssGb: number,
): Promise<void> {
  const child = LineChild.spawn(
    "Proxima rollout",
    Deno.execPath(),
    [
      "run",
      "-A",
      here("rollout_rows.ts"),
      "--folder",
      folder,
      "--rows",
      rows.join(","),
      "--threads",
      String(threads),
    ],
    { OMP_NUM_THREADS: String(threads) },
    maxRssGb,
  );
  try {
    const r = await child.read();
    console.log(rowsTable(r.results as RowsResult[], Number(r.bandwidth), Number(r.gflops)));
    const pf = r.prefillMs as { rows: number; shared: number; each: number };
    console.log(
      `  ${threads} threads; decoder build ${(Number(r.build_ms) / 1e3).toFixed(1)} s (not in ` +
        `the times); no row ends early (every row costs all 32 steps); the prefill of ` +
        `${pf.rows} rows (12-token prompts, in the times): ${(pf.shared / 1e3).toFixed(2)} s ` +
        `with each group's 8 rows sharing one, ${(pf.each / 1e3).toFixed(2)} s with every row ` +
        `prefilled`,
    );
  } finally {
    await child.close();
  }
}

/**
 * Bytes/s of an ORT ReduceSum over `x` (read once per run; the model's largest weight, so the
 * probe allocates nothing: a 1 GB buffer of its own stayed until V8 collected it, 1.1 GB more
 * peak in one run), the best of 3.
 */
async function measureBandwidth(session: { threads: number }, x: Float32Array): Promise<number> {
  const g = new Graph("bandwidth");
  g.output(g.reduceSum(g.input("x", "float32", [x.length])), "s");
  const s = await compile(g, session);
  const feed = tensor("float32", [x.length], x);
  await s.run({ x: feed });
  let best = Infinity; // the best of 3 (a bound: the machine may be shared)
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await s.run({ x: feed });
    best = Math.min(best, performance.now() - t);
  }
  s.release();
  return 4 * x.length / (best / 1e3);
}

async function child(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      folder: { type: "string" },
      rows: { type: "string" },
      threads: { type: "string", default: "2" },
    },
  });
  const threads = Number(values.threads);
  const session = { threads };
  const m = await loadModelFolder(values.folder!);
  const largest = Object.values(m.params).reduce((a, b) => (b.length > a.length ? b : a));
  if (!(largest instanceof Float32Array)) throw new Error("rollout_rows: float32 weights only");
  const bandwidth = await measureBandwidth(session, largest);
  let t = performance.now();
  // Matmul GFLOP/s at the MLP's shape, the weight pre-packed as the sampler's are (a constant),
  // the best of 5 runs (a bound: the machine may be shared).
  const g2 = new Graph("matmul");
  g2.output(
    g2.matmul(g2.input("a", "float32", [512, 896]), g2.input("b", "float32", [896, 4864])),
    "c",
  );
  const b = tensor("float32", [896, 4864], new Float32Array(896 * 4864).fill(0.01));
  const s2 = await compileWithConstants(g2, { b }, session);
  const a = tensor("float32", [512, 896], new Float32Array(512 * 896).fill(0.01));
  await s2.run({ a });
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    t = performance.now();
    await s2.run({ a });
    best = Math.min(best, performance.now() - t);
  }
  const gflops = 2 * 512 * 896 * 4864 / (best / 1e3) / 1e9;
  s2.release();

  const N = Object.values(decoderShapes(m.cfg)).reduce(
    (x, s) => x + s.shape.reduce((p, q) => p * q, 1),
    0,
  );
  t = performance.now();
  const decoder = await GptDecoder.withWeights(m.cfg, m.params, session);
  const buildMs = performance.now() - t;
  const prompt = (i: number) => Array.from({ length: 12 }, (_, k) => 1000 + 37 * i + 11 * k);
  const run = async (rows: number, tokens: number) => {
    const prompts = Array.from({ length: rows }, (_, r) => prompt(Math.floor(r / 8)));
    const t = performance.now();
    await generate({ cfg: m.cfg, params: m.params }, prompts, {
      maxNewTokens: tokens,
      temperature: 1,
      padTokenId: 0,
      rng: new Rng(1),
      decoder,
    });
    return (performance.now() - t) / 1e3;
  };
  await run(8, 4); // warm-up
  const results: RowsResult[] = [];
  for (const rows of values.rows!.split(",").map(Number)) {
    const s = await run(rows, 32);
    results.push({ rows, tokensPerS: rows * 32 / s, ...rolloutBounds(rows, N, bandwidth, gflops) });
    console.error(`rows ${rows}: ${(rows * 32 / s).toFixed(1)} tok/s`);
  }
  // The prefill of 32 rows (or fewer), its groups sharing it (one run per distinct prompt, the
  // cache copied) and every row prefilled (what the sampler did before): in the times above.
  const most = Math.min(32, Math.max(...results.map((r) => r.rows)));
  const prefill = async (sharePrefill: boolean) => {
    const prompts = Array.from({ length: most }, (_, r) => prompt(Math.floor(r / 8)));
    const t = performance.now();
    await decoder.start(undefined, prompts, { padTokenId: 0, capacity: 43, sharePrefill });
    return performance.now() - t;
  };
  const prefillMs = { rows: most, shared: await prefill(true), each: await prefill(false) };
  decoder.release();
  Deno.stdout.writeSync(
    new TextEncoder().encode(
      JSON.stringify({ results, bandwidth, gflops, build_ms: buildMs, params: N, prefillMs }) +
        "\n",
    ),
  );
}

if (import.meta.main) await child();
