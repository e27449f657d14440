/**
 * DAPO's dynamic sampling (Yu et al. 2025 §3.2) for the LM problem (`ppo.dynamic_sampling`):
 * groups whose responses all get the same score carry no signal for a group baseline (every
 * advantage is 0), so the rollout keeps sampling batches of fresh prompts, up to
 * `dynamic_sampling` batches, keeping the groups whose scores differ, until it has a batch of
 * them; if it runs out, the first all-equal groups fill the rest (the batch keeps its size).
 * The kept groups' generations are merged into one batch, re-padded to the widest prompt and
 * the longest response (left-padded prompts keep their logits: positions count real tokens).
 *
 * @example
 * ```ts
 * const { gen, scored, batches } = await drawInformative({ groups: 8, k: 4, maxBatches: 3, pad: 0, draw });
 * ```
 * @module
 */
import type { Generation } from "../nn/sample.ts";
import type { LmScores } from "./lm_types.ts";

/** Per group of `k` consecutive scores: whether they are not all equal. */
export function informativeGroups(scores: ArrayLike<number>, k: number): boolean[] {
  const out: boolean[] = [];
  for (let g = 0; g < scores.length; g += k) {
    let differs = false;
    for (let i = g + 1; i < g + k; i++) if (scores[i] !== scores[g]) differs = true;
    out.push(differs);
  }
  return out;
}

/**
 * The rows `rows` of several generations as one, re-padded: prompts left-padded to the widest,
 * responses right-padded (with `pad`, mask 0) to the longest.
 */
export function mergeGenerations(
  parts: readonly { gen: Generation; rows: readonly number[] }[],
  pad: number,
): Generation {
  const W = Math.max(...parts.map((p) => p.gen.promptWidth));
  const C = Math.max(...parts.map((p) => p.gen.cols));
  const n = parts.reduce((a, p) => a + p.rows.length, 0);
  const out: Generation = {
    rows: n,
    cols: C,
    prompts: [],
    responses: [],
    tokens: new Int32Array(n * C).fill(pad),
    logp: new Float64Array(n * C),
    sampleLogp: new Float64Array(n * C),
    mask: new Uint8Array(n * C),
    ended: new Uint8Array(n),
    promptWidth: W,
    sequences: new Int32Array(n * (W + C)).fill(pad),
    sequenceMask: new Uint8Array(n * (W + C)),
  };
  let r = 0;
  for (const { gen, rows } of parts) {
    const w = gen.promptWidth, c = gen.cols, S = w + c;
    for (const src of rows) {
      out.prompts.push(gen.prompts[src]);
      out.responses.push(gen.responses[src]);
      out.ended[r] = gen.ended[src];
      for (let t = 0; t < c; t++) {
        out.tokens[r * C + t] = gen.tokens[src * c + t];
        out.logp[r * C + t] = gen.logp[src * c + t];
        out.sampleLogp[r * C + t] = gen.sampleLogp[src * c + t];
        out.mask[r * C + t] = gen.mask[src * c + t];
      }
      // Left padding grows by W − w; the response columns start at W.
      for (let s = 0; s < S; s++) {
        out.sequences[r * (W + C) + (W - w) + s] = gen.sequences[src * S + s];
        out.sequenceMask[r * (W + C) + (W - w) + s] = gen.sequenceMask[src * S + s];
      }
      r++;
    }
  }
  return out;
}

/** One sampled and scored batch (what {@link drawInformative} asks for). */
export interface ScoredBatch {
  gen: Generation;
  scored: LmScores;
}

/**
 * Sample batches (`draw`) until `groups` informative groups of `k` are kept or `maxBatches`
 * were drawn; the batch of kept groups (first informative ones in order, then all-equal ones
 * to fill), its scores and components in the same rows, the first batch's metrics.
 */
export async function drawInformative(o: {
  groups: number;
  k: number;
  maxBatches: number;
  pad: number;
  draw: () => Promise<ScoredBatch>;
}): Promise<ScoredBatch & { batches: number; informative: number }> {
  const { k } = o;
  const batches: ScoredBatch[] = [];
  const good: [number, number][] = [], flat: [number, number][] = [];
  while (batches.length < o.maxBatches && good.length < o.groups) {
    const b = await o.draw();
    batches.push(b);
    informativeGroups(b.scored.scores, k).forEach((ok, g) =>
      (ok ? good : flat).push([batches.length - 1, g])
    );
  }
  const chosen = [...good.slice(0, o.groups), ...flat.slice(0, o.groups - good.length)]
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const rowsOf = (g: number) => Array.from({ length: k }, (_, i) => g * k + i);
  const parts = batches.map((gen, bi) => ({
    gen: gen.gen,
    rows: chosen.filter(([b]) => b === bi).flatMap(([, g]) => rowsOf(g)),
  })).filter((p) => p.rows.length);
  const pick = <T>(of: (b: ScoredBatch) => ArrayLike<T>) =>
    chosen.flatMap(([b, g]) => rowsOf(g).map((r) => of(batches[b])[r]));
  const first = batches[0].scored;
  const comps = first.components;
  return {
    gen: mergeGenerations(parts, o.pad),
    scored: {
      scores: pick((b) => b.scored.scores),
      ...(first.metrics ? { metrics: first.metrics } : {}),
      ...(comps
        ? {
          components: {
            values: comps.values.map((_, c) => pick((b) => b.scored.components!.values[c])),
            weights: comps.weights,
          },
        }
        : {}),
    },
    batches: batches.length,
    informative: Math.min(good.length, o.groups),
  };
}
