/**
 * `deno task bench rl`: GRPO in Proxima (the `lm` task's trial, in a child process) against
 * TRL's GRPOTrainer (bench/rl_ref.py in the anchor venv, tuned allocator) on the same model
 * folder, prompts, reward (response length in tokens), group size (4), token counts (at most 32
 * sampled tokens, temperature 1) and LoRA targets, β 0.04 with k3 in the loss, one optimizer
 * step per update, measured in ONE run: both sides are long-lived children that run one update
 * per request, the sides alternate (the order flips each round), warm-up updates are excluded
 * from the medians. Shapes:
 *
 * - `small`: a Qwen2 shape of 43M parameters (d 256, 4 layers) with the real Qwen3 tokenizer
 *   (152K vocabulary), full fine-tuning, 32 completions;
 * - `qwen`: the Qwen2.5-0.5B shape (494M), LoRA r=16 (alpha 32) on the seven projections, 16
 *   completions.
 *
 * Printed per shape: s/update (median) split into generation / scoring / training, sampled
 * tokens/s, set-up (from spawning the child to its first update's readiness: imports, load,
 * sessions; Proxima's includes its 1-sample evaluation before training) and peak RSS (each child's VmHWM), each
 * with Proxima / TRL, and Proxima's planning memory estimate against its measured peak.
 * Proxima's phase times come from a lib/ppo/phase_times.ts timer the child hands its trial
 * (in its TrialContext; never in metrics.jsonl).
 *
 *     deno task bench rl [--rl-shapes small,qwen] [--rl-updates 4] [--rl-warmup 1]
 *       [--rl-micro-batches 1]
 *       [--threads 2] [--cache DIR] [--max-rss-gb 20]
 *
 * The Proxima child: `deno run -A bench/rl.ts --worker --shape S --folder DIR --prompts FILE
 * --out DIR --threads N --updates U` (the same line protocol as rl_ref.py).
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { traceLine } from "../lib/setup_trace.ts";
import { childEnv } from "../lib/child_env.ts";
import { anchorEnv, anchorPython, LineChild, median, table } from "./anchor.ts";
import { initDecoder } from "../lib/nn/decoder.ts";
import { saveModelFolder } from "../lib/nn/checkpoint.ts";
import type { LlamaConfig } from "../lib/nn/llama_config.ts";
import { Rng } from "../lib/rng.ts";
import { GRPO } from "../lib/ppo/methods/mod.ts";
import { QWEN25_05B } from "./scale_worker.ts";
import { benchRolloutRows } from "./rollout_rows.ts";
import { QWEN3_TOKENIZER, tokenizerFiles } from "../scripts/tiny_models.ts";
import { ensureModelFolder, writeBenchPrompts } from "./model_folder.ts";

/** A Qwen2 shape of 43M parameters (39M of them the 152K-row tied embedding). */
export const QWEN2_43M: LlamaConfig = {
  ...QWEN25_05B,
  hiddenSize: 256,
  intermediateSize: 768,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  headDim: 64,
  maxPositions: 2048,
};

/** One benchmark shape. */
export interface RlShape {
  name: string;
  title: string;
  cfg: LlamaConfig;
  /** LoRA rank (0: full fine-tuning). */
  loraR: number;
  /** Completions per update. */
  completions: number;
}

export const RL_SHAPES: Record<string, RlShape> = {
  small: {
    name: "small",
    title: "Qwen2 shape 43M (Qwen3 tokenizer, 152K vocabulary), full fine-tuning, 32 completions",
    cfg: QWEN2_43M,
    loraR: 0,
    completions: 32,
  },
  qwen: {
    name: "qwen",
    title: "Qwen2.5-0.5B shape (494M), LoRA r=16 on 7 projections, 16 completions",
    cfg: QWEN25_05B,
    loraR: 16,
    completions: 16,
  },
};

/** Group size (completions per prompt) and sampled tokens of every shape. */
export const GROUP = 4, NEW_TOKENS = 32;

/** The Proxima trial of a shape: GRPO as rl_ref.py configures TRL. */
export function rlConfig(
  shape: RlShape,
  folder: string,
  prompts: string,
  updates: number,
  microBatches = 1,
) {
  return {
    policy: folder,
    prompts,
    chat_template: false,
    rewards: [{ name: "length", weight: 1 }],
    value_model: "shared" as const,
    ...(shape.loraR ? { lora: { r: shape.loraR, alpha: 2 * shape.loraR } } : {}),
    updates,
    batch: shape.completions,
    samples_per_prompt: GROUP,
    max_new_tokens: NEW_TOKENS,
    temperature: 1,
    eval: { samples: 1 },
    ppo: {
      advantage: GRPO.advantage!,
      epochs: 1,
      minibatches: 1,
      ...(microBatches > 1 ? { micro_batches: microBatches } : {}),
      lr: 1e-6,
      lr_anneal: false,
      adam_eps: 1e-8,
      max_grad_norm: 1,
      ent_coef: 0,
      whiten_advantages: false,
      clip: 0.2,
      kl: {
        beta: 0.04,
        estimator: "k3" as const,
        placement: "loss" as const,
        control: "fixed" as const,
      },
    },
  };
}

