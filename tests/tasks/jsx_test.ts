/**
 * The `jsx` task: the reward is computed by a real JSX parser and matches hand-computed values
 * (a valid component, invalid JSX, code without JSX, the length penalty); "valid JSX component"
 * and the structure rate behave as documented; the generated corpus is deterministic and all
 * valid; PPO raises the structure rate over the SFT baseline (seed 1 here — three seeds take
 * ~2 min, see scripts/jsx_seeds.ts and experiments/jsx.ts); and a reward function that returns
 * NaN or throws stops the trial naming the task and the sample, leaving nothing partial.
 *
 * One stage cache (a temp folder) serves the file: the SFT policy is trained once (~10 s on 2
 * cores); the PPO trial (40 updates × 20 responses) takes ~10 s more.
 */
import assert from "node:assert/strict";
import {
  builtinJsxRewards,
  isJsxComponent,
  JSX_PROMPTS,
  JSX_REF_LENGTHS,
  jsxComponent,
  jsxComponentName,
  jsxLengthError,
  jsxPrompt,
  jsxReference,
  jsxRefLength,
  jsxReward,
  jsxSpecOf,
  makeJsxCorpus,
  parseJsxConfig,
  parsesAsJsx,
  runJsxTrial,
  structureRate,
  summarizeJsxTrial,
} from "../../lib/tasks/jsx/mod.ts";
import { RewardError, type RewardSample } from "../../lib/tasks/rewards.ts";
import { LM_TRIAL_OUTPUTS } from "../../lib/tasks/trial_files.ts";
import { ConfigError } from "../../lib/ppo/config.ts";
import type { MetricsRow } from "../../lib/ppo/trainer.ts";
import { findTrialKind } from "../../lib/experiment/mod.ts";
import jsxExperiment from "../../experiments/jsx.ts";

const CACHE = Deno.makeTempDirSync({ prefix: "proxima-jsx-stages-" });
const OUT = Deno.makeTempDirSync({ prefix: "proxima-jsx-runs-" });
globalThis.addEventListener("unload", () => {
  for (const d of [CACHE, OUT]) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* already gone */ }
  }
});

