/**
 * Paper tables that `deno task reproduce <name>` rebuilds: which experiment files run, what
 * `--quick` shrinks, and how the finished trials become a markdown + JSON table beside the
 * published numbers ({@link REPRODUCE_TABLES}).
 *
 * - `cleanrl-classic-control` (cleanrl_table.ts): PPO with CleanRL ppo.py's hyperparameters on CartPole-v1 and
 *   Acrobot-v1, 500k steps, 3 seeds, against CleanRL's benchmark (and openai/baselines').
 * - `ppo-table1`: the surrogate objectives of Schulman et al. 2017, Table 1, on CartPole-v1,
 *   Acrobot-v1 and the RLHF task `sentiment`, normalised as the paper does
 *   ({@link normalizeScores}), beside the paper's column.
 * - `ziegler-kl`: reward vs KL on `sentiment` with the KL coefficient adapted toward several
 *   targets (Ziegler et al. 2019), reward-model and hidden gold scores.
 * - `rlhf-methods`: every method record (lib/ppo/methods) on `sentiment` (and the
 *   online ones on `jsx`) at one sample budget: models held, peak RSS, online or offline, wall
 *   time (from each bundle's resources.json), RM and gold score, KL to the reference, beside the
 *   seed table's claims and the published numbers (Ahmadian et al. 2024, Hu et al. 2025).
 *
 * A table holds only numbers computed from the trials' bundles (summaries, and for
 * `rlhf-methods` the measurements in resources.json) and seeded baselines, printed with a fixed
 * number of decimals, so the same bundles give the same bytes (no times of this run, paths,
 * trial ids or code versions).
 * @module
 */
import { METHODS } from "../ppo/methods/mod.ts";
import { JSX_METHODS, SENTIMENT_METHODS } from "./methods.ts";
import {
  concat,
  defineExperiment,
  expandSweep,
  type Experiment,
  type Point,
  points,
  type Sweep,
} from "../experiment/mod.ts";
import { makeVecEnv } from "../envs/registry.ts";
import { Rng } from "../rng.ts";
import { describe, type Described } from "./aggregate.ts";
import { SCHULMAN_2017, SCHULMAN_TABLE1, type SurrogateSetting, ZIEGLER_2019 } from "./papers.ts";
import { buildMethods } from "./methods_table.ts";
import { buildCleanrl, CLASSIC } from "./cleanrl_table.ts";
import {
  cite,
  failedNote,
  fixed,
  markdownTable,
  meanStd,
  metricOf,
  over,
  type ReproduceContext,
  type ReproduceTableDef,
  type ReproduceTableResult,
  type ReproduceTrial,
  seedsOf,
  stats,
} from "./reproduce_table.ts";
export * from "./reproduce_table.ts";
import { rlvrTable } from "./rlvr_table.ts";

// ---- experiments and trials ----------------------------------------------------------------

/**
 * The `--quick` variant of an experiment: named `<name>-quick` (its own results folder) and
 * keeping only the trials whose seed is in `seeds`; the quick overrides are applied by the
 * planner like `--set`.
 */
export function quickExperiment(exp: Experiment, seeds: readonly number[]): Experiment {
  const kept = expandSweep(exp.sweep).filter((p) => seeds.includes(Number(p.seed ?? 1)));
  if (kept.length === 0) {
    throw new Error(`${exp.name}: no trial has a seed in ${seeds.join(", ")} (quick mode)`);
  }
  return defineExperiment({
    name: `${exp.name}-quick`,
    task: exp.task,
    ...(exp.base ? { base: exp.base } : {}),
    sweep: points(kept),
    ...(exp.metrics ? { metrics: exp.metrics } : {}),
    ...(exp.description ? { description: exp.description } : {}),
  });
}

/**
 * The sweep of Schulman et al. 2017 Table 1's settings (no clipping; clipping ε; adaptive KL
 * d_targ; fixed KL β), in the paper's order. `klExtra` is added to the KL-penalty settings
 * (e.g. the estimator); `plainExtra` to the others.
 */
export function table1Sweep(
  opts: { klExtra?: Record<string, unknown>; plainExtra?: Record<string, unknown> } = {},
): Sweep {
  return concat(
    ...SCHULMAN_TABLE1.map((s) =>
      points([{
        ...s.config,
        ...(s.config["ppo.loss"] === "kl-penalty" ? opts.klExtra : opts.plainExtra),
      }])
    ),
  );
}

/** The Table 1 setting a trial belongs to (every key of the setting's config matches), or null. */
export function table1Setting(point: Point): SurrogateSetting | null {
  return SCHULMAN_TABLE1.find((s) => Object.entries(s.config).every(([k, v]) => point[k] === v)) ??
    null;
}

