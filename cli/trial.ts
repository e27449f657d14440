/**
 * Sweep worker: runs one trial and publishes its bundle (see lib/experiment/trial.ts).
 *
 *   deno run -A cli/trial.ts --stdin             request = first line of stdin (JSON); the
 *                                                 worker exits when stdin closes (its sweep died)
 *   deno run -A cli/trial.ts --request req.json  request from a file (by hand)
 *
 * Reports progress as JSON lines on stdout ({"type":"start"|"progress"|"stage"|"done"|"error"});
 * exit code 0 = bundle published, 1 = the trial failed (the error event says why and how to fix).
 * @module
 */
import { parseArgs } from "node:util";
import {
  executeTrial,
  TrialError,
  type TrialEvent,
  type TrialRequest,
} from "../lib/experiment/trial.ts";

/**
 * The command that starts this worker, for the sweep runner (`runPlan`'s `workerCommand`):
 * the runner is handed it rather than knowing where the CLI lives.
 */
export function trialWorkerCommand(): string[] {
  return [Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, "--stdin"];
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

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { stdin: { type: "boolean" }, request: { type: "string" } },
  });
  let req: TrialRequest;
  try {
    const text = values.stdin
      ? await requestFromStdin()
      : await Deno.readTextFile(values.request ?? "/dev/stdin");
    req = JSON.parse(text);
    if (req.experimentFile) await import(new URL(`file://${req.experimentFile}`).href);
  } catch (e) {
    emit({
      type: "error",
      message: `trial worker: bad request: ${(e as Error).message}`,
      deterministic: true,
      known: true,
    });
    Deno.exit(1);
  }
  try {
    await executeTrial(req, emit);
    Deno.exit(0);
  } catch (e) {
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
}