const close = (a: number, b: number, msg?: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}${msg ? `: ${msg}` : ""}`);

const SAVE = " const SaveButton = () => <button>Save</button>;"; // 48 characters

Deno.test("jsx: the reward matches hand-computed values (valid, invalid JSX, no JSX, length penalty)", () => {
  assert.equal(SAVE.length, 48);
  assert.equal(jsxReference("A button labelled Save"), SAVE);
  assert.equal(JSX_REF_LENGTHS["A button labelled Save"], 48);
  // A valid component of exactly the reference length: 1 + 0.5 − 0.
  assert.equal(jsxReward(SAVE, 48), 1.5);
  // Valid, 3 characters longer: 1 + 0.5 − 0.1 · 3/48.
  const longer = " const SaveButton = () => <button>Save it</button>;";
  assert.equal(longer.length, 51);
  close(jsxReward(longer, 48), 1.5 - 0.1 * 3 / 48);
  // Valid, twice the reference length: the penalty is 0.1 · 48/48.
  const wordy = " const SaveButton = () => <button>Save and exit now please</button>;";
  const twice = wordy + " ".repeat(96 - wordy.length); // trailing spaces still parse
  assert.equal(twice.length, 96);
  close(jsxReward(twice, 48), 1.4);
  // Invalid JSX (closing tag does not match): no bonus; 47 characters.
  const bad = " const SaveButton = () => <button>Save</buton>;";
  assert.equal(parsesAsJsx(bad), false);
  close(jsxReward(bad, 48), 1 - 0.1 * 1 / 48);
  // Unclosed element, cut mid-way (as a response that hit the token limit).
  const cut = " const SaveButton = () => <button>Sa";
  close(jsxReward(cut, 48), 1 - 0.1 * (48 - cut.length) / 48);
  // Parses as a module but holds no JSX: no bonus.
  assert.equal(parsesAsJsx("1;"), false);
  close(jsxReward("1;", 48), 1 - 0.1 * 46 / 48);
  close(jsxReward("", 48), 0.9);
  // JSX that is not a component still earns the parse bonus (the reward is "parses as JSX").
  assert.equal(parsesAsJsx(" <div/>;"), true);
  close(jsxReward(" <div/>;", 48), 1.5 - 0.1 * 40 / 48);
  close(jsxLengthError(longer, 48), 3 / 48);
  assert.throws(() => jsxLengthError("x", 0), /ref_len must be > 0/);

  // The reward component looks ref_len up by the sample's prompt.
  const sample = (promptText: string, text: string): RewardSample => ({
    index: 0,
    prompt: [],
    response: [],
    promptText,
    text,
    ended: true,
    row: {},
  });
  const r = builtinJsxRewards();
  assert.equal(r.jsx(sample("A button labelled Save", SAVE)), 1.5);
  close(r.jsx(sample("A link to help", SAVE)) as number, 1.5 - 0.1 * 1 / 49);
  assert.equal(r.parse(sample("A link to help", bad)), 0);
  assert.equal(r.structure(sample("A link to help", SAVE)), 1);
  assert.equal(r.structure(sample("A link to help", " <div/>;")), 0);
  assert.throws(
    () => r.jsx(sample("Write a poem", SAVE)),
    /no reference for prompt "Write a poem"/,
  );
  assert.equal(jsxRefLength("A heading saying Hello".replace("Hello", "Home")), 39);
});

Deno.test("jsx: a valid JSX component is a parsed module declaring a capitalised function that returns JSX", () => {
  const valid: [string, string][] = [
    [SAVE, "SaveButton"],
    [" function SaveButton() { return <button>Save</button>; }", "SaveButton"],
    [" const List = () => (<ul><li>a</li></ul>);", "List"],
    [" const Frag = () => <><b/></>;", "Frag"],
    [" const Card = function () { const t = 1; return <div>{t}</div>; };", "Card"],
    [" export default function App() { return <main/>; }", "App"],
    [" export const Nav = () => <nav/>;", "Nav"],
    [" const x = 1; let Y = () => <i/>;", "Y"],
  ];
  for (const [code, name] of valid) {
    assert.equal(jsxComponentName(code), name, code);
    assert.equal(isJsxComponent(code), true, code);
    assert.equal(parsesAsJsx(code), true, code);
  }
  const invalid = [
    " const saveButton = () => <button>Save</button>;", // not capitalised
    " const SaveButton = () => <button>Save</button;", // syntax error
    " const SaveButton = () => <button>Save</buton>;", // mismatched closing tag
    " const SaveButton = () => 'Save';", // returns no JSX
    " const SaveButton = <button>Save</button>;", // not a function
    " function SaveButton() { if (x) { return <b/>; } }", // return not directly in the body
    " function SaveButton() { <b/>; }", // no return
    " <button>Save</button>;", // JSX but no component
    "",
  ];
  for (const code of invalid) assert.equal(isJsxComponent(code), false, code);
  assert.equal(
    structureRate([SAVE, invalid[1], " function A() { return <a/>; }", invalid[7]]),
    0.5,
  );
  assert.equal(structureRate([]), 0);
});

Deno.test("jsx: the corpus is deterministic, every component valid, and prompts map back to their specs", () => {
  const a = makeJsxCorpus({ seed: 1, size: 2000 });
  assert.deepEqual(a, makeJsxCorpus({ seed: 1, size: 2000 }));
  assert.notDeepEqual(a.slice(0, 20), makeJsxCorpus({ seed: 2, size: 20 }));
  const fn = a.filter((p) => p.response.startsWith(" function ")).length / a.length;
  assert.ok(fn > 0.2 && fn < 0.3, `function share ${fn}`);
  for (const p of a) {
    assert.ok(isJsxComponent(p.response), p.response);
    const spec = jsxSpecOf(p.prompt);
    assert.ok(spec, p.prompt);
    assert.equal(jsxPrompt(spec), p.prompt);
    assert.ok([jsxComponent(spec, "arrow"), jsxComponent(spec, "function")].includes(p.response));
    assert.ok(p.prompt.length + p.response.length + 1 <= 128 - 16, "fits the context");
  }
  assert.equal(JSX_PROMPTS.length, 5);
  assert.deepEqual(Object.values(JSX_REF_LENGTHS), [48, 49, 56, 58, 60]);
  assert.equal(jsxSpecOf("A button labelled Banana"), null);
});

Deno.test("jsx: config schema: defaults, bad keys named, context checked; the trial kind is registered", () => {
  const c = parseJsxConfig({});
  assert.equal(c.samples_per_prompt, 4);
  assert.equal(c.ppo.gamma, 1);
  assert.equal(c.ppo.lambda, 1);
  assert.equal(c.ppo.kl.beta, 0.05);
  assert.deepEqual(c.rewards, [{ name: "jsx", weight: 1 }]);
  assert.throws(
    () => parseJsxConfig({ ppo: { kl: { beta: -1 } }, samples: 3 }),
    (e: Error) =>
      e instanceof ConfigError && /ppo\.kl\.beta: must be ≥ 0/.test(e.message) &&
      /samples: unknown key/.test(e.message),
  );
  assert.throws(
    () => parseJsxConfig({ max_new_tokens: 96, model: { n_positions: 112 } }),
    /exceeds model\.n_positions 112/,
  );
  const kind = findTrialKind("jsx");
  assert.ok(kind, "task jsx is registered");
  assert.equal(jsxExperiment.task, "jsx");
  for (const m of jsxExperiment.metrics!) {
    assert.ok(m in kind.metricNames.named, `${m} is a named metric`);
  }
  assert.ok(kind.stages?.["jsx-sft"]);
});

Deno.test("jsx: PPO raises the structure rate over the SFT baseline (seed 1), KL reported", async () => {
  const rows: MetricsRow[] = [];
  const t0 = performance.now();
  const r = await runJsxTrial({ seed: 1 }, `${OUT}/s1`, {
    cacheDir: CACHE,
    onUpdate: (row) => rows.push(row),
  });
  const secs = (performance.now() - t0) / 1e3;
  console.log(
    `seed 1: structure rate SFT ${r.before.structure_rate} -> PPO ${r.after.structure_rate} ` +
      `(parse ${r.before.parse_rate} -> ${r.after.parse_rate}, exec ${r.before.exec_rate} -> ` +
      `${r.after.exec_rate}), KL ${r.after.kl.toFixed(2)}, ${secs.toFixed(1)} s with SFT; e.g. ${
        r.after.examples.map((e) => JSON.stringify(e.response)).join(" ")
      }`,
  );
  assert.equal(rows.length, 40);
  for (const k of ["structure_rate", "parse_rate", "reward/jsx", "kl_ref", "response_length"]) {
    for (const row of rows) assert.ok(Number.isFinite(row[k]), `${k} not logged`);
  }
  assert.ok(r.before.structure_rate < 0.6, `SFT baseline ${r.before.structure_rate} is too good`);
  assert.ok(
    r.after.structure_rate >= r.before.structure_rate + 0.15,
    `structure rate ${r.before.structure_rate} -> ${r.after.structure_rate}`,
  );
  assert.ok(r.after.reward > r.before.reward);
  assert.ok(Math.abs(r.before.kl) < 1e-3, "the SFT policy is the reference");
  assert.ok(r.after.kl > 0, `KL ${r.after.kl}`);
  // The sandbox ran every valid component: exec ≤ structure, and the components return elements.
  assert.ok(r.after.exec_rate !== null && r.after.exec_rate <= r.after.structure_rate);
  assert.ok(r.after.exec_rate! > r.before.structure_rate);
  // The summary the sweep prints has both rates side by side.
  const s = await summarizeJsxTrial(`${OUT}/s1`);
  assert.equal(s.metrics.structure_rate, r.after.structure_rate);
  assert.equal(s.metrics.structure_rate_before, r.before.structure_rate);
  assert.deepEqual(s.last, rows.at(-1));
});

Deno.test("jsx: a reward that returns NaN or throws stops the trial naming the task and the sample; no partial results", async () => {
  const leftovers = async (dir: string) => {
    const left = [];
    for (const f of LM_TRIAL_OUTPUTS) {
      if (await Deno.stat(`${dir}/${f}`).then(() => true, () => false)) left.push(f);
    }
    return left;
  };
  const small = {
    updates: 4,
    checkpoint_every: 1,
    eval: { samples_per_prompt: 1, execute: false },
    rewards: [{ name: "jsx", weight: 1 }, { name: "judge", weight: 0.5 }],
  };
  // NaN for sample 5 in the third update, after two updates wrote rows and checkpoints.
  let calls = 0, updates = 0;
  const nanDir = `${OUT}/nan`;
  const err = await runJsxTrial(small, nanDir, {
    cacheDir: CACHE,
    rewards: { judge: (s) => (calls++ >= 40 && s.index === 5 ? NaN : 0) },
    onUpdate: () => updates++,
  }).then(() => null, (e) => e);
  assert.ok(err instanceof RewardError, `expected a RewardError, got ${err}`);
  console.log(`NaN: ${err.message}`);
  assert.equal(updates, 2, "two updates ran and wrote their results first");
  assert.equal(err.task, "jsx");
  assert.equal(err.component, "judge");
  assert.equal(err.index, 5);
  // Rows 4..7 are the second prompt (4 samples per prompt).
  assert.match(
    err.message,
    /^task "jsx": reward "judge" returned NaN for sample 5 \(prompt "A link to help", response "/,
  );
  assert.ok(err.message.includes(`response ${JSON.stringify(err.text)}`), err.message);
  assert.deepEqual(await leftovers(nanDir), [], "partial results left behind");

  // A throwing reward: the same, with its message and cause kept.
  const throwDir = `${OUT}/throw`;
  const err2 = await runJsxTrial({ ...small, updates: 2 }, throwDir, {
    cacheDir: CACHE,
    rewards: {
      judge: (s) => {
        if (s.index === 17) throw new Error("linter crashed");
        return 0;
      },
    },
  }).then(() => null, (e) => e);
  assert.ok(err2 instanceof RewardError);
  console.log(`throw: ${err2.message}`);
  assert.match(
    err2.message,
    /task "jsx": reward "judge" threw on sample 17 \(prompt "A card titled News saying soon", response ".*"\): linter crashed/,
  );
  assert.equal((err2.cause as Error).message, "linter crashed");
  assert.deepEqual(await leftovers(throwDir), []);

  // An unknown reward name fails before anything runs.
  await assert.rejects(
    runJsxTrial({ rewards: [{ name: "helpful", weight: 1 }] }, `${OUT}/unknown`, {
      cacheDir: `${OUT}/empty-cache`,
    }),
    /jsx config: rewards\.0\.name: unknown reward "helpful"; known: jsx, parse, structure, length/,
  );
  assert.equal(await Deno.stat(`${OUT}/empty-cache`).then(() => true, () => false), false);
});

Deno.test("jsx: a trial interrupted and resumed ends byte-identical to an uninterrupted one", async () => {
  const cfg = { updates: 4, checkpoint_every: 1, eval: { samples_per_prompt: 2 } };
  const files = ["final.safetensors", "metrics.jsonl", "eval.json"];
  await runJsxTrial(cfg, `${OUT}/whole`, { cacheDir: CACHE });
  await assert.rejects(
    runJsxTrial(cfg, `${OUT}/cut`, {
      cacheDir: CACHE,
      resume: true,
      onUpdate: (_r, u) => {
        if (u === 3) throw new Error("killed");
      },
    }),
    /killed/,
  );
  let startedAt = -1;
  await runJsxTrial(cfg, `${OUT}/cut`, {
    cacheDir: CACHE,
    resume: true,
    onStart: (u) => (startedAt = u),
  });
  assert.equal(startedAt, 2, "resumed from the checkpoint after update 2");
  for (const f of files) {
    assert.deepEqual(
      await Deno.readFile(`${OUT}/cut/${f}`),
      await Deno.readFile(`${OUT}/whole/${f}`),
      `${f} differs`,
    );
  }
});
