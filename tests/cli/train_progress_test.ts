/**
 * What `deno task train --task lm` shows while it trains: the bar renders a number for every
 * field (no `{reward/total}` placeholder left), and with stdout piped one TRL-style log line
 * per update (per `--logging_steps`) with a number for every field.
 */
import assert from "node:assert/strict";
import cliProgress from "cli-progress";
import { barFormat, barPayload, logDue, logLine, trainDisplay } from "../../cli/train_progress.ts";
import { LM_KIND } from "../../lib/tasks/lm/mod.ts";
import { SENTIMENT_KIND } from "../../lib/tasks/sentiment/mod.ts";
import { tinyQwen3Folder, tinyQwen3RewardModel } from "../../scripts/tiny_models.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The bar line cli-progress itself draws for a format and payload. */
function render(format: string, payload: Record<string, unknown>): string {
  const options = {
    format,
    barsize: 10,
    barCompleteString: "=".repeat(10),
    barIncompleteString: "-".repeat(10),
    barGlue: "",
    autopadding: false,
    autopaddingChar: "   ",
  };
  const params = {
    progress: 0.5,
    value: 1,
    total: 2,
    eta: 3,
    startTime: Date.now(),
    maxWidth: 200,
  };
  return cliProgress.Format.Formatter(options, params, payload);
}

Deno.test("train progress bar: every field of the lm and sentiment bars renders as a number", () => {
  for (const fields of [LM_KIND.progress, SENTIMENT_KIND.progress]) {
    const row = Object.fromEntries(Object.values(fields).map((c, i) => [c, 0.25 + i]));
    const line = render(barFormat(fields), { ...barPayload(fields, row), tps: 812 });
    assert.doesNotMatch(line, /\{[^}]*\}/, `a placeholder left in: ${line}`);
    for (const [i, label] of Object.keys(fields).entries()) {
      assert.match(line, new RegExp(`${label} ${(0.25 + i).toFixed(3)}`), line);
    }
    assert.match(line, /812 tokens\/s/);
  }
  // The lm task's reward column has a "/" in its name: the old format printed it literally.
  assert.equal(LM_KIND.progress.reward, "reward/total");
  const old = render("reward {reward/total}", { "reward/total": "0.250" });
  assert.equal(old, "reward {reward/total}");
});

Deno.test("train log line: a Python-dict line of numbers; non-numbers are left out", () => {
  assert.equal(
    logLine({ update: 3, reward: 0.41234, kl: null, "tokens/s": 812, tiny: 0.00001234 }),
    "{'update': 3, 'reward': 0.4123, 'tokens/s': 812, 'tiny': 1.234e-5}",
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5].filter((u) => logDue(u, 5, 2)),
    [2, 4, 5],
  );
});

Deno.test({
  name: "train --task lm with stdout piped: one log line per update, a number in every field",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "proxima_train_progress_" });
    await tinyQwen3Folder(`${tmp}/policy`, { dtype: "float32" });
    await tinyQwen3RewardModel(`${tmp}/rm`);
    await Deno.writeTextFile(`${tmp}/prompts.txt`, "Write a poem.\nName a colour.\nSay hi.\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cli/train.ts`,
        ...["--task", "lm", "--model", `${tmp}/policy`, "--reward-model", `${tmp}/rm`],
        ...["--prompts", `${tmp}/prompts.txt`, "--updates", "3", "--batch", "4"],
        ...["--max_new_tokens", "4", "--eval.samples", "2", "--epochs", "1"],
        ...["--out", `${tmp}/run`],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    const lines = text.split("\n").filter((l) => l.startsWith("{"));
    assert.equal(lines.length, 3, text);
    const num = "-?\\d+(\\.\\d+)?(e-?\\d+)?";
    for (const [i, l] of lines.entries()) {
      assert.match(
        l,
        new RegExp(
          `^\\{'update': ${i + 1}, 'total': 3, 'reward': ${num}, 'kl': ${num}, ` +
            `'tokens/s': ${num}\\}$`,
        ),
      );
    }
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test("train display off a terminal: a log line every logging_steps updates and at the last", () => {
  const lines: string[] = [];
  const d = trainDisplay({ reward: "reward/total" }, {
    tty: false,
    loggingSteps: 2,
    write: (l) => lines.push(l),
  });
  d.start(5, 0);
  for (let u = 1; u <= 5; u++) d.update(u, { "reward/total": u / 10 }, 100);
  d.stop();
  assert.deepEqual(lines, [
    "{'update': 2, 'total': 5, 'reward': 0.2, 'tokens/s': 100}",
    "{'update': 4, 'total': 5, 'reward': 0.4, 'tokens/s': 100}",
    "{'update': 5, 'total': 5, 'reward': 0.5, 'tokens/s': 100}",
  ]);
});
