/**
 * A trial's config is resolved (parsed, checked across keys) once, at planning; the process
 * that runs it only confirms it: one schema parse and no cross-key check in a worker, none at
 * all where the same process planned it (`deno task train`). Counted with lib/trial/resolve.ts's
 * counters over a real 4-trial CartPole sweep.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import {
  defineExperiment,
  executeTrial,
  grid,
  planExperiment,
  type TrialEvent,
  type TrialRequest,
} from "../../lib/experiment/mod.ts";
import {
  configCounts,
  parseTrialConfig,
  resetConfigCounts,
  resolvedConfig,
} from "../../lib/trial/resolve.ts";
import { trainOneTrial } from "../../cli/train_trial.ts";
import { CARTPOLE_KIND } from "../../lib/envs/kind.ts";
import { defineLmTask, lmTrialShape } from "../../lib/tasks/lm_task.ts";
import { CODE_VERSION } from "./helpers.ts";

// A tiny CartPole trial: 2 updates of one 8-step rollout, a 4-unit network.
const base = {
  total_steps: 16,
  envs: 1,
  steps: 8,
  hidden: [4],
  checkpoint_every: 0,
  ppo: { epochs: 1, minibatches: 1 },
};

Deno.test("a 4-trial sweep: 4 parses and 4 checks at planning, 1 parse and 0 checks per trial run", async () => {
  // Checks counted on the kind itself too (the counter could miss a direct call).
  let kindChecks = 0, schemaParses = 0;
  const check = CARTPOLE_KIND.check!;
  CARTPOLE_KIND.check = (c) => (kindChecks++, check(c));
  // And every parse of the kind's schema object, whoever calls it.
  const schema = CARTPOLE_KIND.schema as unknown as Record<string, (...a: unknown[]) => unknown>;
  const own = { parse: schema.parse, safeParse: schema.safeParse };
  for (const m of ["parse", "safeParse"] as const) {
    schema[m] = (...a: unknown[]) => (schemaParses++, own[m](...a));
  }
  const root = await Deno.makeTempDir({ prefix: "resolve-once-" });
  try {
    resetConfigCounts();
    const plan = planExperiment(
      defineExperiment({
        name: "once",
        task: "cartpole",
        base,
        sweep: grid({ seed: [1, 2, 3, 4] }),
      }),
      { file: "once.ts", codeVersion: CODE_VERSION },
    );
    assert.equal(plan.trials.length, 4);
    assert.deepEqual(configCounts, { parses: 4, checks: 4 });
    assert.deepEqual([kindChecks, schemaParses], [4, 4]);

    // Each trial as a worker process runs it: the request arrives as JSON (a fresh object).
    for (const t of plan.trials) {
      const req: TrialRequest = JSON.parse(JSON.stringify({
        id: t.id,
        identity: t.identity,
        expDir: `${root}/once`,
        root,
        threads: 1,
        device: "cpu",
        git: null,
      }));
      resetConfigCounts();
      const events: TrialEvent[] = [];
      await executeTrial(req, (e) => events.push(e));
      assert.equal(events.at(-1)?.type, "done", JSON.stringify(events.at(-1)));
      assert.deepEqual(configCounts, { parses: 1, checks: 0 }, `trial ${t.index}`);
    }
    // No worker ran the cross-key checks again; each parsed once.
    assert.deepEqual([kindChecks, schemaParses], [4, 8]);

    // The planning process hands its own resolved config on without parsing it again.
    resetConfigCounts();
    assert.equal(
      resolvedConfig(CARTPOLE_KIND, plan.trials[0].identity.config),
      plan.trials[0].identity.config,
    );
    assert.deepEqual(configCounts, { parses: 0, checks: 0 });
    // A config that is not a resolved one (a default left out) is refused, not completed.
    const { hidden: _, ...partial } = plan.trials[0].identity.config;
    assert.equal(resolvedConfig(CARTPOLE_KIND, partial), null);
  } finally {
    CARTPOLE_KIND.check = check;
    Object.assign(schema, own);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("an LM task's run takes its resolved config as it is: no second parse or check", async () => {
  let checks = 0;
  const sentinel = new Error("problem reached");
  const seen: Record<string, number>[] = [];
  const kind = defineLmTask({
    name: "once-lm",
    description: "counts config work",
    schema: z.object({ ...lmTrialShape(), batch: z.number().int().min(1).default(8) }).strict(),
    check: () => (checks++, []),
    stages: {},
    stageVersion: 1,
    samples: (c) => c.batch,
    problem() {
      seen.push({ ...configCounts, checks });
      throw sentinel;
    },
    evaluate: () => Promise.resolve({}),
    summary: () => ({}),
    progress: {},
    metrics: { named: {}, columns: [] },
  });
  resetConfigCounts();
  const plan = planExperiment(
    defineExperiment({ name: "once-lm", task: kind, sweep: grid({ seed: [1, 2, 3, 4] }) }),
    { file: "once-lm.ts", codeVersion: CODE_VERSION },
  );
  assert.deepEqual([configCounts.parses, configCounts.checks, checks], [4, 4, 4]);
  const ctx = {
    resume: false,
    threads: 1,
    device: "cpu" as const,
    onProgress() {},
    stage: () => Promise.reject(new Error("no stages")),
  };
  for (const t of plan.trials) {
    // This process planned it: the same object back.
    const config = resolvedConfig(kind, t.identity.config) as Parameters<typeof kind.run>[0];
    assert.equal(config, t.identity.config);
    await assert.rejects(kind.run(config, "/nonexistent", ctx), (e) => e === sentinel);
  }
  assert.deepEqual(seen.at(-1), { parses: 4, checks: 4 }); // nothing more than planning's
  // `trial` with a raw input resolves it itself: one parse, one check.
  resetConfigCounts();
  await assert.rejects(kind.trial({ seed: 9 }, "/nonexistent"), (e) => e === sentinel);
  assert.deepEqual(seen.at(-1), { parses: 1, checks: 5 });
  assert.equal(configCounts.checks, 1);
});

Deno.test("deno task train's one trial: one parse and one check in its one process", async () => {
  const root = await Deno.makeTempDir({ prefix: "resolve-once-train-" });
  try {
    resetConfigCounts();
    const config = parseTrialConfig(CARTPOLE_KIND, { ...base, seed: 5 }, "train flags");
    assert.deepEqual(configCounts, { parses: 1, checks: 1 });
    const r = await trainOneTrial({
      kind: CARTPOLE_KIND,
      config,
      out: `${root}/run`,
      outFlag: "--out",
      resume: false,
      root,
      threads: 1,
      device: "cpu",
      reportTo: "none",
      onEvent() {},
    });
    assert.equal(r.how, "ran");
    assert.deepEqual(configCounts, { parses: 1, checks: 1 }); // planned and ran without more
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${root}/run/config.json`)).config.seed,
      5,
    );
    // A bad cross-key combination is named by key, before anything runs.
    assert.throws(
      () => parseTrialConfig(CARTPOLE_KIND, { ...base, total_steps: 4 }, "train flags"),
      /train flags: total_steps: total_steps \(4\) is less than one rollout .*fix: raise/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