// ---- baselines and normalisation -------------------------------------------------------------

/** A uniformly random policy's episodic return on a classic-control env. */
export interface RandomBaseline {
  env: string;
  episodes: number;
  seed: number;
  mean: number;
  std: number | null;
}

/**
 * Mean return of a uniformly random policy over `episodes` episodes of one env, seeded: the
 * env is reset with `seed` and actions are drawn from `new Rng(seed)`. Deterministic.
 */
export function randomPolicyReturn(env: string, episodes = 100, seed = 0): RandomBaseline {
  const vec = makeVecEnv(env, 1);
  vec.reset(seed);
  const rng = new Rng(seed);
  const actions = new Int32Array(1);
  const returns: number[] = [];
  while (returns.length < episodes) {
    actions[0] = rng.int(vec.spec.numActions);
    for (const ep of vec.step(actions).episodes) returns.push(ep.return);
  }
  const d = describe(returns);
  return { env: vec.spec.id, episodes, seed, mean: d.mean!, std: d.std };
}

/**
 * Schulman et al. 2017's normalisation for one environment: score = (x − random) / (best −
 * random), where best is the highest of the given means (the best setting), so the best
 * setting scores 1 and the random policy 0. Missing means stay null; if no mean beats the
 * random policy, the scores are null (the scale is undefined).
 *
 * @example
 * ```ts
 * normalizeScores({ a: 10, b: 30, c: null }, 20); // { a: -1, b: 1, c: null }
 * ```
 */
export function normalizeScores(
  means: Record<string, number | null>,
  random: number,
): Record<string, number | null> {
  const finite = Object.values(means).filter((v): v is number =>
    typeof v === "number" && Number.isFinite(v)
  );
  const best = finite.length ? Math.max(...finite) : null;
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(means)) {
    out[k] = v === null || best === null || !(best > random)
      ? null
      : (v - random) / (best - random);
  }
  return out;
}

