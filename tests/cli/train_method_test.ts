/**
 * `deno task train --task lm --method grpo --samples_per_prompt 4` runs with no other method
 * flag (no --ppo.whiten_advantages false) and puts the k3 KL in the loss with GRPO's β = 0.04,
 * as DeepSeekMath does, and so does `--ppo.advantage grpo --samples_per_prompt 2` alone (the
 * method its advantage implies): real subprocesses on a tiny Qwen3 folder.
 */
import assert from "node:assert/strict";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

/** Train one update on tiny models with these method flags; the metrics rows and config. */
async function train(flags: string[]) {
  const tmp = await Deno.makeTempDir({ prefix: "proxima_train_method_" });
  try {
    await tinyQwen3Folder(`${tmp}/policy`, { dtype: "float32" });
    await tinyQwen3RewardModel(`${tmp}/rm`);
    await Deno.writeTextFile(`${tmp}/prompts.txt`, "Name a colour.\nSay hi.\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/train.ts",
        "--task",
        "lm",
        ...flags,
        "--policy",
        `${tmp}/policy`,
        "--reward_model",
        `${tmp}/rm`,
        "--prompts",
        `${tmp}/prompts.txt`,
        "--updates",
        "1",
        "--max_new_tokens",
        "4",
        "--eval.samples",
        "2",
        "--quiet",
        "--out",
        `${tmp}/run`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    const rows = (await Deno.readTextFile(`${tmp}/run/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    const config = JSON.parse(await Deno.readTextFile(`${tmp}/run/config.json`));
    return { rows, config: config.config ?? config };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** KL in the loss (k3 on the sampled tokens, ≥ 0), β = 0.04, no value model. */
function assertGrpo(rows: Record<string, unknown>[]) {
  assert.equal(rows.length, 1);
  assert.equal(rows[0].beta, 0.04);
  assert.equal(typeof rows[0].kl_ref_loss, "number");
  assert.ok((rows[0].kl_ref_loss as number) >= 0);
  assert.equal(rows[0].value_loss, null);
}

Deno.test("train --task lm --method grpo: runs as the paper sets it, k3 KL in the loss", async () => {
  const { rows } = await train(["--method", "grpo", "--samples_per_prompt", "4"]);
  assertGrpo(rows);
});

Deno.test("train --task lm --ppo.advantage grpo (no --method): GRPO implied, k3 KL in the loss", async () => {
  const { rows, config } = await train(["--ppo.advantage", "grpo", "--samples_per_prompt", "2"]);
  assertGrpo(rows);
  assert.equal(config.method, "grpo");
  assert.equal(config.ppo.whiten_advantages, false);
  assert.equal(config.ppo.kl.estimator, "k3");
  assert.equal(config.ppo.kl.placement, "loss");
});

Deno.test("train --task lm --method dpo --preferences: the resolved config and TRL's columns", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "proxima_train_dpo_" });
  try {
    await tinyQwen3Folder(`${tmp}/policy`, { dtype: "float32" });
    await Deno.writeTextFile(`${tmp}/prompts.txt`, "Name a colour.\n");
    const prefs = new URL("../fixtures/lm/preferences.jsonl", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/train.ts",
        "--task",
        "lm",
        "--method",
        "dpo",
        "--model",
        `${tmp}/policy`,
        "--preferences",
        prefs,
        "--prompts",
        `${tmp}/prompts.txt`,
        "--dpo.loss",
        '["sigmoid","ipo"]',
        "--dpo.loss_weights",
        "[0.8,0.2]",
        "--updates",
        "1",
        "--max_new_tokens",
        "2",
        "--eval.samples",
        "1",
        "--quiet",
        "--out",
        `${tmp}/run`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    const saved = JSON.parse(await Deno.readTextFile(`${tmp}/run/config.json`));
    const c = saved.config ?? saved;
    assert.equal(c.method, "dpo");
    assert.equal(c.algorithm, "dpo");
    assert.deepEqual(c.dpo.loss, ["sigmoid", "ipo"]);
    assert.deepEqual(c.dpo.loss_weights, [0.8, 0.2]);
    assert.equal(c.dpo.beta, 0.1); // the paper's β from the record
    const [row] = (await Deno.readTextFile(`${tmp}/run/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    for (const k of ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins"]) {
      assert.equal(typeof row[k], "number", k);
    }
    assert.equal(row.value_loss, undefined, "no PPO columns: nothing was rolled out");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
