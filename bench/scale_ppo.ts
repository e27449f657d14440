/**
 * `deno task bench scale-ppo`: a whole `lm` PPO trial on a Qwen2.5-0.5B-shaped Qwen2 (494M
 * parameters, random weights from a fixed seed, the real Qwen3 tokenizer files) with LoRA r=16
 * on all seven projections and a reward function (`length`), run in a child process whose peak
 * RSS is its own: evaluation, 2 PPO updates (rollout, value and reference passes, epochs of
 * minibatches), evaluation again, the HF folder and PEFT adapter written. Prints the peak RSS
 * against the 16 GB target and each update's time. A watchdog kills the trial above
 * `--max-rss-gb`.
 *
 *     deno task bench scale-ppo [--threads 2] [--cache DIR] [--max-rss-gb 16]
 *
 * The child: `deno run -A bench/scale_ppo.ts --worker --folder DIR --out DIR --threads N`,
 * one JSON line per update, then `{"done": true, ...}`.
 * @module
 */
import { parseArgs } from "node:util";
import { LineChild, table } from "./anchor.ts";
import { LM_KIND, type LmRunInput } from "../lib/tasks/lm/mod.ts";
import { QWEN3_TOKENIZER } from "../scripts/tiny_models.ts";
import { ensureModelFolder, writeBenchPrompts } from "./model_folder.ts";

export interface ScalePpoOptions {
  threads: number;
  /** Folder for the model folder (reused when present); default a temporary one, removed. */
  cache?: string;
  /** Kill the trial above this many GB (and report it). */
  maxRssGb: number;
}

/** The trial: what the issue asks for, at a batch a 2-core machine runs in minutes. */
export function ppoConfig(folder: string, prompts: string): LmRunInput {
  return {
    policy: folder,
    prompts,
    rewards: [{ name: "length", weight: 0.05 }],
    value_model: "shared",
    lora: { r: 16, alpha: 32 },
    updates: 2,
    batch: 8,
    max_new_tokens: 32,
    eval: { samples: 8 },
    ppo: { epochs: 1, minibatches: 2, lr: 1e-4 },
  };
}

const here = (f: string) => new URL(`./${f}`, import.meta.url).pathname;

