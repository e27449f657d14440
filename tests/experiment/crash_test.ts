/**
 * Crash test: the sweep SIGKILLed at 5 random moments and resumed each time; no partial bundle
 * is ever visible (a poller verifies every bundle as it appears) and the final bundles are
 * byte-identical to an uninterrupted sweep. `deno run -A scripts/crash_sweep.ts` does 20.
 */
import assert from "node:assert/strict";
import { crashSweep } from "../../scripts/crash_sweep.ts";
import { CODE_VERSION, tempDir } from "./helpers.ts";
import { KL_QUICK_6, sharedKlQuick } from "./shared_runs.ts";

Deno.test("sweep killed with SIGKILL 5 times and resumed: bundles byte-identical, never partially visible", async () => {
  const work = await tempDir("crash");
  try {
    // The uninterrupted reference (the same sets, code version and jobs) is the suite's shared
    // run, which the Ctrl-C test in sweep_test.ts compares with too.
    const root = await sharedKlQuick(KL_QUICK_6);
    const seconds = Number(await Deno.readTextFile(`${root}/build-seconds.txt`));
    const r = await crashSweep({
      kills: 5,
      seed: 2026,
      jobs: 2,
      work,
      env: { PROXIMA_CODE_VERSION: CODE_VERSION, PROXIMA_GIT_COMMIT: "none" },
      reference: { root, seconds },
    });
    assert.ok(r.kills >= 5);
    assert.ok(r.resumes >= 1, "no trial resumed from a checkpoint");
    assert.equal(r.bundles, 12);
    assert.equal(r.seen, 12);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
