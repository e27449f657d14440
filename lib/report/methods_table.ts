/**
 * `deno task reproduce rlhf-methods`: the methods of lib/report/methods.ts measured side by side
 * from their bundles — per task and method, over seeds: online or offline and the models held
 * (resources.json), the parameters held, peak RSS and training wall time (resources.json), the
 * responses trained on (the sample budget), the task's scores and the KL to the reference
 * (summary.json) — then the seed table's claims beside the measurements, and the published
 * numbers beside ours (Ahmadian et al. 2024 Table 1, Hu et al. 2025 Table 1).
 *
 * Every cell comes from bundle files, printed with fixed decimals: the same bundles give the
 * same bytes. (Peak RSS and wall time are measurements: a fresh run of the trials gives other
 * values, and other bundles.)
 * @module
 */
import type { Described } from "./aggregate.ts";
import { AHMADIAN_TABLE1, HU_TABLE1 } from "./papers.ts";
import { DPO, GRPO, PPO, REINFORCE_PP, RLOO } from "../ppo/methods/mod.ts";
import { METHOD_ORDER, methodDef, type MethodId, methodOf } from "./methods.ts";
import {
  cite,
  failedNote,
  fixed,
  markdownTable,
  meanStd,
  metricOf,
  over,
  type ReproduceContext,
  type ReproduceTableResult,
  type ReproduceTrial,
  seedsOf,
  stats,
} from "./reproduce_table.ts";

/**
 * The two scores a task reports (summary.json names), how the table heads them, and whether
 * its reward is a reward model (jsx's is a rule: one model fewer than the seed table counts).
 */
const SCORES: Record<
  string,
  { keys: [string, string]; heads: [string, string]; rewardModel: boolean }
> = {
  sentiment: {
    keys: ["rm_score", "gold_score"],
    heads: ["RM score", "gold score"],
    rewardModel: true,
  },
  jsx: {
    keys: ["reward", "structure_rate"],
    heads: ["reward (rule)", "structure rate"],
    rewardModel: false,
  },
};

const ROLE: Record<string, string> = {
  policy: "policy",
  value: "value",
  reference: "reference",
  reward_model: "reward model",
};

const MIB = 1024 * 1024;

/** 361985 -> "362.0k". */
const count = (n: number | null) =>
  n === null
    ? "-"
    : n >= 1e6
    ? `${fixed(n / 1e6, 2)}M`
    : n >= 1e3
    ? `${fixed(n / 1e3, 1)}k`
    : `${n}`;

function resourceOf(t: ReproduceTrial, f: (r: NonNullable<ReproduceTrial["resources"]>) => number) {
  return t.resources ? f(t.resources) : null;
}

/** What one method measured on one task, over its seeds. */
interface MethodStats {
  id: MethodId;
  label: string;
  trials: ReproduceTrial[];
  seeds: number[];
  online: boolean | null;
  models: string[] | null;
  parameters: Described;
  rss: Described;
  seconds: Described;
  responses: number | null;
  scores: [Described, Described];
  kl: Described;
  prefAccuracy: Described;
  prefAccuracyBefore: Described;
}

function methodStats(id: MethodId, trials: ReproduceTrial[], task: string): MethodStats {
  const sc = SCORES[task] ?? SCORES.sentiment;
  const r0 = trials.find((t) => t.resources)?.resources ?? null;
  const w = trials.find((t) => t.work)?.work;
  return {
    id,
    label: methodDef(id).label,
    trials,
    seeds: seedsOf(trials),
    online: r0 ? r0.online : null,
    models: r0 ? Object.keys(r0.models).map((k) => ROLE[k] ?? k) : null,
    parameters: over(trials, (t) => resourceOf(t, (r) => r.parameters_in_memory)),
    rss: over(trials, (t) => resourceOf(t, (r) => r.peak_rss_bytes / MIB)),
    seconds: over(trials, (t) => resourceOf(t, (r) => r.train_seconds)),
    responses: w ? w.total * w.steps : null,
    scores: [
      over(trials, (t) => metricOf(t, sc.keys[0])),
      over(trials, (t) => metricOf(t, sc.keys[1])),
    ],
    kl: over(trials, (t) => metricOf(t, "kl")),
    prefAccuracy: over(trials, (t) => metricOf(t, "pref_accuracy")),
    prefAccuracyBefore: over(trials, (t) => metricOf(t, "pref_accuracy_before")),
  };
}

/** Difference of two means ("-" when either is missing). */
const delta = (a: number | null, b: number | null, digits = 3) =>
  a === null || b === null ? "-" : `${a - b >= 0 ? "+" : ""}${fixed(a - b, digits)}`;

