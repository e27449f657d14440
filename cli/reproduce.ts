/**
 * `deno task reproduce <table> [--quick] [--jobs N] [--results DIR] ...`
 *
 * Rebuilds a paper table (lib/report/reproduce.ts): runs its experiment files through the
 * sweep runner (results/<experiment>/, resumable like any sweep: finished trials are verified
 * and skipped, interrupted ones resume), then writes the table as markdown and JSON to
 * `<results>/reproduce/<table>/table.{md,json}` (`<table>-quick/` with --quick) and prints it.
 * The table holds only numbers from the trials, so the same trials give the same bytes; the
 * wall time is printed after it, never written into it.
 * @module
 */
import {
  codeVersion,
  didYouMean,
  gitInfo,
  loadExperiment,
  type Plan,
  planExperiment,
  REPO_ROOT,
  runPlan,
  type TrialOutcome,
} from "../lib/experiment/mod.ts";
import { parseRunFlags, runCommand, UsageError } from "./run_flags.ts";
import { checkOutputDir } from "./preflight.ts";
import { readResources } from "../lib/tasks/resources.ts";
import { trialWorkerCommand } from "./trial.ts";
import {
  quickExperiment,
  REPRODUCE_NAMES,
  REPRODUCE_TABLES,
  type ReproduceExperimentRef,
  type ReproduceTableDef,
  type ReproduceTrial,
} from "../lib/report/reproduce.ts";

const HELP = `Usage: deno task reproduce <table> [flags]

Runs the experiments behind a paper table and prints our numbers beside the published ones.
Tables:
${REPRODUCE_NAMES.map((n) => `  ${n.padEnd(24)} ${REPRODUCE_TABLES[n].summary}`).join("\n")}

Flags:
  --quick           a small version for CI (fewer steps and seeds; results in <experiment>-quick/)
  --jobs N          trials run in parallel (default: number of CPU cores, ${navigator.hardwareConcurrency})
  --threads N       ONNX Runtime threads per trial (default 1)
  --device cpu|cuda execution provider (default cpu)
  --results DIR     results root (default results): bundles in DIR/<experiment>/, the table in
                    DIR/reproduce/<table>[-quick]/table.md and table.json
  --quiet           no per-trial progress lines
  --list            list the tables and their experiment files
  --help            this text

Run it again to resume: finished trials are verified and skipped.
Exit status: 0 table written, 1 some trial failed (the table marks it), 2 bad flags or
experiment, 130 interrupted.`;

function parseFlags(args: string[]) {
  const { run, values, positionals } = parseRunFlags("reproduce", args, {
    quick: { type: "boolean" },
    list: { type: "boolean" },
  });
  if (positionals.length > 1) {
    throw new UsageError(`reproduce: one table at a time (got ${positionals.join(", ")})`);
  }
  return {
    name: positionals[0] as string | undefined,
    ...run,
    quick: Boolean(values.quick),
    list: Boolean(values.list),
  };
}

function tableDef(name: string | undefined): ReproduceTableDef {
  if (!name) {
    throw new UsageError(
      `reproduce: name a table: ${REPRODUCE_NAMES.join(", ")} (see --help)`,
    );
  }
  const def = REPRODUCE_TABLES[name];
  if (!def) {
    const s = didYouMean(name, REPRODUCE_NAMES);
    throw new UsageError(
      `reproduce: unknown table "${name}"${s ? ` (did you mean ${s}?)` : ""}; ` +
        `use one of ${REPRODUCE_NAMES.join(", ")}`,
    );
  }
  return def;
}

