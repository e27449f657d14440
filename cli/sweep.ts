/**
 * `deno task sweep experiments/kl.ts [--jobs N] [--dry-run] [--set key=value] ...`
 *
 * Validates the experiment (every key and value of every trial) before anything runs, then
 * runs its trials in parallel worker processes with progress bars, and prints a summary
 * table. Run it again after a crash or Ctrl-C: finished trials are verified and skipped,
 * interrupted ones resume from their last checkpoint.
 * @module
 */
import cliProgress from "cli-progress";
import {
  codeVersion,
  type Experiment,
  fmtValue,
  formatTable,
  gitInfo,
  inspectTrial,
  loadExperiment,
  type Plan,
  planExperiment,
  type PlannedTrial,
  runPlan,
  type TrialOutcome,
  type TrialSummary,
  validateInputs,
} from "../lib/experiment/mod.ts";
import { parseRunFlags, runCommand, UsageError } from "./run_flags.ts";
import { trialWorkerCommand } from "./trial.ts";

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
  --help            this text

Exit status: 0 all trials done, 1 some trial failed, 2 invalid experiment or flags,
130 interrupted.`;

function parseFlags(args: string[]) {
  const { run, values, positionals } = parseRunFlags("sweep", args, {
    set: { type: "string", multiple: true },
    "dry-run": { type: "boolean" },
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
  return { file: positionals[0], ...run, overrides, dryRun: Boolean(values["dry-run"]) };
}

const short = (id: string) => id.slice(0, 10);
/** A swept value (null is a value here, not a missing one). */
const fmtSwept = (v: unknown) => (v === null ? "null" : fmtValue(v));
const pointLabel = (p: Record<string, unknown>) =>
  Object.entries(p).map(([k, v]) => `${k}=${fmtSwept(v)}`).join(" ");

function metricValue(s: TrialSummary | undefined, m: string): unknown {
  if (!s) return null;
  const [name, agg] = m.split(":");
  if (agg === "mean") return s.mean?.[name] ?? null;
  if (agg === undefined && name in s.metrics) return s.metrics[name];
  return s.last?.[name] ?? null;
}

function fmtSecs(s: number | undefined): string {
  if (s === undefined) return "-";
  return s < 100 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "-";
  if (s < 60) return `${Math.ceil(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`;
}

function summaryTable(plan: Plan, outcomes: TrialOutcome[]): string {
  const headers = ["#", "trial", ...plan.sweptKeys, "status", ...plan.metrics, "time", "bundle"];
  const rows = outcomes.map((o) => [
    String(o.trial.index),
    short(o.trial.id),
    ...plan.sweptKeys.map((k) => fmtSwept(o.trial.point[k])),
    o.status === "done" && o.resumedFrom ? `done (resumed at ${o.resumedFrom})` : o.status,
    ...plan.metrics.map((m) => fmtValue(metricValue(o.summary, m))),
    o.status === "skipped" || o.status === "reused" ? "-" : fmtSecs(o.seconds),
    o.bundleHash ? o.bundleHash.slice(0, 12) : "-",
  ]);
  return formatTable(headers, rows);
}

async function dryRun(plan: Plan, root: string): Promise<void> {
  const expDir = `${root}/${plan.name}`;
  const rows: string[][] = [];
  const counts: Record<string, number> = {};
  for (const t of plan.trials) {
    const st = await inspectTrial(expDir, t.id);
    const state = st.state === "partial"
      ? `partial (checkpoint at ${st.update ?? 0}/${t.work.total})`
      : st.state;
    counts[st.state] = (counts[st.state] ?? 0) + 1;
    rows.push([
      String(t.index),
      short(t.id),
      ...plan.sweptKeys.map((k) => fmtSwept(t.point[k])),
      state,
      `${t.work.total} ${t.work.unit}`,
      String(t.work.total * t.work.steps),
    ]);
  }
  console.log(
    `${plan.file}: ${plan.trials.length} trials of ${plan.kind.name} -> ${expDir}/ ` +
      `(code version ${plan.codeVersion})`,
  );
  console.log(formatTable(["#", "trial", ...plan.sweptKeys, "state", "work", "steps"], rows));
  console.log(
    Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ") +
      "; nothing was run (--dry-run)",
  );
}

/** Progress display: multibar on a terminal, one line per finished trial otherwise. */
function makeProgress(plan: Plan, quiet: boolean) {
  const tty = !quiet && Deno.stderr.isTerminal();
  const t0 = performance.now();
  const totalSteps = plan.trials.reduce((s, t) => s + t.work.total * t.work.steps, 0);
  let stepsDone = 0, stepsThisRun = 0, finished = 0, failed = 0;
  const live = new Map<
    number,
    { bar: cliProgress.SingleBar; start: number; step0: number; steps: number }
  >();
  const multi = tty
    ? new cliProgress.MultiBar({
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      format:
        "{label} {bar} {value}/{total} {unit} | step {step} | {sps} steps/s | {info}ETA {remaining}",
      barsize: 24,
      fps: 8,
    }, cliProgress.Presets.shades_classic)
    : null;
  const top = multi?.create(plan.trials.length, 0, {
    label: "trials".padEnd(12),
    unit: "done",
    step: 0,
    sps: 0,
    info: "",
    remaining: "-",
  });
  const refreshTop = () => {
    const secs = (performance.now() - t0) / 1e3;
    const rate = stepsThisRun / secs;
    top?.update(finished, {
      step: stepsDone,
      sps: Math.round(rate) || 0,
      info: `${live.size} running${failed ? `, ${failed} failed` : ""} | `,
      remaining: stepsThisRun > 0 ? fmtEta((totalSteps - stepsDone) / rate) : "-",
    });
  };
  const log = (s: string) => {
    if (quiet) return;
    if (multi) multi.log(s + "\n");
    else console.error(s);
  };
  return {
    start(t: PlannedTrial, info: { done: number; total: number; resumed: boolean }) {
      const step0 = info.done * t.work.steps;
      stepsDone += step0;
      if (info.resumed) {
        log(
          `trial ${t.index} ${short(t.id)}: resuming at ${info.done}/${info.total} ${t.work.unit}`,
        );
      }
      const bar = multi?.create(info.total, info.done, {
        label: `#${t.index} ${short(t.id)}`.padEnd(12).slice(0, 12),
        unit: t.work.unit,
        step: step0,
        sps: 0,
        info: "",
        remaining: "-",
      });
      if (bar) live.set(t.index, { bar, start: performance.now(), step0, steps: step0 });
      else live.set(t.index, { bar: null as never, start: performance.now(), step0, steps: step0 });
      refreshTop();
    },
    progress(
      t: PlannedTrial,
      p: { done: number; total: number; step?: number; info?: Record<string, unknown> },
    ) {
      const l = live.get(t.index);
      if (!l) return;
      const step = p.step ?? p.done * t.work.steps;
      stepsDone += step - l.steps, stepsThisRun += step - l.steps;
      l.steps = step;
      const secs = (performance.now() - l.start) / 1e3;
      const sps = (step - l.step0) / secs;
      const info = Object.entries(p.info ?? {}).map(([k, v]) => `${k} ${fmtValue(v)} | `).join("");
      l.bar?.update(p.done, {
        step,
        sps: Math.round(sps) || 0,
        info,
        remaining: sps > 0 ? fmtEta((p.total - p.done) * t.work.steps / sps) : "-",
      });
      refreshTop();
    },
    end(o: TrialOutcome) {
      const l = live.get(o.trial.index);
      if (l) {
        if (l.bar) multi?.remove(l.bar);
        live.delete(o.trial.index);
      }
      finished++;
      if (o.status === "failed") failed++;
      if (o.status === "skipped" || o.status === "reused") {
        stepsDone += o.trial.work.total * o.trial.work.steps;
      } else if (l) stepsDone += o.trial.work.total * o.trial.work.steps - l.steps;
      const ret = plan.metrics.map((m) => `${m} ${fmtValue(metricValue(o.summary, m))}`).join(", ");
      const what = o.status === "failed"
        ? `FAILED: ${o.error?.split("\n")[0]}`
        : o.status === "interrupted"
        ? "interrupted"
        : `${o.status}${ret ? ` (${ret})` : ""}${
          o.seconds !== undefined ? `, ${fmtSecs(o.seconds)}` : ""
        }`;
      log(
        `[${finished}/${plan.trials.length}] trial ${o.trial.index} ${short(o.trial.id)} ${
          pointLabel(o.trial.point)
        }: ${what}`,
      );
      refreshTop();
    },
    stop() {
      multi?.stop();
    },
  };
}

