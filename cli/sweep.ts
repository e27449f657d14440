/**
 * `deno task sweep experiments/kl.ts [--jobs N] [--dry-run] [--set key=value] ...`
 *
 * Validates the experiment (every key and value of every trial) before anything runs, then
 * runs its trials through an executor (lib/experiment/executors/: local worker processes, or
 * a Slurm job array with `--executor slurm`), follows its events with progress bars
 * (cli/sweep_follow.ts, the same loop for every executor), and prints a summary table. Run it again after a crash or Ctrl-C: finished trials are verified and skipped,
 * interrupted ones resume from their last checkpoint.
 * @module
 */
import {
  codeVersion,
  type Experiment,
  gitInfo,
  loadExperiment,
  LocalExecutor,
  planExperiment,
  validateInputs,
} from "../lib/experiment/mod.ts";
import { parseRunFlags, runCommand, UsageError } from "./run_flags.ts";
import { trialWorkerCommand } from "./trial.ts";
import { reportToFlag } from "./report_to.ts";
import { checkOutputDir } from "./preflight.ts";
import { dryRun, printResults } from "./sweep_ui.ts";
import { follow } from "./sweep_follow.ts";
import {
  joinSbatchArgs as SLURM_ARGS,
  SLURM_FLAGS,
  SLURM_HELP,
  slurmFlags,
  slurmMain,
} from "./sweep_slurm.ts";

const HELP = `Usage: deno task sweep <experiment.ts> [flags]

Runs every trial of an experiment file into results/<experiment>/<trial-id>/ and prints a
summary table. Run it again to resume: finished trials are verified and skipped, interrupted
ones continue from their last checkpoint.

Flags:
  --jobs N          trials run in parallel (default: number of CPU cores, ${navigator.hardwareConcurrency})
  --threads N       ONNX Runtime threads per trial (default 1)
  --device cpu|cuda execution provider (default cpu)
  --results DIR     results root (default results)
  --set KEY=VALUE   override a config key for every trial, e.g. --set total_steps=2048
                    (repeatable; VALUE is read as JSON when it parses; changes the trial ids)
  --dry-run         list the trials and their state; run nothing
  --quiet           no progress bars or progress lines
  --report_to none|tensorboard
                    also log every trial's metrics rows while it trains as TensorBoard event
                    files in <results>/<experiment>/tensorboard/<trial-id>/ (default none)
  --help            this text
${SLURM_HELP}

Exit status: 0 all trials done, 1 some trial failed, 2 invalid experiment or flags,
130 interrupted.`;

function parseFlags(args: string[]) {
  const { run, values, positionals } = parseRunFlags("sweep", args, {
    set: { type: "string", multiple: true },
    "dry-run": { type: "boolean" },
    report_to: { type: "string" },
    ...SLURM_FLAGS,
  });
  const overrides: Record<string, unknown> = {};
  for (const s of values.set ?? []) {
    const eq = s.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(
        `sweep: --set needs KEY=VALUE (got "${s}"), e.g. --set total_steps=2048`,
      );
    }
    const raw = s.slice(eq + 1);
    let v: unknown = raw;
    try {
      v = JSON.parse(raw);
    } catch { /* a plain string */ }
    overrides[s.slice(0, eq)] = v;
  }
  if (positionals.length > 1) {
    throw new UsageError(`sweep: one experiment file at a time (got ${positionals.join(", ")})`);
  }
  return {
    file: positionals[0],
    ...run,
    overrides,
    dryRun: Boolean(values["dry-run"]),
    reportTo: reportToFlag(values.report_to, "sweep"),
    slurm: slurmFlags(values),
  };
}

async function main(): Promise<number> {
  const flags = parseFlags(SLURM_ARGS(Deno.args));
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (!flags.file) {
    throw new UsageError(
      "sweep: give an experiment file, e.g. deno task sweep experiments/kl.ts (see --help)",
    );
  }
  // The results root before anything is loaded: a file or a read-only folder is refused now.
  if (!flags.dryRun && !flags.slurm) await checkOutputDir("sweep", "--results", flags.results);
  const file = flags.file;
  const abs = file.startsWith("/") ? file : `${Deno.cwd()}/${file}`;
  const exp: Experiment = await loadExperiment(file);
  const cv = await codeVersion();
  const plan = planExperiment(exp, { file, codeVersion: cv, overrides: flags.overrides });
  await validateInputs(plan); // model folders, prompt files: before any trial starts
  if (flags.dryRun) {
    await dryRun(plan, flags.results);
    return 0;
  }
  if (flags.slurm) {
    return await slurmMain(plan, { ...flags, slurm: flags.slurm, experimentFile: abs });
  }

  const ex = new LocalExecutor({
    root: flags.results,
    jobs: flags.jobs,
    threads: flags.threads,
    device: flags.device,
    experimentFile: abs,
    git: await gitInfo(),
    workerCommand: trialWorkerCommand(),
    reportTo: flags.reportTo,
  });
  if (!flags.quiet) {
    console.error(
      `${file}: ${plan.trials.length} trials of ${plan.kind.name}, ${flags.jobs} at a time -> ` +
        `${flags.results}/${plan.name}/`,
    );
  }
  await ex.submit(plan);
  const r = await follow(plan, ex, { quiet: flags.quiet });
  return printResults(plan, r.outcomes, flags.results, r.seconds, r.interrupted);
}

if (import.meta.main) await runCommand(main);
