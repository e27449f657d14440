/**
 * Acrobot-v1, a float64 port of Gymnasium 1.3.0's `classic_control/acrobot.py` ("book" dynamics,
 * one RK4 step of dt = 0.2 with the torque appended to the state, no torque noise, `TimeLimit`
 * 500), vectorised with same-step autoreset.
 *
 * Every arithmetic expression keeps numpy's evaluation order, so a transition matches Gymnasium's
 * bit for bit except where the platform libm rounds differently: on glibc, numpy's `np.cos/np.sin`
 * and the scalar `x**2` (it calls `pow`) are 1 ulp off the correctly rounded value for ~0.1% of
 * arguments, while we use V8's `Math.cos/sin` (correct on every sample we tried) and `x * x`.
 * 801 of the 806 recorded Gymnasium transitions in `tests/envs/fixtures/acrobot.json` are
 * bit-identical and the other 5 are 1 ulp off (each traced to such a libm rounding). The swinging
 * pendulum is chaotic, so a free-running trajectory drifts away from Gymnasium's after a few
 * hundred steps: same distribution of behaviour, not the same bits. Start states come from our
 * {@link Rng}, not numpy's PCG64.
 *
 * Gymnasium keeps the reset state as float32 (we round it the same way) and so computes the
 * FIRST observation of an episode with numpy's float32 cos/sin (a SIMD approximation whose last
 * bit depends on the CPU); we take cos/sin in float64 and round, which differs from numpy by one
 * float32 ulp for ~0.1% of draws. From the first step on both states are float64.
 *
 * @example
 * ```ts
 * import { AcrobotVecEnv } from "./acrobot.ts";
 * const env = new AcrobotVecEnv(8);
 * env.reset(0);
 * const { obs, rewards } = env.step(new Int32Array(8).fill(2)); // torque +1 everywhere
 * ```
 * @module
 */
import type { Rng } from "../rng.ts";
import { ClassicVecEnv, type EnvSpec } from "./env.ts";

/** Gymnasium's registry entry for Acrobot-v1. */
export const ACROBOT_SPEC: EnvSpec = {
  id: "Acrobot-v1",
  obsSize: 6,
  numActions: 3,
  maxEpisodeSteps: 500,
  rewardThreshold: -100,
  stateSize: 4,
};

const PI = Math.PI;
const DT = 0.2;
const LINK_LENGTH_1 = 1.0;
const LINK_MASS_1 = 1.0;
const LINK_MASS_2 = 1.0;
const LINK_COM_POS_1 = 0.5;
const LINK_COM_POS_2 = 0.5;
const LINK_MOI = 1.0;
const MAX_VEL_1 = 4 * PI;
const MAX_VEL_2 = 9 * PI;
/** Torque for actions 0, 1, 2. */
const AVAIL_TORQUE = [-1.0, 0.0, 1.0];
const G = 9.8;
const RESET_LOW = -0.1, RESET_HIGH = 0.1;

// Python evaluates `x**2` on these constants exactly (0.25, 1.0); spelled as products here.
const m1 = LINK_MASS_1, m2 = LINK_MASS_2, l1 = LINK_LENGTH_1;
const lc1 = LINK_COM_POS_1, lc2 = LINK_COM_POS_2, I1 = LINK_MOI, I2 = LINK_MOI;

/** Scratch for `dsdt` outputs (module-level: the simulation is single-threaded and synchronous). */
const K1 = new Float64Array(4), K2 = new Float64Array(4);
const K3 = new Float64Array(4), K4 = new Float64Array(4);

/**
 * Gymnasium's `AcrobotEnv._dsdt` with book dynamics: writes (dtheta1, dtheta2, ddtheta1,
 * ddtheta2) to `out`. The torque's own derivative is 0, so RK4 carries `a` through unchanged and
 * it is passed separately here.
 */
function dsdt(
  theta1: number,
  theta2: number,
  dtheta1: number,
  dtheta2: number,
  a: number,
  out: Float64Array,
): void {
  const d1 = m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * Math.cos(theta2)) + I1 +
    I2;
  const d2 = m2 * (lc2 * lc2 + l1 * lc2 * Math.cos(theta2)) + I2;
  const phi2 = m2 * lc2 * G * Math.cos(theta1 + theta2 - PI / 2.0);
  const phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * Math.sin(theta2) -
    2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * Math.sin(theta2) +
    (m1 * lc1 + m2 * l1) * G * Math.cos(theta1 - PI / 2) +
    phi2;
  const ddtheta2 =
    (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * Math.sin(theta2) - phi2) /
    (m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1);
  const ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
  out[0] = dtheta1;
  out[1] = dtheta2;
  out[2] = ddtheta1;
  out[3] = ddtheta2;
}