const sc_ = (task: string) => SCORES[task] ?? SCORES.sentiment;

const onlineText = (v: boolean | null) => (v === null ? "-" : v ? "online" : "offline");

function taskSection(task: string, trials: ReproduceTrial[]) {
  const sc = SCORES[task] ?? SCORES.sentiment;
  const methods = METHOD_ORDER
    .map((id) => ({ id, trials: trials.filter((t) => methodOf(t.config) === id) }))
    .filter((m) => m.trials.length)
    .map((m) => methodStats(m.id, m.trials, task));
  const before = [
    over(trials, (t) => metricOf(t, `${sc.keys[0]}_before`)),
    over(trials, (t) => metricOf(t, `${sc.keys[1]}_before`)),
  ];
  const main = markdownTable(
    [
      "Method",
      "Online",
      "Models held (measured)",
      "Parameters held",
      "Peak RSS (MiB)",
      "Train time (s)",
      "Responses",
      sc.heads[0],
      sc.heads[1],
      "KL(π‖π_ref) (nats)",
    ],
    [
      ...methods.map((m) => [
        m.label,
        onlineText(m.online),
        m.models ? `${m.models.length}: ${m.models.join(", ")}` : "-",
        count(m.parameters.mean),
        meanStd(m.rss, 0),
        meanStd(m.seconds, 1),
        m.responses === null ? "-" : String(m.responses),
        meanStd(m.scores[0], 3),
        meanStd(m.scores[1], 3),
        meanStd(m.kl, 2),
      ]),
    ],
    [false, false, false, true, true, true, true, true, true, true],
  );
  const ppo = methods.find((m) => m.id === PPO.name);
  const claims = markdownTable(
    [
      "Method",
      "Seed table: models",
      "Measured",
      "Seed table: online",
      "Measured",
      "Seed table: memory",
      "Measured peak RSS vs PPO (MiB)",
      "Seed table: quality",
      `Measured ${sc.heads[1]} vs PPO`,
    ],
    methods.map((m) => {
      const c = methodDef(m.id).claim;
      const claimed = sc.rewardModel || !c.which.includes("reward model")
        ? `${c.models}: ${c.which}`
        : `${c.models - 1}: ${c.which.replace(/, reward model$/, "")} (the reward is a rule)`;
      return [
        m.label,
        claimed,
        m.models ? String(m.models.length) : "-",
        c.online ? "online" : "offline",
        onlineText(m.online),
        c.memory,
        m.id === PPO.name ? "0" : delta(m.rss.mean, ppo?.rss.mean ?? null, 0),
        c.quality,
        m.id === PPO.name ? "0" : delta(m.scores[1].mean, ppo?.scores[1].mean ?? null),
      ];
    }),
    [false, false, true, false, false, false, true, false, true],
  );
  return { task, methods, before, main, claims };
}

