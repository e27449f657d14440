/**
 * `deno task reproduce`: the normalisation against hand-computed values, the Table 1 sweep,
 * the random-policy baseline, and each table's quick mode end to end (into a temp results
 * root): the table's shape, the paper's numbers beside ours, and byte-identical tables when a
 * command runs twice.
 */
import assert from "node:assert/strict";
import { expandSweep } from "../../lib/experiment/mod.ts";
import { SCHULMAN_TABLE1 } from "../../lib/report/papers.ts";
import {
  fixed,
  normalizeScores,
  randomPolicyReturn,
  REPRODUCE_TABLES,
  type ReproduceContext,
  table1Setting,
  table1Sweep,
} from "../../lib/report/reproduce.ts";
import { deno } from "../experiment/helpers.ts";
import { sharedCleanrlQuick } from "../experiment/shared_runs.ts";

Deno.test("normalizeScores: (x − random) / (best − random), hand-computed", () => {
  // CartPole-like: random 22, settings 500 (best), 261, 22, 10.
  const s = normalizeScores({ a: 500, b: 261, c: 22, d: 10, e: null }, 22);
  assert.deepStrictEqual(s.a, 1);
  assert.ok(Math.abs(s.b! - (239 / 478)) < 1e-12); // 0.5
  assert.deepStrictEqual(s.c, 0);
  assert.ok(Math.abs(s.d! - (-12 / 478)) < 1e-12);
  assert.deepStrictEqual(s.e, null);
  // Negative returns (Acrobot-like): random −500, best −80, a setting at −290 scores 0.5.
  const a = normalizeScores({ best: -80, mid: -290, worse: -500 }, -500);
  assert.deepStrictEqual(a.best, 1);
  assert.ok(Math.abs(a.mid! - (0.5)) < 1e-12);
  assert.deepStrictEqual(a.worse, 0);
  // No setting beats the random policy: the scale is undefined.
  assert.deepStrictEqual(normalizeScores({ a: -500, b: -500 }, -500), { a: null, b: null });
});

Deno.test("fixed: fixed decimals, no negative zero, '-' for missing", () => {
  assert.deepStrictEqual(fixed(0.8249), "0.82");
  assert.deepStrictEqual(fixed(-0.001), "0.00");
  assert.deepStrictEqual(fixed(-0.39), "-0.39");
  assert.deepStrictEqual(fixed(null), "-");
  assert.deepStrictEqual(fixed(Number.NaN), "-");
});

Deno.test("table1Sweep: the paper's eleven settings in order, each found back from its point", () => {
  const pts = expandSweep(table1Sweep({ klExtra: { "ppo.penalty.estimator": "k2" } }));
  assert.deepStrictEqual(pts.length, 11);
  assert.deepStrictEqual(
    pts.map((p) => table1Setting(p)?.label),
    SCHULMAN_TABLE1.map((s) => s.label),
  );
  assert.deepStrictEqual(SCHULMAN_TABLE1.map((s) => s.paper), [
    -0.39,
    0.76,
    0.82,
    0.70,
    0.68,
    0.74,
    0.71,
    0.62,
    0.71,
    0.72,
    0.69,
  ]);
  // KL settings carry the extra keys; the others do not.
  assert.deepStrictEqual(pts[4]["ppo.penalty.estimator"], "k2");
  assert.deepStrictEqual(pts[2]["ppo.penalty.estimator"], undefined);
  assert.deepStrictEqual(pts[5], {
    "ppo.loss": "kl-penalty",
    "ppo.penalty.control": "schulman",
    "ppo.penalty.target": 0.01,
    "ppo.penalty.beta": 1,
    "ppo.penalty.estimator": "k2",
  });
});

Deno.test("randomPolicyReturn: seeded, deterministic, in the known range", () => {
  const c = randomPolicyReturn("CartPole-v1", 100, 0);
  assert.deepStrictEqual(c, randomPolicyReturn("CartPole-v1", 100, 0));
  assert.ok(c.mean > 15 && c.mean < 30, `CartPole random return ${c.mean}`); // ≈ 22
  const a = randomPolicyReturn("Acrobot-v1", 20, 0);
  assert.ok(a.mean >= -500 && a.mean < -350, `Acrobot random return ${a.mean}`); // ≈ −500
});

