/**
 * The Slurm executor (`deno task sweep FILE --executor slurm`), end to end on a real cluster:
 * CI starts a one-node one with `bash scripts/slurm_local.sh start` before the tests; without
 * a reachable cluster the end-to-end tests are skipped (with a message) and only the checks
 * that need no cluster run.
 *
 * - experiments/kl.ts (2 updates) as one array: bundles byte-identical to a local sweep;
 * - the time-limit warning (USR1 to the batch shell, as `--signal=B:USR1@...` sends it) and
 *   `scontrol requeue` of the running array task: each time the trial checkpoints, resumes
 *   there and ends byte-identical to an uninterrupted run;
 * - a reward function that throws: reported with its Slurm log, the others finish, a rerun
 *   submits only the failed trial;
 * - bad input before submission: no sbatch on PATH, an unknown partition, a results folder the
 *   nodes cannot write.
 */
import assert from "node:assert/strict";
import { arraySpec, chunkIndices } from "../../lib/experiment/executors/slurm/scripts.ts";
import { joinSbatchArgs, slurmFlags } from "../../cli/sweep_slurm.ts";
import { KL_QUICK_SETS } from "../../scripts/crash_sweep.ts";
import { failures, statuses, sweep, tempDir, visibleBundles } from "./helpers.ts";
import { sharedKlQuick } from "./shared_runs.ts";

const BUDGET = KL_QUICK_SETS.flatMap((s) => ["--set", s]);
const dec = new TextDecoder();

async function run(cmd: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (e) {
    return { code: 127, out: (e as Error).message };
  }
}

/** Whether a Slurm cluster answers here (sinfo lists an idle or busy node). */
async function clusterReachable(): Promise<string | null> {
  const r = await run("sinfo", "--noheader", "--format=%T");
  if (r.code !== 0) return r.code === 127 ? "sinfo is not on PATH" : r.out.trim().split("\n")[0];
  if (!/idle|mix|alloc/.test(r.out)) return `no node is up (sinfo: ${r.out.trim()})`;
  return null;
}

const why = await clusterReachable();
if (why) {
  console.log(
    `slurm_test: end-to-end Slurm tests SKIPPED: no cluster reachable (${why}); ` +
      `start one with: bash scripts/slurm_local.sh start`,
  );
}
const cluster = why === null;

async function files(dir: string, names: string[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const id of await visibleBundles(dir)) {
    for (const n of names) out.set(`${id}/${n}`, await Deno.readFile(`${dir}/${id}/${n}`));
  }
  return out;
}

function assertSameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, x] of a) {
    const y = b.get(k)!;
    assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${k} differs`);
  }
}

const COMPARED = ["metrics.jsonl", "summary.json", "manifest.json"];

Deno.test("slurm: array specs, chunks beyond MaxArraySize, flags", () => {
  assert.equal(arraySpec([1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
  assert.equal(arraySpec([4]), "4");
  assert.deepEqual(chunkIndices([1, 2, 3], 1001), [{ offset: 0, indices: [1, 2, 3] }]);
  // MaxArraySize 4: task ids 0..3, so chunks of 3 trials with offsets 0, 3, 6.
  assert.deepEqual(chunkIndices([1, 2, 3, 4, 5, 7], 4), [
    { offset: 0, indices: [1, 2, 3] },
    { offset: 3, indices: [4, 5] },
    { offset: 6, indices: [7] },
  ]);
  assert.deepEqual(joinSbatchArgs(["a.ts", "--sbatch-arg", "--qos=x", "--detach"]), [
    "a.ts",
    "--sbatch-arg=--qos=x",
    "--detach",
  ]);
  assert.equal(slurmFlags({}), null);
  assert.throws(
    () => slurmFlags({ partition: "x" }),
    /--partition is a Slurm flag; add --executor slurm/,
  );
  assert.throws(() => slurmFlags({ executor: "pbs" }), /--executor must be local or slurm/);
  assert.throws(() => slurmFlags({ executor: "slurm", time: "1h" }), /--time must be a Slurm time/);
  assert.throws(() => slurmFlags({ executor: "slurm", mem: "lots" }), /--mem must be a size/);
  const f = slurmFlags({
    executor: "slurm",
    time: "0:30:00",
    gpus: "a100:2",
    "sbatch-arg": ["--qos=x"],
  })!;
  assert.equal(f.options.time, "0:30:00");
  assert.equal(f.options.gpus, "a100:2");
  assert.deepEqual(f.options.sbatchArgs, ["--qos=x"]);
});

Deno.test("slurm bad input: no sbatch on PATH is a clear error before anything is submitted", async () => {
  const root = await tempDir("slurm-nopath");
  const empty = await tempDir("slurm-empty-path");
  try {
    const r = await sweep(
      ["tests/experiment/fixtures/explode.ts", "--executor", "slurm", "--results", root],
      { PATH: empty },
    );
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /--executor slurm: sbatch, .* not on PATH \(nothing was submitted\)/);
    assert.match(r.stderr, /fix: run the sweep on a machine with the Slurm client commands/);
    assert.equal(await Deno.stat(`${root}/explode/.slurm`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test({
  name: "slurm: experiments/kl.ts as one array equals the local sweep byte for byte; a failing " +
    "trial is reported with its Slurm log and a rerun submits only it; the time-limit warning " +
    "and scontrol requeue mid-training resume from the checkpoint to the same bytes",
  ignore: !cluster,
  async fn(t) {
    const slurm = await tempDir("slurm-a"), local = await tempDir("slurm-local");
    try {
      await t.step("kl.ts through Slurm = kl.ts locally", async () => {
        // The local reference is the suite's shared quick kl sweep (tests/experiment/
        // shared_runs.ts: made by the first file that needs it, here while this process only
        // waits on the cluster): an independent run of the same sweep in another folder.
        const [s, localRoot] = await Promise.all([
          sweep(["experiments/kl.ts", ...BUDGET, "--results", slurm, "--executor", "slurm"]),
          sharedKlQuick(),
        ]);
        assert.equal(s.code, 0, s.stdout + s.stderr);
        assert.match(
          s.stderr,
          /submitted 12 of 12 trials as array job \d+ \(after stages job \d+\)/,
        );
        assert.match(s.stderr, / --array=1-12 /); // ONE array
        assert.match(s.stdout, /kl: 12 trials \(12 done\)/);
        assert.ok([...statuses(s.stdout).values()].every((x) => x === "done"), s.stdout);
        const a = await files(`${slurm}/kl`, COMPARED);
        const b = await files(`${localRoot}/kl`, COMPARED);
        assert.equal(a.size, 12 * COMPARED.length);
        assertSameFiles(a, b);
        // And again: everything is done, nothing is submitted.
        const again = await sweep([
          "experiments/kl.ts",
          ...BUDGET,
          "--results",
          slurm,
          "--executor",
          "slurm",
        ]);
        assert.equal(again.code, 0, again.stdout + again.stderr);
        assert.match(again.stderr, /every trial is finished; nothing to submit/);
        assert.match(again.stdout, /12 trials \(12 skipped\)/);
      });

      await t.step(
        "a reward function that throws: its Slurm log; the others finish; a rerun submits it alone",
        async () => {
          const exp = "tests/experiment/fixtures/reward_throws.ts";
          const r = await sweep([exp, ...BUDGET, "--results", slurm, "--executor", "slurm"]);
          assert.equal(r.code, 1, r.stdout + r.stderr);
          assert.deepEqual([...statuses(r.stdout).values()], ["done", "failed", "done"]);
          const msg = failures(r.stdout).get(2)!;
          assert.match(msg, /reward "boom" threw on sample \d+ .*always throws/);
          const log = /Slurm log: (\S+)/.exec(msg)?.[1];
          assert.ok(log, msg);
          assert.match(log, /reward-throws\/\.slurm\/1\/logs\/\d+_2\.log$/);
          assert.match(await Deno.readTextFile(log), /"type":"error".*boom/);
          assert.equal((await visibleBundles(`${slurm}/reward-throws`)).length, 2);
          const st = await sweep([exp, ...BUDGET, "--results", slurm, "--status"]);
          assert.match(st.stdout, /2 done, 1 failed/);
          assert.match(st.stdout, new RegExp(`Slurm log: ${log.replaceAll(".", "\\.")}`));

          const again = await sweep([exp, ...BUDGET, "--results", slurm, "--executor", "slurm"]);
          assert.equal(again.code, 1, again.stdout + again.stderr);
          assert.match(again.stderr, /submitted 1 of 3 trials as array job/);
          assert.match(again.stderr, / --array=2 /);
          assert.deepEqual([...statuses(again.stdout).values()], ["skipped", "failed", "skipped"]);
          assert.match(
            failures(again.stdout).get(2)!,
            /Slurm log: \S+\/\.slurm\/2\/logs\/\d+_2\.log/,
          );
        },
      );

      await t.step(
        "the time-limit warning, then scontrol requeue, mid-training: each time the trial " +
          "checkpoints and resumes there; the same bytes as an uninterrupted run",
        async () => {
          const exp = "tests/experiment/fixtures/kl_one.ts";
          // Enough updates that the requeue's SIGTERM lands mid-training: under the parallel
          // suite one CI run saw it reach the worker 29 updates (of 40) after Slurm's cancel.
          const total = 80;
          const long = [...BUDGET, "--set", `updates=${total}`];
          const d = await sweep([
            exp,
            ...long,
            "--results",
            slurm,
            "--executor",
            "slurm",
            "--detach",
          ]);
          assert.equal(d.code, 0, d.stdout + d.stderr);
          const logs = `${slurm}/kl-one/.slurm/1/logs`;
          /**
           * The array task's log and job once `re` matches it: 5 minutes at most (a guard, not
           * a timing check: under the parallel suite one CI run took over 2 minutes from the
           * warning to the stop).
           */
          const waitFor = async (re: RegExp, what: string) => {
            for (const end = Date.now() + 5 * 60_000; Date.now() < end;) {
              const names = await Array.fromAsync(Deno.readDir(logs)).catch(() => []);
              for (const e of names) {
                const m = /^(\d+_1)\.log$/.exec(e.name);
                if (!m) continue;
                const text = await Deno.readTextFile(`${logs}/${e.name}`);
                if (re.test(text)) return { log: `${logs}/${e.name}`, job: m[1], text };
              }
              await new Promise((r) => setTimeout(r, 100));
            }
            throw new Error(`the trial did not get to ${what} within 5 minutes`);
          };
          // 1. What --signal=B:USR1@<warn> does near the time limit: USR1 to the batch shell,
          //    which stops the worker with a checkpoint and requeues its own task.
          const { job } = await waitFor(/"type":"progress","done":3,/, "update 3");
          const warn = await run("scancel", "--batch", "--signal=USR1", job);
          assert.equal(warn.code, 0, warn.out);
          const first = await waitFor(/"type":"stopped","update":(\d+)/, "its first stop");
          const at1 = Number(/"type":"stopped","update":(\d+)/.exec(first.text)![1]);
          // 2. scontrol requeue (what a preemption does too), a few updates after it resumed.
          await waitFor(
            new RegExp(`"type":"progress","done":${at1 + 3},`),
            `update ${at1 + 3} after resuming`,
          );
          const rq = await run("scontrol", "requeue", job);
          assert.equal(rq.code, 0, rq.out);
          // Following it again (the submission is still active) waits for the requeued task.
          const f = await sweep([exp, ...long, "--results", slurm, "--executor", "slurm"]);
          assert.equal(f.code, 0, f.stdout + f.stderr);
          assert.match(f.stderr, /submission 1 \(jobs [\d,]+\) is on the cluster: following it/);
          const text = await Deno.readTextFile(first.log);
          assert.match(text, /proxima: time limit near: checkpointed; requeueing \d+_1/);
          const stops = [...text.matchAll(/"type":"stopped","update":(\d+),"reason":"SIGTERM"/g)]
            .map((m) => Number(m[1]));
          assert.equal(stops.length, 2, text);
          assert.ok(stops[0] >= 3 && stops[0] < stops[1] && stops[1] < total, `stops ${stops}`);
          for (const at of stops) {
            assert.match(
              text,
              new RegExp(`"type":"start","done":${at},"total":${total},"resumed":true`),
            );
          }
          assert.match(f.stdout, new RegExp(`done \\(resumed at ${stops[1]}\\)`));

          const l = await sweep([exp, ...long, "--results", local]);
          assert.equal(l.code, 0, l.stdout + l.stderr);
          assertSameFiles(
            await files(`${slurm}/kl-one`, COMPARED),
            await files(`${local}/kl-one`, COMPARED),
          );
        },
      );
    } finally {
      await Deno.remove(slurm, { recursive: true });
      await Deno.remove(local, { recursive: true });
    }
  },
});

Deno.test({
  name: "slurm bad input: an unknown partition, a results folder the nodes cannot write",
  ignore: !cluster,
  async fn(t) {
    const root = await tempDir("slurm-bad");
    const exp = "tests/experiment/fixtures/explode.ts";
    try {
      await t.step("unknown partition", async () => {
        const r = await sweep([
          exp,
          "--executor",
          "slurm",
          "--partition",
          "nope",
          "--results",
          root,
        ]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /--partition nope: no such partition on this cluster.*nothing was submitted/,
        );
        assert.match(r.stderr, /fix: use one of \S+/);
        assert.equal(
          await Deno.stat(`${root}/explode/.slurm`).then(() => true, () => false),
          false,
        );
      });
      if (Deno.uid() !== 0) {
        console.log("slurm_test: the unwritable-results check needs root (sbatch --uid); skipped");
        return;
      }
      await t.step("a results folder the nodes cannot write (the jobs run as nobody)", async () => {
        await Deno.chmod(root, 0o755);
        const r = await sweep([
          exp,
          "--executor",
          "slurm",
          "--sbatch-arg=--uid=nobody",
          "--results",
          root,
        ]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /the nodes cannot write the results folder \S+\/explode \(probe job \d+ ended .*nothing was submitted/,
        );
        assert.match(
          r.stderr,
          /fix: pass --results <a folder on a filesystem the compute nodes mount read-write>/,
        );
        // Nothing was left behind: no submission folder, no job of ours in the queue.
        const subs = await Array.fromAsync(Deno.readDir(`${root}/explode/.slurm`));
        assert.deepEqual(subs.map((e) => e.name), []);
        const q = await run("squeue", "--noheader", "--format=%j");
        assert.doesNotMatch(q.out, /proxima-explode/);
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
