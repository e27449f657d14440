/**
 * Per-trial context (issue 23 item 6): a trial's compiled sessions and in-memory stage outputs
 * live in its own {@link TrialContext}, made by the runner and disposed at the trial's end, so
 * two trials in one process share nothing; `defineExperiment` registers nothing.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, type Session, tensor } from "../../lib/onnx/session.ts";
import { processSessions, SessionCache } from "../../lib/onnx/session_cache.ts";
import { TrialContext } from "../../lib/trial/context.ts";
import type { StageContext, StageDef, TrialKind } from "../../lib/trial/contract.ts";
import { defineExperiment, findTrialKind, grid, planExperiment } from "../../lib/experiment/mod.ts";
import { executeTrial, type TrialEvent, type TrialRequest } from "../../lib/experiment/trial.ts";
import { createEnvProblem } from "../../lib/envs/ppo.ts";
import { makeVecEnv } from "../../lib/envs/registry.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { PhaseTimer } from "../../lib/ppo/phase_times.ts";
import { trainPpo } from "../../lib/ppo/trainer.ts";

/** y = x · scale: a graph whose bytes differ per `scale` (a constant folded in). */
function scaleGraph(scale: number): Graph {
  const g = new Graph(`scale_${scale}`);
  const x = g.input("x", "float32", [2]);
  g.output(g.mul(x, g.scalar(scale, "float32")), "y");
  return g;
}

async function runY(s: Session): Promise<number[]> {
  const out = await s.run({ x: tensor("float32", [2], [1, 2]) });
  return Array.from(out.y.data as Float32Array);
}

Deno.test("SessionCache: one session per graph and cache; none shared between caches; dispose frees them", async () => {
  const before = processSessions.size;
  const a = new SessionCache("a"), b = new SessionCache("b");
  const s1 = await compile(scaleGraph(3), { threads: 1, sessions: a });
  const s2 = await compile(scaleGraph(3), { threads: 1, sessions: a });
  const s3 = await compile(scaleGraph(3), { threads: 1, sessions: b });
  assert(s1 === s2, "the same graph and options in one cache: one session");
  assert.notStrictEqual(s1, s3);
  assert.deepEqual([a.size, b.size], [1, 1]);
  assert.deepEqual(await runY(s1), [3, 6]);
  await a.dispose();
  assert.deepEqual(a.size, 0);
  assert(a.disposed);
  await assert.rejects(runY(s1), /released/);
  await assert.rejects(compile(scaleGraph(3), { sessions: a }), /disposed/);
  assert.deepEqual(await runY(s3), [3, 6], "b's session is its own: a's disposal leaves it be");
  await b.dispose();
  assert.deepEqual(processSessions.size, before, "nothing went to the process-wide cache");
});

/** What the probe stage saw: its context, and whether its memo held the trial's entry. */
const stageSeen: { ctx: StageContext; sawTrialEntry: boolean }[] = [];
const probeStage: StageDef<{ n: number }> = {
  name: "probe",
  schema: z.object({ n: z.number() }).strict(),
  async run(c, outDir, ctx) {
    await compile(scaleGraph(c.n + 100), { threads: 1, sessions: ctx.sessions });
    stageSeen.push({ ctx, sawTrialEntry: ctx.memo?.get("y") !== undefined });
    await Deno.writeTextFile(`${outDir}/n.txt`, String(c.n));
  },
};

/**
 * A kind that compiles one session in its trial's cache, keeps a memo entry, then asks for a
 * stage (which sees the trial's memo).
 */
function probeKind(seen: { ctx: TrialContext; session: Session; size: number; memo: number }[]) {
  const schema = z.object({ seed: z.number().int().default(1), scale: z.number().default(2) })
    .strict();
  const kind: TrialKind<z.infer<typeof schema>> = {
    name: "context-probe",
    description: "test kind: compiles one session in its trial's context",
    schema,
    work: () => ({ total: 1, unit: "units", steps: 1 }),
    finalFiles: ["final.json"],
    async run(c, outDir, ctx) {
      const trial = ctx.trial!;
      const session = await compile(scaleGraph(c.scale), { threads: 1, sessions: trial.sessions });
      trial.memo.set("y", await runY(session));
      seen.push({ ctx: trial, session, size: trial.sessions.size, memo: trial.memo.size });
      await ctx.stage("probe", { n: c.scale });
      ctx.onProgress({ done: 1, total: 1 });
      await Deno.writeTextFile(
        `${outDir}/metrics.jsonl`,
        JSON.stringify({ y: trial.memo.get("y") }),
      );
      await Deno.writeTextFile(`${outDir}/final.json`, "{}");
    },
    summarize: () => Promise.resolve({ metrics: {} }),
    metricNames: { named: {}, columns: ["y"] },
    stages: { probe: probeStage as StageDef },
  };
  return kind;
}

