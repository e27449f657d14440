/**
 * Scalar heads on a transformer's final hidden states (`gptForward(...).hidden`, `[B, T, d]`):
 *
 * - value head: one scalar per token, `hidden @ W + b` -> `[B, T]` (PPO's critic);
 * - reward head: one scalar per sequence, read at the LAST REAL token of each row -> `[B]`
 *   (a Bradley–Terry reward model scores a whole prompt + response at its final token).
 *
 * Both are plain graph functions of a hidden Value and parameter Values, so the same head
 * works on a trunk shared with the policy (params `v_head.*` next to `transformer.*`) or on a
 * separate model (a second `gptForward` with its own prefix). Weights use the Conv1D layout of
 * the GPT-2 params (`[d, 1]`, applied as `x @ W + b`).
 *
 * Padding may be on either side (or both): the reward head finds each row's last position
 * whose mask is nonzero, so `[0, 0, a, b, c]` and `[a, b, c, 0, 0]` are both read at `c`.
 *
 * @example
 * ```ts
 * const { hidden } = gptForward(g, cfg, params, tokens, mask);
 * const values = valueHead(g, hidden, params);          // [B, T]
 * const rewards = rewardHead(g, hidden, mask, params);  // [B]
 * ```
 * @module
 */
import { type Graph, GraphError, type Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";

/** Parameter names of a head called `name`: `${name}.weight` `[d, 1]`, `${name}.bias` `[1]`. */
export function headNames(name: string): { weight: string; bias: string } {
  return { weight: `${name}.weight`, bias: `${name}.bias` };
}

/** Default name of the value head's parameters. */
export const VALUE_HEAD = "v_head";
/** Default name of the reward head's parameters. */
export const REWARD_HEAD = "r_head";

/**
 * Shapes of a scalar head's parameters on width `d`.
 *
 * @example
 * ```ts
 * headShapes(32); // { "v_head.weight": { shape: [32, 1] }, "v_head.bias": { shape: [1] } }
 * headShapes(32, REWARD_HEAD); // r_head.weight, r_head.bias
 * ```
 */
export function headShapes(d: number, name = VALUE_HEAD): Record<string, { shape: number[] }> {
  if (!Number.isInteger(d) || d < 1) throw new RangeError(`headShapes: d must be >= 1, got ${d}`);
  const n = headNames(name);
  return { [n.weight]: { shape: [d, 1] }, [n.bias]: { shape: [1] } };
}

/**
 * Initial head parameters: weight N(0, std²), bias 0. The default std 1/√(d+1) is the reward
 * head init of OpenAI's lm-human-preferences (output variance ~1 for unit-variance LayerNorm
 * outputs); pass `std: 0` for a head that starts at exactly 0 (a value head that predicts 0
 * before training, so the first advantages are the raw returns).
 *
 * @example
 * ```ts
 * const head = initHead(cfg.nEmbd, new Rng(7), "float32"); // v_head.weight, v_head.bias
 * ```
 */
export function initHead(
  d: number,
  rng: Rng,
  dtype: "float32" | "float64",
  opts: { name?: string; std?: number } = {},
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const n = headNames(opts.name ?? VALUE_HEAD);
  headShapes(d, opts.name); // validates d
  return {
    [n.weight]: rng.fillNormal(new Arr(d), opts.std ?? 1 / Math.sqrt(d + 1)),
    [n.bias]: new Arr(1),
  };
}

function headParams(
  op: string,
  hidden: Value,
  params: Record<string, Value>,
  name: string,
): [Value, Value] {
  if (hidden.rank !== 3) throw new GraphError(`${op}: hidden must be [B, T, d], got ${hidden}`);
  const n = headNames(name);
  const w = params[n.weight], b = params[n.bias];
  if (!w || !b) {
    throw new GraphError(`${op}: missing parameter "${!w ? n.weight : n.bias}"`);
  }
  const d = hidden.shape[2];
  if (w.rank !== 2 || w.shape[1] !== 1 || (typeof d === "number" && w.shape[0] !== d)) {
    throw new GraphError(`${op}: "${n.weight}" is ${w}, expected [${d}, 1]`);
  }
  if (b.rank !== 1 || b.shape[0] !== 1) {
    throw new GraphError(`${op}: "${n.bias}" is ${b}, expected [1]`);
  }
  return [w, b];
}

/**
 * Value head: `hidden [B, T, d]` -> `[B, T]`, one scalar per position (`hidden @ W + b`).
 * Values at padding positions are finite but meaningless; mask them out of the loss.
 *
 * @example
 * ```ts
 * const values = valueHead(g, hidden, params); // reads params["v_head.weight"], ["v_head.bias"]
 * ```
 */
export function valueHead(
  g: Graph,
  hidden: Value,
  params: Record<string, Value>,
  name = VALUE_HEAD,
): Value {
  const [w, b] = headParams("valueHead", hidden, params, name);
  return g.squeeze(g.add(g.matmul(hidden, w), b), [2]);
}

/**
 * One-hot `[B, T]` (dtype of `like`) marking each row's last position whose mask is nonzero.
 * Built from the mask alone (CumSum, Equal; no gradient flows into it): position t is the last
 * real one when it is real and the running count of real tokens there equals the row's total.
 * A row with no real token gets all zeros.
 */
function lastRealOneHot(g: Graph, mask: Value, like: Value): Value {
  const real = mask.dtype === "bool" ? mask : g.not(g.equal(mask, 0));
  const r = g.cast(real, "int64");
  const count = g.node("CumSum", [r, g.scalar(1, "int64")], {}, undefined, [{
    dtype: "int64",
    shape: r.shape,
  }])[0];
  const last = g.and(real, g.equal(count, g.reduceSum(r, [1], true)));
  return g.cast(last, like.dtype);
}

/**
 * Hidden state of each row's last real (mask nonzero) token: `hidden [B, T, d]`,
 * `mask [B, T]` (any dtype) -> `[B, d]`. Selection is a one-hot weighted sum over T, so
 * gradients reach exactly that position. A row with no real token gives zeros.
 *
 * @example
 * ```ts
 * const h = lastTokenHidden(g, hidden, mask); // [B, d]
 * ```
 */
export function lastTokenHidden(g: Graph, hidden: Value, mask: Value): Value {
  if (hidden.rank !== 3) {
    throw new GraphError(`lastTokenHidden: hidden must be [B, T, d], got ${hidden}`);
  }
  if (mask.rank !== 2) throw new GraphError(`lastTokenHidden: mask must be [B, T], got ${mask}`);
  const sel = g.unsqueeze(lastRealOneHot(g, mask, hidden), [2]); // [B, T, 1]
  return g.reduceSum(g.mul(hidden, sel), [1]);
}

/**
 * Reward head: the scalar `h @ W + b` of each row's last real token `h` -> `[B]`. Padding may be
 * on either side; a row with no real token scores `b`.
 *
 * @example
 * ```ts
 * // Bradley–Terry: chosen and rejected responses as the two halves of one batch.
 * const { hidden } = gptForward(g, cfg, params, tokens, mask);
 * const r = rewardHead(g, hidden, mask, params); // params["r_head.weight"], ["r_head.bias"]
 * const [rChosen, rRejected] = g.split(r, [n, n], 0);
 * const loss = g.neg(g.reduceMean(g.log(g.sigmoid(g.sub(rChosen, rRejected)))));
 * ```
 */
export function rewardHead(
  g: Graph,
  hidden: Value,
  mask: Value,
  params: Record<string, Value>,
  name = REWARD_HEAD,
): Value {
  const [w, b] = headParams("rewardHead", hidden, params, name);
  return g.squeeze(g.add(g.matmul(lastTokenHidden(g, hidden, mask), w), b), [1]);
}

/**
 * Where `tokens [B, T]` are not `padId`, as bool: the row selector a Hub
 * `*ForSequenceClassification` reward model reads its score with. transformers picks the
 * rightmost token whose id is not the pad id (`argmax(arange(T) * (ids != pad))`) and ignores
 * the attention mask, so a real token equal to the pad id is skipped; pass this, not the
 * attention mask, to {@link rewardHead} to score exactly as transformers does.
 *
 * @example
 * ```ts
 * const r = rewardHead(g, hidden, nonPadMask(g, tokens, padId), params); // [B]
 * ```
 */
export function nonPadMask(g: Graph, tokens: Value, padId: number): Value {
  return g.not(g.equal(tokens, g.scalar(padId, tokens.dtype)));
}

/**
 * A Hub classifier's `score.weight` (`[1, d]`, a Linear without bias, `num_labels` 1) as the
 * parameters of a {@link rewardHead} named `name`: weight `[d, 1]` (the transpose, which for
 * one row is the same values) and bias 0.
 */
export function rewardHeadFromScore(
  score: { shape: readonly number[]; data: ArrayLike<number> | ArrayLike<bigint> },
  name = REWARD_HEAD,
): Record<string, Float32Array> {
  if (!(score.data instanceof Float32Array || score.data instanceof Float64Array)) {
    throw new TypeError("rewardHeadFromScore: score.weight must be float32 or float64 values");
  }
  if (score.shape.length !== 2 || score.shape[0] !== 1) {
    throw new RangeError(
      `rewardHeadFromScore: score.weight is [${score.shape}], expected [1, hidden] ` +
        `(num_labels 1: one scalar reward)`,
    );
  }
  const n = headNames(name);
  return { [n.weight]: Float32Array.from(score.data), [n.bias]: new Float32Array(1) };
}
