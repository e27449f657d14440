/**
 * Bad input: every case must fail with an error that names the cause and the fix, leave no
 * partial bundle, and (for failures at run time) let the other trials of the sweep finish.
 *
 * Validation cases run in-process through planExperiment / loadExperiment (nothing runs:
 * validation happens before any trial starts); run-time cases run `cli/sweep.ts`.
 */
import assert from "node:assert/strict";
import {
  concat,
  defineExperiment,
  ExperimentError,
  type ExperimentInput,
  grid,
  loadExperiment,
  lockWait,
  logUniform,
  planExperiment,
  points,
  random,
  stableJson,
  zip,
} from "../../lib/experiment/mod.ts";
import { type EnvRunConfig, runEnvTraining } from "../../lib/envs/run.ts";
import runtimeMix from "./fixtures/runtime_mix.ts";
import {
  CODE_VERSION,
  failures,
  REPO_ROOT,
  statuses,
  sweep,
  tempDir,
  visibleBundles,
} from "./helpers.ts";

interface Case {
  name: string;
  input: Record<string, unknown>;
  overrides?: Record<string, unknown>;
  /** A problem whose key, cause and fix match these. */
  key: RegExp;
  cause: RegExp;
  fix: RegExp;
}

const OK = { name: "bad", task: "CartPole-v1", base: { total_steps: 2048, steps: 32 } };
const s = (sweep: unknown) => ({ ...OK, sweep });

