/** Shared by the dashboard tests: a results folder with a running trial, the command, snapshots. */
import { stableJson } from "../../lib/json.ts";
import { trialId } from "../../lib/experiment/spec.ts";
import { writeManifest } from "../../lib/experiment/bundle.ts";
import type { MetricsRow } from "../../lib/report/bundles.ts";
import { REPO_ROOT } from "../experiment/helpers.ts";
import { sentimentTrials, writeFakeBundle } from "./helpers.ts";

/** A row of the simulated running trial (β = 0.3, seed 1) at update `u`. */
export function liveRow(u: number): MetricsRow {
  return {
    update: u,
    step: u * 32,
    kl_ref: 0.05 * u,
    rm_score: 0.3 * u,
    gold_score: 0.25 * u,
    clipfrac: 0.02 * u,
    entropy: 1.9 - 0.05 * u,
    explained_variance: 0.2 * u,
  };
}

/** A sentiment-like eval.json: two prompts, before and after training. */
export const EVAL = {
  task: "sentiment",
  before: {
    rm_score: -0.05,
    gold_score: 0.06,
    examples: [
      { prompt: "The movie was", response: " fairly dull.", rm: -1.07, gold: 0 },
      { prompt: "The food was", response: " cold and late.", rm: -0.9, gold: -0.5 },
    ],
  },
  after: {
    rm_score: 0.85,
    gold_score: 0.5,
    examples: [
      { prompt: "The movie was", response: " wonderful, a delight.", rm: 1.31, gold: 1 },
      { prompt: "The food was", response: " superb.", rm: 1.12, gold: 0.5 },
    ],
  },
};

/**
 * `root/kl/`: four finished sentiment-like bundles (β ∈ {0, 0.1} × seeds {1, 2}, 3 updates)
 * and one unfinished trial (β = 0.3, seed 1) in `.tmp-<id>/` with `rows` rows so far, the way
 * a worker leaves it while it runs (config.json = identity, metrics.jsonl appended per update).
 * Returns the experiment folder, the finished trials' ids and the running trial's work folder.
 */
export async function resultsWithRunningTrial(
  root: string,
  rows = 2,
): Promise<{ exp: string; done: string[]; liveId: string; live: string }> {
  const exp = `${root}/kl`;
  const done: string[] = [];
  for (const t of sentimentTrials([0, 0.1], [1, 2])) {
    done.push((await writeFakeBundle(exp, t)).split("/").at(-1)!);
  }
  // The first bundle has evaluation samples, as LM tasks leave them (checkpoints/eval.json).
  await Deno.mkdir(`${exp}/${done[0]}/checkpoints`);
  await Deno.writeTextFile(`${exp}/${done[0]}/checkpoints/eval.json`, stableJson(EVAL));
  await writeManifest(`${exp}/${done[0]}`);
  const identity = {
    task: "sentiment",
    config: { seed: 1, updates: 3, ppo: { kl: { beta: 0.3 }, lr: 1e-4 } },
    code_version: "test",
  };
  const liveId = trialId(identity);
  const live = `${exp}/.tmp-${liveId}`;
  await Deno.mkdir(live, { recursive: true });
  await Deno.writeTextFile(`${live}/config.json`, stableJson(identity));
  const lines = Array.from({ length: rows }, (_, i) => JSON.stringify(liveRow(i + 1)) + "\n");
  await Deno.writeTextFile(`${live}/metrics.jsonl`, lines.join(""));
  return { exp, done, liveId, live };
}

/** Append one metrics row to a running trial's metrics.jsonl (as trainPpo does). */
export async function appendRow(live: string, row: MetricsRow): Promise<void> {
  await Deno.writeTextFile(`${live}/metrics.jsonl`, JSON.stringify(row) + "\n", { append: true });
}

/** Every file under `dir` (hidden ones included) with its bytes, by relative path. */
export async function snapshot(dir: string, rel = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const here = rel ? `${dir}/${rel}` : dir;
  for await (const e of Deno.readDir(here)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) {
      out.set(`${r}/`, "dir");
      for (const [k, v] of await snapshot(dir, r)) out.set(k, v);
    } else {
      const bytes = await Deno.readFile(`${dir}/${r}`);
      out.set(r, Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""));
    }
  }
  return out;
}

/** A dashboard started as a subprocess (`deno task dashboard <root> --port 0`). */
export interface DashboardProcess {
  url: string;
  /** Everything it printed so far on stdout. */
  firstLine: string;
  stop(): Promise<void>;
}

/** Start `deno task dashboard <root> --port 0` and wait for the URL it prints. */
export async function startDashboardProcess(root: string): Promise<DashboardProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "dashboard", root, "--port", "0"],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    clearTimeout(deadline);
  }
  const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(text);
  if (!m) {
    const err = await new Response(child.stderr).text();
    await child.status;
    throw new Error(`dashboard did not print its URL:\n${text}\n${err}`);
  }
  // Drain the rest so the child never blocks on a full pipe.
  const drain = (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  const errText = new Response(child.stderr).text();
  return {
    url: m[1],
    firstLine: text.split("\n")[0],
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await drain;
      await errText;
    },
  };
}
