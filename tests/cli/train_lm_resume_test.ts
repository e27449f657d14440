/**
 * An `lm` trial killed and resumed ends byte-identical (issue 28): `deno task train --task lm`
 * on the tiny Qwen3 pair (groups of 2 samples per prompt, so the rollouts share prefills and
 * drop ended rows), SIGKILLed once its first update's checkpoint is written, then `--resume`d,
 * writes the metrics.jsonl and manifest of a run never interrupted, byte for byte.
 */
import assert from "node:assert/strict";
import { MANIFEST } from "../../lib/experiment/bundle.ts";
import { deno, killAtFirstCheckpoint, tempDir } from "../experiment/helpers.ts";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

Deno.test("train --task lm killed with SIGKILL after its first checkpoint, --resume: metrics.jsonl byte-identical", async () => {
  const root = await tempDir("train-lm-resume");
  try {
    await tinyQwen3Folder(`${root}/qwen3`, { dtype: "float32" });
    await tinyQwen3RewardModel(`${root}/rm`);
    await Deno.writeTextFile(`${root}/p.txt`, "Hello\nName a colour.\nCount to three.\n");
    const args = (out: string) => [
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
      "2",
      "--checkpoint_every",
      "1",
      "--batch_size",
      "4",
      "--samples_per_prompt",
      "2",
      "--max_new_tokens",
      "6",
      "--eval.samples",
      "2",
      "--threads",
      "1",
      "--results",
      root,
      "--quiet",
      "--output_dir",
      out,
    ];
    const ref = await deno(args(`${root}/ref`));
    assert.equal(ref.code, 0, ref.stdout + ref.stderr);

    const killed = `${root}/killed`, work = `${root}/.tmp-killed`;
    await killAtFirstCheckpoint(args(killed), work);
    assert.ok(!(await Deno.stat(killed).catch(() => null)), "--output_dir visible before the end");
    const lines = (await Deno.readTextFile(`${work}/metrics.jsonl`).catch(() => "")).split("\n");
    assert.ok(lines.length - 1 < 2, `the killed run had logged ${lines.length - 1} updates`);

    const resumed = await deno([...args(killed), "--resume"]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    const refMetrics = await Deno.readFile(`${root}/ref/metrics.jsonl`);
    assert.deepEqual(await Deno.readFile(`${killed}/metrics.jsonl`), refMetrics);
    assert.equal(
      await Deno.readTextFile(`${killed}/${MANIFEST}`),
      await Deno.readTextFile(`${root}/ref/${MANIFEST}`),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
