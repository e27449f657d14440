/**
 * Methods as records (lib/ppo/methods): `method: <name>` resolves to the record's definition and
 * its paper's defaults on every LM task, each default can be overridden, and a config that
 * contradicts the method is refused naming both keys (by the task and by planning).
 */
import assert from "node:assert/strict";
import {
  METHOD_NAMES,
  methodOfConfig,
  methodRecord,
  METHODS,
  resolveMethod,
} from "../../lib/ppo/methods/mod.ts";
import { ConfigError } from "../../lib/ppo/config.ts";
import { policyObjective, resolvedLossType } from "../../lib/ppo/train_step.ts";
import { defineExperiment, planExperiment, points } from "../../lib/experiment/mod.ts";
import { LM_KIND, LmRunSchema } from "../../lib/tasks/lm/mod.ts";
import { SENTIMENT_KIND } from "../../lib/tasks/sentiment/mod.ts";
import { JSX_KIND } from "../../lib/tasks/jsx/mod.ts";

const LM = { policy: "p", prompts: "p.txt", reward_model: "rm", samples_per_prompt: 4 };

/** The record's keys read back from a resolved config. */
function get(o: unknown, key: string): unknown {
  return key.split(".").reduce<unknown>((x, p) => (x as Record<string, unknown>)?.[p], o);
}

/** What each method's paper sets, written out by hand (not read from the records). */
const EXPECTED: Record<string, Record<string, unknown>> = {
  ppo: { "ppo.advantage": "gae", "ppo.whiten_advantages": true, "ppo.kl.placement": "reward" },
  grpo: {
    "ppo.advantage": "grpo",
    "ppo.whiten_advantages": false,
    "ppo.kl.placement": "loss",
    "ppo.kl.estimator": "k3",
    "ppo.kl.beta": 0.04,
    "ppo.loss_type": "grpo",
    "ppo.clip": 0.2,
  },
  dr_grpo: {
    "ppo.advantage": "dr_grpo",
    "ppo.kl.placement": "loss",
    "ppo.kl.estimator": "k3",
    "ppo.loss_type": "dr_grpo",
  },
  dapo: {
    "ppo.advantage": "grpo",
    "ppo.kl.beta": 0,
    "ppo.loss_type": "dapo",
    "ppo.clip": 0.2,
    "ppo.epsilon_high": 0.28,
  },
  gspo: {
    "ppo.advantage": "grpo",
    "ppo.importance_sampling_level": "sequence",
    "ppo.clip": 3e-4,
    "ppo.epsilon_high": 4e-4,
    "ppo.loss_type": "grpo",
    "ppo.kl.beta": 0,
  },
  cispo: { "ppo.advantage": "grpo", "ppo.loss_type": "cispo", "ppo.epsilon_high": 5 },
  rloo: { "ppo.advantage": "rloo", "ppo.whiten_advantages": false, "ppo.kl.placement": "reward" },
  reinforce_pp: { "ppo.advantage": "reinforce_pp", "ppo.whiten_advantages": false },
  dpo: { algorithm: "dpo", "dpo.loss": "sigmoid", "dpo.beta": 0.1 },
  ipo: { algorithm: "dpo", "dpo.loss": "ipo" },
  kto: { algorithm: "kto", "kto.loss": "kto", "kto.beta": 0.1 },
};

/** The data key an offline method reads on the lm task. */
const OFFLINE_DATA: Record<string, Record<string, string>> = {
  dpo: { preferences: "prefs.jsonl" },
  ipo: { preferences: "prefs.jsonl" },
  kto: { examples: "examples.jsonl" },
};

Deno.test("methods: every record is listed once and checked here", () => {
  assert.deepEqual([...METHOD_NAMES].sort(), Object.keys(EXPECTED).sort());
  for (const m of METHODS) {
    assert.ok(m.citation.url.startsWith("https://"), m.name);
    assert.equal(m.holds.critic, m.advantage === "gae", `${m.name}: a critic exactly for GAE`);
    assert.equal(m.online, m.advantage !== null, m.name);
  }
});

