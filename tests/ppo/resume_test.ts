/**
 * Crash/resume: `deno task train` killed with SIGKILL at random updates and resumed each time
 * ends with params, metrics and the episode log byte-identical to an uninterrupted run: the
 * whole bundle (manifest.json) is the same. While it runs, the run lives in the hidden work
 * folder beside `--out` (`.tmp-<name>`); `--out` appears only when the bundle is complete.
 */
import assert from "node:assert/strict";
import { Rng } from "../../lib/rng.ts";
import { checkpointDue } from "../../lib/ppo/checkpoint.ts";

const root = new URL("../../", import.meta.url).pathname;
// Both runs record the same code version and commit (env.json, config.json), whatever changes.
const env = { PROXIMA_CODE_VERSION: "test-code-version", PROXIMA_GIT_COMMIT: "none" };
const UPDATES = 40;
const trainArgs = (out: string) => [
  "run",
  "-A",
  "cli/train.ts",
  "--env",
  "cartpole",
  "--seed",
  "3",
  "--total-steps",
  String(UPDATES * 4 * 32),
  "--steps",
  "32",
  "--checkpoint-every",
  "1",
  "--quiet",
  "--out",
  out,
];

async function run(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

async function metricsLines(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
}

Deno.test("kill -9 at random updates, resume: final params and metrics are byte-identical", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "proxima-resume-" });
  try {
    const ref = `${tmp}/ref`, crashed = `${tmp}/crashed`, work = `${tmp}/.tmp-crashed`;
    await run(trainArgs(ref));

    // Kill points: three distinct random updates, each after the previous one.
    const rng = new Rng(2026);
    const targets = [2 + rng.int(8), 14 + rng.int(8), 26 + rng.int(8)];
    let kills = 0;
    for (const target of targets) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [...trainArgs(crashed), "--resume"],
        cwd: root,
        env,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let exited = false, killed = false;
      const stderr = new Response(child.stderr).text();
      const status = child.status.then((s) => (exited = true, s));
      // Wait until the run has written `target` metrics rows, then SIGKILL it mid-flight.
      const deadline = Date.now() + 120_000;
      while (!exited && await metricsLines(`${work}/metrics.jsonl`) < target) {
        if (Date.now() > deadline) throw new Error(`no progress to update ${target} in 120 s`);
        await new Promise((r) => setTimeout(r, 2));
      }
      if (!exited) {
        child.kill("SIGKILL");
        killed = true;
        kills++;
      }
      const s = await status;
      if (!killed && !s.success) throw new Error(`train run failed: ${await stderr}`);
      await stderr;
      // Whatever LATEST names is a complete checkpoint.
      const latest = await Deno.readTextFile(`${work}/checkpoints/LATEST`).catch(() => null);
      if (latest) {
        for (const f of ["state.safetensors", "run.json"]) {
          await Deno.stat(`${work}/checkpoints/${latest.trim()}/${f}`);
        }
      }
    }
    assert.ok(kills >= 3, `only ${kills} kills landed mid-run`);
    assert.ok(!(await Deno.stat(crashed).catch(() => null)), "--out visible before the end");
    await run([...trainArgs(crashed), "--resume"]);

    const files = ["checkpoints/final.safetensors", "metrics.jsonl", "episodes.jsonl"];
    for (const f of [...files, "manifest.json"]) {
      const a = await Deno.readFile(`${ref}/${f}`), b = await Deno.readFile(`${crashed}/${f}`);
      assert.ok(a.length > 0);
      // (Not deepEqual: its diff of two large byte arrays takes minutes to render.)
      const same = a.length === b.length && a.every((x, i) => x === b[i]);
      assert.ok(same, `${f} differs after ${kills} kills`);
    }
    assert.equal(await metricsLines(`${crashed}/metrics.jsonl`), UPDATES);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("checkpointDue: every `every` updates but after the last; a requested stop saves and ends, except after the last", () => {
  const due = (done: number, every: number | undefined, why: string | null = null) =>
    checkpointDue(done, 6, every, why);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((d) => due(d, 2).save), [
    false,
    true,
    false,
    true,
    false,
    false,
  ]);
  assert.deepEqual(due(3, undefined), { save: false, stop: null });
  assert.deepEqual(due(3, 0, "SIGTERM"), { save: true, stop: "SIGTERM" });
  assert.deepEqual(due(6, 2, "SIGTERM"), { save: false, stop: null });
});
