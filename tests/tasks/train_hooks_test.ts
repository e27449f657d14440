/**
 * `eval_steps` (lib/tasks/train_hooks.ts): the task's evaluation every N updates lands in that
 * update's metrics.jsonl row as `eval/*` columns, the evaluation at the last update is the
 * trial's final evaluation, and training is untouched (every other column is the same bytes as
 * a run without it).
 */
import assert from "node:assert/strict";
import { evalColumns, saveCheckpointFolder } from "../../lib/tasks/train_hooks.ts";
import { createLmProblem } from "../../lib/ppo/lm_problem.ts";
import { loadByteModel, saveBytePolicy } from "../../lib/tasks/byte_lm.ts";
import { BYTE_EOS_ID, BYTE_VOCAB_SIZE } from "../../lib/nn/tokenizer.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";
import { LM_KIND } from "../../lib/tasks/lm/mod.ts";
import { readMetrics } from "../../lib/ppo/trainer.ts";
import { checkpointRunConfig, makeCheckpointInputs } from "../fixtures/hf/make_lm_checkpoints.ts";

Deno.test("evalColumns: numbers (nested by /) become eval/* columns; lists and text do not", () => {
  assert.deepEqual(
    evalColumns({
      reward: 0.5,
      rm_score: null,
      kl: 0.01,
      nan: NaN,
      parse: { rate: 0.25 },
      examples: [{ reward: 1 }],
      name: "x",
    }),
    {
      "eval/reward": 0.5,
      "eval/rm_score": null,
      "eval/kl": 0.01,
      "eval/nan": null,
      "eval/parse/rate": 0.25,
    },
  );
});

Deno.test({
  name:
    "lm eval_steps 1: eval/* columns on every row, the last equal to eval.json's after; training unchanged",
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "proxima_eval_steps_" });
    await makeCheckpointInputs(root);
    const opts = { cacheDir: `${root}/.stages` };
    const cfg = checkpointRunConfig(root, { updates: 2, save_steps: 0 });
    await LM_KIND.trial(cfg, `${root}/plain`, opts);
    const r = await LM_KIND.trial({ ...cfg, eval_steps: 1 }, `${root}/eval`, opts);
    const plain = await readMetrics(`${root}/plain`), withEval = await readMetrics(`${root}/eval`);
    assert.equal(withEval.length, 2);
    for (const [i, row] of withEval.entries()) {
      const evalKeys = Object.keys(row).filter((k) => k.startsWith("eval/"));
      assert.deepEqual(evalKeys.sort(), [
        "eval/eos_rate",
        "eval/kl",
        "eval/response_length",
        "eval/reward",
        "eval/rm_score",
      ]);
      assert.ok((row["eval/kl"] as number) >= 0);
      const rest = Object.fromEntries(Object.entries(row).filter(([k]) => !k.startsWith("eval/")));
      assert.equal(JSON.stringify(rest), JSON.stringify(plain[i]), `row ${i + 1} differs`);
    }
    const last = withEval[1];
    assert.equal(last["eval/reward"], r.after.reward);
    assert.equal(last["eval/kl"], r.after.kl);
    assert.equal(last["eval/rm_score"], r.after.rm_score);
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test({
  name: "saveBytePolicy (sentiment / jsx save_steps): the policy's weights and the byte tokenizer",
  sanitizeResources: false,
  async fn() {
    const problem = await createLmProblem({
      model: { vocabSize: BYTE_VOCAB_SIZE, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 },
      task: {
        prompts: (n) => Array.from({ length: n }, () => [65, 66]),
        score: (_p, r) => r.map(() => 1),
      },
      cfg: parsePpoConfig({}),
      seed: 3,
      batch: 2,
      maxNewTokens: 2,
      eosTokenId: BYTE_EOS_ID,
      padTokenId: BYTE_EOS_ID,
    });
    const dir = await Deno.makeTempDir({ prefix: "proxima_byte_save_" });
    await saveCheckpointFolder(dir, 3, (d) => saveBytePolicy(d, problem), null);
    const m = await loadByteModel(`${dir}/checkpoints/checkpoint-3`);
    assert.ok(m.tokenizer?.["tokenizer.json"], "tokenizer.json written");
    assert.equal(m.config.eos_token_id, BYTE_EOS_ID);
    const live = problem.policyParams();
    for (const [n, p] of Object.entries(m.params)) {
      const want = live[n] as Float32Array;
      assert.deepEqual(
        p,
        ArrayBuffer.isView(want) ? want : (want as { data: Float32Array }).data,
        n,
      );
    }
    problem.release();
    await Deno.remove(dir, { recursive: true });
  },
});