for (const name of Object.keys(EXPECTED)) {
  Deno.test(`methods: "${name}" resolves to its paper's settings (resolved config)`, () => {
    const online = methodRecord(name)!.online;
    // Every method on the lm task (the offline ones with their data file); DPO and IPO also
    // on sentiment (its reward model's preference pairs).
    const configs = [
      LM_KIND.parse({ ...LM, method: name, ...OFFLINE_DATA[name] }),
      ...(!online && name !== "kto" ? [SENTIMENT_KIND.parse({ method: name })] : []),
    ] as unknown as Record<string, unknown>[];
    for (const c of configs) {
      assert.equal(c.method, name);
      for (const [k, v] of Object.entries(EXPECTED[name])) {
        assert.deepEqual(get(c, k), v, `${name}: ${k}`);
      }
      assert.equal(methodOfConfig(c), name);
    }
  });
}

Deno.test("methods: the train step reads the resolved config (k3 KL in the loss, loss types)", () => {
  const grpo = LM_KIND.parse({ ...LM, method: "grpo" });
  assert.equal(resolvedLossType(grpo.ppo), "grpo");
  assert.equal(policyObjective(grpo.ppo), undefined); // GRPO's clip: the PPO graph, per response
  const gspo = LM_KIND.parse({ ...LM, method: "gspo" });
  assert.deepEqual(policyObjective(gspo.ppo), {
    lossType: "grpo",
    level: "sequence",
    clipHigh: true,
    delta: false,
  });
  const cispo = LM_KIND.parse({ ...LM, method: "cispo" });
  assert.equal(policyObjective(cispo.ppo)?.lossType, "cispo");
});

Deno.test("methods: every default can be overridden; without method nothing changes", () => {
  const c = LM_KIND.parse({
    ...LM,
    method: "grpo",
    ppo: { kl: { beta: 0.1, estimator: "k2" }, loss_type: "dapo", clip: 0.3 },
  });
  assert.equal(c.ppo.kl.beta, 0.1);
  assert.equal(c.ppo.kl.estimator, "k2");
  assert.equal(c.ppo.kl.placement, "loss");
  assert.equal(c.ppo.loss_type, "dapo");
  assert.equal(c.ppo.clip, 0.3);
  // No method: the task's defaults, exactly as before records existed.
  const plain = LM_KIND.parse({ policy: "p", prompts: "p.txt", reward_model: "rm" });
  assert.equal(plain.method, null);
  assert.equal(plain.ppo.advantage, "gae");
  assert.equal(plain.ppo.kl.placement, "reward");
  assert.equal(plain.ppo.kl.beta, 0.05);
  assert.equal(plain.ppo.loss_type, null);
  // resolveMethod leaves a config without `method` (and no critic-free advantage) as it is,
  // and so a config with `method: null`.
  const raw = { ppo: { advantage: "gae" } };
  assert.equal(resolveMethod(raw, LmRunSchema).config, raw);
  const optOut = { method: null, ppo: { advantage: "grpo" } };
  assert.equal(resolveMethod(optOut, LmRunSchema).config, optOut);
});

