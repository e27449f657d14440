/**
 * Position and attention-mask pieces shared by every decoder family (`gpt.ts`, `llama.ts`):
 * padding-aware position ids, the causal (optionally sliding-window) attention pattern, the
 * additive mask bias and the KV cache's extension. Integer-only ops, and the cache's Concat
 * only in a decode step: nothing here is on a gradient path.
 * @module
 */
import { type Dim, type Graph, GraphError, type Value } from "../onnx/graph.ts";

/**
 * Added to attention scores a query may not see (an additive bias, built once per graph and
 * shared by every block). Large enough that exp() underflows to 0, finite so that a padding
 * query whose keys are all padding gets a uniform (not NaN) softmax row.
 */
export const MASKED_SCORE = -1e9;

/** Inclusive running sum along axis 1 of an int64 `[B, T]` value (ONNX CumSum). */
export function cumsum(g: Graph, x: Value): Value {
  return g.node("CumSum", [x, g.scalar(1, "int64")], {}, undefined, [{
    dtype: x.dtype,
    shape: x.shape,
  }])[0];
}

/** 0, 1, ..., T-1 along time for every row of `[B, T]` `like` (T is only known at run time). */
export function arange(g: Graph, like: Value): Value {
  const ones = g.add(g.zerosLike(like.dtype === "int64" ? like : g.cast(like, "int64")), 1);
  return g.sub(cumsum(g, ones), 1);
}

/** Nonzero entries of an attention mask of any dtype, as bool. */
export function realTokens(g: Graph, mask: Value): Value {
  return mask.dtype === "bool" ? mask : g.not(g.equal(mask, 0));
}

/**
 * Position ids of a padded batch: `clip(cumsum(mask) - 1, 0)` — real tokens count 0, 1, ...
 * from their row's first real token, as transformers' `generate` computes them, so a
 * left-padded prompt gets the logits of the unpadded one.
 */
export function maskPositions(g: Graph, real: Value): Value {
  return g.clip(g.sub(cumsum(g, g.cast(real, "int64")), 1), 0);
}

/**
 * The attention pattern `[B, 1, S, K]` (broadcast over heads): the query at absolute index
 * `queryIndex[b, i]` may see the key at `keyIndex[b, j]` when that is not later than the query,
 * (with `real [B, K]`) key j is a real token, and (with `window`) the key is fewer than
 * `window` positions back (Mistral's sliding window: `query - key < window`).
 */
export function causalPattern(
  g: Graph,
  queryIndex: Value,
  keyIndex: Value,
  real?: Value,
  window?: number,
): Value {
  const k = g.unsqueeze(keyIndex, [1]), q = g.unsqueeze(queryIndex, [2]);
  let allowed = g.lessOrEqual(k, q);
  if (window !== undefined) allowed = g.and(allowed, g.greater(k, g.sub(q, window)));
  if (real) allowed = g.and(allowed, g.unsqueeze(real, [1]));
  return g.unsqueeze(allowed, [1]);
}

/** Number of cached positions P of a `[B, heads, P, headDim]` cache tensor, as int64 `[1]`. */
export function pastLength(g: Graph, pastKey: Value): Value {
  return g.node(
    "Shape",
    [pastKey],
    { start: { kind: "int", value: 2 }, end: { kind: "int", value: 3 } },
    undefined,
    [{ dtype: "int64", shape: [1] }],
  )[0];
}

/** One block's attention cache: keys and values `[B, kvHeads, K, headDim]`. */
export interface KvCache {
  /** Keys, `[B, kvHeads, K, headDim]`. */
  key: Value;
  /** Values, `[B, kvHeads, K, headDim]`. */
  value: Value;
}

/**
 * One layer's cache tensor extended by a step's new positions: `past [B, kvHeads, P, headDim]`
 * and `cur [B, kvHeads, S, headDim]` concatenated along the length axis into
 * `[B, kvHeads, keyLen, headDim]`; `cur` itself when there is no past (a full forward pass).
 * Call it once for the keys and once for the values: the result is the layer's present cache
 * and the keys/values its queries attend to.
 *
 * A raw Concat, so that the length dim is `keyLen` (the attention mask's, `P + S`): the
 * builder's `concat` would name it "P+S", which the mask's "K" would not match.
 *
 * @example
 * ```ts
 * const key = extendCache(g, past?.key, newKeys, attentionMask.shape[1]);
 * ```
 */
export function extendCache(g: Graph, past: Value | undefined, cur: Value, keyLen: Dim): Value {
  if (!past) return cur;
  return g.node("Concat", [past, cur], { axis: { kind: "int", value: 2 } }, undefined, [{
    dtype: cur.dtype,
    shape: [cur.shape[0], cur.shape[1], keyLen, cur.shape[3]],
  }])[0];
}

