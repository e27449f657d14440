/**
 * The dashboard's views of the data {@link ResultsWatcher} holds, built from lib/report's own
 * pieces: curves of a metric with seed bands, the KL–reward frontier and a trial's PPO
 * diagnostics are lib/report's Vega-Lite specs ({@link curveChart}, {@link frontierChart},
 * {@link diagnosticsChart}); the evaluation samples are a bundle's `checkpoints/eval.json`;
 * the paper tables are `reproduce`'s table builders run on the bundles present.
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import {
  defaultCurveMetrics,
  DIAGNOSTIC_METRICS,
  firstPresent,
  FRONTIER_KL_CANDIDATES,
  FRONTIER_REWARD_CANDIDATES,
  type TrialBundle,
} from "../bundles.ts";
import { type BandKind, curveChart, diagnosticsChart, frontierChart } from "../charts.ts";
import { REPRODUCE_TABLES, type ReproduceTrial } from "../reproduce.ts";
import {
  findTrialKind,
  loadExperiment,
  REPO_ROOT,
  type TrialSummary,
} from "../../experiment/mod.ts";
import { readResources } from "../../tasks/resources.ts";
import type { ResultsWatcher } from "./data.ts";

/** PPO health columns the diagnostics panel shows, those a trial logs. */
export const DASHBOARD_DIAGNOSTICS: readonly string[] = [
  ...DIAGNOSTIC_METRICS,
  "approx_kl_k3",
  "value_loss",
  "policy_loss",
  "grad_norm",
  "advantage_std",
  "response_length",
];

/** The charts of one experiment's selected trials. */
export interface ChartSet {
  /** The metric plotted against update. */
  metric: string | null;
  curve: TopLevelSpec | null;
  frontier: TopLevelSpec | null;
  /** The frontier's axes (metric names), or why there is no frontier. */
  frontierNote: string;
  /** The trial whose diagnostics are shown. */
  diagnosticsTrial: string | null;
  diagnostics: TopLevelSpec | null;
}

export interface ChartRequest {
  /** Trial ids to plot (all when empty). */
  trials?: string[];
  metric?: string;
  band?: BandKind;
  /** The trial of the diagnostics panel (default: the first selected trial that logs any). */
  diagnostics?: string;
}

/** The charts of an experiment's (selected) trials; null for an unknown experiment. */
export function chartSet(
  w: ResultsWatcher,
  experiment: string,
  req: ChartRequest,
): ChartSet | null {
  const all = w.trials(experiment);
  if (!all) return null;
  const picked = req.trials?.length
    ? all.trials.filter((t) => req.trials!.includes(t.id))
    : all.trials;
  const input = { trials: picked, sweptKeys: all.sweptKeys, name: experiment };
  const band = req.band ?? "std";
  const metric = req.metric && picked.some((t) => t.columns.includes(req.metric!))
    ? req.metric
    : defaultMetric(picked);
  const curve = metric && picked.length
    ? curveChart(input, metric, { band, width: 460, height: 260 })
    : null;
  const kl = firstPresent(picked, FRONTIER_KL_CANDIDATES);
  const reward = firstPresent(picked, FRONTIER_REWARD_CANDIDATES);
  const frontier = kl && reward
    ? frontierChart(input, kl, reward, { width: 380, height: 260 })
    : null;
  const frontierNote = frontier
    ? `${kl} vs ${reward}`
    : `no KL and reward metric among the selected trials (KL: ${
      FRONTIER_KL_CANDIDATES.join(", ")
    }; reward: ${FRONTIER_REWARD_CANDIDATES.join(", ")})`;
  const logsDiag = (t: TrialBundle) => DASHBOARD_DIAGNOSTICS.some((m) => t.columns.includes(m));
  const diagTrial = all.trials.find((t) => t.id === req.diagnostics && logsDiag(t)) ??
    picked.find(logsDiag) ?? null;
  const diagnostics = diagTrial
    ? diagnosticsChart(
      { trials: [diagTrial], sweptKeys: all.sweptKeys, name: experiment },
      DASHBOARD_DIAGNOSTICS,
      {
        band: "none",
        columns: 4,
        width: 200,
        height: 130,
        title: `diagnostics of ${diagTrial.id}`,
      },
    )
    : null;
  return {
    metric,
    curve,
    frontier,
    frontierNote,
    diagnosticsTrial: diagTrial?.id ?? null,
    diagnostics,
  };
}

// The first default curve metric (lib/report's families); a task that logs `reward` gets it.
function defaultMetric(trials: readonly TrialBundle[]): string | null {
  const family = defaultCurveMetrics(trials);
  if (trials.some((t) => t.columns.includes("reward")) && !family.length) return "reward";
  return family[0] ?? null;
}

/** One evaluation sample: prompt, response and the rest (reward components). */
export interface EvalSample {
  prompt: string;
  response: string;
  /** Numbers and labels besides prompt and response (rm, gold, reward, component, ...). */
  scores: Record<string, number | string | null>;
}

