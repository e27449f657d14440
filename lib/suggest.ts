/**
 * "Did you mean ...?" for keys, task names, metric names and file names.
 *
 * @example
 * ```ts
 * didYouMean("ppo.kl.betta", ["ppo.kl.beta", "ppo.clip"]); // "ppo.kl.beta"
 * ```
 * @module
 */

/** Levenshtein edit distance. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/**
 * The closest candidate, or null when none is plausibly meant. Matches case-insensitively on
 * the whole name and, for dotted names, on the last segment ("beta" -> "ppo.kl.beta").
 */
export function didYouMean(name: string, candidates: Iterable<string>): string | null {
  const n = name.toLowerCase();
  let best: string | null = null, bestScore = Infinity;
  for (const c of candidates) {
    const l = c.toLowerCase();
    const leaf = l.split(".").at(-1)!;
    let score = editDistance(n, l);
    if (leaf === n || l.endsWith("." + n)) score = Math.min(score, 0.5);
    else if (
      l.replaceAll(".", "").replaceAll("_", "") === n.replaceAll(".", "").replaceAll("_", "")
    ) {
      score = Math.min(score, 0.5);
    }
    if (score < bestScore) best = c, bestScore = score;
  }
  if (best === null) return null;
  const limit = Math.max(2, Math.floor(n.length / 3));
  return bestScore <= limit ? best : null;
}

/** `' (did you mean "x"?)'` or `""`. */
export function suggestion(name: string, candidates: Iterable<string>): string {
  const m = didYouMean(name, candidates);
  return m ? ` (did you mean "${m}"?)` : "";
}
