/**
 * What `deno task sweep` shows, for local and Slurm sweeps alike: progress bars (a multibar
 * on a terminal, one line per event otherwise), the summary table and the --dry-run list.
 * @module
 */
import cliProgress from "cli-progress";
import {
  fmtValue,
  formatTable,
  inspectTrial,
  type Plan,
  type PlannedTrial,
  type TrialOutcome,
  type TrialSummary,
} from "../lib/experiment/mod.ts";

export const short = (id: string) => id.slice(0, 10);
/** A swept value (null is a value here, not a missing one). */
export const fmtSwept = (v: unknown) => (v === null ? "null" : fmtValue(v));
export const pointLabel = (p: Record<string, unknown>) =>
  Object.entries(p).map(([k, v]) => `${k}=${fmtSwept(v)}`).join(" ");

export function metricValue(s: TrialSummary | undefined, m: string): unknown {
  if (!s) return null;
  const [name, agg] = m.split(":");
  if (agg === "mean") return s.mean?.[name] ?? null;
  if (agg === undefined && name in s.metrics) return s.metrics[name];
  return s.last?.[name] ?? null;
}

export function fmtSecs(s: number | undefined): string {
  if (s === undefined) return "-";
  return s < 100 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

export function fmtEta(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "-";
  if (s < 60) return `${Math.ceil(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`;
}

export function summaryTable(plan: Plan, outcomes: TrialOutcome[]): string {
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

export async function dryRun(plan: Plan, root: string): Promise<void> {
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
export function makeProgress(plan: Plan, quiet: boolean) {
  const tty = !quiet && Deno.stderr.isTerminal();
  const t0 = performance.now();
  const totalSteps = plan.trials.reduce((s, t) => s + t.work.total * t.work.steps, 0);
  let stepsDone = 0, stepsThisRun = 0, finished = 0, failed = 0;
  let queued = ""; // a cluster's queue ("3 pending")
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
      info: `${queued ? `${queued}, ` : ""}${live.size} running${
        failed ? `, ${failed} failed` : ""
      } | `,
      remaining: stepsThisRun > 0 ? fmtEta((totalSteps - stepsDone) / rate) : "-",
    });
  };
  const log = (s: string) => {
    if (quiet) return;
    if (multi) multi.log(s + "\n");
    else console.error(s);
  };
  return {
    /**
     * A trial started (or resumed at `info.done`). `at`: where it already is, when this
     * display joins late (a Slurm trial that was running before the sweep was followed): rates
     * count from there.
     */
    start(
      t: PlannedTrial,
      info: { done: number; total: number; resumed: boolean },
      at: { done: number; step?: number } = info,
    ) {
      const step0 = at.step ?? at.done * t.work.steps;
      stepsDone += step0;
      if (info.resumed) {
        log(
          `trial ${t.index} ${short(t.id)}: resuming at ${info.done}/${info.total} ${t.work.unit}`,
        );
      }
      const bar = multi?.create(info.total, at.done, {
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
    /** A cluster's queue, for the top bar ("3 pending"). */
    queue(text: string) {
      if (text === queued) return;
      queued = text;
      refreshTop();
    },
    /** A running trial stopped with a checkpoint and went back to the queue. */
    requeued(t: PlannedTrial, what: string) {
      const l = live.get(t.index);
      if (l) {
        if (l.bar) multi?.remove(l.bar);
        live.delete(t.index);
        stepsDone -= l.steps; // counted again from its checkpoint when it restarts
      }
      log(`trial ${t.index} ${short(t.id)}: ${what}`);
      refreshTop();
    },
    /** A line above the bars. */
    log,
    stop() {
      multi?.stop();
    },
  };
}

/**
 * The end of a sweep: counts, the summary table, each failure with its fix, and where the
 * bundles are. Returns the exit status (0 all done, 1 some failed, 130 interrupted).
 */
export function printResults(
  plan: Plan,
  outcomes: TrialOutcome[],
  root: string,
  secs: number,
  interrupted: boolean,
): number {
  const count = (s: string) => outcomes.filter((o) => o.status === s).length;
  const parts = ["done", "skipped", "reused", "failed", "interrupted"].filter((s) => count(s))
    .map((s) => `${count(s)} ${s}`);
  console.log(
    `\n${plan.name}: ${plan.trials.length} trials (${parts.join(", ")}) in ${
      secs.toFixed(1)
    } s -> ${root}/${plan.name}/`,
  );
  console.log(summaryTable(plan, outcomes));
  const failed = outcomes.filter((o) => o.status === "failed");
  for (const o of failed) {
    console.log(
      `\ntrial ${o.trial.index} ${o.trial.id} (${pointLabel(o.trial.point)}) failed:\n  ${o.error}`,
    );
  }
  if (interrupted) {
    console.log(
      `\ninterrupted: run the same command again to resume (finished bundles are kept; unfinished trials continue from their last checkpoint)`,
    );
    return 130;
  }
  console.log(
    `\nbundles: ${root}/${plan.name}/<trial>/ — check them with: deno task verify ${root}/${plan.name}`,
  );
  return failed.length ? 1 : 0;
}