Deno.test("methods: a critic-free ppo.advantage without method implies the first record defining it", () => {
  // `--ppo.advantage grpo --samples_per_prompt 2` on lm: GRPO's paper settings, no other flag.
  const c = LM_KIND.parse({ ...LM, samples_per_prompt: 2, ppo: { advantage: "grpo" } });
  assert.equal(c.method, "grpo");
  assert.equal(c.ppo.whiten_advantages, false);
  assert.equal(c.ppo.kl.placement, "loss");
  assert.equal(c.ppo.kl.estimator, "k3");
  assert.equal(c.ppo.kl.beta, 0.04);
  assert.equal(c.ppo.loss_type, "grpo");
  // Each critic-free estimator implies the first record (in METHODS order) that defines it.
  for (const m of METHODS.filter((x) => x.online && !x.holds.critic)) {
    const first = METHODS.find((x) => x.online && x.advantage === m.advantage)!;
    const cfg = LM_KIND.parse({ ...LM, ppo: { advantage: m.advantage } });
    assert.equal(cfg.method, first.name, m.name);
    assert.equal(methodOfConfig(cfg as unknown as Record<string, unknown>), first.name);
  }
  // GAE (a critic) and the task's own default imply nothing.
  assert.equal(LM_KIND.parse({ ...LM, ppo: { advantage: "gae" } }).method, null);
  // An explicit method: null keeps the config's keys alone (whitening then refused).
  assert.throws(
    () => LM_KIND.parse({ ...LM, method: null, ppo: { advantage: "grpo" } }),
    /ppo\.advantage "grpo" normalises its advantages itself.*ppo\.whiten_advantages to false/s,
  );
  // A contradiction the user typed is still refused, naming both keys.
  assert.throws(
    () => LM_KIND.parse({ ...LM, ppo: { advantage: "grpo", whiten_advantages: true } }),
    (e) =>
      e instanceof ConfigError && /ppo\.advantage "grpo"/.test(e.message) &&
      /ppo\.whiten_advantages/.test(e.message),
  );
  // The offline algorithm with a critic-free advantage: no record fits, nothing is implied.
  assert.equal(
    resolveMethod({ algorithm: "dpo", ppo: { advantage: "grpo" } }, LmRunSchema).config.method,
    undefined,
  );
});

Deno.test("methods: a contradiction is refused naming both keys", () => {
  assert.throws(
    () => LM_KIND.parse({ ...LM, method: "grpo", ppo: { advantage: "rloo" } }),
    (e) =>
      e instanceof ConfigError && /method "grpo" sets ppo\.advantage to "grpo"/.test(e.message) &&
      /ppo\.advantage is "rloo"/.test(e.message),
  );
  assert.throws(
    () => SENTIMENT_KIND.parse({ method: "rloo", algorithm: "dpo" }),
    /method "rloo" sets algorithm to "ppo", and algorithm is "dpo"/,
  );
  assert.throws(
    () => SENTIMENT_KIND.parse({ method: "ipo", dpo: { loss: "sigmoid" } }),
    /method "ipo" sets dpo\.loss to "ipo", and dpo\.loss is "sigmoid"/,
  );
  // An offline method on a task without preference pairs (no `algorithm` key).
  assert.throws(
    () => JSX_KIND.parse({ method: "dpo" }),
    /method "dpo" needs the config key algorithm/,
  );
  // Planning: the same refusal, naming where each key came from.
  assert.throws(
    () =>
      planExperiment(
        defineExperiment({
          name: "contradiction",
          task: "sentiment",
          base: { method: "grpo", samples_per_prompt: 4, ppo: { advantage: "gae" } },
          sweep: points([{ seed: 1 }]),
        }),
        { file: "experiments/contradiction.ts", codeVersion: "test" },
      ),
    (e) =>
      /method \(base\)/.test(String(e)) &&
      /sets ppo\.advantage to "grpo", and ppo\.advantage is "gae"/.test(String(e)),
  );
});

Deno.test("methods: planning resolves a swept method to its record's config", () => {
  const plan = planExperiment(
    defineExperiment({
      name: "methods",
      task: "sentiment",
      base: { samples_per_prompt: 4 },
      sweep: points([{ method: "grpo" }, { method: "dapo" }]),
    }),
    { file: "experiments/methods.ts", codeVersion: "test" },
  );
  const cfgs = plan.trials.map((t) => t.identity.config as Record<string, unknown>);
  assert.deepEqual(cfgs.map((c) => get(c, "ppo.kl.beta")), [0.04, 0]);
  assert.deepEqual(cfgs.map((c) => get(c, "ppo.epsilon_high")), [null, 0.28]);
});
