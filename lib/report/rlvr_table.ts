/**
 * `deno task reproduce rlvr`: GRPO, Dr. GRPO and RLOO on the `rlvr` task (experiments/rlvr.ts)
 * from their bundles — held-out pass@1 and pass@k of the SFT policy and after RL, per method
 * and per seed (does RL beat the SFT policy on every seed, by more than the seeds' spread?),
 * format rate, and the response lengths — beside the published finding of Liu et al. 2025:
 * GRPO's per-response length normalisation lets incorrect responses grow longer during training,
 * Dr. GRPO's unnormalised loss does not. The paper reports that finding as a training curve
 * (Figure 1 right), not as a number in its text, so the table quotes the finding and
 * the paper's one headline number, and states the verdict on our measurement plainly.
 *
 * Every cell comes from summary.json files, printed with fixed decimals: the same bundles give
 * the same bytes.
 * @module
 */
import { DR_GRPO, GRPO, RLOO } from "../ppo/methods/mod.ts";
import type { Described } from "./aggregate.ts";
import { LIU_2025, SHAO_2024 } from "./papers.ts";
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

/** The methods of the table, in order (their records): `ppo.advantage` -> label. */
const METHODS: readonly [string, string][] = [GRPO, DR_GRPO, RLOO].map((m) => [
  m.advantage!,
  m.label,
]);

const advantageOf = (t: ReproduceTrial) =>
  String((t.config.ppo as { advantage?: string } | undefined)?.advantage ?? "gae");

/** "+0.123" / "-0.123" ("-" when missing). */
const signed = (v: number | null, digits = 3) =>
  v === null ? "-" : `${v >= 0 ? "+" : ""}${fixed(v, digits)}`;

/** Change of a metric from before (`<name>_before`) to after RL, per trial. */
const change = (t: ReproduceTrial, name: string) => {
  const a = metricOf(t, name), b = metricOf(t, `${name}_before`);
  return a === null || b === null ? null : a - b;
};

/** Per method: the stats the table prints. */
function methodStats(trials: ReproduceTrial[]) {
  const after = trials.map((t) => metricOf(t, "pass1")).filter((v): v is number => v !== null);
  const gains = trials.map((t) => change(t, "pass1")).filter((v): v is number => v !== null);
  // The acceptance check: RL beats the SFT policy on every seed by more than the seeds' spread
  // (max − min of the after-RL accuracy over seeds).
  const spread = after.length ? Math.max(...after) - Math.min(...after) : null;
  const minGain = gains.length ? Math.min(...gains) : null;
  return {
    seeds: seedsOf(trials),
    pass1Before: over(trials, (t) => metricOf(t, "pass1_before")),
    pass1: over(trials, (t) => metricOf(t, "pass1")),
    gain: over(trials, (t) => change(t, "pass1")),
    passkBefore: over(trials, (t) => metricOf(t, "passk_before")),
    passk: over(trials, (t) => metricOf(t, "passk")),
    format: over(trials, (t) => metricOf(t, "format_rate")),
    length: over(trials, (t) => metricOf(t, "response_length")),
    wrongBefore: over(trials, (t) => metricOf(t, "length_incorrect_before")),
    wrong: over(trials, (t) => metricOf(t, "length_incorrect")),
    wrongChange: over(trials, (t) => change(t, "length_incorrect")),
    kl: over(trials, (t) => metricOf(t, "kl")),
    better: gains.filter((g) => g > 0).length,
    n: gains.length,
    spread,
    minGain,
    beatsSpread: minGain !== null && spread !== null && minGain > spread,
  };
}

const json = (d: Described) => stats(d);

