/**
 * Acceptance: `deno task sweep experiments/kl.ts` (with a reduced budget through --set) runs
 * every trial and prints a summary table; the same sweep twice gives identical bundles;
 * a second invocation skips verified trials; --dry-run lists trials; Ctrl-C stops cleanly and
 * a rerun resumes; `deno task verify` names any file with a changed byte.
 */
import assert from "node:assert/strict";
import { listFiles, MANIFEST } from "../../lib/experiment/bundle.ts";
import { SENTIMENT_KIND } from "../../lib/experiment/tasks.ts";
import { canonicalJson } from "../../lib/json.ts";
import { shortHash } from "../../lib/hash.ts";
import { Rng } from "../../lib/rng.ts";
import { KL_QUICK_SETS } from "../../scripts/crash_sweep.ts";
import {
  deno,
  PINNED_ENV,
  REPO_ROOT,
  statuses,
  sweep,
  tempDir,
  verify,
  visibleBundles,
} from "./helpers.ts";
import { KL_QUICK_6, sharedKlQuick } from "./shared_runs.ts";

// 12 `sentiment` trials of 2 updates, with tiny SFT and reward-model stages.
const BUDGET = KL_QUICK_SETS.flatMap((s) => ["--set", s]);
const TRIALS = 12;

async function manifests(expDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of await visibleBundles(expDir)) {
    out.set(n, await Deno.readTextFile(`${expDir}/${n}/${MANIFEST}`));
  }
  return out;
}

