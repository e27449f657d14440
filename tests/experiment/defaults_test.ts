/**
 * One default per config key: every task's schema tree is walked, and a key may have another
 * default in a task only through that task's declared override record (lib/trial/overrides.ts).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { TASKS } from "../../lib/experiment/tasks.ts";
import {
  defaultConflicts,
  describeOverrides,
  overridesUnder,
  schemaDefaults,
  withOverrides,
} from "../../lib/trial/overrides.ts";
import { PpoSchema } from "../../lib/ppo/config.ts";
import { LM_PPO_OVERRIDES, LmPpoSchema } from "../../lib/tasks/byte_lm.ts";
import { SENTIMENT_OVERRIDES } from "../../lib/tasks/sentiment/schema.ts";

Deno.test("every built-in task: one default per key, others only as declared overrides", () => {
  assert.deepEqual(defaultConflicts(TASKS), []);
  // The walk sees the nested keys (not only the top level) and every task declares its record.
  for (const k of TASKS) {
    assert.ok(k.overrides && Object.keys(k.overrides).length > 0, `${k.name} declares overrides`);
    assert.ok(schemaDefaults(k.schema).has("ppo.kl.beta"), `${k.name} has ppo.kl.beta`);
  }
  const beta = Object.fromEntries(TASKS.map((k) => [k.name, k.overrides?.["ppo.kl.beta"]]));
  assert.deepEqual(beta, {
    "CartPole-v1": undefined,
    "Acrobot-v1": undefined,
    sentiment: 0.1,
    jsx: 0.05,
    lm: 0.05,
    rlvr: undefined,
  });
  assert.equal(PpoSchema.parse({}).kl.beta, 0); // the one base default of ppo.kl.beta
});

Deno.test("defaultConflicts: a second default without an override is found, and bad records", () => {
  const A = z.object({ lr: z.number().default(1), ppo: z.object({ b: z.number().default(0) }) });
  const B = z.object({ lr: z.number().default(2), ppo: z.object({ b: z.number().default(0) }) });
  assert.deepEqual(defaultConflicts([{ name: "a", schema: A }, { name: "b", schema: B }]), [
    "lr: a defaults it to 1, b to 2, and neither declares an override",
  ]);
  // Declared: no conflict.
  assert.deepEqual(
    defaultConflicts([{ name: "a", schema: A }, { name: "b", schema: B, overrides: { lr: 2 } }]),
    [],
  );
  // A record that names no key, disagrees with its schema, or restates the base.
  assert.deepEqual(
    defaultConflicts([
      { name: "a", schema: A },
      { name: "b", schema: B, overrides: { lr: 3, "ppo.c": 1 } },
      { name: "c", schema: A, overrides: { "ppo.b": 0 } },
    ]),
    [
      "b: override lr = 3, but the schema's default is 2",
      "b: override ppo.c names no key with a default",
      "c: override ppo.b = 0 restates the base default",
    ],
  );
});

Deno.test("withOverrides: nested defaults, whole and partial sections, ranges and descriptions", () => {
  const Kl = z.object({
    beta: z.number().min(0).default(0).describe("β"),
    target: z.number().positive().default(6),
  }).strict();
  const Base = z.object({
    updates: z.number().int().min(1).default(10),
    kl: Kl.default(Kl.parse({})),
  }).strict();
  const S = withOverrides(Base, { "kl.beta": 0.1, updates: 20 });
  assert.deepEqual(S.parse({}), { updates: 20, kl: { beta: 0.1, target: 6 } });
  assert.deepEqual(S.parse({ kl: { target: 3 } }), { updates: 20, kl: { beta: 0.1, target: 3 } });
  assert.deepEqual(Base.parse({}), { updates: 10, kl: { beta: 0, target: 6 } }); // untouched
  assert.equal(S.safeParse({ kl: { beta: -1 } }).success, false); // the range is kept
  assert.equal(S.safeParse({ kl: { other: 1 } }).success, false); // strict is kept
  assert.equal(S.safeParse({ other: 1 }).success, false);
  const kl = (S.shape.kl as z.ZodDefault<typeof Kl>).unwrap();
  assert.equal(kl.shape.beta.description, "β");
  assert.throws(() => withOverrides(Base, { lr: 1 }), /override lr: no config key lr/);
  assert.throws(() => withOverrides(Base, { "kl.x": 1 }), /override kl.x: no config key kl.x/);
  assert.throws(() => withOverrides(Base, { "kl.beta": -1 }), /kl.beta: -1 is not a valid value/);
  assert.throws(() => withOverrides(Base, { "updates.x": 1 }), /updates is not a group of keys/);
  const NoDefault = z.object({ policy: z.string() });
  assert.throws(() => withOverrides(NoDefault, { policy: "p" }), /has no default/);
});

Deno.test("LmPpoSchema is PpoSchema with LM_PPO_OVERRIDES; --help lines list a record", () => {
  const lm = schemaDefaults(LmPpoSchema), base = schemaDefaults(PpoSchema);
  for (const [k, v] of Object.entries(LM_PPO_OVERRIDES)) {
    assert.deepEqual(lm.get(k), v, k);
    assert.notDeepEqual(base.get(k), v, k);
  }
  assert.equal(lm.get("clip"), base.get("clip")); // not overridden: the base default
  assert.equal(lm.get("penalty.target"), 0.01);
  assert.deepEqual(describeOverrides(overridesUnder("ppo", { lr: 3e-4, gamma: 1 })), [
    "  ppo.gamma = 1",
    "  ppo.lr = 0.0003",
  ]);
});

Deno.test("deno task train --help lists the task's override record", async () => {
  const help = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/train.ts", ...args, "--help"],
      cwd: new URL("../..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  };
  const sentiment = await help(["--task", "sentiment"]);
  const lines = sentiment.slice(sentiment.indexOf("Defaults sentiment sets")).split("\n").slice(1);
  assert.deepEqual(lines.filter((l) => l.startsWith("  ")), describeOverrides(SENTIMENT_OVERRIDES));
  assert.match(sentiment, /\n {2}ppo\.kl\.beta = 0\.1\n/);
  assert.match(await help(["--env", "cartpole"]), /\n {2}checkpoint_every = 10\n/);
});