/** The two residual branches of one decoder layer; each normalises the stream it is given. */
export interface ResidualLayer<L> {
  /** Layer `l`'s attention over the stream `x`, attending to `past` (its cache, if any). */
  attention(l: L, x: Value, past: KvCache | undefined): { out: Value; present: KvCache };
  /** Layer `l`'s MLP over the stream `x`. */
  mlp(l: L, x: Value): Value;
}

/**
 * The layer loop of a pre-norm decoder (`gpt.ts`' blocks, `llama.ts`' layers): for each of
 * `layers` in order, `x += attention(x)` (layer i attending to `past[i]`, when there is a
 * past) then `x += mlp(x)`. Returns the final residual stream and each layer's present cache.
 *
 * @example
 * ```ts
 * const { x: out, presents } = residualLayers(g, x, names.blocks, past, {
 *   attention: (blk, x, cache) => attention(g, cfg, blk, norm1(blk, x), cache),
 *   mlp: (blk, x) => mlp(blk, norm2(blk, x)),
 * });
 * ```
 */
export function residualLayers<L>(
  g: Graph,
  x: Value,
  layers: readonly L[],
  past: KvCache[] | undefined,
  layer: ResidualLayer<L>,
): { x: Value; presents: KvCache[] } {
  const presents: KvCache[] = [];
  layers.forEach((l, i) => {
    const { out, present } = layer.attention(l, x, past?.[i]);
    presents.push(present);
    x = g.add(x, out);
    x = g.add(x, layer.mlp(l, x));
  });
  return { x, presents };
}

/**
 * A forward pass's positions and attention pattern for `tokens [B, T]`: position ids as given,
 * else counted over the mask's real tokens ({@link maskPositions}); `allowed [B, 1, T, T]`
 * causal, padding keys masked, within `window` when the family has one.
 */
export function forwardMasks(
  g: Graph,
  tokens: Value,
  attentionMask?: Value,
  positionIds?: Value,
  window?: number,
): { positions: Value; allowed: Value } {
  const order = arange(g, tokens);
  const real = attentionMask ? realTokens(g, attentionMask) : undefined;
  const positions = positionIds ?? (real ? maskPositions(g, real) : order);
  // allowed[b, 0, i, j]: query i may attend to key j (j <= i, and j is a real token).
  return { positions, allowed: causalPattern(g, order, order, real, window) };
}

/**
 * Checks a decode step's inputs, naming `who`: int64 `tokens`/`positionIds [B, S]`, a 2-D
 * `attentionMask [B, P + S]`, and one `[B, kvHeads, P, headDim]` cache per layer.
 */
export function checkDecodeInputs(
  who: string,
  tokens: Value,
  positionIds: Value,
  attentionMask: Value,
  past: KvCache[],
  layout: { nLayer: number; kvHeads: number; headDim: number },
): void {
  if (tokens.dtype !== "int64" || tokens.rank !== 2) {
    throw new GraphError(`${who}: tokens must be int64 [B, S], got ${tokens}`);
  }
  if (positionIds.dtype !== "int64" || positionIds.rank !== 2) {
    throw new GraphError(`${who}: positionIds must be int64 [B, S], got ${positionIds}`);
  }
  if (attentionMask.rank !== 2) {
    throw new GraphError(`${who}: attentionMask must be [B, P + S], got ${attentionMask}`);
  }
  const { nLayer, kvHeads, headDim } = layout;
  if (past.length !== nLayer) {
    throw new GraphError(`${who}: ${past.length} caches for ${nLayer} layers`);
  }
  for (const c of past) {
    for (const t of [c.key, c.value]) {
      if (t.rank !== 4 || t.shape[1] !== kvHeads || t.shape[3] !== headDim) {
        throw new GraphError(`${who}: past ${t} is not [B, ${kvHeads}, P, ${headDim}]`);
      }
    }
  }
}

/**
 * The pattern `[B, 1, S, P + S]` of new tokens against a cache: query i sits at absolute index
 * P + i (P read from the cache at run time), keys at 0..P+S-1 under the mask.
 */
export function decodePattern(
  g: Graph,
  tokens: Value,
  pastKey: Value,
  attentionMask: Value,
  window?: number,
): Value {
  const P = pastLength(g, pastKey);
  return causalPattern(
    g,
    g.add(arange(g, tokens), P),
    arange(g, attentionMask),
    realTokens(g, attentionMask),
    window,
  );
}
