/** KL estimators and controllers against hand-computed values and their update formulas. */
import assert from "node:assert/strict";
import { klEstimate, klFull, makeKlController } from "../../lib/ppo/kl.ts";
import { Rng } from "../../lib/rng.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b} (tol ${tol})`);

Deno.test("KL estimators k1, k2, k3 and the exact KL by hand", () => {
  // log p = −1.2, log q = −1.0: log r = 0.2
  near(klEstimate("k1", -1.2, -1.0), -0.2);
  near(klEstimate("k2", -1.2, -1.0), 0.02);
  near(klEstimate("k3", -1.2, -1.0), Math.exp(0.2) - 1 - 0.2);
  // p = [½, ½], q = [¼, ¾]: ½ ln 2 + ½ ln(2/3)
  near(
    klFull([Math.log(0.5), Math.log(0.5)], [Math.log(0.25), Math.log(0.75)]),
    0.5 * Math.log(2) + 0.5 * Math.log(2 / 3),
  );
  near(klFull([Math.log(0.3), Math.log(0.7)], [Math.log(0.3), Math.log(0.7)]), 0);
});

Deno.test("k1 and k3 are unbiased for KL(p‖q) over samples x ~ p; k2 and k3 are never negative", () => {
  const p = [0.5, 0.3, 0.2], q = [0.2, 0.3, 0.5];
  const exact = klFull(p.map(Math.log), q.map(Math.log));
  const rng = new Rng(7);
  const n = 200_000;
  let k1 = 0, k3 = 0;
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    const x = u < 0.5 ? 0 : u < 0.8 ? 1 : 2;
    k1 += klEstimate("k1", Math.log(p[x]), Math.log(q[x]));
    const e3 = klEstimate("k3", Math.log(p[x]), Math.log(q[x]));
    assert.ok(e3 >= 0);
    assert.ok(klEstimate("k2", Math.log(p[x]), Math.log(q[x])) >= 0);
    k3 += e3;
  }
  near(k1 / n, exact, 0.01);
  near(k3 / n, exact, 0.01);
});

Deno.test("adaptive KL controller follows Ziegler et al.'s proportional update exactly", () => {
  const ctl = makeKlController({ beta: 0.1, control: "adaptive", target: 6, horizon: 10000 });
  // e = clip(KL/6 − 1, −0.2, 0.2); β ← β·(1 + e·256/10000)
  const expected: number[] = [];
  let beta = 0.1;
  for (const [kl, e] of [[8, 0.2], [3, -0.2], [6, 0], [6.6, 0.1], [0, -0.2]] as const) {
    beta = beta * (1 + e * 256 / 10000);
    expected.push(beta);
    ctl.update(kl, 256);
  }
  near(ctl.beta, expected.at(-1)!, 1e-15);
  near(expected[0], 0.100512, 1e-15);
  // state round trip
  const other = makeKlController({ beta: 1, control: "adaptive", target: 6, horizon: 10000 });
  other.load(ctl.state());
  other.update(7, 100);
  ctl.update(7, 100);
  assert.equal(other.beta, ctl.beta);
});

Deno.test("Schulman's rule halves/doubles β at target/1.5 and 1.5·target; fixed β never moves", () => {
  const ctl = makeKlController({ beta: 1, control: "schulman", target: 0.01, horizon: 1 });
  const seq: [number, number][] = [[0.02, 2], [0.005, 1], [0.01, 1], [0.0066, 0.5], [0.0151, 1]];
  for (const [kl, beta] of seq) {
    ctl.update(kl, 64);
    assert.equal(ctl.beta, beta, `after KL ${kl}`);
  }
  const fixed = makeKlController({ beta: 0.3, control: "fixed", target: 1, horizon: 1 });
  fixed.update(100, 1000);
  assert.equal(fixed.beta, 0.3);
});
