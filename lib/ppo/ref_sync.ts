/**
 * TR-DPO's reference-model sync for online methods (Gorbatovski et al. 2024, "Learn Your
 * Reference Model for Real Good Alignment", arXiv:2404.09656), as TRL 1.13's
 * `SyncRefModelCallback` does it: every `ref_model_sync_steps` optimizer steps, each reference
 * weight becomes α·policy + (1 − α)·ref (`target.mul_(1 − α).add_(policy, alpha=α)`).
 *
 * Proxima's optimizer steps run inside an update (epochs × minibatches) and the reference is
 * only read when the next rollout is scored, so the sync is made after the update in which a
 * sync step falls, with the policy at the end of that update (TRL's exactly when the steps per
 * update divide `ref_model_sync_steps`); two sync steps in one update mix twice.
 *
 * @example
 * ```ts
 * const ref = { w: new Float64Array([0, 0]) }, pol = { w: new Float64Array([1, 2]) };
 * syncsDue(510, 514, 512); // 1
 * mixReference(ref, pol, 0.6); // ref.w = [0.6, 1.2]
 * ```
 * @module
 */
import type { FloatArray } from "../nn/sample.ts";

/** How many multiples of `every` lie in (before, after]: the syncs an update's steps reach. */
export function syncsDue(before: number, after: number, every: number): number {
  return Math.floor(after / every) - Math.floor(before / every);
}

/**
 * ref ← α·policy + (1 − α)·ref in place, for every reference weight (the policy must hold each
 * under the same name and size). Float32 references round once per weight.
 */
export function mixReference(
  reference: Record<string, FloatArray>,
  policy: Record<string, ArrayLike<number>>,
  alpha: number,
): void {
  for (const [name, ref] of Object.entries(reference)) {
    const p = policy[name];
    if (!p || p.length !== ref.length) {
      throw new Error(`reference sync: the policy has no weight "${name}" of ${ref.length} values`);
    }
    for (let i = 0; i < ref.length; i++) ref[i] = (1 - alpha) * ref[i] + alpha * p[i];
  }
}
