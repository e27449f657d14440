/**
 * The user's own reward functions reach `deno task train --task lm` (`--reward_fn
 * module:name[:weight]`) and sweeps (`{ module, name }` or `{ fn }` in an experiment file):
 * the reward sees the prompt's dataset row (`sample.row.answer`); an unknown name, a missing
 * module or a throwing function is refused with exit 2 before any model loads (the policy
 * folder given does not even exist); a sweep with a bad reward is refused at planning; the
 * module's bytes are in the trial identity.
 */
import assert from "node:assert/strict";
import { initDecoder } from "../../lib/nn/decoder.ts";
import { saveHfFolder } from "../../lib/nn/hf.ts";
import { BYTE_EOS_ID, makeByteTokenizer } from "../../lib/nn/tokenizer.ts";
import { Rng } from "../../lib/rng.ts";
import { contentHash } from "../../lib/hash.ts";
import {
  defineExperiment,
  ExperimentError,
  grid,
  loadExperiment,
  planExperiment,
  validateInputs,
} from "../../lib/experiment/mod.ts";
import "../../lib/experiment/tasks.ts";
import { sweep } from "../experiment/helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "proxima_user_rewards_" });
const POLICY = `${tmp}/byte-gpt2`;
const cfg = { vocabSize: 257, nPositions: 64, nEmbd: 16, nLayer: 1, nHead: 2 };
await saveHfFolder(
  POLICY,
  cfg,
  initDecoder(cfg, new Rng(3), "float32") as Record<string, Float32Array>,
  makeByteTokenizer({ modelMaxLength: 64 }),
  { config: { eos_token_id: BYTE_EOS_ID, pad_token_id: BYTE_EOS_ID } },
);
const PROMPTS = `${tmp}/math.jsonl`;
await Deno.writeTextFile(
  PROMPTS,
  '{"prompt": "1+1=", "answer": 2}\n{"prompt": "2+3=", "answer": 5, "level": "easy"}\n',
);
const MODULE = `${tmp}/math_rewards.ts`;
await Deno.writeTextFile(
  MODULE,
  `export function answer_value(s) { return Number(s.row.answer); }
export const throws = (s) => { throw new Error("boom on " + s.promptText); };
export const not_a_function = 3;
export const zero = () => 0;
`,
);