/** Gymnasium's `wrap`: shift by whole periods until `m <= x <= M`. */
function wrap(x: number, m: number, M: number): number {
  const diff = M - m;
  while (x > M) x = x - diff;
  while (x < m) x = x + diff;
  return x;
}

/** Gymnasium's `bound`: Python's `min(max(x, m), M)`. */
function bound(x: number, m: number, M: number): number {
  const lo = m > x ? m : x;
  return M < lo ? M : lo;
}

/**
 * `num` Acrobot-v1 sub-envs. State `[theta1, theta2, dtheta1, dtheta2]` (float64), observation
 * `[cos θ1, sin θ1, cos θ2, sin θ2, dθ1, dθ2]` as float32. Actions 0/1/2 apply torque -1/0/+1 at
 * the middle joint. Reward -1 per step, 0 on the terminating step; terminates when the tip rises
 * above the bar: `-cos θ1 - cos(θ2 + θ1) > 1`.
 */
export class AcrobotVecEnv extends ClassicVecEnv {
  constructor(num: number) {
    super(ACROBOT_SPEC, num);
  }

  protected initState(rng: Rng, s: Float64Array, o: number): void {
    // numpy's uniform is `low + (high - low) * next_double()`; Gymnasium then casts to float32.
    const range = RESET_HIGH - RESET_LOW;
    for (let j = 0; j < 4; j++) s[o + j] = Math.fround(RESET_LOW + range * rng.uniform());
  }

  protected advance(s: Float64Array, o: number, action: number): boolean {
    const a = AVAIL_TORQUE[action];
    const y0 = s[o], y1 = s[o + 1], y2 = s[o + 2], y3 = s[o + 3];
    // Gymnasium's rk4(derivs, y0, [0, dt]): a single classic RK4 step.
    const dt = DT, dt2 = dt / 2.0;
    dsdt(y0, y1, y2, y3, a, K1);
    dsdt(y0 + dt2 * K1[0], y1 + dt2 * K1[1], y2 + dt2 * K1[2], y3 + dt2 * K1[3], a, K2);
    dsdt(y0 + dt2 * K2[0], y1 + dt2 * K2[1], y2 + dt2 * K2[2], y3 + dt2 * K2[3], a, K3);
    dsdt(y0 + dt * K3[0], y1 + dt * K3[1], y2 + dt * K3[2], y3 + dt * K3[3], a, K4);
    const h = dt / 6.0;
    const n0 = y0 + h * (K1[0] + 2 * K2[0] + 2 * K3[0] + K4[0]);
    const n1 = y1 + h * (K1[1] + 2 * K2[1] + 2 * K3[1] + K4[1]);
    const n2 = y2 + h * (K1[2] + 2 * K2[2] + 2 * K3[2] + K4[2]);
    const n3 = y3 + h * (K1[3] + 2 * K2[3] + 2 * K3[3] + K4[3]);
    const t1 = wrap(n0, -PI, PI);
    const t2 = wrap(n1, -PI, PI);
    s[o] = t1;
    s[o + 1] = t2;
    s[o + 2] = bound(n2, -MAX_VEL_1, MAX_VEL_1);
    s[o + 3] = bound(n3, -MAX_VEL_2, MAX_VEL_2);
    return -Math.cos(t1) - Math.cos(t2 + t1) > 1.0;
  }

  protected reward(terminated: boolean): number {
    return terminated ? 0.0 : -1.0;
  }

  protected observe(s: Float64Array, o: number, out: Float32Array, p: number): void {
    const t1 = s[o], t2 = s[o + 1];
    out[p] = Math.cos(t1);
    out[p + 1] = Math.sin(t1);
    out[p + 2] = Math.cos(t2);
    out[p + 3] = Math.sin(t2);
    out[p + 4] = s[o + 2];
    out[p + 5] = s[o + 3];
  }
}