/** The model folder (bench scale's qwen case, written by scale_worker.ts) + tokenizer files. */
async function makeFolder(dir: string, threads: number): Promise<string> {
  const model = `${dir}/model`;
  await ensureModelFolder({
    marker: `${model}/config.json`,
    dir,
    script: here("scale_worker.ts"),
    args: ["--make", "qwen", "--out", dir],
    threads,
    what: "bench scale-ppo",
  });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${QWEN3_TOKENIZER}/${f}`, `${model}/${f}`);
  }
  return model;
}

/** Run the trial in a child and print its peak RSS and update times. */
export async function benchScalePpo(o: ScalePpoOptions): Promise<void> {
  const root = o.cache ?? await Deno.makeTempDir({ prefix: "proxima_bench_scale_" });
  const out = await Deno.makeTempDir({ prefix: "proxima_bench_scale_ppo_" });
  try {
    console.log("bench scale-ppo: lm PPO trial, Qwen2.5-0.5B shape (494M), LoRA r=16 ...");
    const folder = await makeFolder(`${root}/qwen`, o.threads);
    const prompts = `${root}/qwen/prompts.jsonl`;
    await writeBenchPrompts(prompts, (p) => ({ messages: [{ role: "user", content: p }] }));
    const child = LineChild.spawn(
      "Proxima lm trial",
      Deno.execPath(),
      [
        "run",
        "-A",
        here("scale_ppo.ts"),
        "--worker",
        "--folder",
        folder,
        "--prompts",
        prompts,
        "--out",
        `${out}/trial`,
        "--threads",
        String(o.threads),
      ],
      { OMP_NUM_THREADS: String(o.threads) },
      o.maxRssGb,
    );
    const updates: Record<string, unknown>[] = [];
    let done: Record<string, unknown>;
    let peak = 0;
    try {
      for (;;) {
        const line = await child.read();
        peak = Math.max(peak, child.status().VmHWM ?? 0);
        if (line.done) {
          done = line;
          break;
        }
        if (line.phase) {
          console.log(
            `  set-up and first evaluation done, peak RSS so far ` +
              `${((line.hwm as number) / 1e9).toFixed(2)} GB`,
          );
          continue;
        }
        updates.push(line);
        console.log(
          `  update ${line.update}: ${((line.ms as number) / 1e3).toFixed(1)} s, peak RSS so far ` +
            `${((line.hwm as number) / 1e9).toFixed(2)} GB`,
        );
      }
    } finally {
      await child.close();
    }
    const hwm = Math.max(peak, done.hwm as number);
    const c = ppoConfig(folder, prompts);
    console.log(table(
      ["lm PPO trial, Qwen2.5-0.5B shape, LoRA r=16", "Proxima", "target"],
      [
        ["peak RSS, GB (whole trial, own process)", (hwm / 1e9).toFixed(2), "<= 16"],
        ["updates", String(updates.length), String(c.updates)],
        [
          "set-up (load, sessions, first evaluation), s",
          ((done.setup_ms as number) / 1e3).toFixed(1),
          "",
        ],
        ...updates.map((u) => [
          `update ${u.update}, s (rollout ${c.batch} x ${c.max_new_tokens} + PPO)`,
          ((u.ms as number) / 1e3).toFixed(1),
          "",
        ]),
        ["whole trial (2 evaluations, export), s", ((done.ms as number) / 1e3).toFixed(1), ""],
        ["reward first / last", `${done.first_reward} / ${done.last_reward}`, ""],
      ],
    ));
    console.log(
      `  ${o.threads} threads; batch ${c.batch}, ${c.max_new_tokens} new tokens, ` +
        `${c.ppo?.epochs} epoch x ${c.ppo?.minibatches} minibatches, value head on the ` +
        `policy trunk, reward "length"; ${hwm <= 16e9 ? "within" : "OVER"} 16 GB`,
    );
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
    if (!o.cache) await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** The child: the trial, with one JSON line per update and one at the end. */
async function worker(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      worker: { type: "boolean" },
      folder: { type: "string" },
      prompts: { type: "string" },
      out: { type: "string" },
      threads: { type: "string", default: "2" },
    },
  });
  const write = (o: unknown) =>
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\n"));
  const hwm = () =>
    Number(Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+)/)![1]) * 1024;
  const t0 = performance.now();
  let started = 0, last = t0;
  const rewards: number[] = [];
  const r = await LM_KIND.trial(ppoConfig(values.folder!, values.prompts!), values.out!, {
    session: { threads: Number(values.threads) },
    log: (l) => console.error(l),
    onStart: () => {
      started = performance.now();
      last = started;
      write({ phase: "setup", hwm: hwm() });
    },
    onUpdate: (row, update) => {
      const now = performance.now();
      rewards.push(Number(row.reward_mean ?? NaN));
      write({ update, ms: now - last, hwm: hwm() });
      last = now;
    },
  });
  void r;
  write({
    done: true,
    ms: performance.now() - t0,
    setup_ms: started - t0,
    hwm: hwm(),
    first_reward: rewards[0]?.toFixed(3),
    last_reward: rewards.at(-1)?.toFixed(3),
  });
}

if (import.meta.main) {
  if (Deno.args.includes("--worker")) await worker();
  else {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        threads: { type: "string", default: "2" },
        cache: { type: "string" },
        "max-rss-gb": { type: "string", default: "20" },
      },
    });
    await benchScalePpo({
      threads: Number(values.threads),
      cache: values.cache,
      maxRssGb: Number(values["max-rss-gb"]),
    });
  }
}