Deno.test("cleanrl table: ± is the population std (as the published one), band and verdicts", () => {
  // Per-seed returns -85.20, -82.16, -83.48: mean -83.6133; squared deviations 2.5175,
  // 2.1122, 0.0178 sum to 4.6475, so std with divisor n is √(4.6475/3) = 1.2447 (divisor
  // n − 1: 1.5244). CleanRL's Acrobot band is -86.36 ± 2·1.32 = [-89.00, -83.72].
  const trial = (task: string, seed: number, ret: number) => ({
    experiment: "x",
    task,
    point: { seed },
    seed,
    config: { total_steps: 500_000 },
    summary: { metrics: { return: ret } },
  });
  const trials = [
    trial("Acrobot-v1", 1, -85.20),
    trial("Acrobot-v1", 2, -82.16),
    trial("Acrobot-v1", 3, -83.48),
    ...[488.01, 500, 491.96].map((r, i) => trial("CartPole-v1", i + 1, r)),
  ];
  // (Summaries carry only the metric the table reads.)
  const { markdown, json } = REPRODUCE_TABLES["cleanrl-classic-control"].build({
    quick: false,
    trials: trials as unknown as ReproduceContext["trials"],
  });
  const acro = markdown.split("\n").find((l) => l.startsWith("| Acrobot-v1"))!;
  assert.match(acro, /\| -83\.61 ± 1\.24 \|/);
  assert.match(acro, /\[-89\.00, -83\.72\] \| no \| yes \|/);
  const rows = json.rows as { env: string; ours: { std: number; std_population: number } }[];
  const a = rows.find((r) => r.env === "Acrobot-v1")!;
  assert.ok(Math.abs(a.ours.std_population - 1.24465) < 1e-4, String(a.ours.std_population));
  assert.ok(Math.abs(a.ours.std - 1.52438) < 1e-4, String(a.ours.std));
});

// ---- quick modes end to end --------------------------------------------------------------------

/** One results root for all quick runs, so the sentiment stages are trained once. */
const ROOT = await Deno.makeTempDir({ prefix: "proxima-reproduce-" });