async function train(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/train.ts`, "--task", "lm", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("train --task lm --reward_fn: the reward sees each prompt's dataset row", async () => {
  const out = `${tmp}/run`;
  const r = await train([
    "--policy",
    POLICY,
    "--prompts",
    PROMPTS,
    "--reward_fn",
    `${MODULE}:answer_value:0.5`,
    "--reward-fn",
    `${MODULE}:zero`,
    "--updates",
    "1",
    "--batch",
    "2",
    "--max_new_tokens",
    "3",
    "--eval.samples",
    "2",
    "--quiet",
    "--out",
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  // answer_value(row) = row.answer: the batch holds both prompts, so its mean is (2 + 5) / 2.
  const rows = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(rows[0]["reward/answer_value"], 3.5);
  assert.equal(rows[0]["reward/zero"], 0);
  assert.equal(rows[0]["reward/total"], 1.75); // 0.5 · 3.5 + 1 · 0
  // Evaluation prompts carry their rows too.
  const ev = JSON.parse(await Deno.readTextFile(`${out}/checkpoints/eval.json`));
  assert.equal(ev.before.reward, 1.75);
  assert.equal(ev.after.reward, 1.75);
});

Deno.test("train --reward_fn: unknown name, missing module, throwing function: exit 2 before any model loads", async () => {
  // The policy folder does not exist: a reward error proves the rewards were checked first.
  const base = ["--policy", `${tmp}/no-such-model`, "--prompts", PROMPTS, "--quiet"];
  const unknown = await train([...base, "--reward_fn", `${MODULE}:answer_valu`]);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /rewards\.0\.name: .*exports no reward "answer_valu"/);
  assert.match(unknown.stderr, /did you mean "answer_value"\?/);
  assert.doesNotMatch(unknown.stderr, /no-such-model|\n\s+at /);

  const builtin = await train([...base, "--reward_fn", `${MODULE}:exact_matc`]);
  assert.equal(builtin.code, 2);
  assert.match(
    builtin.stderr,
    /did you mean "exact_match"\?.*\n\s+fix: "exact_match" is a built-in/,
  );

  const missing = await train([...base, "--reward_fn", `${tmp}/nope.ts:f`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /rewards\.0\.module: .*nope\.ts: no such file/);

  const throws = await train([...base, "--reward_fn", `${MODULE}:throws`]);
  assert.equal(throws.code, 2);
  assert.match(
    throws.stderr,
    /rewards\.0: reward .*math_rewards\.ts:throws throws .*boom on 1\+1=/,
  );

  const notFn = await train([...base, "--reward_fn", `${MODULE}:not_a_function`]);
  assert.equal(notFn.code, 2);
  assert.match(notFn.stderr, /"not_a_function" is a number, not a function/);

  const bad = await train([...base, "--reward_fn", "just_a_name"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--reward_fn "just_a_name": expected MODULE:NAME/);

  // A built-in verifiable reward on prompts without the column it needs.
  const txt = `${tmp}/plain.txt`;
  await Deno.writeTextFile(txt, "Say hi\n");
  const noAnswer = await train([
    "--policy",
    `${tmp}/no-such-model`,
    "--prompts",
    txt,
    "--rewards",
    '[{"name":"exact_match","weight":1}]',
  ]);
  assert.equal(noAnswer.code, 2);
  assert.match(noAnswer.stderr, /exact_match needs an "answer" column/);
});

Deno.test("a sweep with a bad reward is refused at planning; the module's bytes are in the trial id", async () => {
  const exp = (rewards: unknown[]) =>
    defineExperiment({
      name: "user-rewards",
      task: "lm",
      base: { policy: POLICY, prompts: PROMPTS, rewards },
      sweep: grid({ seed: [1, 2] }),
    });
  const plan = (rewards: unknown[]) =>
    planExperiment(exp(rewards), { file: "exp.ts", codeVersion: "test" });
  for (
    const [rewards, re] of [
      [[{ module: MODULE, name: "nope", weight: 1 }], /rewards\.0\.name.*exports no reward "nope"/],
      [[{ name: "has_digit", weight: 1 }], /unknown reward "has_digit"/],
      [[{ module: MODULE, name: "throws", weight: 1 }], /throws on a smoke sample/],
    ] as const
  ) {
    await assert.rejects(() => validateInputs(plan([...rewards])), (e: unknown) => {
      assert.ok(e instanceof ExperimentError);
      assert.match((e as Error).message, re);
      return true;
    });
  }
  // A missing module is a missing input of the trial: planning refuses it.
  assert.throws(
    () => plan([{ module: `${tmp}/gone.ts`, name: "f", weight: 1 }]),
    /rewards\.0\.module \(base\): .*gone\.ts: no such file/,
  );

  // The sweep command refuses it too, even for --dry-run, naming the reward (exit 2, no stack).
  const file = `${tmp}/exp_bad.ts`;
  await Deno.writeTextFile(
    file,
    `import { defineExperiment, grid } from "${ROOT}lib/experiment/mod.ts";
export default defineExperiment({
  name: "bad-reward", task: "lm", sweep: grid({ seed: [1, 2, 3] }),
  base: { policy: "${POLICY}", prompts: "${PROMPTS}", rewards: [{ name: "has_digit", weight: 1 }] },
});
`,
  );
  const r = await sweep([file, "--dry-run", "--results", `${tmp}/results-bad`]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /no trial was started/);
  assert.match(r.stderr, /rewards\.0\.name: unknown reward "has_digit"/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);

  const ok = plan([{ module: MODULE, name: "answer_value", weight: 1 }]);
  await validateInputs(ok);
  assert.equal(ok.trials[0].identity.inputs?.["rewards.0.module"], contentHash(MODULE));
});

Deno.test("an experiment file's { fn } becomes { module, name } (hashed, loadable by workers)", async () => {
  const file = `${tmp}/exp_fn.ts`;
  await Deno.writeTextFile(
    file,
    `import { defineExperiment, grid } from "${ROOT}lib/experiment/mod.ts";
import { answer_value } from "./math_rewards.ts";
const local = (s) => 1;
export default defineExperiment({
  name: "fn-rewards",
  task: "lm",
  base: {
    policy: "${POLICY}", prompts: "${PROMPTS}", rewards: [{ fn: answer_value, weight: 1 }],
    updates: 1, batch: 2, max_new_tokens: 3, eval: { samples: 2 },
  },
  sweep: grid({ seed: [1] }),
});
export const unexported = defineExperiment({
  name: "fn-local", task: "lm", base: { rewards: [{ fn: local, weight: 1 }] }, sweep: grid({ seed: [1] }),
});
`,
  );
  // The sweep runs the trial in a worker process, which imports the module itself.
  const results = `${tmp}/results`;
  const r = await sweep([file, "--results", results, "--jobs", "1"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const [id] = (await Array.fromAsync(Deno.readDir(`${results}/fn-rewards`)))
    .filter((e) => e.isDirectory && !e.name.startsWith(".")).map((e) => e.name);
  const bundle = `${results}/fn-rewards/${id}`;
  const cfg = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
  assert.deepEqual(cfg.config.rewards, [{ name: "answer_value", weight: 1, module: MODULE }]);
  assert.equal(cfg.inputs["rewards.0.module"], contentHash(MODULE));
  const row = JSON.parse((await Deno.readTextFile(`${bundle}/metrics.jsonl`)).split("\n")[0]);
  assert.equal(row["reward/answer_value"], 3.5); // the rows' answers 2 and 5, in the worker

  const exp = await loadExperiment(file);
  assert.deepEqual((exp.base as { rewards: unknown[] }).rewards, [
    { weight: 1, module: MODULE, name: "answer_value" },
  ]);
  const p = planExperiment(exp, { file, codeVersion: "test" });
  await validateInputs(p);
  assert.equal(p.trials[0].identity.inputs?.["rewards.0.module"], contentHash(MODULE));

  const bad = `${tmp}/exp_local.ts`;
  await Deno.writeTextFile(
    bad,
    `import { defineExperiment, grid } from "${ROOT}lib/experiment/mod.ts";
const local = (s) => 1;
export default defineExperiment({
  name: "fn-local", task: "lm", base: { rewards: [{ fn: local, weight: 1 }] }, sweep: grid({ seed: [1] }),
});
`,
  );
  await assert.rejects(() => loadExperiment(bad), /reward function local .*is not exported/);
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(tmp, { recursive: true });
  } catch { /* already gone */ }
});
