/**
 * Reward shaping by response length: DAPO's soft overlong punishment (Yu et al. 2025, Eq. 13;
 * TRL's `get_soft_overlong_punishment`), added to a response's score when `ppo.overlong_cache`
 * is set (L_max = the task's max_new_tokens).
 *
 *     R(|y|) = 0                              if |y| ≤ L_max − L_cache
 *            = ((L_max − L_cache) − |y|) / L_cache   if L_max − L_cache < |y| ≤ L_max
 *            = −1                             if |y| > L_max
 *
 * @example
 * ```ts
 * softOverlongPunishment(90, 100, 20); // −0.5
 * ```
 * @module
 */

/** DAPO's soft overlong punishment of a response of `length` tokens (see the module doc). */
export function softOverlongPunishment(length: number, maxLen: number, cache: number): number {
  if (length <= maxLen - cache) return 0;
  if (length <= maxLen) return (maxLen - cache - length) / cache;
  return -1;
}
