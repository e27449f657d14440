/**
 * `--threads` reaches every session of every command: each command runs with
 * PROXIMA_SESSION_LOG set (every compile appends its options, in this process and in spawned
 * workers) and every logged session must have the threads given on the command line.
 */
import assert from "node:assert/strict";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "proxima_threads_" });

async function sessionsOf(args: string[], threads: number): Promise<{ threads: number }[]> {
  const log = `${tmp}/sessions-${crypto.randomUUID().slice(0, 8)}.jsonl`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, "--threads", String(threads)],
    cwd: ROOT,
    env: { PROXIMA_SESSION_LOG: log, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.equal(
    out.code,
    0,
    `${args.join(" ")}:\n${text.decode(out.stdout)}${text.decode(out.stderr)}`,
  );
  const lines = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(lines.length > 0, `${args.join(" ")}: no session was built`);
  return lines;
}

Deno.test({
  name:
    "--threads reaches every session: train --env, train --task (stages too), generate, sweep workers",
  sanitizeResources: false,
  async fn() {
    await tinyQwen3Folder(`${tmp}/qwen3`);
    await tinyQwen3RewardModel(`${tmp}/rm`);
    await Deno.writeTextFile(`${tmp}/p.txt`, "Hello\nName a colour.\n");
    await Deno.writeTextFile(
      `${tmp}/exp.ts`,
      `import { defineExperiment, grid } from "${ROOT}lib/experiment/mod.ts";\n` +
        `export default defineExperiment({ name: "thr", task: "CartPole-v1", base: ` +
        `{ total_steps: 512, envs: 2, steps: 128 }, sweep: grid({ seed: [1] }) });\n`,
    );
    const commands: string[][] = [
      [
        "run",
        "-A",
        "cli/train.ts",
        "--env",
        "cartpole",
        "--total-steps",
        "512",
        "--quiet",
        "--out",
        `${tmp}/env`,
      ],
      [
        "run",
        "-A",
        "cli/train.ts",
        "--task",
        "lm",
        "--model",
        `${tmp}/qwen3`,
        "--reward_model_data",
        await Deno.writeTextFile(
          `${tmp}/prefs.jsonl`,
          '{"chosen":"a","rejected":"b"}\n{"chosen":"c","rejected":"d"}\n',
        )
          .then(() => `${tmp}/prefs.jsonl`),
        "--reward_model_train.steps",
        "1",
        "--prompts",
        `${tmp}/p.txt`,
        "--updates",
        "1",
        "--batch",
        "2",
        "--max_new_tokens",
        "2",
        "--eval.samples",
        "2",
        "--quiet",
        "--out",
        `${tmp}/lm`,
      ],
      [
        "run",
        "-A",
        "cli/generate.ts",
        "--model",
        `${tmp}/qwen3`,
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "2",
      ],
      [
        "run",
        "-A",
        "cli/sweep.ts",
        `${tmp}/exp.ts`,
        "--results",
        `${tmp}/res`,
        "--jobs",
        "1",
        "--quiet",
      ],
    ];
    for (const args of commands) {
      const sessions = await sessionsOf(args, 1);
      const wrong = sessions.filter((s) => s.threads !== 1);
      assert.deepEqual(wrong, [], `${args.slice(2, 4).join(" ")}: sessions not on 1 thread`);
    }
  },
});

globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