function lastOf(t: ReproduceTrial, name: string): number | null {
  const v = t.summary?.last?.[name];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Evaluation samples per sentiment trial (the first trial's config). */
const evalSamples = (trials: ReproduceTrial[]) =>
  String((trials[0]?.config.eval as { samples?: number } | undefined)?.samples ?? "-");

/** β of the sentiment trials' KL to the reference ("-" without sentiment trials). */
function refKlBeta(trials: ReproduceTrial[]): string {
  const t = trials.find((t) => t.task === "sentiment");
  const kl = (t?.config.ppo as { kl?: { beta?: number; control?: string } } | undefined)?.kl;
  return kl?.beta === undefined ? "-" : `${kl.beta}, ${kl.control ?? "fixed"}`;
}

// ---- ppo-table1 ------------------------------------------------------------------------------

/** Score of a trial for Table 1: final return (classic control), final RM score (sentiment). */
function table1Score(t: ReproduceTrial): number | null {
  return t.task === "sentiment" ? metricOf(t, "rm_score") : metricOf(t, "return");
}

function buildTable1(ctx: ReproduceContext): ReproduceTableResult {
  const tasks = [...CLASSIC, "sentiment"].filter((task) => ctx.trials.some((t) => t.task === task));
  const labels = SCHULMAN_TABLE1.map((s) => s.label);
  // Per task: the zero point, the per-setting means, the normalised scores.
  const perTask = tasks.map((task) => {
    const trials = ctx.trials.filter((t) => t.task === task);
    let zero: { value: number; what: string; json: Record<string, unknown> };
    if (task === "sentiment") {
      const d = over(trials, (t) => metricOf(t, "rm_score_before"));
      zero = {
        value: d.mean ?? 0,
        what: `SFT policy before PPO (RM score ${fixed(d.mean, 3)})`,
        json: { kind: "sft_policy_rm_score", mean: d.mean },
      };
    } else {
      const r = randomPolicyReturn(task, 100, 0);
      zero = {
        value: r.mean,
        what: `uniform random policy, ${r.episodes} episodes, seed ${r.seed}: ${fixed(r.mean)}`,
        json: { kind: "random_policy_return", ...r },
      };
    }
    const bySetting: Record<string, Described> = {};
    const gold: Record<string, Described> = {};
    for (const s of SCHULMAN_TABLE1) {
      const mine = trials.filter((t) => table1Setting(t.point) === s);
      bySetting[s.label] = over(mine, table1Score);
      if (task === "sentiment") gold[s.label] = over(mine, (t) => metricOf(t, "gold_score"));
    }
    const means = Object.fromEntries(labels.map((l) => [l, bySetting[l].mean]));
    const norm = normalizeScores(means, zero.value);
    const steps = trials[0]
      ? task === "sentiment"
        ? `${trials[0].config.updates} updates × ${trials[0].config.batch} responses`
        : `${trials[0].config.total_steps} steps`
      : "-";
    return { task, trials, zero, bySetting, gold, norm, steps, seeds: seedsOf(trials) };
  });
  const avg = (label: string) => {
    const vs = perTask.map((p) => p.norm[label]).filter((v): v is number => v !== null);
    return vs.length === perTask.length && vs.length
      ? vs.reduce((a, b) => a + b, 0) / vs.length
      : null;
  };
  const classicTasks = perTask.filter((p) => p.task !== "sentiment");
  const avgClassic = (label: string) => {
    const vs = classicTasks.map((p) => p.norm[label]).filter((v): v is number => v !== null);
    return vs.length === classicTasks.length && vs.length
      ? vs.reduce((a, b) => a + b, 0) / vs.length
      : null;
  };
  const taskHead = (task: string) => (task === "sentiment" ? "sentiment (RM)" : task);
  const mainRows = SCHULMAN_TABLE1.map((s) => [
    s.label,
    fixed(s.paper),
    fixed(avg(s.label)),
    fixed(avgClassic(s.label)),
    ...perTask.map((p) => fixed(p.norm[s.label])),
  ]);
  const rawRows = SCHULMAN_TABLE1.map((s) => [
    s.label,
    ...perTask.flatMap((p) =>
      p.task === "sentiment"
        ? [meanStd(p.bySetting[s.label], 3), meanStd(p.gold[s.label], 3)]
        : [meanStd(p.bySetting[s.label])]
    ),
  ]);
  const rawHead = perTask.flatMap((p) =>
    p.task === "sentiment" ? ["sentiment RM score", "sentiment gold score"] : [`${p.task} return`]
  );
  const md = [
    `## PPO surrogate objectives: Schulman et al. 2017, Table 1${ctx.quick ? " (quick mode)" : ""}`,
    "",
    "Average normalised score per setting: per task, score = (ours − zero) / (best setting − " +
    "zero), so the best setting of each task scores 1; averaged over the tasks.",
    "",
    markdownTable(
      [
        "Setting",
        "Paper (MuJoCo)",
        "Ours (all tasks)",
        "Ours (classic control)",
        ...perTask.map((p) => taskHead(p.task)),
      ],
      mainRows,
      [false, true, true, true, ...perTask.map(() => true)],
    ),
    "",
    "Raw scores (mean ± std over seeds):",
    "",
    markdownTable(["Setting", ...rawHead], rawRows, [false, ...rawHead.map(() => true)]),
    "",
    "Setup and zero points:",
    "",
    ...perTask.map((p) =>
      `- ${p.task}: ${p.steps}, seeds ${p.seeds.join(", ")}; score = ${
        p.task === "sentiment"
          ? `reward-model score of ${evalSamples(p.trials)} evaluation samples after PPO`
          : "mean return of the last 100 training episodes"
      }; zero = ${p.zero.what}.`
    ),
    "- Classic control: the paper's optimisation settings (its Table 3: horizon 2048, Adam " +
    "3e-4, 10 epochs, minibatches of 64, γ 0.99, λ 0.95, no entropy bonus), otherwise " +
    "CleanRL ppo.py; KL penalty settings use the exact KL(π_old‖π) over the action " +
    "distribution (as the paper does for its Gaussians) and no clipping; adaptive KL uses the " +
    "paper's rule (β ×2 when d > 1.5·d_targ, ÷2 when d < d_targ/1.5, with d the mean " +
    "KL(π_old‖π) over the update's last epoch), β initialised at 1.",
    "- sentiment: every setting keeps the task's KL to the reference policy in the reward " +
    `(β = ${refKlBeta(ctx.trials)}), so each is an ordinary RLHF run;` +
    " the KL-penalty settings add the k3 " +
    "estimate of KL(π_old‖π) per token (`ppo.penalty`). Zero = the SFT policy (the starting point), " +
    "not a random token policy. The gold score is shown beside the RM score.",
    ...(ctx.quick
      ? ["- Quick mode: far fewer steps and seeds; the numbers only check the pipeline."]
      : []),
    ...failedNote(ctx.trials),
    "",
    `Paper: ${cite(SCHULMAN_2017)}`,
    "",
  ].join("\n");
  return {
    markdown: md,
    json: {
      table: "ppo-table1",
      quick: ctx.quick,
      tasks: perTask.map((p) => ({
        task: p.task,
        setup: p.steps,
        seeds: p.seeds,
        zero: p.zero.json,
        settings: SCHULMAN_TABLE1.map((s) => ({
          label: s.label,
          score: stats(p.bySetting[s.label]),
          ...(p.task === "sentiment" ? { gold: stats(p.gold[s.label]) } : {}),
          normalized: p.norm[s.label],
        })),
      })),
      rows: SCHULMAN_TABLE1.map((s) => ({
        label: s.label,
        config: s.config,
        paper: s.paper,
        ours: avg(s.label),
        ours_classic: avgClassic(s.label),
        per_task: Object.fromEntries(perTask.map((p) => [p.task, p.norm[s.label]])),
      })),
    },
  };
}

// ---- ziegler-kl ------------------------------------------------------------------------------

/** The row a ziegler-kl trial belongs to: its KL target, or "β = 0" / "β = x" for fixed β. */
function zieglerRow(t: ReproduceTrial): { key: string; label: string; order: number } {
  const kl = (t.config.ppo as { kl: { control: string; target: number; beta: number } }).kl;
  if (kl.control === "fixed") {
    return { key: `fixed-${kl.beta}`, label: `fixed β = ${kl.beta}`, order: -1e9 + kl.beta };
  }
  return {
    key: `target-${kl.target}`,
    label: `adaptive, KL target ${kl.target}`,
    order: kl.target,
  };
}

function buildZiegler(ctx: ReproduceContext): ReproduceTableResult {
  const groups = new Map<string, { label: string; order: number; trials: ReproduceTrial[] }>();
  for (const t of ctx.trials) {
    const r = zieglerRow(t);
    const g = groups.get(r.key) ?? { label: r.label, order: r.order, trials: [] };
    g.trials.push(t);
    groups.set(r.key, g);
  }
  const ordered = [...groups.values()].sort((a, b) => a.order - b.order);
  const sft = {
    rm: over(ctx.trials, (t) => metricOf(t, "rm_score_before")),
    gold: over(ctx.trials, (t) => metricOf(t, "gold_score_before")),
  };
  const rowStats = ordered.map((g) => ({
    label: g.label,
    seeds: seedsOf(g.trials),
    beta: over(g.trials, (t) => lastOf(t, "beta")),
    kl: over(g.trials, (t) => metricOf(t, "kl")),
    rm: over(g.trials, (t) => metricOf(t, "rm_score")),
    gold: over(g.trials, (t) => metricOf(t, "gold_score")),
    len: over(g.trials, (t) => metricOf(t, "response_length")),
  }));
  const rows = [
    ["SFT policy (before PPO)", "-", "0.00", fixed(sft.rm.mean, 3), fixed(sft.gold.mean, 3), "-"],
    ...rowStats.map((r) => [
      r.label,
      meanStd(r.beta, 4),
      meanStd(r.kl),
      meanStd(r.rm, 3),
      meanStd(r.gold, 3),
      meanStd(r.len, 1),
    ]),
  ];
  const first = ctx.trials[0];
  const setup = first
    ? `${first.config.updates} PPO updates × ${first.config.batch} responses, seeds ${
      seedsOf(ctx.trials).join(", ")
    }`
    : "-";
  const adaptive = ctx.trials.find((t) =>
    (t.config.ppo as { kl: { control: string } }).kl.control === "adaptive"
  );
  const kl0 = adaptive ? (adaptive.config.ppo as { kl: Record<string, unknown> }).kl : {};
  const md = [
    `## Reward vs KL on sentiment: Ziegler et al. 2019 setting${ctx.quick ? " (quick mode)" : ""}`,
    "",
    markdownTable(
      ["Setting", "final β", "KL(π‖π_ref) (nats)", "RM score", "gold score", "length (tokens)"],
      rows,
      [false, true, true, true, true, true],
    ),
    "",
    `Reward per response: RM score at EOS − β·KL(π‖π_ref) per token (k1 estimate), β adapted ` +
    `toward the KL target per response with Ziegler et al.'s proportional controller ` +
    `(error clipped to ±0.2, horizon ${kl0.horizon} samples, β initialised at ${kl0.beta}). ` +
    `${setup}. KL, RM and gold scores are measured on ${
      evalSamples(ctx.trials)
    } evaluation samples after PPO ` +
    `(mean ± std over seeds). The gold score is the task's hidden reward: where RM rises ` +
    `and gold does not, the policy over-optimises the reward model.`,
    ...(ctx.quick
      ? ["", "Quick mode: far fewer updates and seeds; the numbers only check the pipeline."]
      : []),
    ...failedNote(ctx.trials),
    "",
    `Setting: ${cite(ZIEGLER_2019)}`,
    "",
  ].join("\n");
  return {
    markdown: md,
    json: {
      table: "ziegler-kl",
      quick: ctx.quick,
      sft: { rm_score: sft.rm.mean, gold_score: sft.gold.mean },
      rows: rowStats.map((r) => ({
        label: r.label,
        seeds: r.seeds,
        final_beta: stats(r.beta),
        kl: stats(r.kl),
        rm_score: stats(r.rm),
        gold_score: stats(r.gold),
        response_length: stats(r.len),
      })),
    },
  };
}

// ---- the tables ------------------------------------------------------------------------------

/** Stage configs of the sentiment task's quick modes (small SFT and reward model). */
export const SENTIMENT_QUICK_STAGES: Record<string, unknown> = {
  "sft.steps": 150,
  "sft.corpus_size": 800,
  "reward_model.steps": 60,
  "reward_model.pairs": 400,
  "reward_model.held_out": 64,
  "eval.samples": 32,
};

/** Stage configs of the `jsx` task's quick modes (a short SFT, small evaluations). */
export const JSX_QUICK_STAGES: Record<string, unknown> = {
  "sft.steps": 60,
  "sft.corpus_size": 400,
  "eval.samples_per_prompt": 2,
  "eval.execute": false,
  max_new_tokens: 48,
};

export const REPRODUCE_TABLES: Record<string, ReproduceTableDef> = {
  "cleanrl-classic-control": {
    name: "cleanrl-classic-control",
    title: "PPO on CartPole-v1 and Acrobot-v1 vs CleanRL ppo.py's benchmark",
    summary: "CleanRL ppo.py on CartPole-v1 / Acrobot-v1, 500k steps, 3 seeds (6 runs)",
    experiments: [
      {
        file: "experiments/reproduce/cleanrl-cartpole.ts",
        quick: { set: { total_steps: 8192 }, seeds: [1, 2] },
      },
      {
        file: "experiments/reproduce/cleanrl-acrobot.ts",
        quick: { set: { total_steps: 8192 }, seeds: [1, 2] },
      },
    ],
    build: buildCleanrl,
  },
  "ppo-table1": {
    name: "ppo-table1",
    title: "Schulman et al. 2017 Table 1: surrogate objectives, normalised scores",
    summary: "11 surrogate settings × (CartPole-v1, Acrobot-v1, sentiment) × 3 seeds",
    experiments: [
      {
        file: "experiments/reproduce/ppo-table1-cartpole.ts",
        quick: { set: { total_steps: 4096 }, seeds: [1] },
      },
      {
        file: "experiments/reproduce/ppo-table1-acrobot.ts",
        // (Acrobot needs several rollouts before any episode ends early, i.e. before PPO beats
        // the random policy and the normalised scores are defined.)
        quick: { set: { total_steps: 8192 }, seeds: [1] },
      },
      {
        file: "experiments/reproduce/ppo-table1-sentiment.ts",
        quick: { set: { ...SENTIMENT_QUICK_STAGES, updates: 2, batch: 8 }, seeds: [1] },
      },
    ],
    build: buildTable1,
  },
  "ziegler-kl": {
    name: "ziegler-kl",
    title: "Ziegler et al. 2019: reward vs KL with adaptive KL targets on sentiment",
    summary: "sentiment, adaptive KL toward several targets (+ β = 0), RM and gold scores",
    experiments: [
      {
        file: "experiments/reproduce/ziegler-kl.ts",
        quick: { set: { ...SENTIMENT_QUICK_STAGES, updates: 3, batch: 8 }, seeds: [1] },
      },
    ],
    build: buildZiegler,
  },
  "rlhf-methods": {
    name: "rlhf-methods",
    // One row per method record (lib/report/methods.ts derives the sweeps from the records).
    title: `${METHODS.map((m) => m.label).join(", ")} side by side`,
    summary:
      `${SENTIMENT_METHODS.length} methods × 3 seeds on sentiment (+ ${JSX_METHODS.length} ` +
      "online ones on jsx), one sample budget",
    experiments: [
      {
        file: "experiments/methods.ts",
        quick: { set: { ...SENTIMENT_QUICK_STAGES, updates: 3, batch: 8 }, seeds: [1] },
      },
      {
        file: "experiments/methods-jsx.ts",
        quick: { set: { ...JSX_QUICK_STAGES, updates: 2, samples_per_prompt: 2 }, seeds: [1] },
      },
    ],
    build: buildMethods,
  },
  rlvr: rlvrTable(), // lib/report/rlvr_table.ts
};

/** Names of the reproducible tables. */
export const REPRODUCE_NAMES: string[] = Object.keys(REPRODUCE_TABLES);