/** One update's line from either side (ms). */
export interface UpdateLine {
  ms: number;
  generation: number;
  scoring: number;
  training: number;
  tokens: number;
}

/** A side's measured numbers. */
export interface SideResult {
  updates: UpdateLine[];
  setupMs: number;
  peakRss: number;
}

/** Medians of the measured updates (warm-up excluded) and tokens/s of generation. */
export function summarize(lines: UpdateLine[], warmup: number) {
  const m = lines.slice(warmup);
  if (!m.length) throw new Error("bench rl: no measured updates (raise --rl-updates)");
  const med = (k: keyof UpdateLine) => median(m.map((l) => l[k]));
  const tokens = m.reduce((a, l) => a + l.tokens, 0);
  const genMs = m.reduce((a, l) => a + l.generation, 0);
  return {
    ms: med("ms"),
    generation: med("generation"),
    scoring: med("scoring"),
    training: med("training"),
    tokensPerS: tokens / (genMs / 1e3),
    n: m.length,
  };
}

const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "-");

/** The comparison table of one shape (`estimate`: Proxima's planning estimate, bytes). */
export function rlTable(
  shape: RlShape,
  prox: SideResult,
  trl: SideResult,
  warmup: number,
  estimate?: number,
): string {
  const p = summarize(prox.updates, warmup), t = summarize(trl.updates, warmup);
  const s = (ms: number) => (ms / 1e3).toFixed(2);
  const row = (name: string, a: number, b: number, f: (x: number) => string) => [
    name,
    f(a),
    f(b),
    ratio(a, b),
  ];
  const rows = [
    row("s/update (median)", p.ms, t.ms, s),
    row("  generation, s", p.generation, t.generation, s),
    row("  scoring (reference pass, reward), s", p.scoring, t.scoring, s),
    row("  training (one optimizer step), s", p.training, t.training, s),
    row("generation tokens/s", p.tokensPerS, t.tokensPerS, (x) => x.toFixed(0)),
    row("set-up before the first update, s", prox.setupMs, trl.setupMs, s),
    row("peak RSS, GB", prox.peakRss, trl.peakRss, (x) => (x / 1e9).toFixed(2)),
  ];
  if (estimate !== undefined) {
    rows.push([
      "Proxima's planning estimate, GB (/ measured peak)",
      (estimate / 1e9).toFixed(2),
      "",
      ratio(estimate, prox.peakRss),
    ]);
  }
  return table([`${shape.title}; ${p.n} updates`, "Proxima", "TRL", "ratio"], rows);
}

const here = (f: string) => new URL(`./${f}`, import.meta.url).pathname;

/** The model folder of a shape (random float32 weights from a fixed seed, Qwen3 tokenizer). */
async function makeFolder(shape: RlShape, dir: string, threads: number): Promise<string> {
  const model = `${dir}/model`;
  await ensureModelFolder({
    marker: `${model}/tokenizer.json`,
    dir,
    script: here("rl.ts"),
    args: ["--make", shape.name, "--out", model],
    threads,
    what: `bench rl (${shape.name})`,
  });
  return model;
}

async function make(name: string, out: string): Promise<void> {
  const shape = RL_SHAPES[name];
  const params = initDecoder(shape.cfg, new Rng(0), "float32");
  await saveModelFolder(out, shape.cfg, params, {
    tokenizerFiles: await tokenizerFiles(QWEN3_TOKENIZER),
  });
}

export interface RlBenchOptions {
  threads: number;
  shapes: string[];
  /** Measured updates per side (after the warm-up). */
  updates: number;
  warmup: number;
  cache?: string;
  maxRssGb: number;
  /** Shapes whose sides run one after the other (not alternating): machines short of memory. */
  sequential?: string[];
  /** Also the rollout throughput of the 0.5B shape at these rows (bench/rollout_rows.ts). */
  rolloutRows?: number[];
  /**
   * Gradient accumulation on both sides (default 1): Proxima's `ppo.micro_batches`, TRL's
   * `gradient_accumulation_steps` (with `steps_per_generation` as many and the per-device batch
   * that much smaller): the same update from that many passes of fewer rows.
   */
  microBatches?: number;
}

