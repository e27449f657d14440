/**
 * `deno task reproduce rlhf-methods`: the table from hand-made trials (every cell from the
 * bundle fields it names), and its quick mode end to end: every method on sentiment and the
 * online ones on jsx, every cell filled from the bundles, PPO holding 4 models, the
 * critic-free methods 3 (and no value parameter in their checkpoints), DPO 2 and offline,
 * and the same table bytes when the command runs again.
 */
import assert from "node:assert/strict";
import { expandSweep, planExperiment } from "../../lib/experiment/mod.ts";
import { METHODS } from "../../lib/ppo/methods/mod.ts";
import methodsExperiment from "../../experiments/methods.ts";
import jsxExperiment from "../../experiments/methods-jsx.ts";
import { type ReproduceContext, type ReproduceTrial } from "../../lib/report/reproduce.ts";
import { buildMethods } from "../../lib/report/methods_table.ts";
import {
  JSX_METHODS,
  methodOf,
  methodsSweep,
  SENTIMENT_METHODS,
} from "../../lib/report/methods.ts";
import { SENTIMENT_KIND } from "../../lib/tasks/sentiment/mod.ts";
import { JSX_KIND } from "../../lib/tasks/jsx/mod.ts";
import { loadSafetensors } from "../../lib/onnx/safetensors.ts";
import { deno } from "../experiment/helpers.ts";

/** The dotted keys of a point as a nested config, parsed by the kind (defaults filled). */
function nest(point: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(point)) {
    const parts = k.split(".");
    let o = out;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts.at(-1)!] = v;
  }
  return out;
}

Deno.test("methods: every sweep point is a valid config whose method reads back", () => {
  for (
    const [kind, methods] of [[SENTIMENT_KIND, SENTIMENT_METHODS], [JSX_KIND, JSX_METHODS]] as const
  ) {
    const pts = expandSweep(methodsSweep(methods));
    assert.equal(pts.length, methods.length);
    pts.forEach((p, i) => {
      const c = kind.parse(nest(p)) as unknown as Record<string, unknown>;
      assert.deepEqual(kind.check?.(c as never) ?? [], [], `${methods[i].id}`);
      assert.equal(methodOf(c), methods[i].id);
    });
  }
});

Deno.test("rlhf-methods: the experiments' trials are the method records, one row each", () => {
  // Planned (not run) from the experiment files: each trial's resolved config reads back as its
  // record, every record once on sentiment and every online one once on jsx.
  for (
    const [exp, file, want] of [
      // Every record runs on sentiment (KTO on its preference pairs unpaired).
      [methodsExperiment, "experiments/methods.ts", SENTIMENT_METHODS.map((m) => m.id)],
      [
        jsxExperiment,
        "experiments/methods-jsx.ts",
        METHODS.filter((m) => m.online).map((m) => m.name),
      ],
    ] as const
  ) {
    const plan = planExperiment(exp, { file, codeVersion: "test" });
    const seed1 = plan.trials.filter((t) => t.identity.config.seed === 1);
    assert.deepEqual(seed1.map((t) => methodOf(t.identity.config)).sort(), [...want].sort(), file);
  }
});

Deno.test("rlhf-methods table: cells from the bundle fields, methods in order", () => {
  const trial = (id: string, seed: number, rm: number, gold: number, rss: number) => {
    const m = SENTIMENT_METHODS.find((x) => x.id === id)!;
    const config = SENTIMENT_KIND.parse({ ...nest(m.config), seed, updates: 20, batch: 32 });
    const online = id !== "dpo";
    const models = id === "ppo"
      ? { policy: 100, value: 65, reference: 100, reward_model: 101 }
      : online
      ? { policy: 100, reference: 100, reward_model: 101 }
      : { policy: 100, reference: 100 };
    return {
      experiment: "methods",
      task: "sentiment",
      point: { seed },
      seed,
      config: config as unknown as Record<string, unknown>,
      summary: {
        metrics: {
          rm_score: rm,
          gold_score: gold,
          kl: 2,
          rm_score_before: 0.1,
          gold_score_before: 0.05,
          ...(online ? {} : { pref_accuracy: 0.8, pref_accuracy_before: 0.5 }),
        },
      },
      resources: {
        online,
        models,
        models_in_memory: Object.keys(models).length,
        parameters_in_memory: Object.values(models).reduce((a, b) => a + b, 0),
        train_seconds: 10 + seed,
        peak_rss_bytes: rss * 1024 * 1024,
        rss_before_bytes: 0,
        peak_rss_source: "VmHWM",
        started_at_update: 0,
      },
      work: { total: 20, unit: "updates", steps: 32 },
    } as unknown as ReproduceTrial;
  };
  const trials = [
    trial("dpo", 1, 0.5, 0.2, 190),
    trial("ppo", 1, 1.0, 0.8, 210),
    trial("ppo", 2, 1.2, 0.6, 214),
    trial("rloo", 1, 1.3, 0.9, 200),
  ];
  const ctx: ReproduceContext = { quick: false, trials };
  const { markdown, json } = buildMethods(ctx);
  const row = (label: string) => markdown.split("\n").find((l) => l.startsWith(`| ${label} |`))!;
  assert.equal(
    row("PPO"),
    "| PPO | online | 4: policy, value, reference, reward model | 366 | 212 ± 3 | 11.5 ± 0.7 | 640 | 1.100 ± 0.141 | 0.700 ± 0.141 | 2.00 ± 0.00 |",
  );
  assert.match(row("RLOO"), /\| RLOO \| online \| 3: policy, reference, reward model \| 301 \|/);
  assert.match(row("DPO"), /\| DPO \| offline \| 2: policy, reference \| 200 \| 190 \| 11\.0 \|/);
  assert.match(markdown, /implicit reward β·log π\/π_ref: 0\.800, against 0\.500 for the SFT/);
  assert.match(markdown, /Ours, RLOO − PPO on sentiment: gold \+0\.200, RM \+0\.200\./);
  const tasks = json.tasks as { methods: { method: string }[] }[];
  assert.deepEqual(tasks[0].methods.map((m) => m.method), ["ppo", "rloo", "dpo"]);
  // Same trials, same bytes.
  assert.equal(buildMethods(ctx).markdown, markdown);
});

