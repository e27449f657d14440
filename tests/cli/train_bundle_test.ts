/**
 * `deno task train` is a one-trial experiment (issue 23): `--task sentiment --seed 1` writes the
 * bundle a sweep trial with the same config gets (metrics.jsonl byte for byte, config.json,
 * summary.json, env.json, checkpoints/, manifest.json, verified by `deno task verify`); a
 * `--resume` whose config differs from the run's is refused naming each key (exit 2), before
 * and after the run finished; a run killed with SIGKILL after its first checkpoint resumes to
 * a bundle byte-identical to an uninterrupted run's. `--task lm` puts the trained policy at
 * `checkpoints/hf/policy` of its bundle, as a sweep trial does.
 *
 * Kept small with the sweep tests' budget (KL_QUICK_SETS as flags); the train runs reuse the
 * sweep's stages (`--results`), so each one is PPO only (a few seconds).
 */
import assert from "node:assert/strict";
import { listFiles, MANIFEST } from "../../lib/experiment/bundle.ts";
import { KL_QUICK_SETS } from "../../scripts/crash_sweep.ts";
import {
  deno,
  killAtFirstCheckpoint,
  REPO_ROOT,
  sweep,
  tempDir,
  verify,
} from "../experiment/helpers.ts";
import { identityDiff, trainPlace } from "../../cli/train_trial.ts";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

