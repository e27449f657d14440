/**
 * CartPole-v1, a float64 port of Gymnasium 1.3.0's `classic_control/cartpole.py` (default Euler
 * kinematics, default +1 reward, `TimeLimit` 500), vectorised with same-step autoreset.
 *
 * Every arithmetic expression keeps numpy's evaluation order, so the float64 state matches
 * Gymnasium's bit for bit except where the platform libm rounds differently: numpy's `np.sin` on
 * glibc is 1 ulp off the correctly rounded value for ~0.3% of small angles, V8's `Math.sin` was
 * correct on every sample we tried. All 627 recorded Gymnasium transitions in
 * `tests/envs/fixtures/cartpole.json` are reproduced bit for bit. Start-state draws come from our
 * {@link Rng} rather than numpy's PCG64, so seeded episodes are not Gymnasium's seeded episodes.
 *
 * @example
 * ```ts
 * import { CartPoleVecEnv } from "./cartpole.ts";
 * const env = new CartPoleVecEnv(8);
 * env.reset(0);
 * const { obs, rewards, episodes } = env.step(new Int32Array(8).fill(1)); // push right
 * ```
 * @module
 */
import type { Rng } from "../rng.ts";
import { ClassicVecEnv, type EnvSpec } from "./env.ts";

/** Gymnasium's registry entry for CartPole-v1. */
export const CARTPOLE_SPEC: EnvSpec = {
  id: "CartPole-v1",
  obsSize: 4,
  numActions: 2,
  maxEpisodeSteps: 500,
  rewardThreshold: 475,
  stateSize: 4,
};

const GRAVITY = 9.8;
const MASSCART = 1.0;
const MASSPOLE = 0.1;
const TOTAL_MASS = MASSPOLE + MASSCART;
/** Half the pole's length. */
const LENGTH = 0.5;
const POLEMASS_LENGTH = MASSPOLE * LENGTH;
const FORCE_MAG = 10.0;
/** Seconds between state updates. */
const TAU = 0.02;
/** 12 degrees, written as Gymnasium writes it so it rounds identically. */
const THETA_THRESHOLD_RADIANS = 12 * 2 * Math.PI / 360;
const X_THRESHOLD = 2.4;
const RESET_LOW = -0.05, RESET_HIGH = 0.05;

/**
 * `num` CartPole-v1 sub-envs. State `[x, x_dot, theta, theta_dot]` (float64), observation the
 * same four values as float32. Action 0 pushes the cart left, 1 right. Reward 1 on every step,
 * the terminating one included. Terminates when |x| > 2.4 or |theta| > 12°.
 */
export class CartPoleVecEnv extends ClassicVecEnv {
  constructor(num: number) {
    super(CARTPOLE_SPEC, num);
  }

  protected initState(rng: Rng, s: Float64Array, o: number): void {
    // numpy's Generator.uniform(low, high) is `low + (high - low) * next_double()`.
    const range = RESET_HIGH - RESET_LOW;
    for (let j = 0; j < 4; j++) s[o + j] = RESET_LOW + range * rng.uniform();
  }

  protected advance(s: Float64Array, o: number, action: number): boolean {
    let x = s[o], xDot = s[o + 1], theta = s[o + 2], thetaDot = s[o + 3];
    const force = action === 1 ? FORCE_MAG : -FORCE_MAG;
    const costheta = Math.cos(theta);
    const sintheta = Math.sin(theta);
    const temp = (force + POLEMASS_LENGTH * (thetaDot * thetaDot) * sintheta) / TOTAL_MASS;
    const thetaacc = (GRAVITY * sintheta - costheta * temp) /
      (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
    const xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
    // Explicit Euler: positions advance with the OLD velocities.
    x = x + TAU * xDot;
    xDot = xDot + TAU * xacc;
    theta = theta + TAU * thetaDot;
    thetaDot = thetaDot + TAU * thetaacc;
    s[o] = x;
    s[o + 1] = xDot;
    s[o + 2] = theta;
    s[o + 3] = thetaDot;
    return x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD_RADIANS ||
      theta > THETA_THRESHOLD_RADIANS;
  }

  protected reward(_terminated: boolean): number {
    return 1.0;
  }

  protected observe(s: Float64Array, o: number, out: Float32Array, p: number): void {
    // Float32Array stores round to nearest, exactly like `np.array(state, dtype=np.float32)`.
    for (let j = 0; j < 4; j++) out[p + j] = s[o + j];
  }
}
