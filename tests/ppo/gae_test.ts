/** GAE, returns, whitening and explained variance against hand-computed values. */
import assert from "node:assert/strict";
import { explainedVariance, gae, maskedMoments, whiten } from "../../lib/ppo/gae.ts";

const close = (a: ArrayLike<number>, b: number[], tol = 1e-12) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
  }
};

Deno.test("GAE: hand-computed advantages and returns, episode boundary and padding", () => {
  // Row 0: an episode ends at t=1 (no bootstrap across it); the row bootstraps from 0.7.
  // Row 1: a response of 3 tokens, scored at its last token, then one pad position.
  const { advantages, returns } = gae({
    rows: 2,
    cols: 4,
    rewards: [1, 0, 2, 1, 0, 0, 1, 123],
    values: [0.5, 1.0, 0.2, 0.3, 0.1, 0.2, 0.3, 9],
    dones: [0, 1, 0, 0, 0, 0, 1, 0],
    mask: [1, 1, 1, 1, 1, 1, 1, 0],
    lastValues: [0.7, 5],
    gamma: 0.9,
    lambda: 0.8,
  });
  // By hand (γλ = 0.72):
  // row 0: t3 δ=1+0.9·0.7−0.3=1.33 A=1.33; t2 δ=2+0.9·0.3−0.2=2.07 A=2.07+0.72·1.33=3.0276;
  //        t1 done: δ=0−1=−1 A=−1; t0 δ=1+0.9·1−0.5=1.4 A=1.4+0.72·(−1)=0.68
  // row 1: t3 pad -> 0; t2 done: δ=1−0.3=0.7; t1 δ=0.9·0.3−0.2=0.07 A=0.07+0.72·0.7=0.574;
  //        t0 δ=0.9·0.2−0.1=0.08 A=0.08+0.72·0.574=0.49328
  close(advantages, [0.68, -1, 3.0276, 1.33, 0.49328, 0.574, 0.7, 0], 1e-12);
  close(returns, [1.18, 0, 3.2276, 1.63, 0.59328, 0.774, 1.0, 0], 1e-12);
});

Deno.test("GAE: a padded position in the middle of a row is transparent", () => {
  const base = { gamma: 0.97, lambda: 0.9, rows: 1 };
  const plain = gae({
    ...base,
    cols: 3,
    rewards: [0.5, -1, 2],
    values: [0.1, 0.4, -0.3],
    dones: [0, 0, 0],
    lastValues: [0.25],
  });
  const padded = gae({
    ...base,
    cols: 4,
    rewards: [0.5, 99, -1, 2],
    values: [0.1, -42, 0.4, -0.3],
    dones: [0, 1, 0, 0],
    mask: [1, 0, 1, 1],
    lastValues: [0.25],
  });
  close([padded.advantages[0], padded.advantages[2], padded.advantages[3]], [...plain.advantages]);
  assert.equal(padded.advantages[1], 0);
  assert.equal(padded.returns[1], 0);
});

Deno.test("GAE: λ = 1 gives discounted returns minus values; λ = 0 gives one-step TD errors", () => {
  const x = {
    rows: 1,
    cols: 3,
    rewards: [1, 2, 3],
    values: [0.5, 0.25, 2],
    dones: [0, 0, 0],
    lastValues: [4],
    gamma: 0.5,
  };
  const mc = gae({ ...x, lambda: 1 });
  // R2 = 3 + 0.5·4 = 5, R1 = 2 + 0.5·5 = 4.5, R0 = 1 + 0.5·4.5 = 3.25
  close(mc.returns, [3.25, 4.5, 5]);
  const td = gae({ ...x, lambda: 0 });
  close(td.advantages, [1 + 0.5 * 0.25 - 0.5, 2 + 0.5 * 2 - 0.25, 3 + 0.5 * 4 - 2]);
});

Deno.test("GAE: wrong-length inputs are rejected by name", () => {
  assert.throws(
    () =>
      gae({
        rows: 1,
        cols: 3,
        rewards: [1, 2],
        values: [0, 0, 0],
        dones: [0, 0, 0],
        lastValues: [0],
        gamma: 1,
        lambda: 1,
      }),
    /rewards has 2 entries, expected 3/,
  );
});

Deno.test("whitening: masked mean/std (unbiased), padding stays 0, shiftMean=false keeps the mean", () => {
  const x = [1, 2, 3, 100], mask = [1, 1, 1, 0];
  assert.deepEqual(maskedMoments(x, mask), { mean: 2, std: 1, count: 3 });
  close(whiten(x, mask), [-1 / (1 + 1e-8), 0, 1 / (1 + 1e-8), 0]);
  close(whiten(x, mask, false), [1 / (1 + 1e-8), 2 / (1 + 1e-8), 3 / (1 + 1e-8), 0]);
});

Deno.test("explained variance: 1 − Var[R−V]/Var[R] by hand, masked, NaN for constant returns", () => {
  // diff = [0, 0, 1]: Var = 2/9; returns [1, 2, 4]: Var = 14/9 -> 1 − 1/7 = 6/7
  assert.ok(Math.abs(explainedVariance([1, 2, 3], [1, 2, 4]) - 6 / 7) < 1e-12);
  assert.ok(
    Math.abs(explainedVariance([1, 2, 3, 50], [1, 2, 4, -50], [1, 1, 1, 0]) - 6 / 7) < 1e-12,
  );
  assert.equal(explainedVariance([1, 2, 3], [1, 2, 3]), 1);
  assert.ok(Number.isNaN(explainedVariance([1, 2], [3, 3])));
});