/** The table (see the module doc). */
export function buildRlvr(ctx: ReproduceContext): ReproduceTableResult {
  const trials = ctx.trials.filter((t) => t.task === "rlvr");
  const methods = METHODS.map(([id, label]) => ({
    id,
    label,
    trials: trials.filter((t) => advantageOf(t) === id && t.summary),
  })).filter((m) => m.trials.length).map((m) => ({ ...m, s: methodStats(m.trials) }));
  const k = String((trials[0]?.config.eval as { k?: number } | undefined)?.k ?? "k");
  const w = trials.find((t) => t.work)?.work;
  const budget = w ? `${w.total} updates × ${w.steps} responses` : "-";

  const main = markdownTable(
    [
      "method",
      "seeds",
      "pass@1 SFT",
      "pass@1 after RL",
      "Δ pass@1",
      `pass@${k} SFT`,
      `pass@${k} after RL`,
      "format rate",
      "KL (nats)",
    ],
    methods.map(({ label, s }) => [
      label,
      String(s.seeds.length),
      meanStd(s.pass1Before, 3),
      meanStd(s.pass1, 3),
      meanStd(s.gain, 3),
      meanStd(s.passkBefore, 3),
      meanStd(s.passk, 3),
      meanStd(s.format, 3),
      meanStd(s.kl, 2),
    ]),
    [false, true, true, true, true, true, true, true, true],
  );

  const perSeed = markdownTable(
    ["method", "seed", "pass@1 SFT", "pass@1 after RL", "Δ"],
    methods.flatMap(({ label, trials: ts }) =>
      [...ts].sort((a, b) => a.seed - b.seed).map((t) => [
        label,
        String(t.seed),
        fixed(metricOf(t, "pass1_before"), 3),
        fixed(metricOf(t, "pass1"), 3),
        signed(change(t, "pass1")),
      ])
    ),
    [false, true, true, true, true],
  );

  const checks = methods.map(({ label, s }) =>
    `- ${label}: after RL above the SFT policy on ${s.better} of ${s.n} seeds; smallest gain ` +
    `${signed(s.minGain)} ${s.beatsSpread ? ">" : "≤"} the seeds' spread of the after-RL ` +
    `accuracy (max − min) ${fixed(s.spread, 3)}: ${
      s.better === s.n && s.beatsSpread ? "yes" : "no"
    }.`
  );

  const lengths = markdownTable(
    [
      "method",
      "response length",
      "wrong responses: length SFT",
      "after RL",
      "change",
    ],
    methods.map(({ label, s }) => [
      label,
      meanStd(s.length, 1),
      meanStd(s.wrongBefore, 1),
      meanStd(s.wrong, 1),
      meanStd(s.wrongChange, 2),
    ]),
    [false, true, true, true, true],
  );

  const g = methods.find((m) => m.id === GRPO.advantage)?.s;
  const d = methods.find((m) => m.id === DR_GRPO.advantage)?.s;
  let verdict = "Not measured: the sweep needs both GRPO and Dr. GRPO trials.";
  if (g && d && g.wrongChange.mean !== null && d.wrongChange.mean !== null) {
    const diff = g.wrongChange.mean - d.wrongChange.mean;
    const noise = Math.max(g.wrongChange.std ?? 0, d.wrongChange.std ?? 0);
    verdict = diff > noise
      ? `Reproduced in direction: GRPO's wrong responses changed length by ` +
        `${signed(g.wrongChange.mean, 2)} tokens, Dr. GRPO's by ${
          signed(d.wrongChange.mean, 2)
        } (difference ${signed(diff, 2)}, larger than the seeds' std ${fixed(noise, 2)}).`
      : `Not reproduced here: GRPO's wrong responses changed length by ` +
        `${signed(g.wrongChange.mean, 2)} tokens, Dr. GRPO's by ${
          signed(d.wrongChange.mean, 2)
        } (difference ${signed(diff, 2)}, within the seeds' std ${fixed(noise, 2)}). ` +
        "In this task the worked format fixes a response's length (the column sums of two " +
        "operands), so the length normalisation has little room to act; the paper measures " +
        "it on free-form math reasoning, where a response's length is the model's choice.";
  }

  const markdown = [
    `## RLVR on \`rlvr\` (addition with worked solutions): GRPO, Dr. GRPO, RLOO`,
    "",
    `Held-out problems, ${k} samples each at temperature 1 (pass@1 = share of samples right; ` +
    `pass@${k} = share of problems with one right); sample budget ${budget}; reward = ` +
    "exact_match + 0.1 · format; mean ± std over RL seeds.",
    "",
    main,
    "",
    "Per seed:",
    "",
    perSeed,
    "",
    "Does RL beat the SFT policy on every seed by more than the seeds' spread?",
    "",
    ...checks,
    "",
    "### Beside the paper: length of wrong responses (Liu et al. 2025)",
    "",
    "Published finding: GRPO normalises each response's loss by its length (and advantages by " +
    "the group's std), so a long wrong response is penalised less per token than a short " +
    "one and wrong responses grow longer during training; Dr. GRPO removes both terms and " +
    "the growth stops (abstract; Figure 1 right: a training curve, no number in the text). " +
    "Their headline number, at another scale: 43.3% on AIME 2024 with a 7B base model " +
    "(abstract).",
    "",
    lengths,
    "",
    `Verdict: ${verdict}`,
    ...failedNote(trials),
    "",
    "Sources:",
    `- ${cite(LIU_2025)}`,
    `- ${cite(SHAO_2024)}`,
    "",
  ].join("\n");

  return {
    markdown,
    json: {
      methods: Object.fromEntries(methods.map(({ id, s }) => [id, {
        seeds: s.seeds,
        pass1_before: json(s.pass1Before),
        pass1: json(s.pass1),
        pass1_gain: json(s.gain),
        passk_before: json(s.passkBefore),
        passk: json(s.passk),
        format_rate: json(s.format),
        response_length: json(s.length),
        length_incorrect_before: json(s.wrongBefore),
        length_incorrect: json(s.wrong),
        length_incorrect_change: json(s.wrongChange),
        kl: json(s.kl),
        seeds_better: s.better,
        min_gain: s.minGain,
        spread: s.spread,
        beats_spread: s.beatsSpread,
      }])),
      paper: { liu_2025: { aime2024_7b_percent: 43.3 } },
      verdict,
    },
  };
}

/**
 * The `rlvr` entry of the reproducible tables: experiments/rlvr.ts, and `--quick` (one seed, a
 * 40-step SFT, 2 updates, a small evaluation) for CI. A function (hoisted) because
 * lib/report/reproduce.ts lists it while this module may still be loading.
 */
export function rlvrTable(): ReproduceTableDef {
  return {
    name: "rlvr",
    title: "RLVR: GRPO, Dr. GRPO and RLOO on verifiable rewards, beside Liu et al. 2025",
    summary: "3 critic-free methods × 3 seeds on rlvr (addition, exact_match + format)",
    experiments: [{
      file: "experiments/rlvr.ts",
      quick: {
        set: { "sft.steps": 40, updates: 2, "eval.problems": 6, "eval.k": 2, "eval.every": 0 },
        seeds: [1],
      },
    }],
    build: buildRlvr,
  };
}