const CASES: Case[] = [
  {
    name: "unknown task, with a did-you-mean",
    input: { ...s(grid({ seed: [1] })), task: "cartpol" },
    key: /^task$/,
    cause: /unknown task "cartpol" \(did you mean "(CartPole-v1|cartpole)"\?\)/,
    fix: /registered tasks: .*CartPole-v1/,
  },
  {
    name: "missing task",
    input: { name: "bad", sweep: grid({ seed: [1] }) },
    key: /^task$/,
    cause: /missing/,
    fix: /registered tasks/,
  },
  {
    name: "unknown sweep key, with a did-you-mean",
    input: s(grid({ "ppo.kl.betta": [0.1] })),
    key: /sweep "ppo\.kl\.betta"/,
    cause: /unknown config key for task CartPole-v1 \(did you mean "ppo\.kl\.beta"\?\)/,
    fix: /rename it to "ppo\.kl\.beta"/,
  },
  {
    name: "unknown base key, with a did-you-mean",
    input: { ...s(grid({ seed: [1] })), base: { totl_steps: 2048 } },
    key: /base "totl_steps"/,
    cause: /did you mean "total_steps"/,
    fix: /rename it to "total_steps"/,
  },
  {
    name: "unknown nested base key",
    input: { ...s(grid({ seed: [1] })), base: { ppo: { cliip: 0.1 } } },
    key: /base "ppo\.cliip"/,
    cause: /did you mean "ppo\.clip"/,
    fix: /ppo\.clip/,
  },
  {
    name: "env key where the task is the env",
    input: { ...s(grid({ seed: [1] })), base: { env: "acrobot" } },
    key: /base "env"/,
    cause: /unknown config key/,
    fix: /task: "CartPole-v1"/,
  },
  {
    name: "wrong type in the sweep (a number in quotes)",
    input: s(grid({ "ppo.clip": ["0.2"] })),
    key: /ppo\.clip \(sweep point 1\)/,
    cause: /must be a number \(got "0\.2"/,
    fix: /write 0\.2 without quotes/,
  },
  {
    name: "wrong type in base",
    input: { ...OK, base: { seed: "one" }, sweep: grid({ "ppo.clip": [0.2] }) },
    key: /seed \(base\)/,
    cause: /must be a number \(got "one"/,
    fix: /give a number/,
  },
  {
    name: "NaN value",
    input: s(grid({ "ppo.lr": [NaN] })),
    key: /ppo\.lr \(sweep point 1\)/,
    cause: /finite number \(got NaN\)/,
    fix: /finite number/,
  },
  {
    name: "negative value",
    input: s(grid({ "ppo.lr": [2.5e-4, -1e-3] })),
    key: /ppo\.lr \(sweep point 2\)/,
    cause: /must be > 0 \(got -0\.001\)/,
    fix: /use a value > 0/,
  },
  {
    name: "out-of-range value",
    input: s(grid({ "ppo.gamma": [0.99, 1.5] })),
    key: /ppo\.gamma \(sweep point 2\)/,
    cause: /must be ≤ 1 \(got 1\.5\)/,
    fix: /use a value ≤ 1/,
  },
  {
    name: "Infinity",
    input: { ...s(grid({ seed: [1] })), base: { total_steps: Infinity } },
    key: /total_steps \(base\)/,
    cause: /(finite|integer)/,
    fix: /(finite|whole) number/,
  },
  {
    name: "non-integer where an integer is needed",
    input: s(grid({ seed: [1.5] })),
    key: /seed \(sweep point 1\)/,
    cause: /must be an integer \(got 1\.5\)/,
    fix: /whole number/,
  },
  {
    name: "enum typo, with a did-you-mean",
    input: s(grid({ "ppo.loss": ["klpenalty"] })),
    key: /ppo\.loss/,
    cause: /must be one of "clip", "no-clip", "kl-penalty" .*did you mean "kl-penalty"/,
    fix: /write "kl-penalty"/,
  },
  {
    name: "empty array where items are needed",
    input: { ...s(grid({ seed: [1] })), base: { hidden: [] } },
    key: /hidden \(base\)/,
    cause: /at least 1 item/,
    fix: /at least 1 item/,
  },
  {
    name: "empty sweep list",
    input: s(grid({ "ppo.clip": [], seed: [1] })),
    key: /sweep "ppo\.clip"/,
    cause: /no values \(empty list\)/,
    fix: /at least one value/,
  },
  {
    name: "empty grid",
    input: s(grid({})),
    key: /^sweep$/,
    cause: /no keys/,
    fix: /seed: \[1, 2, 3\]/,
  },
  {
    name: "missing sweep",
    input: { ...OK },
    key: /^sweep$/,
    cause: /missing/,
    fix: /sweep: grid/,
  },
  {
    name: "sweep that is a plain object",
    input: s({ seed: [1, 2] }),
    key: /^sweep$/,
    cause: /must be built with grid/,
    fix: /grid\(/,
  },
  {
    name: "duplicate trials",
    input: s(grid({ seed: [1, 2, 1] })),
    key: /sweep point 3/,
    cause: /same trial as sweep point 1/,
    fix: /remove the duplicate/,
  },
  {
    name: "duplicate trials written differently (1e-4 and 0.0001)",
    input: s(points([{ "ppo.lr": 1e-4 }, { "ppo.lr": 0.0001 }])),
    key: /sweep point 2/,
    cause: /same trial as sweep point 1/,
    fix: /remove the duplicate/,
  },
  {
    name: "--set that makes every trial the same",
    input: s(grid({ seed: [1, 2] })),
    overrides: { seed: 3 },
    key: /sweep point 2/,
    cause: /after --set/,
    fix: /remove the duplicate/,
  },
  {
    name: "zip of unequal lengths",
    input: s(zip({ "ppo.clip": [0.1, 0.2], seed: [1, 2, 3] })),
    key: /sweep "seed"/,
    cause: /has 2 values but "seed" has 3/,
    fix: /same number of values/,
  },
  {
    name: "the same key swept in two parts",
    input: s(grid({ seed: [1] }, { seed: [2] })),
    key: /sweep "seed"/,
    cause: /set by part 2 and again by part 1/,
    fix: /in one part/,
  },
  {
    name: "a group and a key inside it swept together",
    input: s(grid({ "ppo.kl": [{ beta: 1 }] }, { "ppo.kl.beta": [2] })),
    key: /sweep "ppo\.kl\.beta"/,
    cause: /"ppo\.kl"/,
    fix: /in one part/,
  },
  {
    name: "random with n = 0",
    input: s(random({ n: 0, seed: 1, "ppo.lr": logUniform(1e-4, 1e-3) })),
    key: /sweep "n"/,
    cause: /positive integer \(got 0\)/,
    fix: /number of trials/,
  },
  {
    name: "random log-uniform range through 0",
    input: s(random({ n: 2, seed: 1, "ppo.lr": logUniform(0, 1e-3) })),
    key: /sweep "ppo\.lr"/,
    cause: /log-uniform\(0, 0\.001\) is not a valid range/,
    fix: /0 < lo < hi/,
  },
  {
    name: "random without a seed",
    input: s(random({ n: 2, "ppo.lr": logUniform(1e-4, 1e-3) } as never)),
    key: /sweep "seed"/,
    cause: /seed must be a non-negative integer/,
    fix: /same seed gives the same trials/,
  },
  {
    name: "unknown metric, with a did-you-mean",
    input: { ...s(grid({ seed: [1] })), metrics: ["retrun"] },
    key: /metrics "retrun"/,
    cause: /did you mean "return"/,
    fix: /metrics\.jsonl column/,
  },
  {
    name: "total_steps smaller than one rollout",
    input: { ...s(grid({ seed: [1] })), base: { total_steps: 64, envs: 4, steps: 32 } },
    key: /total_steps \(base\)/,
    cause: /less than one rollout/,
    fix: /raise total_steps/,
  },
  {
    name: "more minibatches than rollout samples",
    input: {
      ...s(grid({ "ppo.minibatches": [4, 512] })),
      base: { total_steps: 2048, envs: 2, steps: 16 },
    },
    key: /ppo\.minibatches \(sweep point 2\)/,
    cause: /exceeds the rollout size/,
    fix: /lower it/,
  },
  {
    name: "a key inside a value",
    input: s(grid({ "ppo.clip.max": [0.1] })),
    key: /sweep "ppo\.clip\.max"/,
    cause: /"ppo\.clip" is a value/,
    fix: /set "ppo\.clip" itself/,
  },
  {
    name: "invalid experiment name",
    input: { ...s(grid({ seed: [1] })), name: "my exp/1" },
    key: /^name$/,
    cause: /not a valid folder name/,
    fix: /letters, digits/,
  },
  {
    name: "unknown experiment field, with a did-you-mean",
    input: { ...OK, sweep: grid({ seed: [1] }), sweeps: grid({ seed: [2] }) },
    key: /^sweeps$/,
    cause: /did you mean "sweep"/,
    fix: /name, task, base, sweep/,
  },
  {
    name: "base that is not an object",
    input: { ...OK, base: [1, 2], sweep: grid({ seed: [1] }) },
    key: /^base$/,
    cause: /must be an object/,
    fix: /base: \{/,
  },
  {
    name: "a function as a value",
    input: s(grid({ "ppo.clip": [() => 0.2] })),
    key: /ppo\.clip \(sweep point 1\)/,
    cause: /must be a number/,
    fix: /give a number/,
  },
  {
    name: "--set of an unknown key, with a did-you-mean",
    input: s(grid({ seed: [1] })),
    overrides: { total_step: 1024 },
    key: /--set "total_step"/,
    cause: /did you mean "total_steps"/,
    fix: /rename it/,
  },
  {
    name: "concat of something that is not a sweep",
    input: s(concat(grid({ seed: [1] }), { seed: [2] } as never)),
    key: /^sweep$/,
    cause: /part 2 is not a sweep/,
    fix: /concat\(grid/,
  },
];

for (const c of CASES) {
  Deno.test(`bad input: ${c.name}`, () => {
    let err: unknown;
    try {
      planExperiment(defineExperiment(c.input as unknown as ExperimentInput), {
        file: "experiments/bad.ts",
        codeVersion: CODE_VERSION,
        overrides: c.overrides,
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ExperimentError, `expected an ExperimentError, got ${err}`);
    assert.match(err.message, /^experiments\/bad\.ts: \d+ problems? \(no trial was started\)/);
    const hit = err.problems.find((p) => c.key.test(p.key) && c.cause.test(p.cause));
    assert.ok(hit, `no problem matching ${c.key} / ${c.cause} in:\n${err.message}`);
    assert.match(hit.fix, c.fix, err.message);
    assert.match(err.message, /fix: /);
  });
}

// ---- malformed experiment files --------------------------------------------------------

const LIB = `file://${REPO_ROOT}/lib/experiment/mod.ts`;
const FILES: { name: string; file: string; text?: string; cause: RegExp; fix: RegExp }[] = [
  {
    name: "syntax error",
    file: "syntax.ts",
    text:
      `import { defineExperiment } from "${LIB}";\nexport default defineExperiment({ name: "x",, });\n`,
    cause: /cannot be loaded/,
    fix: /valid TypeScript module/,
  },
  {
    name: "throws when imported",
    file: "throws.ts",
    text: `throw new Error("boom at import");\nexport default 1;\n`,
    cause: /cannot be loaded: .*boom at import/,
    fix: /fix the error above/,
  },
  {
    name: "no default export",
    file: "nodefault.ts",
    text: `import { defineExperiment, grid } from "${LIB}";\n` +
      `export const exp = defineExperiment({ name: "x", task: "cartpole", sweep: grid({ seed: [1] }) });\n`,
    cause: /missing/,
    fix: /export default defineExperiment/,
  },
  {
    name: "default export that is not an experiment",
    file: "plain.ts",
    text: `export default { name: "x", task: "cartpole" };\n`,
    cause: /is not an experiment \(got a plain object\)/,
    fix: /wrap it: `export default defineExperiment/,
  },
  {
    name: "file that does not exist, with a did-you-mean",
    file: "syntx.ts",
    cause: /no such experiment file \(did you mean .*syntax\.ts\?\)/,
    fix: /give one of/,
  },
  {
    name: "not a TypeScript file",
    file: "exp.json",
    text: "{}",
    cause: /not a TypeScript\/JavaScript module/,
    fix: /end in \.ts/,
  },
];

Deno.test("bad input: malformed experiment files", async (t) => {
  const dir = await tempDir("badfiles");
  try {
    for (const f of FILES) {
      if (f.text !== undefined) await Deno.writeTextFile(`${dir}/${f.file}`, f.text);
    }
    for (const f of FILES) {
      await t.step(f.name, async () => {
        const path = `${dir}/${f.file}`;
        let err: unknown;
        try {
          await loadExperiment(path);
        } catch (e) {
          err = e;
        }
        assert.ok(err instanceof ExperimentError, `expected an ExperimentError, got ${err}`);
        assert.ok(err.message.startsWith(path + ":"), err.message);
        assert.match(err.problems[0].cause, f.cause, err.message);
        assert.match(err.problems[0].fix, f.fix, err.message);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- run time: one sweep, many ways for a trial to fail --------------------------------

Deno.test("bad input at run time: diverging lr, corrupt/missing checkpoints, truncated metrics, corrupt bundles — each named with its fix, the others finish", async () => {
  const root = await tempDir("runtime");
  try {
    const plan = planExperiment(runtimeMix, {
      file: "tests/experiment/fixtures/runtime_mix.ts",
      codeVersion: CODE_VERSION,
    });
    const bySeed = new Map(plan.trials.map((t) => [t.identity.config.seed as number, t]));
    const expDir = `${root}/runtime-mix`;
    // Work folders of killed trials (checkpoints at updates 4 and 6 of 8), then damaged.
    for (const seed of [3, 4, 5, 6, 7, 8, 11]) {
      const t = bySeed.get(seed)!, tmp = `${expDir}/.tmp-${t.id}`;
      const cfg = { ...t.identity.config, env: "CartPole-v1" } as unknown as EnvRunConfig;
      await runEnvTraining(cfg, { outDir: tmp, threads: 1 });
      await Deno.remove(`${tmp}/final.safetensors`);
      await Deno.writeTextFile(`${tmp}/config.json`, stableJson(t.identity));
      const ck = `${tmp}/checkpoints`;
      assert.equal((await Deno.readTextFile(`${ck}/LATEST`)).trim(), "update-000006");
      if (seed === 3) {
        await Deno.writeFile(
          `${ck}/update-000006/state.safetensors`,
          new Uint8Array(64).fill(0xff),
        );
      }
      if (seed === 4) await Deno.remove(`${ck}/update-000006`, { recursive: true });
      if (seed === 5) await Deno.writeTextFile(`${ck}/LATEST`, "garbage\n");
      if (seed === 6) await Deno.truncate(`${tmp}/metrics.jsonl`, 10);
      if (seed === 11) await Deno.truncate(`${tmp}/episodes.jsonl`, 10);
      if (seed === 7) await Deno.writeTextFile(`${ck}/update-000006/run.json`, "{not json");
      if (seed === 8) {
        await Deno.writeTextFile(`${tmp}/config.json`, stableJson(bySeed.get(1)!.identity));
      }
    }
    const idx = (seed: number) => bySeed.get(seed)!.index;
    const expectFailures = (out: string, extra: [number, RegExp][] = []) => {
      const f = failures(out);
      const want: [number, RegExp][] = [
        [
          2,
          /update \d+\/8 \(epoch \d+, minibatch \d+\): training diverged, the (loss|gradient norm) is not finite .*Likely fix: lower ppo\.lr \(now 1e\+20/,
        ],
        [
          3,
          /cannot resume from checkpoint .*update-000006: safetensors: .*state\.safetensors[\s\S]*fix: delete .*\.tmp-/,
        ],
        [
          4,
          /cannot resume from checkpoint .*update-000006: safetensors: file not found[\s\S]*fix: delete .*\.tmp-/,
        ],
        [
          5,
          /cannot resume from checkpoint .*garbage: .*LATEST: expected "update-NNNNNN", found "garbage"[\s\S]*fix: delete/,
        ],
        [
          6,
          /metrics\.jsonl has 10 bytes but the checkpoint recorded \d+ \(the file was truncated or replaced\)[\s\S]*fix: delete/,
        ],
        [7, /run\.json: .*JSON[\s\S]*fix: delete/],
        [
          11,
          /episodes\.jsonl has 10 bytes but the checkpoint recorded \d+ \(the file was truncated or replaced\)[\s\S]*fix: delete/,
        ],
        [8, /config\.json is not this trial's config .*fix: delete .*\.tmp-/],
        ...extra,
      ];
      for (const [seed, re] of want) {
        const msg = f.get(idx(seed));
        assert.ok(msg, `trial with seed ${seed} did not fail:\n${out}`);
        assert.match(msg, re, `seed ${seed}`);
      }
      assert.equal(f.size, want.length, out);
    };

    const r1 = await sweep([
      "tests/experiment/fixtures/runtime_mix.ts",
      "--results",
      root,
      "--jobs",
      "2",
    ]);
    assert.equal(r1.code, 1, r1.stdout + r1.stderr);
    expectFailures(r1.stdout);
    const st1 = statuses(r1.stdout);
    for (const seed of [1, 9, 10]) assert.equal(st1.get(idx(seed)), "done", r1.stdout);
    // Only the finished trials are visible, each a complete bundle; the diverged one left nothing.
    assert.deepEqual(await visibleBundles(expDir), [1, 9, 10].map((x) => bySeed.get(x)!.id).sort());
    const hidden = (await Array.fromAsync(Deno.readDir(expDir))).map((e) => e.name);
    assert.ok(!hidden.includes(`.tmp-${bySeed.get(2)!.id}`), "diverged trial's work folder kept");

    // Damage two finished bundles: a corrupt safetensors, a missing file.
    const b9 = `${expDir}/${bySeed.get(9)!.id}`, b10 = `${expDir}/${bySeed.get(10)!.id}`;
    const st = await Deno.readFile(`${b9}/checkpoints/final.safetensors`);
    st[st.length - 3] ^= 0x40;
    await Deno.writeFile(`${b9}/checkpoints/final.safetensors`, st);
    await Deno.remove(`${b10}/summary.json`);
    const r2 = await sweep([
      "tests/experiment/fixtures/runtime_mix.ts",
      "--results",
      root,
      "--jobs",
      "2",
    ]);
    assert.equal(r2.code, 1, r2.stdout + r2.stderr);
    expectFailures(r2.stdout, [
      [
        9,
        /fails verification: checkpoints\/final\.safetensors: differs[\s\S]*fix: delete .* to run this trial again/,
      ],
      [10, /fails verification: summary\.json: missing[\s\S]*fix: delete/],
    ]);
    assert.equal(statuses(r2.stdout).get(idx(1)), "skipped");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bad input at run time: a reward that turns NaN mid-run, a task that throws", async () => {
  const root = await tempDir("runtime-kinds");
  try {
    const r = await sweep(["tests/experiment/fixtures/runtime_kinds.ts", "--results", root]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.deepEqual([...statuses(r.stdout).values()], ["done", "failed"]);
    assert.match(
      failures(r.stdout).get(2)!,
      /update 3\/8: the task returned a non-finite reward \(NaN\) at row 0, position 5; .*Fix: check the task's reward function/,
    );
    assert.equal((await visibleBundles(`${root}/nan-reward`)).length, 1);

    const x = await sweep(["tests/experiment/fixtures/explode.ts", "--results", root]);
    assert.equal(x.code, 1, x.stdout + x.stderr);
    assert.deepEqual([...statuses(x.stdout).values()], ["done", "done", "failed", "failed"]);
    const msg = failures(x.stdout).get(3)!;
    assert.match(msg, /dummy: exploding at unit 2 as configured/);
    assert.match(
      msg,
      /fix: the work folder .*\.tmp-[0-9a-f]{16} is kept, and the next sweep retries/,
    );
    assert.match(msg, /worker stderr:/);
    assert.equal((await visibleBundles(`${root}/explode`)).length, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bad input at run time: unwritable results folder, a sweep already running, bad flags, missing file", async (t) => {
  const root = await tempDir("cli");
  try {
    const exp = "tests/experiment/fixtures/explode.ts";
    await t.step("results path is a file", async () => {
      await Deno.writeTextFile(`${root}/file`, "");
      const r = await sweep([exp, "--results", `${root}/file`]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      // Refused before the experiment loads (cli/preflight.ts), naming the flag and the fix.
      assert.match(
        r.stderr,
        /--results .*\/file: is a file, not a folder\n {2}fix: give --results a folder you can write to/,
      );
    });
    if (Deno.uid() !== 0) {
      await t.step("results folder without write permission", async () => {
        await Deno.mkdir(`${root}/ro`, { mode: 0o555 });
        const r = await sweep([exp, "--results", `${root}/ro`]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /--results .*\/ro: the folder is not writable[^\n]*\n {2}fix:/);
      });
    }
    await t.step("another sweep on the same folder", async () => {
      await Deno.mkdir(`${root}/busy/explode`, { recursive: true });
      const lock = await lockWait(`${root}/busy/explode/.sweep.lock`);
      try {
        const r = await sweep([exp, "--results", `${root}/busy`]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, /another sweep .*is running on .*busy\/explode; fix: wait for it/);
        assert.deepEqual(await visibleBundles(`${root}/busy/explode`), []);
      } finally {
        lock.close();
      }
    });
    const flags: [string[], RegExp][] = [
      [[exp, "--job", "2"], /unknown flag --job \(did you mean --jobs\?\)/],
      [[exp, "--jobs", "0"], /--jobs must be a positive integer \(got "0"\)/],
      [[exp, "--set", "total_steps"], /--set needs KEY=VALUE .*e\.g\. --set total_steps=2048/],
      [[exp, "--device", "tpu"], /--device must be cpu or cuda/],
      [
        ["experiments/kll.ts"],
        /experiments\/kll\.ts: 1 problem[\s\S]*no such experiment file \(did you mean experiments\/kl\.ts\?\)/,
      ],
      [
        [exp, "--set", "unit=3"],
        /--set "unit": unknown config key for task dummy \(did you mean "units"\?\)/,
      ],
    ];
    for (const [args, re] of flags) {
      await t.step(`flags: ${args.slice(1).join(" ") || args[0]}`, async () => {
        const r = await sweep([...args, "--results", `${root}/flags`]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, re);
        assert.deepEqual(await visibleBundles(`${root}/flags/explode`), []);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
