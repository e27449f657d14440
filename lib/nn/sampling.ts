/**
 * The next-token distribution and the draw from it, in float64 over the logits (HF
 * `generate`'s order: temperature, top-k, top-p), with one uniform per token: what
 * {@link generate} (sample.ts) uses for small vocabularies, and the reference its ORT passes
 * are tested against. Ties go to the lower token id everywhere, so every choice is a total,
 * deterministic order.
 *
 * @example
 * ```ts
 * const probs = samplingProbs(logits, { temperature: 0.7, topP: 0.9 });
 * const token = sampleIndex(probs, rng.uniform());
 * ```
 * @module
 */

/** log Σ exp(x) in float64. */
export function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i] - max);
  return max + Math.log(sum);
}

/** How the next token is drawn from the logits (HF `generate` order: temperature, top-k, top-p). */
export interface SamplingOptions {
  /** Divides the logits; 0 = greedy (argmax, lowest token id on ties). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or ≥ V: off). Default 0. */
  topK?: number;
  /** Nucleus: keep the smallest most-likely set whose probability is ≥ p (1: off). Default 1. */
  topP?: number;
}

/** log_softmax in float64 (max-subtracted, so no overflow). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  const lse = logSumExp(logits);
  return Float64Array.from(logits, (x) => x - lse);
}

/** Index of the largest value; the lowest index wins ties (as torch.argmax on CPU). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** Token ids by decreasing value, ties by increasing id (a total, deterministic order). */
function rankDesc(xs: ArrayLike<number>, ids?: Int32Array): Int32Array {
  const idx = ids ?? Int32Array.from({ length: xs.length }, (_, i) => i);
  return idx.sort((a, b) => xs[b] - xs[a] || a - b);
}

/** Ids (ascending) of the values > t. */
function above(xs: ArrayLike<number>, t: number): Int32Array {
  const ids: number[] = [];
  for (let i = 0; i < xs.length; i++) if (xs[i] > t) ids.push(i);
  return Int32Array.from(ids);
}

/** Ids (ascending) of the values ≥ t. */
function aboveOrEqual(xs: ArrayLike<number>, t: number): Int32Array {
  const ids: number[] = [];
  for (let i = 0; i < xs.length; i++) if (xs[i] >= t) ids.push(i);
  return Int32Array.from(ids);
}

/** The k-th largest value (1-based), by quickselect on a copy: O(n). */
function kthLargest(xs: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(xs);
  let lo = 0, hi = a.length - 1;
  const want = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

function normalise(p: Float64Array): Float64Array {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i];
  for (let i = 0; i < p.length; i++) p[i] /= s;
  return p;
}

/**
 * Top-k: zero all but the `k` most probable tokens, renormalise. Exactly k tokens are kept;
 * ties at the boundary go to the lower token id, so `k = 1` is greedy. Returns a new array.
 *
 * @example
 * ```ts
 * topKFilter(Float64Array.of(0.1, 0.6, 0.3), 2); // [0, 2/3, 1/3]
 * ```
 */
export function topKFilter(probs: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(probs.length);
  // Only tokens at least as probable as the k-th largest can be kept: rank those alone.
  const order = k < probs.length
    ? rankDesc(probs, aboveOrEqual(probs, kthLargest(probs, k)))
    : rankDesc(probs);
  for (let i = 0; i < Math.min(k, order.length); i++) out[order[i]] = probs[order[i]];
  return normalise(out);
}

/**
 * Top-p (nucleus, Holtzman et al. 2020): keep the smallest set of most probable tokens whose
 * total probability is ≥ `p`, zero the rest, renormalise. Tokens are taken in order of
 * decreasing probability (ties: lower id first); the running sum is compared with `p` less
 * 1e-12 relative, so a nucleus whose exact mass is p is not pushed one token over by rounding.
 * At least one token is always kept. Returns a new array.
 *
 * @example
 * ```ts
 * topPFilter(Float64Array.of(0.1, 0.5, 0.15, 0.25), 0.7); // [0, 2/3, 0, 1/3]
 * ```
 */
export function topPFilter(probs: ArrayLike<number>, p: number): Float64Array {
  const V = probs.length, target = p * (1 - 1e-12);
  let total = 0;
  for (let i = 0; i < V; i++) total += probs[i];
  // Tokens of probability ≤ τ hold at most V·τ of the mass, so with τ = (total − target) / 2V
  // the tokens above τ alone reach the target first: rank those (a few hundred of a 152K
  // vocabulary, instead of sorting it all for every row and token). The rest is never kept.
  const tau = (total - target) / (2 * V);
  const nucleus = (order: Int32Array): Float64Array | null => {
    const out = new Float64Array(V);
    let mass = 0;
    for (let i = 0; i < order.length; i++) {
      out[order[i]] = probs[order[i]];
      mass += probs[order[i]];
      if (mass >= target) return normalise(out);
    }
    return null;
  };
  const fast = tau > 0 ? nucleus(rankDesc(probs, above(probs, tau))) : null;
  return fast ?? nucleus(rankDesc(probs)) ?? normalise(Float64Array.from(probs));
}

/** The options with their defaults, checked (RangeError naming the bad one). */
export function checkSampling(o: SamplingOptions): Required<SamplingOptions> {
  const r = { temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1 };
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) {
    throw new RangeError(
      `sampling: temperature must be a finite number >= 0, got ${r.temperature}`,
    );
  }
  if (!Number.isInteger(r.topK) || r.topK < 0) {
    throw new RangeError(`sampling: topK must be an integer >= 0, got ${r.topK}`);
  }
  if (!(r.topP > 0 && r.topP <= 1)) {
    throw new RangeError(`sampling: topP must be in (0, 1], got ${r.topP}`);
  }
  return r;
}

/**
 * The distribution the next token is drawn from: softmax(logits / temperature), then top-k,
 * then top-p, each renormalised (HF's warper order). Temperature 0 gives the one-hot argmax.
 *
 * @example
 * ```ts
 * samplingProbs([Math.log(0.5), Math.log(0.3), Math.log(0.2)], { temperature: 0.5 });
 * // ∝ [0.25, 0.09, 0.04]: p^(1/T), renormalised
 * ```
 */
export function samplingProbs(logits: ArrayLike<number>, opts: SamplingOptions = {}): Float64Array {
  const { temperature, topK, topP } = checkSampling(opts);
  const V = logits.length;
  if (temperature === 0) {
    const out = new Float64Array(V);
    out[argmax(logits)] = 1;
    return out;
  }
  const scaled = new Float64Array(V);
  for (let i = 0; i < V; i++) scaled[i] = logits[i] / temperature;
  let probs: Float64Array = logSoftmax(scaled).map(Math.exp);
  if (topK > 0 && topK < V) probs = topKFilter(probs, topK);
  if (topP < 1) probs = topPFilter(probs, topP);
  return probs;
}

/**
 * Inverse-CDF draw: the first token id (in increasing id order) whose cumulative probability
 * exceeds `u · Σprobs`, for one uniform `u` in [0, 1). Zero-probability tokens are never chosen.
 *
 * @example
 * ```ts
 * sampleIndex(Float64Array.of(0.25, 0, 0.75), 0.3); // 2
 * ```
 */
export function sampleIndex(probs: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < probs.length; i++) total += probs[i];
  const target = u * total;
  let cum = 0, last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    last = i;
    if (target < cum) return i;
  }
  if (last < 0) throw new RangeError("sampleIndex: no token has positive probability");
  return last; // u·total rounded up to the full sum
}
