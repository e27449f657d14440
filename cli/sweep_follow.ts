/**
 * The sweep's one loop over any executor: submit, consume its events into the progress bars
 * and the outcomes the summary table prints, and on Ctrl-C hand the executor its stop (a
 * second Ctrl-C exits at once).
 * @module
 */
import type { Executor, Plan, TrialOutcome } from "../lib/experiment/mod.ts";
import { makeProgress } from "./sweep_ui.ts";

/** How a followed sweep ended. */
export interface Followed {
  outcomes: TrialOutcome[];
  seconds: number;
  /** Ctrl-C (or SIGTERM) stopped following. */
  interrupted: boolean;
}

/**
 * Follow `ex` (already submitted) until every trial of `plan` has ended. `onInterrupt`: what
 * the first Ctrl-C does (default: `ex.cancel()`); it gets the display, to stop it before it
 * asks anything.
 */
export async function follow(
  plan: Plan,
  ex: Executor,
  opts: {
    quiet: boolean;
    onInterrupt?: (ui: { stop(): void; log(s: string): void }) => Promise<void>;
  },
): Promise<Followed> {
  const t0 = performance.now();
  const ui = makeProgress(plan, opts.quiet);
  const outcomes = new Map<number, TrialOutcome>();
  let interrupts = 0;
  const onSignal = () => {
    if (interrupts++ > 0) Deno.exit(130); // a second Ctrl-C: do not wait
    (opts.onInterrupt ?? (() => ex.cancel()))(ui).catch((e) => ui.log(`${e?.message ?? e}`));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  try {
    for await (const e of ex.events()) {
      switch (e.type) {
        case "started":
          ui.start(e.trial, e.start, e.at ?? e.start);
          break;
        case "progress":
          ui.progress(e.trial, e.progress);
          break;
        case "requeued":
          ui.requeued(e.trial, e.what);
          break;
        case "queue":
          ui.queue(e.text);
          break;
        case "log":
          ui.log(e.line);
          break;
        case "done":
        case "failed":
          outcomes.set(e.outcome.trial.index, e.outcome);
          ui.end(e.outcome);
          break;
      }
    }
  } finally {
    ui.stop();
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
  }
  return {
    outcomes: plan.trials.map((t) =>
      outcomes.get(t.index) ?? { trial: t, status: "interrupted" as const }
    ),
    seconds: (performance.now() - t0) / 1e3,
    interrupted: interrupts > 0,
  };
}
