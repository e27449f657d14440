/**
 * Stage cache: a stage's output is computed once per stage config and reused by every trial
 * of every sweep that asks for the same config (the dummy `prep` stage logs each computation).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { ensureStage, type StageDef, verifyBundle } from "../../lib/experiment/mod.ts";
import { CODE_VERSION, statuses, sweep, tempDir, visibleBundles } from "./helpers.ts";

async function logLines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path).catch(() => "")).split("\n").filter(Boolean);
}

Deno.test("stage cache: computed once, reused across trials and sweeps; a new config computes again", async () => {
  const root = await tempDir("stages");
  const log = `${root}/stage.log`;
  try {
    const env = { PROXIMA_TEST_STAGE_LOG: log };
    const a = await sweep(["tests/experiment/fixtures/stage_a.ts", "--results", root], env);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    assert.deepEqual([...statuses(a.stdout).values()], ["done", "done", "done"]);
    assert.deepEqual(await logLines(log), ['{"size":5}'], "3 trials, 1 stage computation");

    const b = await sweep(["tests/experiment/fixtures/stage_b.ts", "--results", root], env);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    assert.deepEqual([...statuses(b.stdout).values()], ["done", "done"]);
    assert.deepEqual(
      await logLines(log),
      ['{"size":5}'],
      "the second sweep did not recompute the stage",
    );

    const c = await sweep(["tests/experiment/fixtures/stage_c.ts", "--results", root], env);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.deepEqual(await logLines(log), ['{"size":5}', '{"size":6}']);

    // Every trial records the stage it used; sweeps a and b share one folder.
    const stageOf = async (exp: string) => {
      const hashes = new Set<string>();
      for (const n of await visibleBundles(`${root}/${exp}`)) {
        const s = JSON.parse(await Deno.readTextFile(`${root}/${exp}/${n}/stages.json`));
        hashes.add(s.prep);
      }
      return [...hashes];
    };
    const [ha] = await stageOf("stage-a"),
      [hb] = await stageOf("stage-b"),
      [hc] = await stageOf("stage-c");
    assert.equal(ha, hb);
    assert.notEqual(ha, hc);
    const stageDirs = (await Array.fromAsync(Deno.readDir(`${root}/.stages/prep`))).map((e) =>
      e.name
    )
      .filter((n) => !n.startsWith(".")).sort();
    assert.deepEqual(stageDirs, [ha, hc].sort());
    assert.ok((await verifyBundle(`${root}/.stages/prep/${ha}`)).ok);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("stage cache: ensureStage reuses a verified folder, refuses a tampered one, validates its config", async () => {
  const root = await tempDir("stage-unit");
  try {
    let runs = 0;
    const stage: StageDef<{ n: number }> = {
      name: "count",
      schema: z.object({ n: z.number().int().positive() }).strict(),
      async run(cfg, outDir) {
        runs++;
        await Deno.writeTextFile(`${outDir}/out.txt`, String(cfg.n * 2));
      },
    };
    const opts = { dir: `${root}/.stages`, codeVersion: CODE_VERSION };
    const r1 = await ensureStage(stage, { n: 3 }, opts);
    const r2 = await ensureStage(stage, { n: 3 }, opts);
    assert.equal(r1.cached, false);
    assert.equal(r2.cached, true);
    assert.equal(r1.dir, r2.dir);
    assert.equal(runs, 1);
    assert.equal(await Deno.readTextFile(`${r1.dir}/out.txt`), "6");
    // Another code version is another stage output.
    const r3 = await ensureStage(stage, { n: 3 }, { dir: `${root}/.stages`, codeVersion: "other" });
    assert.notEqual(r3.hash, r1.hash);
    assert.equal(runs, 2);
    // Tampered output: named, with the fix.
    await Deno.writeTextFile(`${r1.dir}/out.txt`, "7");
    await assert.rejects(
      () => ensureStage(stage, { n: 3 }, opts),
      /out\.txt: differs.*delete .* to compute it again/,
    );
    await assert.rejects(
      () => ensureStage(stage, { n: -1 }, opts),
      /stage count: invalid value\n\s+n: /,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