const fmtSecs = (s: number) => (s < 100 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`);

/** Plan one experiment of the table (its quick variant with --quick). */
async function planOne(ref: ReproduceExperimentRef, quick: boolean): Promise<Plan> {
  let exp = await loadExperiment(`${REPO_ROOT}/${ref.file}`);
  if (quick) exp = quickExperiment(exp, ref.quick.seeds);
  return planExperiment(exp, {
    file: ref.file,
    codeVersion: await codeVersion(),
    overrides: quick ? ref.quick.set : {},
  });
}

async function main(): Promise<number> {
  const flags = parseFlags(Deno.args);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (flags.list) {
    for (const n of REPRODUCE_NAMES) {
      const d = REPRODUCE_TABLES[n];
      console.log(`${n}: ${d.title}\n  ${d.experiments.map((e) => e.file).join("\n  ")}`);
    }
    return 0;
  }
  const def = tableDef(flags.name);
  await checkOutputDir("reproduce", "--results", flags.results); // before any planning
  // Every experiment is validated before any trial runs; each is planned again just before it
  // runs, so a long table picks up the code (and config schema) as it is at that point.
  const plans: Plan[] = [];
  for (const ref of def.experiments) plans.push(await planOne(ref, flags.quick));

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (interrupts++ > 0) Deno.exit(130);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);

  const total = plans.reduce((s, p) => s + p.trials.length, 0);
  const log = (s: string) => {
    if (!flags.quiet) console.error(s);
  };
  log(
    `reproduce ${def.name}${flags.quick ? " --quick" : ""}: ${total} trials in ${plans.length} ` +
      `experiment(s), ${flags.jobs} at a time -> ${flags.results}/`,
  );
  const t0 = performance.now();
  const git = await gitInfo();
  const trials: ReproduceTrial[] = [];
  const outcomes: TrialOutcome[] = [];
  let finished = 0;
  for (const ref of def.experiments) {
    if (controller.signal.aborted) break;
    const plan = await planOne(ref, flags.quick);
    const out = await runPlan(plan, {
      root: flags.results,
      jobs: flags.jobs,
      threads: flags.threads,
      device: flags.device,
      experimentFile: `${REPO_ROOT}/${ref.file}`,
      git,
      signal: controller.signal,
      workerCommand: trialWorkerCommand(),
    }, {
      onTrialEnd: (o) => {
        finished++;
        const label = Object.entries(o.trial.point).map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(" ");
        const what = o.status === "failed"
          ? `FAILED: ${o.error?.split("\n")[0]}`
          : `${o.status}${
            o.seconds !== undefined && o.status === "done" ? `, ${fmtSecs(o.seconds)}` : ""
          }`;
        log(`[${finished}/${total}] ${plan.name} ${plan.kind.name} ${label}: ${what}`);
      },
    });
    outcomes.push(...out);
    for (const o of out) {
      trials.push({
        experiment: plan.name,
        task: o.trial.identity.task,
        point: o.trial.point,
        seed: Number(o.trial.identity.config.seed),
        config: o.trial.identity.config,
        summary: o.summary ?? null,
        // Measurements the trial recorded in its bundle (resources.json), if it did.
        resources: o.summary
          ? await readResources(`${flags.results}/${plan.name}/${o.trial.id}`)
          : null,
        work: o.trial.work,
      });
    }
  }
  const wall = (performance.now() - t0) / 1e3;
  if (controller.signal.aborted) {
    console.log(
      `\ninterrupted after ${fmtSecs(wall)}: run the same command again to resume ` +
        `(finished trials are kept, unfinished ones continue from their last checkpoint)`,
    );
    return 130;
  }

  const table = def.build({ quick: flags.quick, trials });
  const dir = `${flags.results}/reproduce/${def.name}${flags.quick ? "-quick" : ""}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/table.md`, table.markdown);
  await Deno.writeTextFile(`${dir}/table.json`, JSON.stringify(table.json, null, 2) + "\n");
  console.log(table.markdown);

  const count = (s: string) => outcomes.filter((o) => o.status === s).length;
  const ran = outcomes.filter((o) => o.status === "done");
  const trialSecs = ran.reduce((s, o) => s + (o.seconds ?? 0), 0);
  const parts = ["done", "skipped", "reused", "failed"].filter((s) => count(s))
    .map((s) => `${count(s)} ${s === "done" ? "ran" : s}`);
  console.log(
    `wall time: ${fmtSecs(wall)} (${total} trials: ${parts.join(", ")}; ` +
      `${fmtSecs(trialSecs)} of trial time in the ${ran.length} that ran, ${flags.jobs} at a time)`,
  );
  console.log(`table: ${dir}/table.md and ${dir}/table.json`);
  const failed = outcomes.filter((o) => o.status === "failed");
  for (const o of failed) {
    console.log(`\ntrial ${o.trial.id} failed:\n  ${o.error}`);
  }
  return failed.length ? 1 : 0;
}

if (import.meta.main) await runCommand(main);
