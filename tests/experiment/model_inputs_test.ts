/**
 * Bad input in model folders, tokenizers and prompt files given by path (`policy_path`,
 * `reward_model_path`, `prompts_path` of the `sentiment` task): a missing path fails before any
 * trial starts, naming the key; a corrupt folder fails its own trial with the key, the file and
 * a fix, leaves no bundle, and the other trials finish. A good folder given by path runs the
 * same trial as the stage that made it (byte-identical metrics).
 */
import assert from "node:assert/strict";
import { KL_QUICK_SETS } from "../../scripts/crash_sweep.ts";
import { ExperimentError, loadExperiment, planExperiment } from "../../lib/experiment/mod.ts";
import { trainSentimentRewardModel, trainSentimentSft } from "../../lib/tasks/sentiment/mod.ts";
import { CODE_VERSION, failures, statuses, sweep, tempDir, visibleBundles } from "./helpers.ts";

const FIXTURE = "tests/experiment/fixtures/model_inputs.ts";

/** The quick budget as a nested config (sft.steps=30 -> { sft: { steps: 30 } }). */
function quickConfig(): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const s of KL_QUICK_SETS) {
    const [k, v] = s.split("=");
    const [a, b] = k.split(".");
    if (b) (out[a] ??= {})[b] = Number(v);
  }
  return out;
}

async function copyDir(src: string, dst: string) {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
}

Deno.test("bad input: model folders, tokenizers and prompt files given by path", async (t) => {
  const root = await tempDir("model-inputs");
  const inputs = `${root}/inputs`;
  try {
    // Good folders, as the stages write them, then damaged copies.
    const q = quickConfig();
    const stages = { cacheDir: `${root}/direct-stages` };
    const sft = await trainSentimentSft({ sft: q.sft }, stages);
    const rm = await trainSentimentRewardModel(
      { sft: q.sft, reward_model: q.reward_model },
      stages,
    );
    await copyDir(sft.dir, `${inputs}/policy`);
    await copyDir(rm.dir, `${inputs}/rm`);
    await copyDir(sft.dir, `${inputs}/truncated-weights`);
    await Deno.truncate(`${inputs}/truncated-weights/model.safetensors`, 100);
    await copyDir(sft.dir, `${inputs}/no-tokenizer`);
    await Deno.remove(`${inputs}/no-tokenizer/tokenizer.json`);
    await copyDir(sft.dir, `${inputs}/other-tokenizer`);
    const tj = JSON.parse(await Deno.readTextFile(`${inputs}/policy/tokenizer.json`));
    const [a, b] = Object.keys(tj.model.vocab);
    [tj.model.vocab[a], tj.model.vocab[b]] = [tj.model.vocab[b], tj.model.vocab[a]];
    await Deno.writeTextFile(`${inputs}/other-tokenizer/tokenizer.json`, JSON.stringify(tj));
    await copyDir(sft.dir, `${inputs}/bad-config`);
    await Deno.writeTextFile(`${inputs}/bad-config/config.json`, "{not json");
    await Deno.writeTextFile(`${inputs}/blank.txt`, "\n  \n\n");
    await Deno.writeTextFile(`${inputs}/long.txt`, `The film\n${"x".repeat(60)}\n`);
    await Deno.writeTextFile(`${inputs}/prompts.txt`, "The soup was\nMy bike is\n");
    const env = { PROXIMA_TEST_INPUTS: inputs };
    Deno.env.set("PROXIMA_TEST_INPUTS", inputs); // for the in-process loadExperiment

    await t.step(
      "a missing folder or file fails before any trial starts, naming the key",
      async () => {
        for (
          const [key, path] of [
            ["policy_path", `${inputs}/nope`],
            ["reward_model_path", `${inputs}/rm-typo`],
            ["prompts_path", `${inputs}/prompts.tx`],
          ]
        ) {
          const exp = await loadExperiment(FIXTURE);
          const bad = { ...exp, base: { ...exp.base, [key]: path } };
          assert.throws(
            () => planExperiment(bad, { file: FIXTURE, codeVersion: CODE_VERSION }),
            (e: unknown) => {
              assert.ok(e instanceof ExperimentError);
              const m = (e as Error).message;
              assert.match(m, new RegExp(`${key} \\(base\\): .*: no such file or folder`));
              assert.match(m, /fix: check the path/);
              return true;
            },
          );
        }
      },
    );

    await t.step(
      "a corrupt input fails its own trial, named with a fix; the others finish",
      async () => {
        const r = await sweep([FIXTURE, "--results", root, "--jobs", "2"], env);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        const st = statuses(r.stdout), f = failures(r.stdout);
        for (const i of [1, 2, 11]) assert.equal(st.get(i), "done", `trial ${i}:\n${r.stdout}`);
        const want: [number, RegExp][] = [
          [
            3,
            /policy_path: .*truncated-weights: .*model\.safetensors.*(corrupt|truncated)[\s\S]*fix:/,
          ],
          [
            4,
            /policy_path: .*no-tokenizer: no tokenizer\.json[\s\S]*fix: save the folder with makeByteTokenizer/,
          ],
          [
            5,
            /policy_path: .*other-tokenizer: tokenizer\.json is not Proxima's byte tokenizer[\s\S]*fix:/,
          ],
          [6, /policy_path: .*bad-config: .*config\.json[\s\S]*fix:/],
          [
            7,
            /reward_model_path: .*policy: .*no "r_head\.[a-z]+": not a reward model folder[\s\S]*fix:/,
          ],
          [
            8,
            /policy_path: .*config\.json: is a file, not a model folder[\s\S]*fix: point at the folder/,
          ],
          [9, /prompts_path: .*blank\.txt: has no prompts[\s\S]*fix: write one prompt per line/],
          [
            10,
            /prompts_path: .*long\.txt: prompt on line 2 is 60 bytes; [\s\S]*fix: shorten the prompt/,
          ],
        ];
        for (const [i, re] of want) {
          assert.match(f.get(i) ?? `(trial ${i} did not fail)`, re, `trial ${i}:\n${r.stdout}`);
        }
        assert.equal(f.size, want.length, r.stdout);
        const visible = await visibleBundles(`${root}/model-inputs`);
        assert.equal(visible.length, 3, visible.join());
      },
    );

    await t.step("the stage's folders given by path run the same trial byte for byte", async () => {
      const exp = await loadExperiment(FIXTURE);
      const plan = planExperiment(exp, { file: FIXTURE, codeVersion: CODE_VERSION });
      const [viaStages, viaPaths] = plan.trials.slice(0, 2).map((x) =>
        `${root}/model-inputs/${x.id}`
      );
      assert.ok(plan.trials[1].identity.inputs?.policy_path, "input hash in the identity");
      const m1 = await Deno.readTextFile(`${viaStages}/metrics.jsonl`);
      const m2 = await Deno.readTextFile(`${viaPaths}/metrics.jsonl`);
      assert.ok(m1.length > 0);
      assert.equal(m2, m1);
      // The prompts file's prompts are the ones evaluated.
      const e = JSON.parse(
        await Deno.readTextFile(`${root}/model-inputs/${plan.trials[10].id}/checkpoints/eval.json`),
      );
      assert.deepEqual(e.after.examples.slice(0, 3).map((x: { prompt: string }) => x.prompt), [
        "The soup was",
        "My bike is",
        "The soup was",
      ]);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