async function main(): Promise<number> {
  const flags = parseFlags(Deno.args);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (!flags.file) {
    throw new UsageError(
      "sweep: give an experiment file, e.g. deno task sweep experiments/kl.ts (see --help)",
    );
  }
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

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (interrupts++ > 0) Deno.exit(130); // a second Ctrl-C: do not wait
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);

  const ui = makeProgress(plan, flags.quiet);
  const t0 = performance.now();
  if (!flags.quiet) {
    console.error(
      `${file}: ${plan.trials.length} trials of ${plan.kind.name}, ${flags.jobs} at a time -> ` +
        `${flags.results}/${plan.name}/`,
    );
  }
  let outcomes: TrialOutcome[];
  try {
    outcomes = await runPlan(plan, {
      root: flags.results,
      jobs: flags.jobs,
      threads: flags.threads,
      device: flags.device,
      experimentFile: abs,
      git: await gitInfo(),
      signal: controller.signal,
      workerCommand: trialWorkerCommand(),
    }, {
      onTrialStart: (t, i) => ui.start(t, i),
      onTrialProgress: (t, p) => ui.progress(t, p),
      onTrialEnd: (o) => ui.end(o),
    });
  } finally {
    ui.stop();
  }
  const secs = (performance.now() - t0) / 1e3;
  const count = (s: string) => outcomes.filter((o) => o.status === s).length;
  const parts = ["done", "skipped", "reused", "failed", "interrupted"].filter((s) => count(s))
    .map((s) => `${count(s)} ${s}`);
  console.log(
    `\n${plan.name}: ${plan.trials.length} trials (${parts.join(", ")}) in ${
      secs.toFixed(1)
    } s -> ${flags.results}/${plan.name}/`,
  );
  console.log(summaryTable(plan, outcomes));
  const failed = outcomes.filter((o) => o.status === "failed");
  for (const o of failed) {
    console.log(
      `\ntrial ${o.trial.index} ${o.trial.id} (${pointLabel(o.trial.point)}) failed:\n  ${o.error}`,
    );
  }
  if (controller.signal.aborted) {
    console.log(
      `\ninterrupted: run the same command again to resume (finished bundles are kept; unfinished trials continue from their last checkpoint)`,
    );
    return 130;
  }
  console.log(
    `\nbundles: ${flags.results}/${plan.name}/<trial>/ — check them with: deno task verify ${flags.results}/${plan.name}`,
  );
  return failed.length ? 1 : 0;
}

if (import.meta.main) await runCommand(main);
