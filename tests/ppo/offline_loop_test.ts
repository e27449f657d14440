/**
 * The offline methods' loop (lib/ppo/offline/loop.ts) on KTO and a tiny GPT: a stop requested
 * during a run (a preemption) checkpoints after the current update and throws StopRequested;
 * the resumed run ends byte-identical to an uninterrupted one (metrics.jsonl, final weights).
 */
import assert from "node:assert/strict";
import { type GptConfig, initGpt } from "../../lib/nn/gpt.ts";
import { createKtoTrainer, type KtoExample, KtoSchema } from "../../lib/ppo/offline/kto.ts";
import { StopRequested, StopToken } from "../../lib/ppo/stop.ts";
import { Rng } from "../../lib/rng.ts";

const MODEL: GptConfig = { vocabSize: 16, nPositions: 12, nEmbd: 16, nLayer: 1, nHead: 2 };

function examples(n: number): KtoExample[] {
  const rng = new Rng(4);
  const ids = (k: number) => Array.from({ length: k }, () => 1 + rng.int(15));
  return Array.from({ length: n }, (_, i) => ({
    prompt: ids(3),
    completion: ids(2 + (i % 3)),
    label: i % 2 === 0,
  }));
}

Deno.test("offline loop (KTO): a requested stop checkpoints and throws; the resumed run is byte-identical", async () => {
  const init = initGpt(MODEL, new Rng(2), "float32");
  const data = examples(24);
  const make = () =>
    createKtoTrainer({
      model: MODEL,
      cfg: KtoSchema.parse({ lr: 3e-3, lr_anneal: true }),
      init,
      examples: data,
      perUpdate: 8,
    });
  const files = async (dir: string) => ({
    metrics: await Deno.readTextFile(`${dir}/metrics.jsonl`),
    final: await Deno.readFile(`${dir}/final.safetensors`),
  });
  const a = await Deno.makeTempDir({ prefix: "proxima-offline-a-" });
  const b = await Deno.makeTempDir({ prefix: "proxima-offline-b-" });
  try {
    await (await make()).train({ updates: 4, seed: 3, outDir: a });
    const stop = new StopToken();
    await assert.rejects(
      async () =>
        (await make()).train({
          updates: 4,
          seed: 3,
          outDir: b,
          stop,
          onUpdate: (_r, u) => {
            if (u === 2) assert.equal(stop.request("SIGTERM"), true, "a loop is training");
          },
        }),
      (e) => e instanceof StopRequested && e.update === 2,
    );
    let startedAt = -1;
    await (await make()).train({
      updates: 4,
      seed: 3,
      outDir: b,
      resume: true,
      onStart: (u) => (startedAt = u),
    });
    assert.equal(startedAt, 2);
    const [fa, fb] = [await files(a), await files(b)];
    assert.equal(fb.metrics, fa.metrics);
    assert.deepEqual(fb.final, fa.final);
    const rows = fa.metrics.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rows.length, 4);
    for (const r of rows) assert.ok(r.kl >= 0, "z = max(0, ·)");
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});
