/**
 * Sweep worker: runs one trial and publishes its bundle (see lib/experiment/trial.ts).
 *
 *   deno run -A cli/trial.ts --stdin             request = first line of stdin (JSON); the
 *                                                 worker exits when stdin closes (its sweep died)
 *   deno run -A cli/trial.ts --request req.json  request from a file (by hand)
 *   deno run -A cli/trial.ts --slurm DIR --index I
 *                                                 trial I of a Slurm submission (DIR/trials.json,
 *                                                 lib/experiment/executors/slurm/); SIGTERM / SIGUSR2
 *                                                 stop it after the current update with a
 *                                                 checkpoint (exit 75) for a requeue to resume
 *   deno run -A cli/trial.ts --slurm-stages DIR  build the stages DIR's trials ask for
 *
 * Reports progress as JSON lines on stdout ({"type":"start"|"progress"|"stage"|"stopped"|
 * "done"|"error"}); exit code 0 = bundle published, 1 = the trial failed (the error event says
 * why and how to fix), 75 = stopped on request (a checkpoint was written).
 * @module
 */
import { parseArgs } from "node:util";
import {
  executeTrial,
  prepareStages,
  TrialError,
  type TrialEvent,
  type TrialRequest,
} from "../lib/experiment/trial.ts";
import { readSubmissionTrials, STOPPED_EXIT } from "../lib/experiment/executors/slurm/mod.ts";
import { codeVersion } from "../lib/experiment/code_version.ts";
import { StopRequested, StopToken } from "../lib/ppo/stop.ts";

/**
 * The command that starts this worker, for the sweep runner (`runPlan`'s `workerCommand`):
 * the runner is handed it rather than knowing where the CLI lives.
 */
export function trialWorkerCommand(): string[] {
  return [...slurmWorkerCommand(), "--stdin"];
}

/**
 * The same worker for the Slurm executor (`submitSweep`'s `workerCommand`), which adds
 * `--slurm DIR --index I` or `--slurm-stages DIR`.
 */
export function slurmWorkerCommand(): string[] {
  return [Deno.execPath(), "run", "-A", decodeURIComponent(new URL(import.meta.url).pathname)];
}

const enc = new TextEncoder();
function emit(e: TrialEvent): void {
  const bytes = enc.encode(JSON.stringify(e) + "\n");
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Read the first line of stdin; afterwards, exit as soon as stdin reaches EOF. */
async function requestFromStdin(): Promise<string> {
  const reader = Deno.stdin.readable.getReader();
  const dec = new TextDecoder();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) Deno.exit(3); // the sweep went away before sending anything
    buf += dec.decode(value, { stream: true });
  }
  (async () => {
    while (!(await reader.read()).done) { /* the sweep never writes more */ }
    Deno.exit(130); // stdin closed: the sweep died (kill -9, Ctrl-C); stop like a killed run
  })();
  return buf.slice(0, buf.indexOf("\n"));
}

function fail(e: unknown): never {
  const known = e instanceof TrialError;
  emit({
    type: "error",
    message: known ? e.message : `${(e as Error)?.message ?? e}`,
    deterministic: known && e.deterministic,
    known,
  });
  if (!known) console.error((e as Error)?.stack ?? e);
  Deno.exit(1);
}

/**
 * SIGTERM (Slurm's requeue, preemption, scancel; trial.sh passes the time-limit warning on as
 * SIGTERM too) and SIGUSR2: stop after the current update with a checkpoint. (Not SIGUSR1:
 * Deno opens V8's inspector on it.)
 */
function stopOnSignals(stop: StopToken): void {
  for (const sig of ["SIGTERM", "SIGUSR2"] as const) {
    Deno.addSignalListener(sig, () => {
      console.error(`proxima: ${sig}: stopping after the current update with a checkpoint`);
      // Not training (stages, evaluation, finalising): nothing to save that a rerun would
      // not redo, so go now.
      if (!stop.request(sig)) Deno.exit(STOPPED_EXIT);
    });
  }
}

async function slurmRequest(dir: string, index: string): Promise<TrialRequest> {
  const list = await readSubmissionTrials(dir);
  const req = list.trials[index];
  if (!req) throw new TrialError(`${dir}/trials.json has no trial ${index}`, true);
  const now = await codeVersion();
  if (now !== req.identity.code_version) {
    throw new TrialError(
      `the code changed since this sweep was submitted (code version ` +
        `${req.identity.code_version} then, ${now} now): this trial would not be the one ` +
        `planned\n    fix: submit the sweep again (finished bundles are kept), or restore the code`,
      true,
    );
  }
  return req;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      stdin: { type: "boolean" },
      request: { type: "string" },
      slurm: { type: "string" },
      index: { type: "string" },
      "slurm-stages": { type: "string" },
    },
  });
  if (values["slurm-stages"]) {
    // The stages job: every trial's stages, in order; a trial's own failure is its own.
    const dir = values["slurm-stages"];
    for (const sig of ["SIGTERM", "SIGUSR2"] as const) {
      Deno.addSignalListener(sig, () => Deno.exit(STOPPED_EXIT)); // a stage is not resumable
    }
    try {
      const list = await readSubmissionTrials(dir);
      const reqs = Object.entries(list.trials);
      for (const [index, req] of reqs) {
        const r = await prepareStages(req, emit);
        console.error(
          `proxima: trial ${index}: ` +
            (r.skipped
              ? "nothing to build"
              : r.error
              ? `stopped before its stages were all built (${r.error.split("\n")[0]}); ` +
                "the trial reports it"
              : `stages ${r.stages.join(", ") || "(none)"}`),
        );
      }
    } catch (e) {
      fail(e);
    }
    Deno.exit(0);
  }
  let req: TrialRequest;
  // Passed down to the trainer (no process-wide flag): SIGTERM / SIGUSR2 request it.
  const stop = new StopToken();
  try {
    if (values.slurm) {
      if (!values.index) throw new Error("--slurm needs --index");
      req = await slurmRequest(values.slurm, values.index);
      stopOnSignals(stop);
    } else {
      const text = values.stdin
        ? await requestFromStdin()
        : await Deno.readTextFile(values.request ?? "/dev/stdin");
      req = JSON.parse(text);
    }
  } catch (e) {
    if (e instanceof TrialError) fail(e);
    emit({
      type: "error",
      message: `trial worker: bad request: ${(e as Error).message}`,
      deterministic: true,
      known: true,
    });
    Deno.exit(1);
  }
  try {
    await executeTrial(req, emit, { stop });
    Deno.exit(0);
  } catch (e) {
    if (e instanceof StopRequested) {
      emit({ type: "stopped", update: e.update, reason: e.reason });
      Deno.exit(STOPPED_EXIT);
    }
    fail(e);
  }
}