/** Read a side's update line after sending "next". */
async function next(c: LineChild): Promise<UpdateLine> {
  const l = await c.ask("next");
  return {
    ms: Number(l.ms),
    generation: Number(l.generation ?? 0),
    scoring: Number(l.scoring ?? 0),
    training: Number(l.training ?? 0),
    tokens: Number(l.tokens ?? 0),
  };
}

/** A running side: its child, set-up line and time, and update lines. */
interface Side {
  name: string;
  child: LineChild;
  setup: Record<string, unknown>;
  setupMs: number;
  updates: UpdateLine[];
  /** VmHWM taken when the side ended early (sequential mode). */
  peakRss?: number;
}

async function startSide(name: string, spawn: () => LineChild, into: Side[]): Promise<Side> {
  const t0 = performance.now();
  const child = spawn();
  const side: Side = { name, child, setup: {}, setupMs: 0, updates: [] };
  into.push(side);
  side.setup = await child.read();
  side.setupMs = performance.now() - t0;
  const v = side.setup.trl ? ` ${side.setup.trl} (torch ${side.setup.torch})` : "";
  console.log(`  ${name}${v} set-up ${(side.setupMs / 1e3).toFixed(1)} s`);
  return side;
}

/** `total` updates of each side; with two sides they alternate, the order flipping each round. */
async function runUpdates(sides: Side[], total: number, warmup: number): Promise<void> {
  for (let r = 0; r < total; r++) {
    const order = r % 2 ? [...sides].reverse() : sides;
    for (const x of order) x.updates.push(await next(x.child));
    console.log(
      `  ${r < warmup ? "warm-up" : "update"} ${r + 1}: ` +
        sides.map((x) => `${x.name} ${(x.updates[r].ms / 1e3).toFixed(1)} s`).join(", "),
    );
  }
  if (sides.length === 1) {
    // Its peak is taken now; it ends before the other side starts.
    sides[0].peakRss = sides[0].child.status().VmHWM ?? 0;
    await sides[0].child.close();
  }
}

