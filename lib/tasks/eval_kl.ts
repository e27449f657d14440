/**
 * The evaluation KL of the LM tasks: KL(π‖π_ref) of the evaluation samples, exact over the
 * whole vocabulary at every response position, summed over a response's positions and
 * averaged over the responses. It replaces the k1 estimate (Σ_t log π(a_t) − log π_ref(a_t)
 * of the sampled tokens), which on 16 samples came out negative (−0.21 in a summary).
 *
 * Both policies score the evaluation sequences once more with a plain decoder graph that
 * outputs log-softmax over the vocabulary (`compileLmScorer` with `full`), a few rows at a time
 * so that `[rows, prompt + response, V]` stays under {@link KL_CHUNK_VALUES} values; the KL of a
 * position is summed in float64 in the form Σ_a p·(log p − log q) − p + q, whose every term is
 * ≥ 0 (for normalised p and q the extra terms sum to 0), and a position's sum is floored at 0
 * against float rounding. Training is untouched: only evaluations call this.
 *
 * @example
 * ```ts
 * const kl = await evalKl(problem, gen, { threads: 2 }); // mean nats per response, ≥ 0
 * ```
 * @module
 */
import type { FloatArray } from "../nn/sample.ts";
import type { SessionOptions } from "../onnx/session.ts";
import { compileLmScorer, type LmSequences } from "../ppo/lm_problem.ts";
import type { LmPolicyView } from "../ppo/offline/problem.ts";

/** Most log-prob values one scoring pass returns (rows are chunked to stay below it). */
export const KL_CHUNK_VALUES = 1 << 24;

/** KL(p‖q) of two log-prob vectors over V at offset `off`: Σ_a p(log p − log q) − p + q, ≥ 0. */
export function exactKlAt(
  logp: ArrayLike<number>,
  logq: ArrayLike<number>,
  off: number,
  V: number,
): number {
  let kl = 0;
  for (let a = off; a < off + V; a++) {
    const p = Math.exp(logp[a]), q = Math.exp(logq[a]);
    kl += p * (logp[a] - logq[a]) - p + q;
  }
  return Math.max(0, kl);
}

type FullScorer = Awaited<ReturnType<typeof compileLmScorer>>;
/**
 * Each problem's exact-KL scorer: keyed weakly by the problem, so it lives as long as the trial
 * (its session is in the trial's session cache, freed when the trial ends).
 */
const scorers = new WeakMap<LmPolicyView, Promise<FullScorer>>();

/** Rows [r0, r1) of `seqs` as sequences of their own. */
function sliceRows(seqs: LmSequences, r0: number, r1: number): LmSequences {
  const S = seqs.promptWidth + seqs.cols, T = seqs.cols;
  return {
    rows: r1 - r0,
    cols: T,
    promptWidth: seqs.promptWidth,
    sequences: seqs.sequences.subarray(r0 * S, r1 * S),
    sequenceMask: seqs.sequenceMask.subarray(r0 * S, r1 * S),
    tokens: seqs.tokens.subarray(r0 * T, r1 * T),
  };
}

/**
 * Exact KL(π‖π_ref) at every response position of `gen` (`[rows, cols]`, 0 at padding), π the
 * problem's current policy (LoRA merged), π_ref its reference; `chunkValues` bounds the
 * log-prob values one scoring pass holds.
 */
export async function exactRefKl(
  problem: LmPolicyView,
  gen: LmSequences & { mask: ArrayLike<number> },
  session: SessionOptions = {},
  chunkValues = KL_CHUNK_VALUES,
): Promise<Float64Array> {
  const model = problem.model, V = model.vocabSize;
  const first = Object.values(problem.reference)[0];
  const dtype = first instanceof Float64Array ? "float64" : "float32";
  if (!scorers.has(problem)) {
    scorers.set(
      problem,
      compileLmScorer(model, {
        dtype,
        full: true,
        device: session.device,
        threads: session.threads,
        sessions: session.sessions,
        // Run at evaluations only: its runs give the arena's free regions back (the train
        // step's, 2.7 GB at 0.5B) before the policy's merged weights are made.
        shrinkArena: true,
      }),
    );
  }
  const score = await scorers.get(problem)!;
  const { rows, cols } = gen, out = new Float64Array(rows * cols);
  // The graph's logits span the prompt too: size the chunks by the whole sequence.
  const per = Math.max(1, Math.floor(chunkValues / ((gen.promptWidth + cols) * V)));
  // The reference first: its run shrinks the arena before the policy's (merged) weights exist.
  let policy: ReturnType<typeof problem.policyParams> | undefined;
  try {
    for (let r0 = 0; r0 < rows; r0 += per) {
      const r1 = Math.min(rows, r0 + per), part = sliceRows(gen, r0, r1);
      const q = (await score(problem.reference, part)).all as FloatArray;
      policy ??= problem.policyParams();
      // The very arrays of the reference (LoRA adapters still at B = 0, as at the evaluation
      // before training): the same run would give the same numbers, so reuse them (0.5B: one
      // full-vocabulary forward, ~2 s of the set-up, saved).
      const p = sameParams(policy, problem.reference)
        ? q
        : (await score(policy, part)).all as FloatArray;
      for (let i = 0; i < (r1 - r0) * cols; i++) {
        const at = r0 * cols + i;
        if (gen.mask[at]) out[at] = exactKlAt(p, q, i * V, V);
      }
    }
  } finally {
    if (policy) problem.releasePolicyParams?.(policy);
  }
  return out;
}

/**
 * Whether `a` and `b` hold the same arrays (the same objects, not equal values) under the same
 * names: then a deterministic scoring of one is the scoring of the other.
 */
export function sameParams(
  a: Readonly<Record<string, unknown>>,
  b: Readonly<Record<string, unknown>>,
): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((n) => n in b && a[n] === b[n]);
}

/** Mean over the responses of the exact KL summed over each response's positions (nats). */
export async function evalKl(
  problem: LmPolicyView,
  gen: LmSequences & { mask: ArrayLike<number> },
  session?: SessionOptions,
): Promise<number> {
  const kl = await exactRefKl(problem, gen, session);
  return kl.reduce((a, b) => a + b, 0) / gen.rows;
}
