/** The benchmark metrics over episodes.jsonl: last-N mean and the solved step, by hand. */
import assert from "node:assert/strict";
import { type EpisodeRow, recentReturn, solvedAt } from "../../lib/envs/run.ts";

const eps = (returns: number[]): EpisodeRow[] =>
  returns.map((r, i) => ({
    update: 1 + Math.floor(i / 3),
    step: 10 * (i + 1),
    env: i % 4,
    return: r,
    length: 1,
  }));

Deno.test("recentReturn: mean of exactly the last N episodes, not whole updates", () => {
  // 7 episodes; the last 3 are 4, 5, 6 -> 5, although update 2 holds episodes 3, 4, 5.
  const e = eps([0, 1, 2, 3, 4, 5, 6]);
  assert.equal(recentReturn(e, 3), 5);
  assert.equal(recentReturn(e, 2), 5.5);
  // Fewer episodes than the window: the mean of all of them.
  assert.equal(recentReturn(e, 100), 3);
  assert.equal(recentReturn([], 100), null);
});

Deno.test("solvedAt: step of the first episode that completes a window with mean ≥ threshold", () => {
  // Windows of 3 end at episodes 3..6: [1,2,3]=2, [2,3,7]=4, [3,7,8]=6, [7,8,0]=5.
  const e = eps([1, 2, 3, 7, 8, 0]);
  assert.equal(solvedAt(e, 4, 3), 40); // episode 4 ends at step 40
  assert.equal(solvedAt(e, 5, 3), 50);
  assert.equal(solvedAt(e, 6, 3), 50);
  assert.equal(solvedAt(e, 6.01, 3), null);
  // A window is never partial: 2 episodes averaging 100 do not count for a window of 3.
  assert.equal(solvedAt(eps([100, 100]), 50, 3), null);
});