Deno.test("two trials in one process: each gets its own context, sessions and memo, disposed at its end", async () => {
  const root = await Deno.makeTempDir({ prefix: "proxima-ctx-" });
  try {
    const seen: Parameters<typeof probeKind>[0] = [];
    const kind = probeKind(seen);
    const exp = defineExperiment({
      name: "ctx",
      task: kind,
      sweep: grid({ scale: [2, 5] }),
    });
    assert.deepEqual(findTrialKind("context-probe"), null, "defineExperiment registered nothing");
    const plan = planExperiment(exp, { file: "ctx.ts", codeVersion: "test" });
    const before = processSessions.size;
    const given: TrialContext[] = [];
    for (const t of plan.trials) {
      const req: TrialRequest = {
        id: t.id,
        identity: t.identity,
        expDir: `${root}/ctx`,
        root,
        threads: 1,
        device: "cpu",
        git: null,
      };
      const events: TrialEvent[] = [];
      await executeTrial(req, (e) => events.push(e), { kind, onContext: (c) => given.push(c) });
      assert.deepEqual(events.at(-1)?.type, "done");
    }
    assert.deepEqual(seen.length, 2);
    const [a, b] = seen;
    assert(a.ctx === given[0] && b.ctx === given[1], "the kind ran with the runner's context");
    assert.notStrictEqual(a.ctx, b.ctx);
    assert.notStrictEqual(a.ctx.sessions, b.ctx.sessions);
    assert.notStrictEqual(a.session, b.session);
    assert.deepEqual(
      [a.size, a.memo, b.size, b.memo],
      [1, 1, 1, 1],
      "during each run: its own entries",
    );
    for (const s of seen) {
      assert(s.ctx.disposed && s.ctx.sessions.disposed, "disposed when its trial ended");
      assert.deepEqual([s.ctx.sessions.size, s.ctx.memo.size], [0, 0]);
      await assert.rejects(runY(s.session), /released/);
    }
    assert.deepEqual(processSessions.size, before, "trials left the process-wide cache untouched");
    // Stage runs get the trial's memo and a session cache of their own, freed when they end.
    assert.equal(stageSeen.length, 2);
    for (const [i, st] of stageSeen.entries()) {
      assert.ok(st.sawTrialEntry, "the stage saw the trial's memo entry");
      assert.ok(st.ctx.memo === seen[i].ctx.memo);
      assert.ok(st.ctx.sessions !== seen[i].ctx.sessions && st.ctx.sessions!.disposed);
    }
    const ys = await Promise.all(
      plan.trials.map((t) => Deno.readTextFile(`${root}/ctx/${t.id}/metrics.jsonl`)),
    );
    assert.deepEqual(ys.map((y) => JSON.parse(y).y), [[2, 4], [5, 10]]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a CartPole trial compiles every session in its own context (none in the process's)", async () => {
  const root = await Deno.makeTempDir({ prefix: "proxima-ctx-" });
  try {
    const exp = defineExperiment({
      name: "cp",
      task: "CartPole-v1",
      base: { total_steps: 64, envs: 2, steps: 16, ppo: { epochs: 1, minibatches: 1 } },
      sweep: grid({ seed: [1, 2] }),
    });
    const plan = planExperiment(exp, { file: "cp.ts", codeVersion: "test" });
    const before = processSessions.size;
    const sizes: number[] = [];
    const contexts: TrialContext[] = [];
    for (const t of plan.trials) {
      const req: TrialRequest = {
        id: t.id,
        identity: t.identity,
        expDir: `${root}/cp`,
        root,
        threads: 1,
        device: "cpu",
        git: null,
      };
      await executeTrial(req, (e) => {
        if (e.type === "progress") sizes.push(contexts.at(-1)!.sessions.size);
      }, { onContext: (c) => contexts.push(c) });
    }
    assert.deepEqual(contexts.length, 2);
    assert(sizes.length > 0 && sizes.every((n) => n >= 2), `sessions while training: ${sizes}`);
    assert(contexts.every((c) => c.disposed && c.sessions.size === 0));
    assert.deepEqual(processSessions.size, before, "no session of a trial in the process cache");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("phase times: the timer handed to trainPpo sums its training time; another timer sees none of it", async () => {
  const out = await Deno.makeTempDir({ prefix: "proxima-ctx-" });
  try {
    await using sessions = new SessionCache("phases");
    const problem = await createEnvProblem({
      env: makeVecEnv("CartPole-v1", 2),
      steps: 8,
      cfg: parsePpoConfig({ epochs: 1, minibatches: 1 }),
      seed: 1,
      threads: 1,
      sessions,
    });
    const mine = new PhaseTimer(), other = new PhaseTimer();
    const t = other.clock();
    await trainPpo(problem, { updates: 2, seed: 1, rng: problem.rng, outDir: out, phases: mine });
    const p = mine.take();
    assert.deepEqual(Object.keys(p), ["training"]);
    assert.ok(p.training! > 0);
    assert.deepEqual(mine.take(), {}, "take() starts the sums again");
    assert.deepEqual(other.take(), {}, "a timer nobody handed down records nothing");
    other.add("scoring", t);
    assert.ok(other.take().scoring! > 0);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("defineExperiment registers nothing; an experiment's own kind may not take a built-in task's name", () => {
  const kind = probeKind([]);
  const own = defineExperiment({ name: "own", task: kind, sweep: grid({ seed: [1] }) });
  assert.equal(findTrialKind("context-probe"), null);
  assert.equal(planExperiment(own, { file: "own.ts", codeVersion: "t" }).kind, kind);
  const clash = defineExperiment({
    name: "clash",
    task: { ...kind, name: "Sentiment" },
    sweep: grid({ seed: [1] }),
  });
  assert.throws(
    () => planExperiment(clash, { file: "clash.ts", codeVersion: "t" }),
    /task: the trial kind "Sentiment" takes a name of the built-in task "sentiment"[^]*fix: rename/,
  );
  assert.equal(findTrialKind("sentiment")?.name, "sentiment", "the built-in one is unchanged");
});