Deno.test("deno task sweep experiments/kl.ts: summary table, deterministic bundles, skip on rerun, dry-run, reuse, verify", async (t) => {
  const a = await tempDir("sweep-a"), b = await tempDir("sweep-b");
  try {
    let first = new Map<string, string>();
    await t.step(
      "deno task sweep experiments/kl.ts finishes and prints a summary table",
      async () => {
        const r = await deno([
          "task",
          "sweep",
          "experiments/kl.ts",
          ...BUDGET,
          "--results",
          a,
          "--quiet",
        ]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /kl: 12 trials \(12 done\) in [\d.]+ s/);
        assert.match(
          r.stdout,
          /#\s+trial\s+ppo\.kl\.beta\s+seed\s+status\s+kl\s+rm_score\s+gold_score\s+gold_score_before\s+clipfrac:mean\s+time\s+bundle/,
        );
        const st = statuses(r.stdout);
        assert.equal(st.size, TRIALS);
        assert.ok([...st.values()].every((s) => s === "done"), r.stdout);
        first = await manifests(`${a}/kl`);
        assert.equal(first.size, TRIALS);
        for (const n of first.keys()) {
          assert.deepEqual(await listFiles(`${a}/kl/${n}`), [
            "checkpoints/eval.json",
            "checkpoints/final.safetensors",
            "config.json",
            "env.json",
            "metrics.jsonl",
            "stages.json",
            "summary.json",
          ]);
        }
        const v = await verify(`${a}/kl`);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        assert.match(v.stdout, /12 bundles ok, 0 failed/);
        // The stages the kind declares for a config (what a cluster's stages job builds) are
        // the ones its trials asked for: the same names and folder hashes as stages.json.
        for (const n of first.keys()) {
          const id = JSON.parse(await Deno.readTextFile(`${a}/kl/${n}/config.json`));
          const asked = JSON.parse(await Deno.readTextFile(`${a}/kl/${n}/stages.json`));
          const declared = Object.fromEntries(
            SENTIMENT_KIND.stagesFor!(id.config).map(({ name, config }) => [
              name,
              shortHash(canonicalJson({
                stage: name,
                config: SENTIMENT_KIND.stages![name].schema.parse(config),
                code_version: id.code_version,
              })),
            ]),
          );
          assert.deepEqual(declared, asked, n);
        }
      },
    );

    await t.step(
      "the same sweep again (elsewhere, one job at a time) gives identical bundles",
      async () => {
        // The suite's shared run of this sweep with --jobs 1 (tests/experiment/shared_runs.ts:
        // made by another process, in its own results folder; its exit code 0 checked there).
        const again = await sharedKlQuick();
        const second = await manifests(`${again}/kl`);
        assert.deepEqual([...second.keys()], [...first.keys()]);
        for (const [n, m] of first) assert.equal(second.get(n), m, `bundle ${n} differs`);
        for (const n of first.keys()) {
          for (const f of await listFiles(`${a}/kl/${n}`)) {
            const x = await Deno.readFile(`${a}/kl/${n}/${f}`),
              y = await Deno.readFile(`${again}/kl/${n}/${f}`);
            assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${n}/${f} differs`);
          }
        }
      },
    );

    await t.step(
      "a second invocation skips every verified trial; --dry-run lists them",
      async () => {
        const r = await sweep(["experiments/kl.ts", ...BUDGET, "--results", a]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /12 trials \(12 skipped\)/);
        const d = await sweep(["experiments/kl.ts", ...BUDGET, "--results", a, "--dry-run"]);
        assert.equal(d.code, 0, d.stderr);
        assert.match(d.stdout, /12 trials of sentiment/);
        assert.match(d.stdout, /12 done; nothing was run \(--dry-run\)/);
        const fresh = await sweep(["experiments/kl.ts", "--results", a, "--dry-run"]);
        assert.match(fresh.stdout, /12 new; nothing was run/); // the full budget: other trials
      },
    );

    await t.step("a trial finished in another experiment is copied, not run again", async () => {
      const r = await sweep(["tests/experiment/fixtures/kl_subset.ts", ...BUDGET, "--results", a]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual([...statuses(r.stdout).values()], ["reused", "reused"]);
      for (const [n, m] of await manifests(`${a}/kl-subset`)) assert.equal(m, first.get(n));
    });

    await t.step(
      "verify names a file with one changed byte, for every file of a bundle",
      async () => {
        // One copy of the bundle per file, that file with one bit flipped; one verify over all
        // the copies (one process, not one per file), each copy's report read on its own.
        const id = [...first.keys()][0];
        const rng = new Rng(99);
        const names = [...await listFiles(`${a}/kl/${id}`), MANIFEST];
        const flips: { f: string; dir: string; at: number }[] = [];
        for (const [i, f] of names.entries()) {
          const dir = `${b}/flip/${i}/${id}`;
          await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
          for (const g of names) await Deno.copyFile(`${a}/kl/${id}/${g}`, `${dir}/${g}`);
          const bytes = await Deno.readFile(`${dir}/${f}`);
          const at = rng.int(bytes.length);
          bytes[at] ^= 1 << rng.int(8);
          await Deno.writeFile(`${dir}/${f}`, bytes);
          flips.push({ f, dir, at });
        }
        const r = await verify(...flips.map((x) => x.dir));
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stdout, new RegExp(`^0 bundles ok, ${flips.length} failed$`, "m"));
        for (const { f, dir, at } of flips) {
          // This copy's block: its FAIL line and the indented problem lines under it.
          const block = r.stdout.split(/^(?=FAIL {2}|ok {4}|\d+ bundles? ok)/m)
            .find((x) => x.startsWith(`FAIL  ${dir}\n`));
          assert.ok(block, `${f} byte ${at}: no FAIL line for ${dir}:\n${r.stdout}`);
          assert.match(
            block,
            new RegExp(`^      ${f.replace(".", "\\.")}: `, "m"),
            `${f} byte ${at}:\n${block}`,
          );
        }
      },
    );
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("Ctrl-C stops the sweep cleanly (workers killed, no partial bundle); a rerun resumes to the same bundles", async () => {
  const b = await tempDir("sigint");
  try {
    const args = [
      "experiments/kl.ts",
      ...BUDGET,
      "--set",
      "updates=6",
      "--set",
      "checkpoint_every=1",
    ];
    // The uninterrupted reference: the suite's shared run of these sets (exit code 0 checked
    // there), which crash_test.ts compares with too.
    const a = await sharedKlQuick(KL_QUICK_6);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/sweep.ts", ...args, "--results", b, "--quiet"],
      cwd: REPO_ROOT,
      env: PINNED_ENV,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = new Response(child.stdout).text(), err = new Response(child.stderr).text();
    // Wait until some trial has a checkpoint, then Ctrl-C.
    const deadline = Date.now() + 60_000;
    let mid = false;
    while (!mid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      const names = await Array.fromAsync(Deno.readDir(`${b}/kl`)).then(
        (es) => es.map((e) => e.name),
        () => [] as string[],
      );
      for (const n of names.filter((n) => n.startsWith(".tmp-"))) {
        mid ||= await Deno.stat(`${b}/kl/${n}/checkpoints/LATEST`).then(() => true, () => false);
      }
    }
    assert.ok(mid, "no trial reached a checkpoint");
    const t0 = performance.now();
    child.kill("SIGINT");
    const status = await child.status;
    const stdout = await out;
    await err;
    assert.equal(status.code, 130, stdout);
    assert.ok(performance.now() - t0 < 10_000, "Ctrl-C took too long");
    assert.match(stdout, /interrupted: run the same command again to resume/);
    assert.match(stdout, /\binterrupted\b/);
    await visibleBundles(`${b}/kl`); // every visible entry is a complete bundle
    const r = await sweep([...args, "--results", b]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /resumed at \d+|skipped/);
    assert.deepEqual(await manifests(`${b}/kl`), await manifests(`${a}/kl`));
  } finally {
    await Deno.remove(b, { recursive: true });
  }
});