async function reproduce(name: string, root = ROOT) {
  const r = await deno([
    "run",
    "-A",
    "cli/reproduce.ts",
    name,
    "--quick",
    "--quiet",
    "--jobs",
    "2",
    "--results",
    root,
  ]);
  const dir = `${root}/reproduce/${name}-quick`;
  if (r.code !== 0) {
    throw new Error(`reproduce ${name} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  }
  return {
    ...r,
    md: await Deno.readTextFile(`${dir}/table.md`),
    json: JSON.parse(await Deno.readTextFile(`${dir}/table.json`)),
  };
}

/** The rows of the first markdown table after `heading` (cells trimmed). */
function mdRows(md: string): string[][] {
  const lines = md.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| "));
  const rows: string[][] = [];
  for (let i = start; i < lines.length && lines[i].startsWith("|"); i++) {
    rows.push(lines[i].slice(1, -1).split(" | ").map((c) => c.trim()));
  }
  return rows;
}

Deno.test({
  name: "reproduce cleanrl-classic-control --quick: shape, published numbers, identical bytes",
  sanitizeResources: false,
  fn: async () => {
    const a = await reproduce("cleanrl-classic-control");
    const rows = mdRows(a.md);
    assert.deepStrictEqual(rows[0].slice(0, 4), [
      "Environment",
      "Steps",
      "Seeds",
      "Ours (mean ± std)",
    ]);
    assert.deepStrictEqual(rows.length, 4); // header, separator, two environments
    assert.deepStrictEqual(rows[2][0], "CartPole-v1");
    assert.deepStrictEqual(rows[3][0], "Acrobot-v1");
    assert.deepStrictEqual(rows[2][5], "490.04 ± 6.12");
    assert.deepStrictEqual(rows[3][5], "-86.36 ± 1.32");
    assert.deepStrictEqual(rows[2][6], "497.54 ± 4.02");
    assert.deepStrictEqual(rows[2][1], "8192");
    assert.deepStrictEqual(rows[2][2], "2");
    assert.match(rows[2][3], /^\d+\.\d\d ± \d+\.\d\d$/);
    assert.deepStrictEqual(a.json.rows.length, 2);
    assert.deepStrictEqual(a.json.rows[0].ours.n, 2);
    assert.ok(a.json.rows[1].ours.mean <= -100, "Acrobot after 8k steps is far from solved");
    assert.match(a.stdout, /wall time: [\d.]+ s/);
    assert.ok(!a.md.includes("wall time"), "times must stay out of the table");
    // Twice in the same root (trials verified and skipped) and once in a fresh root (trained
    // again from scratch: the suite's shared run of this command, tests/experiment/
    // shared_runs.ts, which the notebooks test reads too): the same bytes.
    const b = await reproduce("cleanrl-classic-control");
    const fresh = `${await sharedCleanrlQuick()}/reproduce/cleanrl-classic-control-quick`;
    const c = {
      md: await Deno.readTextFile(`${fresh}/table.md`),
      json: JSON.parse(await Deno.readTextFile(`${fresh}/table.json`)),
    };
    assert.deepStrictEqual(b.md, a.md);
    assert.deepStrictEqual(c.md, a.md);
    assert.deepStrictEqual(JSON.stringify(c.json), JSON.stringify(a.json));
  },
});

Deno.test({
  name: "reproduce ppo-table1 --quick: eleven settings, paper column beside ours, identical bytes",
  sanitizeResources: false,
  fn: async () => {
    const a = await reproduce("ppo-table1");
    const rows = mdRows(a.md);
    assert.deepStrictEqual(rows[0], [
      "Setting",
      "Paper (MuJoCo)",
      "Ours (all tasks)",
      "Ours (classic control)",
      "CartPole-v1",
      "Acrobot-v1",
      "sentiment (RM)",
    ]);
    assert.deepStrictEqual(rows.length, 2 + 11);
    const body = rows.slice(2);
    assert.deepStrictEqual(body.map((r) => r[0]), SCHULMAN_TABLE1.map((s) => s.label));
    assert.deepStrictEqual(body.map((r) => r[1]), SCHULMAN_TABLE1.map((s) => fixed(s.paper)));
    for (const r of body) for (const c of r.slice(2)) assert.match(c, /^(-?\d+\.\d\d|-)$/);
    // Per task the best setting scores exactly 1.
    for (const task of a.json.tasks) {
      const norms = task.settings.map((s: { normalized: number | null }) => s.normalized)
        .filter((v: number | null) => v !== null);
      if (norms.length) assert.deepStrictEqual(Math.max(...norms), 1, task.task);
      assert.deepStrictEqual(task.settings.length, 11);
    }
    assert.deepStrictEqual(a.json.tasks.map((t: { task: string }) => t.task), [
      "CartPole-v1",
      "Acrobot-v1",
      "sentiment",
    ]);
    // "Ours" is the mean of the per-task normalised scores (when every task has one).
    for (const row of a.json.rows) {
      const vs = Object.values(row.per_task) as (number | null)[];
      if (vs.every((v) => v !== null)) {
        const mean = (vs as number[]).reduce((s, v) => s + v, 0) / vs.length;
        assert.ok(Math.abs(row.ours - mean) < 1e-12, row.label);
      } else assert.strictEqual(row.ours, null);
    }
    assert.deepStrictEqual(a.json.tasks[0].zero.kind, "random_policy_return");
    assert.deepStrictEqual(a.json.tasks[2].zero.kind, "sft_policy_rm_score");
    const b = await reproduce("ppo-table1");
    assert.deepStrictEqual(b.md, a.md);
    assert.deepStrictEqual(JSON.stringify(b.json), JSON.stringify(a.json));
  },
});

Deno.test({
  name:
    "reproduce ziegler-kl --quick: β = 0 and one row per KL target, RM and gold, identical bytes",
  sanitizeResources: false,
  fn: async () => {
    const a = await reproduce("ziegler-kl");
    const rows = mdRows(a.md);
    assert.deepStrictEqual(rows[0], [
      "Setting",
      "final β",
      "KL(π‖π_ref) (nats)",
      "RM score",
      "gold score",
      "length (tokens)",
    ]);
    assert.deepStrictEqual(rows.slice(2).map((r) => r[0]), [
      "SFT policy (before PPO)",
      "fixed β = 0",
      "adaptive, KL target 0.5",
      "adaptive, KL target 1",
      "adaptive, KL target 2",
      "adaptive, KL target 4",
      "adaptive, KL target 8",
    ]);
    for (const r of rows.slice(3)) {
      for (const c of r.slice(1)) assert.match(c, /^-?\d+\.\d+$/); // one seed: no ± part
    }
    assert.deepStrictEqual(a.json.rows.length, 6);
    assert.deepStrictEqual(a.json.rows[0].final_beta.mean, 0);
    const b = await reproduce("ziegler-kl");
    assert.deepStrictEqual(b.md, a.md);
  },
});

Deno.test({
  name: "reproduce: unknown table and bad flags exit 2 with the fix",
  fn: async () => {
    const r = await deno(["run", "-A", "cli/reproduce.ts", "ppo-tabel1"]);
    assert.deepStrictEqual(r.code, 2);
    assert.match(r.stderr, /unknown table "ppo-tabel1" \(did you mean ppo-table1\?\)/);
    const f = await deno(["run", "-A", "cli/reproduce.ts", "ppo-table1", "--quik"]);
    assert.deepStrictEqual(f.code, 2);
    assert.match(f.stderr, /did you mean --quick/);
    assert.deepStrictEqual(Object.keys(REPRODUCE_TABLES).sort(), [
      "cleanrl-classic-control",
      "ppo-table1",
      "rlhf-methods",
      "rlvr",
      "ziegler-kl",
    ]);
  },
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(ROOT, { recursive: true });
  } catch { /* already gone */ }
});
