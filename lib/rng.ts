/**
 * The one seeded generator every random draw flows from (pure-rand xoroshiro128+).
 * Its state is four int32s, so it checkpoints and restores exactly.
 *
 * @example
 * ```ts
 * const rng = new Rng(1);
 * const u = rng.uniform(); // [0, 1)
 * const z = rng.normal();  // N(0, 1)
 * ```
 * @module
 */
import prand from "pure-rand";

type Gen = ReturnType<typeof prand.xoroshiro128plus>;

export class Rng {
  private gen: Gen;
  constructor(seed: number | readonly number[]) {
    this.gen = typeof seed === "number"
      ? prand.xoroshiro128plus(seed)
      : prand.xoroshiro128plus.fromState(seed as number[]);
  }
  /** Uniform float64 in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.gen.unsafeNext() >>> 5, lo = this.gen.unsafeNext() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
  /** Standard normal (Box–Muller; one draw per call, no cached spare, so state stays simple). */
  normal(): number {
    const u1 = 1 - this.uniform(), u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return prand.unsafeUniformIntDistribution(0, n - 1, this.gen);
  }
  /** Fill an array with N(0, std²) draws. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal() * std;
    return out;
  }
  /** Fisher–Yates permutation of [0, n). */
  permutation(n: number): number[] {
    const p = [...Array(n).keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }
  /** Exact generator state, for checkpoints. */
  state(): number[] {
    return [...this.gen.getState!()];
  }
}