const ROOT = await Deno.makeTempDir({ prefix: "proxima-methods-" });

async function reproduce() {
  const r = await deno([
    "run",
    "-A",
    "cli/reproduce.ts",
    "rlhf-methods",
    "--quick",
    "--quiet",
    "--jobs",
    "2",
    "--results",
    ROOT,
  ]);
  if (r.code !== 0) throw new Error(`reproduce exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  const dir = `${ROOT}/reproduce/rlhf-methods-quick`;
  return {
    md: await Deno.readTextFile(`${dir}/table.md`),
    json: await Deno.readTextFile(`${dir}/table.json`),
  };
}

Deno.test({
  name:
    "reproduce rlhf-methods --quick: every cell from the bundles, models as claimed, identical bytes",
  sanitizeResources: false,
  fn: async () => {
    const a = await reproduce();
    // One row per record on sentiment, one per online record on jsx, in the records' order.
    const onSentiment = METHODS.filter((m) => SENTIMENT_METHODS.some((x) => x.id === m.name));
    assert.deepEqual(onSentiment, [...METHODS]);
    const labels = onSentiment.map((m) => m.label);
    const rows = a.md.split("\n").filter((l) =>
      labels.some((label) =>
        l.startsWith(`| ${label} | online |`) || l.startsWith(`| ${label} | offline |`)
      )
    );
    const online = METHODS.filter((m) => m.online);
    assert.equal(rows.length, onSentiment.length + online.length, a.md);
    for (const r of rows) {
      const cells = r.slice(1, -1).split(" | ").map((c) => c.trim());
      assert.equal(cells.length, 10);
      for (const c of cells) assert.notEqual(c, "-", `empty cell in ${r}`);
    }
    // Proxima holds (and measures) the reference even where β is 0.
    const sentiment = rows.slice(0, onSentiment.length);
    assert.deepEqual(sentiment.map((r) => r.split(" | ")[0].slice(2)), labels);
    assert.deepEqual(
      rows.slice(onSentiment.length).map((r) => r.split(" | ")[0].slice(2)),
      online.map((m) => m.label),
    );
    onSentiment.forEach((m, i) => {
      const held = m.holds.critic
        ? "4: policy, value, reference, reward model"
        : m.online
        ? "3: policy, reference, reward model"
        : "2: policy, reference";
      assert.ok(
        sentiment[i].startsWith(`| ${m.label} | ${m.online ? "online" : "offline"} | ${held} |`),
        sentiment[i],
      );
    });
    // Critic-free bundles hold no value parameters; PPO's do.
    for (const exp of ["methods-quick", "methods-jsx-quick"]) {
      for await (const e of Deno.readDir(`${ROOT}/${exp}`)) {
        if (!e.isDirectory || e.name.startsWith(".")) continue;
        const dir = `${ROOT}/${exp}/${e.name}`;
        const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).config;
        const { tensors } = await loadSafetensors(`${dir}/checkpoints/final.safetensors`);
        const value = Object.keys(tensors).filter((n) => /v_head|value_model/.test(n));
        const resources = JSON.parse(await Deno.readTextFile(`${dir}/resources.json`));
        if (methodOf(config) === "ppo") {
          assert.ok(value.length > 0, `${dir}: PPO without value parameters`);
          assert.ok("value" in resources.models);
        } else {
          assert.deepEqual(value, [], `${dir} (${methodOf(config)}) holds ${value.join(", ")}`);
          assert.ok(!("value" in resources.models));
        }
      }
    }
    const b = await reproduce();
    assert.equal(b.md, a.md);
    assert.equal(b.json, a.json);
  },
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(ROOT, { recursive: true });
  } catch { /* already gone */ }
});