export function buildMethods(ctx: ReproduceContext): ReproduceTableResult {
  const tasks = ["sentiment", "jsx"].filter((task) => ctx.trials.some((t) => t.task === task));
  const sections = tasks.map((task) =>
    taskSection(task, ctx.trials.filter((t) => t.task === task))
  );
  const sentiment = sections.find((s) => s.task === "sentiment");
  const ours = (id: MethodId, k: 0 | 1) =>
    sentiment?.methods.find((m) => m.id === id)?.scores[k].mean ?? null;
  const pubAhmadian = markdownTable(
    [
      "Method",
      "TL;DR",
      "HH (Pythia 6.9B)",
      "HH (Llama 7B)",
      "Ours: sentiment gold score",
      "Ours: RM score",
    ],
    (
      [["PPO", PPO.name], ["RLOO (k=4)", RLOO.name], ["RLOO (k=2)", null], [
        "DPO",
        DPO.name,
      ]] as const
    ).map(([label, id]) => [
      label,
      ...AHMADIAN_TABLE1[label].map((v) => fixed(v, 1)),
      id ? fixed(ours(id, 1), 3) : "-",
      id ? fixed(ours(id, 0), 3) : "-",
    ]),
    [false, true, true, true, true, true],
  );
  const pubHu = markdownTable(
    ["Method", "Chat-Arena-Hard", "Ours: sentiment gold score", "Ours: RM score"],
    (
      [["REINFORCE++ (k=1)", REINFORCE_PP.name], ["GRPO (k=4)", GRPO.name], [
        "RLOO (k=4)",
        RLOO.name,
      ]] as const
    ).map(([label, id]) => [
      label,
      fixed(HU_TABLE1[label], 1),
      fixed(ours(id, 1), 3),
      fixed(ours(id, 0), 3),
    ]),
    [false, true, true, true],
  );
  const rloo = sentiment?.methods.find((m) => m.id === RLOO.name);
  const ppoS = sentiment?.methods.find((m) => m.id === PPO.name);
  const dpoS = sentiment?.methods.find((m) => m.id === DPO.name);
  // The methods any task measured, in the records' order (a new record is a new row).
  const measured = METHOD_ORDER.filter((id) =>
    sections.some((sec) => sec.methods.some((m) => m.id === id))
  );
  const lines: string[] = [
    `## RLHF methods side by side: ${measured.map((id) => methodDef(id).label).join(", ")}${
      ctx.quick ? " (quick mode)" : ""
    }`,
    "",
  ];
  for (const s of sections) {
    const t0 = s.methods[0]?.trials[0];
    lines.push(
      `### ${s.task}`,
      "",
      s.main,
      "",
      `All start from the SFT policy: ${sc_(s.task).heads[0]} ${fixed(s.before[0].mean, 3)}, ` +
        `${sc_(s.task).heads[1]} ${fixed(s.before[1].mean, 3)}, KL 0. Mean ± std over seeds ${
          seedsOf(s.methods.flatMap((m) => m.trials)).join(", ")
        }; ` +
        `${t0 ? `${t0.config.updates} updates` : "-"}, the same responses per update for every ` +
        "method (DPO: half as many preference pairs, each a chosen and a rejected response). " +
        "Models held, parameters, peak RSS (VmHWM of the trial's process, reset when training " +
        "starts) and train time (the training loop alone) come from each bundle's " +
        `resources.json; ${
          s.task === "sentiment"
            ? "RM and hidden gold score and KL(π‖π_ref) per response (k1) are measured on the evaluation samples after training (summary.json)"
            : "the task reward and the structure rate (share of valid JSX components) and KL(π‖π_ref) are measured on the evaluation samples after training (summary.json)"
        }.`,
      "",
      "The seed table's claims beside the measurements:",
      "",
      s.claims,
      "",
    );
  }
  if (dpoS && dpoS.prefAccuracy.n) {
    lines.push(
      `DPO's held-out preference accuracy (the reward model's held-out pairs) of its implicit ` +
        `reward β·log π/π_ref: ${meanStd(dpoS.prefAccuracy, 3)}, against ` +
        `${fixed(dpoS.prefAccuracyBefore.mean, 3)} for the SFT policy (its implicit reward is 0: ` +
        `every pair a tie).`,
      "",
    );
  }
  lines.push(
    "Published numbers beside ours (different tasks, models and scales: the comparison is " +
      "of the ordering, not the values):",
    "",
    `Ahmadian et al. 2024, Table 1 (win-rate %; RLOO − PPO: ${
      fixed(77.9 - 67.6, 1)
    } points on TL;DR):`,
    "",
    pubAhmadian,
    "",
    `Ours, RLOO − PPO on sentiment: gold ${
      delta(rloo?.scores[1].mean ?? null, ppoS?.scores[1].mean ?? null)
    }, ` +
      `RM ${delta(rloo?.scores[0].mean ?? null, ppoS?.scores[0].mean ?? null)}.`,
    "",
    "Hu et al. 2025, Table 1 (Chat-Arena-Hard score):",
    "",
    pubHu,
    ...(ctx.quick
      ? ["", "Quick mode: far fewer updates and seeds; the numbers only check the pipeline."]
      : []),
    ...failedNote(ctx.trials),
    "",
    ...measured.map((id) => `${methodDef(id).label}: ${cite(methodDef(id).paper)}`),
    "",
  );
  const methodJson = (m: MethodStats) => ({
    method: m.id,
    label: m.label,
    seeds: m.seeds,
    online: m.online,
    models: m.models,
    parameters: m.parameters.mean,
    peak_rss_mib: stats(m.rss),
    train_seconds: stats(m.seconds),
    responses: m.responses,
    scores: [stats(m.scores[0]), stats(m.scores[1])],
    kl: stats(m.kl),
    ...(m.prefAccuracy.n ? { pref_accuracy: stats(m.prefAccuracy) } : {}),
    claim: methodDef(m.id).claim,
  });
  return {
    markdown: lines.join("\n"),
    json: {
      table: "rlhf-methods",
      quick: ctx.quick,
      tasks: sections.map((s) => ({
        task: s.task,
        scores: (SCORES[s.task] ?? SCORES.sentiment).keys,
        sft: s.before.map((d) => d.mean),
        methods: s.methods.map(methodJson),
      })),
      published: { ahmadian_2024_table1: AHMADIAN_TABLE1, hu_2025_table1: HU_TABLE1 },
    },
  };
}