/** One side (before or after training) of an evaluation. */
export interface EvalSide {
  /** Its aggregate numbers (rm_score, gold_score, kl, ...). */
  metrics: Record<string, number>;
  samples: EvalSample[];
}

/** A trial's evaluation before and after training (eval.json), or why there is none. */
export interface EvalView {
  trial: string;
  before: EvalSide | null;
  after: EvalSide | null;
  note: string | null;
}

/**
 * The evaluation samples of a trial: `checkpoints/eval.json` of its bundle (LM tasks), or
 * `eval.json` in the work folder of an unfinished one.
 */
export async function evalView(
  w: ResultsWatcher,
  experiment: string,
  trial: string,
): Promise<EvalView | null> {
  const where = w.trialDir(experiment, trial);
  if (!where) return null;
  let text: string | null = null;
  for (const p of [`${where.dir}/checkpoints/eval.json`, `${where.dir}/eval.json`]) {
    text = await Deno.readTextFile(p).catch(() => null);
    if (text !== null) break;
  }
  if (text === null) {
    return {
      trial,
      before: null,
      after: null,
      note: where.status === "done"
        ? "this trial has no evaluation samples (only LM tasks write checkpoints/eval.json)"
        : "the evaluation is written when the trial finishes",
    };
  }
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    return { trial, before: null, after: null, note: `eval.json: ${(e as Error).message}` };
  }
  return { trial, before: evalSide(j.before), after: evalSide(j.after), note: null };
}

function evalSide(v: unknown): EvalSide | null {
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  const metrics: Record<string, number> = {};
  for (const [k, x] of Object.entries(o)) {
    if (typeof x === "number" && Number.isFinite(x)) metrics[k] = x;
  }
  const samples: EvalSample[] = [];
  for (const ex of Array.isArray(o.examples) ? o.examples : []) {
    if (!ex || typeof ex !== "object") continue;
    const { prompt, response, ...rest } = ex as Record<string, unknown>;
    const scores: EvalSample["scores"] = {};
    for (const [k, x] of Object.entries(rest)) {
      scores[k] = typeof x === "number" || typeof x === "string"
        ? x
        : x === null
        ? null
        : String(x);
    }
    samples.push({ prompt: String(prompt ?? ""), response: String(response ?? ""), scores });
  }
  return { metrics, samples };
}

/** A paper table built from the bundles present. */
export interface PaperTable {
  name: string;
  title: string;
  quick: boolean;
  /** Experiment folders it read, and how many finished trials each had. */
  experiments: Record<string, number>;
  markdown: string | null;
  error: string | null;
}

const experimentNames = new Map<string, string>();

/** The experiment name of an experiment file (imported once). */
async function experimentName(file: string): Promise<string | null> {
  if (!experimentNames.has(file)) {
    try {
      experimentNames.set(file, (await loadExperiment(`${REPO_ROOT}/${file}`)).name);
    } catch {
      return null;
    }
  }
  return experimentNames.get(file)!;
}

/**
 * Every `reproduce` table (lib/report/reproduce.ts) that some of its experiments' bundles are
 * present for, full and `--quick` (`<experiment>-quick/`) separately, built by the table's
 * own builder from the finished bundles (read-only: nothing is run or written).
 */
export async function paperTables(w: ResultsWatcher): Promise<PaperTable[]> {
  const bundles = w.bundlesByExperiment();
  const out: PaperTable[] = [];
  for (const def of Object.values(REPRODUCE_TABLES)) {
    for (const quick of [false, true]) {
      const experiments: Record<string, number> = {};
      const trials: ReproduceTrial[] = [];
      for (const ref of def.experiments) {
        const base = await experimentName(ref.file);
        if (!base) continue;
        const name = quick ? `${base}-quick` : base;
        const found = bundles.get(name);
        if (!found?.length) continue;
        experiments[name] = found.length;
        for (const t of found) trials.push(await reproduceTrial(t));
      }
      if (!trials.length) continue;
      let markdown: string | null = null, error: string | null = null;
      try {
        markdown = def.build({ quick, trials }).markdown;
      } catch (e) {
        error = `${(e as Error).message} (the table needs more of its trials; run ` +
          `\`deno task reproduce ${def.name}${quick ? " --quick" : ""}\`)`;
      }
      out.push({ name: def.name, title: def.title, quick, experiments, markdown, error });
    }
  }
  return out;
}

// A bundle as reproduce's table builders see a finished trial (the point is the whole
// flattened config: table rows match trials by their dotted keys).
async function reproduceTrial(t: TrialBundle): Promise<ReproduceTrial> {
  let work: ReproduceTrial["work"];
  try {
    work = findTrialKind(t.task)?.work(t.config as never);
  } catch { /* a config this code no longer reads: the table leaves the budget out */ }
  return {
    experiment: t.experiment,
    task: t.task,
    point: t.flat as ReproduceTrial["point"],
    seed: t.seed ?? 1,
    config: t.config,
    summary: t.summary as unknown as TrialSummary,
    resources: await readResources(t.dir).catch(() => null),
    ...(work ? { work } : {}),
  };
}