/** KL_QUICK_SETS ("sft.steps=30") as train flags ("--sft.steps", "30"). */
const QUICK = KL_QUICK_SETS.flatMap((s) => {
  const [k, v] = s.split("=");
  return [`--${k}`, v];
});
/** The same budget as an experiment's base (nested keys). */
function quickBase(): Record<string, unknown> {
  const base: Record<string, unknown> = {};
  for (const s of KL_QUICK_SETS) {
    const [k, v] = s.split("=");
    const path = k.split(".");
    let o = base;
    for (const p of path.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[path.at(-1)!] = JSON.parse(v);
  }
  return base;
}

const train = (root: string, out: string, extra: string[] = []) =>
  deno([
    "run",
    "-A",
    "cli/train.ts",
    "--task",
    "sentiment",
    "--seed",
    "1",
    ...QUICK,
    "--threads",
    "1",
    "--results",
    root,
    "--quiet",
    "--out",
    out,
    ...extra,
  ]);

async function bytes(path: string): Promise<Uint8Array> {
  return await Deno.readFile(path);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

Deno.test("train --task sentiment --seed 1: a sweep trial's bundle; --resume with another config is refused; a killed run resumes byte-identically", async (t) => {
  const root = await tempDir("train-bundle");
  try {
    const out = `${root}/train/sentiment-seed1`;
    let trialDir = "";
    await t.step("the sweep trial of the same config (one-point experiment)", async () => {
      await Deno.writeTextFile(
        `${root}/one.ts`,
        `import { defineExperiment, points } from "${REPO_ROOT}/lib/experiment/mod.ts";\n` +
          `export default defineExperiment({ name: "one", task: "sentiment", base: ` +
          `${JSON.stringify(quickBase())}, sweep: points([{ seed: 1 }]) });\n`,
      );
      const r = await sweep([`${root}/one.ts`, "--results", root, "--jobs", "1", "--threads", "1"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const ids = [...Deno.readDirSync(`${root}/one`)].map((e) => e.name)
        .filter((n) => !n.startsWith("."));
      assert.equal(ids.length, 1, ids.join());
      trialDir = `${root}/one/${ids[0]}`;
    });

    await t.step("train writes the same bundle at exactly --out", async () => {
      const r = await train(root, out);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^sentiment seed 1: rm_score .* -> .*train\/sentiment-seed1\n$/);
      const files = await listFiles(out);
      assert.deepEqual(files, await listFiles(trialDir));
      for (
        const f of ["config.json", "summary.json", "env.json", "checkpoints/final.safetensors"]
      ) assert.ok(files.includes(f), `${f} missing: ${files.join(", ")}`);
      // metrics.jsonl byte for byte (and so every file: the manifests are equal).
      const m = await bytes(`${out}/metrics.jsonl`);
      assert.ok(m.length > 0);
      assert.ok(sameBytes(m, await bytes(`${trialDir}/metrics.jsonl`)), "metrics.jsonl differs");
      assert.equal(
        await Deno.readTextFile(`${out}/${MANIFEST}`),
        await Deno.readTextFile(`${trialDir}/${MANIFEST}`),
      );
      // Nothing else beside the bundle: the work folder and lock are gone.
      assert.deepEqual([...Deno.readDirSync(`${root}/train`)].map((e) => e.name), [
        "sentiment-seed1",
      ]);
      const v = await verify(out);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /1 bundle ok, 0 failed/);
    });

    await t.step("--resume with a changed --learning_rate: exit 2 naming ppo.lr", async () => {
      const before = await Deno.readTextFile(`${out}/${MANIFEST}`);
      const r = await train(root, out, ["--resume", "--learning_rate", "5e-3"]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /this key differs \(recorded → given\):\n {2}ppo\.lr: [\d.e-]+ → 0\.005\n/,
      );
      assert.match(r.stderr, /fix: rerun without the changed flags .*, or give another --out/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.equal(await Deno.readTextFile(`${out}/${MANIFEST}`), before);
      // The same command again: the bundle is there, nothing runs.
      const again = await train(root, out, ["--resume"]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /already finished/);
    });

    await t.step("SIGKILL after the first checkpoint, --resume: the same bundle", async () => {
      const more = ["--updates", "4", "--checkpoint_every", "1"];
      const ref = await train(root, `${root}/train/ref`, more);
      assert.equal(ref.code, 0, ref.stderr);
      const killed = `${root}/train/killed`, work = `${root}/train/.tmp-killed`;
      await killAtFirstCheckpoint(
        [
          "run",
          "-A",
          "cli/train.ts",
          "--task",
          "sentiment",
          "--seed",
          "1",
          ...QUICK,
          ...more,
          "--threads",
          "1",
          "--results",
          root,
          "--quiet",
          "--out",
          killed,
        ],
        work,
      );
      assert.ok(!(await Deno.stat(killed).catch(() => null)), "--out visible before the end");

      // A changed config is refused against the run's config.json, and the work is kept.
      const changed = await train(root, killed, [...more, "--resume", "--learning_rate", "5e-3"]);
      assert.equal(changed.code, 2, changed.stderr);
      assert.match(changed.stderr, /interrupted run in .*\.tmp-killed was run with another/);
      assert.match(changed.stderr, /\n {2}ppo\.lr: [\d.e-]+ → 0\.005\n/);
      // Without --resume: refused, naming the fix.
      const plain = await train(root, killed, more);
      assert.equal(plain.code, 2, plain.stderr);
      assert.match(plain.stderr, /an interrupted run of it is in .*\n {2}fix: add --resume/);
      assert.ok((await Deno.stat(`${work}/checkpoints/LATEST`)).isFile);

      const resumed = await train(root, killed, [...more, "--resume"]);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(
        await Deno.readTextFile(`${killed}/${MANIFEST}`),
        await Deno.readTextFile(`${root}/train/ref/${MANIFEST}`),
      );
      assert.ok(sameBytes(
        await bytes(`${killed}/metrics.jsonl`),
        await bytes(`${root}/train/ref/metrics.jsonl`),
      ));
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train --task lm: the policy as a Hugging Face folder at checkpoints/hf/policy of the bundle", async () => {
  const root = await tempDir("train-bundle-lm");
  try {
    await tinyQwen3Folder(`${root}/qwen3`, { dtype: "float32" });
    await tinyQwen3RewardModel(`${root}/rm`);
    await Deno.writeTextFile(`${root}/p.txt`, "Hello\nName a colour.\n");
    const out = `${root}/train/qwen`;
    const r = await deno([
      "run",
      "-A",
      "cli/train.ts",
      "--task",
      "lm",
      "--model",
      `${root}/qwen3`,
      "--reward-model",
      `${root}/rm`,
      "--prompts",
      `${root}/p.txt`,
      "--updates",
      "1",
      "--batch_size",
      "2",
      "--max_new_tokens",
      "2",
      "--eval.samples",
      "2",
      "--threads",
      "1",
      "--results",
      root,
      "--quiet",
      "--output_dir",
      out,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const files = await listFiles(out);
    for (
      const f of [
        "config.json",
        "summary.json",
        "checkpoints/eval.json",
        "checkpoints/final.safetensors",
        "checkpoints/hf/policy/config.json",
        "checkpoints/hf/policy/model.safetensors",
        "checkpoints/hf/policy/tokenizer.json",
      ]
    ) assert.ok(files.includes(f), `${f} missing: ${files.join(", ")}`);
    assert.ok(!files.some((f) => f.startsWith("hf/")), files.join(", "));
    const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.equal(config.task, "lm");
    assert.deepEqual(Object.keys(config.inputs).sort(), ["policy", "prompts", "reward_model"]);
    const v = await verify(out);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("identityDiff names each differing key dotted (config keys without config.); trainPlace puts the work folder beside --out", () => {
  const a = {
    task: "sentiment",
    config: { seed: 1, ppo: { lr: 1e-3, kl: { beta: 0.1 } }, hidden: [64, 64] },
    code_version: "aaaa",
  };
  const b = {
    task: "sentiment",
    config: { seed: 1, ppo: { lr: 5e-3, kl: { beta: 0.1 } }, hidden: [32, 64] },
    code_version: "bbbb",
    inputs: { policy: "ff" },
  };
  assert.deepEqual(identityDiff(a, b), [
    'code_version: "aaaa" → "bbbb"',
    "hidden: [64,64] → [32,64]",
    "ppo.lr: 0.001 → 0.005",
    'inputs.policy: (not set) → "ff"',
  ]);
  assert.deepEqual(identityDiff(a, structuredClone(a)), []);
  assert.deepEqual(trainPlace("results/train/s2/"), {
    parent: "results/train",
    final: "results/train/s2",
    tmp: "results/train/.tmp-s2",
    lock: "results/train/.lock-s2",
  });
  assert.deepEqual(trainPlace("s2"), {
    parent: ".",
    final: "s2",
    tmp: "./.tmp-s2",
    lock: "./.lock-s2",
  });
});