async function benchShape(shape: RlShape, o: RlBenchOptions, root: string): Promise<void> {
  const dir = `${root}/rl_${shape.name}`;
  const folder = await makeFolder(shape, dir, o.threads);
  const prompts = `${dir}/prompts.jsonl`;
  await writeBenchPrompts(prompts, (p) => ({ prompt: p }));
  const total = o.warmup + o.updates;
  const out = await Deno.makeTempDir({ prefix: "proxima_bench_rl_" });
  const t = String(o.threads);
  console.log(`bench rl: ${shape.title}`);
  // The set-ups run one after the other (each timed alone), then the updates alternate.
  const spawnProx = () =>
    LineChild.spawn(
      "Proxima lm trial",
      Deno.execPath(),
      [
        "run",
        "-A",
        here("rl.ts"),
        "--worker",
        "--shape",
        shape.name,
        "--folder",
        folder,
        "--prompts",
        prompts,
        "--out",
        `${out}/trial`,
        "--threads",
        t,
        "--updates",
        String(total),
        "--micro-batches",
        String(o.microBatches ?? 1),
      ],
      { ...childEnv(), OMP_NUM_THREADS: t }, // as a sweep starts its trials (lib/child_env.ts)
      o.maxRssGb,
    );
  const spawnTrl = () =>
    LineChild.spawn(
      "TRL GRPOTrainer",
      anchorPython(),
      [
        here("rl_ref.py"),
        "--folder",
        folder,
        "--prompts",
        prompts,
        "--threads",
        t,
        "--completions",
        String(shape.completions),
        "--group",
        String(GROUP),
        "--new-tokens",
        String(NEW_TOKENS),
        "--updates",
        String(total),
        "--lora-r",
        String(shape.loraR),
        "--micro-batches",
        String(o.microBatches ?? 1),
        "--out",
        `${out}/trl`,
      ],
      // The same glibc tunable as Proxima's worker (huge pages), beside the tuned allocator.
      { ...anchorEnv(o.threads), ...childEnv() },
      o.maxRssGb,
    );
  const sides: Side[] = [];
  const sequential = o.sequential?.includes(shape.name) ?? false;
  try {
    // The set-ups run one after the other (each timed alone); then the updates alternate (the
    // order flips each round), or with `sequential` one side runs all of its updates and ends
    // before the other starts (both children at once may not fit a machine's memory).
    const proxSide = await startSide("Proxima", spawnProx, sides);
    if (sequential) await runUpdates([proxSide], total, o.warmup);
    const trlSide = await startSide("TRL", spawnTrl, sides);
    await runUpdates(sequential ? [trlSide] : [proxSide, trlSide], total, o.warmup);
    const result = (x: Side): SideResult => ({
      updates: x.updates,
      setupMs: x.setupMs,
      peakRss: x.peakRss ?? x.child.status().VmHWM ?? 0,
    });
    console.log(
      rlTable(shape, result(proxSide), result(trlSide), o.warmup, Number(proxSide.setup.estimate)),
    );
  } finally {
    for (const x of sides) await x.child.close();
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}

/** Run the shapes (see the module doc). */
export async function benchRl(o: RlBenchOptions): Promise<void> {
  o = { ...o, shapes: o.shapes.filter((s) => s !== "none") };
  for (const s of o.shapes) {
    if (!RL_SHAPES[s]) throw new Error(`bench rl: unknown shape "${s}" (small, qwen)`);
    const m = o.microBatches ?? 1, n = RL_SHAPES[s].completions;
    if (n % m) {
      throw new UsageError(
        `bench rl: --rl-micro-batches ${m} does not divide the ${s} shape's ${n} completions`,
        { fix: `use a divisor of ${n}` },
      );
    }
  }
  const root = o.cache ?? await Deno.makeTempDir({ prefix: "proxima_bench_rl_cache_" });
  try {
    for (const s of o.shapes) await benchShape(RL_SHAPES[s], o, root);
    if (o.rolloutRows?.length) {
      const folder = await makeFolder(RL_SHAPES.qwen, `${root}/rl_qwen`, o.threads);
      await benchRolloutRows(folder, o.rolloutRows, o.threads, o.maxRssGb);
    }
    console.log(
      `  ${o.threads} threads on both sides; medians of ${o.updates} updates after ${o.warmup} ` +
        `warm-up; sides alternate (order flips each round); group ${GROUP}, at most ` +
        `${NEW_TOKENS} sampled tokens, reward = response length, β 0.04 (k3 in the loss); ` +
        `peak RSS = each child's VmHWM over its whole run; the machine may be shared: compare ` +
        `the ratios, which come from one run`,
    );
  } finally {
    if (!o.cache) await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** A line from stdin, read synchronously (the trial waits inside its callbacks). */
function readLineSync(): string {
  const buf = new Uint8Array(1);
  let s = "";
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (!n) return "quit";
    if (buf[0] === 10) return s.trim();
    s += String.fromCharCode(buf[0]);
  }
}

/** The Proxima child: the trial, waiting for "next" before each update. */
async function worker(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      worker: { type: "boolean" },
      shape: { type: "string" },
      folder: { type: "string" },
      prompts: { type: "string" },
      out: { type: "string" },
      threads: { type: "string", default: "2" },
      updates: { type: "string" },
      "micro-batches": { type: "string", default: "1" },
    },
  });
  const t0 = performance.now();
  traceLine("worker: start");
  const { LM_KIND, lmMemoryInput } = await import("../lib/tasks/lm/mod.ts");
  const { estimateLmMemory } = await import("../lib/tasks/memory.ts");
  const { PhaseTimer } = await import("../lib/ppo/phase_times.ts");
  const { TrialContext } = await import("../lib/trial/context.ts");
  const phases = new PhaseTimer();
  const write = (o: unknown) =>
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\n"));
  const input = rlConfig(
    RL_SHAPES[values.shape!],
    values.folder!,
    values.prompts!,
    Number(values.updates),
    Number(values["micro-batches"]),
  );
  const c = LM_KIND.parse(input);
  traceLine("worker: imports and config");
  // The estimate from the inputs the trial reads itself (reading them here as well cost a
  // second tokenizer build and weights read: 2.3 s of the small shape's set-up).
  let estimate = 0;
  let last = 0;
  const wait = () => {
    if (readLineSync() !== "next") Deno.exit(0);
    phases.take();
    last = performance.now();
  };
  await LM_KIND.trial(input, values.out!, {
    session: { threads: Number(values.threads) },
    trial: new TrialContext({ label: "bench rl", phases }),
    log: (l) => console.error(l),
    onProblem: (_, setup) => {
      estimate = estimateLmMemory(lmMemoryInput(c, setup.inputs)).bytes;
    },
    onStart: () => {
      traceLine("worker: first update ready");
      write({ phase: "setup", setup_ms: performance.now() - t0, estimate });
      wait();
    },
    onUpdate: (row, update) => {
      const ms = performance.now() - last;
      const p = phases.take();
      const tokens = Number(row.response_length) * Number(input.batch);
      write({ update, ms, ...p, tokens });
      wait();
    },
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    strict: false,
    options: { make: { type: "string" }, out: { type: "string" }, worker: { type: "boolean" } },
  });
  if (values.make) await make(String(values.make), String(values.out));
  else if (values.worker) await worker();
}
