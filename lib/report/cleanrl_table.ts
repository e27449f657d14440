/**
 * `deno task reproduce cleanrl-classic-control`: PPO with CleanRL ppo.py's hyperparameters on
 * CartPole-v1 and Acrobot-v1 (500k steps, 3 seeds), per seed and mean ± std, beside CleanRL's
 * published benchmark and openai/baselines', with whether ours falls within their ± 2·std.
 *
 * Every cell comes from summary.json files, printed with fixed decimals: the same bundles give
 * the same bytes.
 * @module
 */
import { BASELINES_2022, CLEANRL_2022, CLEANRL_PPO_CLASSIC } from "./papers.ts";
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
  stats,
} from "./reproduce_table.ts";

/** The classic-control environments of the CleanRL and Table 1 tables, in their order. */
export const CLASSIC = ["CartPole-v1", "Acrobot-v1"] as const;

/** Builds the `cleanrl-classic-control` table from its trials. */
export function buildCleanrl(ctx: ReproduceContext): ReproduceTableResult {
  const rows: string[][] = [];
  const json: Record<string, unknown>[] = [];
  for (const env of CLASSIC) {
    const trials = ctx.trials.filter((t) => t.task === env).sort((a, b) => a.seed - b.seed);
    const d = over(trials, (t) => metricOf(t, "return"));
    // The published ± is numpy's std (divisor n) of the per-seed values: openrlbenchmark's
    // rlops prints `metric_result.std()` of a numpy array. Ours is printed the same way, so the
    // two columns are one statistic; d.std (divisor n − 1) stays in the JSON as `ours.std`.
    const popStd = d.std === null ? null : d.std * Math.sqrt((d.n - 1) / d.n);
    const pub = CLEANRL_PPO_CLASSIC[env];
    const lo = pub.cleanrl.mean - 2 * pub.cleanrl.std, hi = pub.cleanrl.mean + 2 * pub.cleanrl.std;
    const within = d.mean === null ? null : d.mean >= lo && d.mean <= hi;
    const blo = pub.baselines.mean - 2 * pub.baselines.std;
    const bhi = pub.baselines.mean + 2 * pub.baselines.std;
    const withinB = d.mean === null ? null : d.mean >= blo && d.mean <= bhi;
    const yesNo = (v: boolean | null) => (v === null ? "-" : v ? "yes" : "no");
    const steps = trials[0] ? Number(trials[0].config.total_steps) : null;
    rows.push([
      env,
      steps === null ? "-" : String(steps),
      String(d.n),
      meanStd({ ...d, std: popStd }),
      trials.map((t) => `${t.seed}: ${fixed(metricOf(t, "return"))}`).join(", "),
      `${fixed(pub.cleanrl.mean)} ± ${fixed(pub.cleanrl.std)}`,
      `${fixed(pub.baselines.mean)} ± ${fixed(pub.baselines.std)}`,
      `[${fixed(lo)}, ${fixed(hi)}]`,
      yesNo(within),
      yesNo(withinB),
    ]);
    json.push({
      env,
      total_steps: steps,
      ours: { ...stats(d), std_population: popStd },
      per_seed: trials.map((t) => ({ seed: t.seed, return: metricOf(t, "return") })),
      cleanrl: pub.cleanrl,
      baselines: pub.baselines,
      cleanrl_range_2std: [lo, hi],
      within_range: within,
      baselines_range_2std: [blo, bhi],
      within_baselines_range: withinB,
    });
  }
  const md = [
    `## PPO on classic control: Proxima vs CleanRL ppo.py${ctx.quick ? " (quick mode)" : ""}`,
    "",
    markdownTable(
      [
        "Environment",
        "Steps",
        "Seeds",
        "Ours (mean ± std)",
        "Ours per seed",
        "CleanRL ppo.py",
        "openai/baselines",
        "CleanRL mean ± 2·std",
        "Within CleanRL ± 2·std",
        "Within baselines ± 2·std",
      ],
      rows,
      [false, true, true, true, false, true, true, false, false, false],
    ),
    "",
    "Return = mean episodic return of the last 100 training episodes of each seed (exactly " +
    "100, from episodes.jsonl), the metric of CleanRL's benchmark (openrlbenchmark rlops, " +
    "`metric_last_n_average_window` 100); ± is the standard deviation over seeds with divisor " +
    "n, as rlops computes the published ± (numpy's std). Hyperparameters: CleanRL ppo.py defaults (4 envs × " +
    "128 steps, lr 2.5e-4 annealed, γ 0.99, λ 0.95, 4 minibatches, 4 epochs, clip 0.2, " +
    "clipped value loss, entropy 0.01, vf 0.5, grad norm 0.5, 64-64 tanh MLPs).",
    ...(ctx.quick
      ? [
        "",
        "Quick mode: fewer steps and seeds than the paper setting, so the 'Within' columns are not a reproduction check.",
      ]
      : []),
    ...failedNote(ctx.trials),
    "",
    `Published: ${cite(CLEANRL_2022)}`,
    `openai/baselines: ${cite(BASELINES_2022)}`,
    "",
  ].join("\n");
  return { markdown: md, json: { table: "cleanrl-classic-control", quick: ctx.quick, rows: json } };
}
