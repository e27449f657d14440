/**
 * The Executor interface with the local executor and a stand-in worker (a few lines of shell
 * that print the worker's JSON events): what `events()` yields for a finished, a failed and a
 * cancelled trial, in seconds and without training anything. The real worker runs in
 * sweep_test.ts (local) and slurm_test.ts (Slurm).
 */
import assert from "node:assert/strict";
import {
  defineExperiment,
  type ExecutorEvent,
  grid,
  LocalExecutor,
  planExperiment,
} from "../../lib/experiment/mod.ts";
import { tempDir } from "./helpers.ts";

const plan = planExperiment(
  defineExperiment({
    name: "exec",
    task: "CartPole-v1",
    base: { total_steps: 512, envs: 1, steps: 128 },
    sweep: grid({ seed: [1, 2] }),
    metrics: ["return"],
  }),
  { file: "exec.ts", codeVersion: "test0000000000000" },
);

/**
 * A worker that reads its request line, then: seed 1 starts, reports one update and finishes;
 * seed 2 starts and fails (or, with `hang`, waits until it is killed).
 */
function worker(hang: boolean): string[] {
  const summary = JSON.stringify({ metrics: { return: 9.5 } });
  return [
    "bash",
    "-c",
    `read -r req
echo '{"type":"start","done":0,"total":4,"resumed":false}'
case "$req" in
  *'"seed":1'*)
    echo '{"type":"progress","done":1,"total":4,"step":128}'
    echo '{"type":"done","how":"ran","bundle_hash":"h1","summary":${summary}}' ;;
  *) ${
      hang
        ? "exec sleep 600"
        : `echo '{"type":"error","message":"boom: fix it","deterministic":true,"known":true}'; exit 1`
    } ;;
esac`,
  ];
}

async function collect(ex: LocalExecutor, onEvent?: (e: ExecutorEvent) => void) {
  const out: ExecutorEvent[] = [];
  for await (const e of ex.events()) {
    out.push(e);
    onEvent?.(e);
  }
  return out;
}

const summaryOf = (events: ExecutorEvent[]) =>
  events.map((e) =>
    e.type === "started"
      ? `started #${e.trial.point.seed} at ${e.start.done}/${e.start.total}`
      : e.type === "progress"
      ? `progress #${e.trial.point.seed} ${e.progress.done}/${e.progress.total}`
      : e.type === "done" || e.type === "failed"
      ? `${e.type} #${e.outcome.trial.point.seed} ${e.outcome.status}`
      : e.type
  );

Deno.test("local executor: events for a finished and a failed trial, one ending per trial", async () => {
  const root = await tempDir("exec");
  try {
    const opts = { root, jobs: 1, threads: 1, device: "cpu" as const, git: null };
    const ex = new LocalExecutor({ ...opts, workerCommand: worker(false) });
    assert.deepEqual(await ex.submit(plan), { submitted: 2, detachable: false });
    const events = await collect(ex);
    assert.deepEqual(summaryOf(events), [
      "started #1 at 0/4",
      "progress #1 1/4",
      "done #1 done",
      "started #2 at 0/4",
      "failed #2 failed",
    ]);
    const done = events[2] as Extract<ExecutorEvent, { type: "done" }>;
    assert.deepEqual(done.outcome.summary, { metrics: { return: 9.5 } });
    assert.equal(done.outcome.bundleHash, "h1");
    const failed = events[4] as Extract<ExecutorEvent, { type: "failed" }>;
    assert.equal(failed.outcome.error, "boom: fix it");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("local executor: cancel() kills the running worker; its trial ends interrupted", async () => {
  const root = await tempDir("exec-cancel");
  try {
    const opts = { root, jobs: 2, threads: 1, device: "cpu" as const, git: null };
    const ex = new LocalExecutor({ ...opts, workerCommand: worker(true) });
    await ex.submit(plan);
    const events = await collect(ex, (e) => {
      // Seed 1 has finished and seed 2 is running: stop.
      if (e.type === "done") ex.cancel();
    });
    const ends = summaryOf(events).filter((s) => /^(done|failed)/.test(s)).sort();
    assert.deepEqual(ends, ["done #1 done", "failed #2 interrupted"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
