/**
 * Helpers shared by the model tests of tests/nn: parameters far from init, a compiled forward
 * graph, the token-NLL finite-difference check, max |a - b|, a small Llama config and temp
 * folders.
 * @module
 */
import { Graph, type Value } from "../../lib/onnx/graph.ts";
import { compile, type Tensor, tensor } from "../../lib/onnx/session.ts";
import { tokenLogprobs } from "../../lib/nn/gpt.ts";
import type { LlamaConfig } from "../../lib/nn/llama_config.ts";
import { Rng } from "../../lib/rng.ts";
import { gradcheck, type InputSpec } from "../onnx/gradcheck.ts";

export type Dtype = "float32" | "float64";
export type Params = Record<string, Float32Array | Float64Array>;
/** Parameter shapes by name, as `gptShapes` / `llamaShapes` return them. */
export type Shapes = Record<string, { shape: number[] }>;

/** Largest |a[i] - b[i]| over `a`'s length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Parameters far from init (std 0.3, the norm weights named by `norm` around 1), so every term
 * of the forward pass moves the logits by much more than the tests' tolerances. Drawn from
 * `Rng(seed)` in `shapes` order (in float64, then rounded when `dtype` is float32).
 */
export function testParams(
  shapes: Shapes,
  seed: number,
  norm: RegExp,
  dtype: Dtype = "float64",
): Params {
  const rng = new Rng(seed);
  const out: Params = {};
  for (const [n, { shape }] of Object.entries(shapes)) {
    const a = rng.fillNormal(new Float64Array(shape.reduce((x, y) => x * y, 1)), 0.3);
    if (norm.test(n)) { for (let i = 0; i < a.length; i++) a[i] += 1; }
    out[n] = dtype === "float32" ? Float32Array.from(a) : a;
  }
  return out;
}

/** A family's forward pass as the helpers below call it. */
export type Forward = (
  g: Graph,
  params: Record<string, Value>,
  tokens: Value,
  mask: Value,
) => { logits: Value; hidden: Value };

/** What a {@link forwardSession} run returns, each flat in row-major order. */
export interface ForwardRun {
  /** `[B, T, V]`. */
  logits: Float32Array | Float64Array;
  /** `[B, T, d]`. */
  hidden: Float32Array | Float64Array;
  /** `[B, T]`: log-probabilities of the targets (only with `logprobs: true`). */
  logprobs?: Float32Array | Float64Array;
}

/**
 * A compiled forward graph: params (inputs named as `shapes`, of `dtype`) + int64 tokens and
 * mask `[B, T]` -> logits and hidden states (and, with `logprobs`, the token log-probabilities
 * of int64 targets `[B, T]`). The returned function runs it on one batch; `targets` default to
 * the tokens, and float32 graphs get the params rounded to float32.
 */
export async function forwardSession(
  name: string,
  shapes: Shapes,
  dtype: Dtype,
  forward: Forward,
  opts: { logprobs?: boolean } = {},
): Promise<
  (p: Params, tokens: number[][], mask: number[][], targets?: number[][]) => Promise<ForwardRun>
> {
  const g = new Graph(name);
  const params = Object.fromEntries(
    Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
  );
  const tokens = g.input("tokens", "int64", ["B", "T"]);
  const mask = g.input("mask", "int64", ["B", "T"]);
  const targets = opts.logprobs ? g.input("targets", "int64", ["B", "T"]) : undefined;
  const { logits, hidden } = forward(g, params, tokens, mask);
  g.output(logits, "logits");
  g.output(hidden, "hidden");
  if (targets) g.output(tokenLogprobs(g, logits, targets), "logprobs");
  const session = await compile(g);
  return async (p, tok, m, tgt = tok) => {
    const B = tok.length, T = tok[0].length;
    const feeds: Record<string, Tensor> = {
      tokens: tensor("int64", [B, T], tok.flat()),
      mask: tensor("int64", [B, T], m.flat()),
    };
    if (targets) feeds.targets = tensor("int64", [B, T], tgt.flat());
    for (const [n, { shape }] of Object.entries(shapes)) {
      feeds[n] = tensor(dtype, shape, dtype === "float32" ? Float32Array.from(p[n]) : p[n]);
    }
    const out = await session.run(feeds);
    const read = (k: string) => out[k].data as Float32Array | Float64Array;
    return {
      logits: read("logits"),
      hidden: read("hidden"),
      ...(targets ? { logprobs: read("logprobs") } : {}),
    };
  };
}

/**
 * Central finite differences of a tiny model's masked mean token NLL (B = 2, T = 5, row 1
 * left-padded, so masking, position ids and the fully-masked rows are differentiated) against
 * the graph's gradients w.r.t. every parameter. `spec` sets how a parameter is sampled
 * (default: gradcheck's, magnitudes 0.1..1.5, i.e. far from init). Returns the largest relative
 * error and the parameter it was found at.
 */
export async function nllGradcheck(
  shapes: Shapes,
  forward: Forward,
  spec: (name: string, shape: number[]) => InputSpec = (_, shape) => ({ shape }),
): Promise<{ maxRelError: number; worst: string }> {
  const entries = Object.entries(shapes);
  const B = 2, T = 5;
  const { maxRelError, perInput } = await gradcheck(
    (g, xs) => {
      const params = Object.fromEntries(entries.map(([n], i) => [n, xs[i]]));
      const [tokens, m, targets] = xs.slice(entries.length);
      const { logits } = forward(g, params, tokens, m);
      const w = g.cast(m, "float64");
      const nll = g.neg(g.reduceSum(g.mul(tokenLogprobs(g, logits, targets), w)));
      return g.div(nll, g.reduceSum(w));
    },
    [
      ...entries.map(([n, { shape }]) => spec(n, shape)),
      { shape: ["B", "T"], feed: [B, T], ints: [3, 10, 0, 3, 7, 4, 4, 1, 9, 2] },
      { shape: ["B", "T"], feed: [B, T], ints: [1, 1, 1, 1, 1, 0, 0, 1, 1, 1] },
      { shape: ["B", "T"], feed: [B, T], ints: [10, 0, 3, 7, 5, 0, 1, 9, 2, 6] },
    ],
  );
  const worst = entries.map(([n], i) => [n, perInput[i]] as const)
    .sort((a, b) => b[1] - a[1])[0][0];
  return { maxRelError, worst };
}

/** A small Llama-family config (2 layers, GQA 4/2, headDim 4, no flags); `over` changes fields. */
export function llamaCfg(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    family: "llama",
    modelType: "llama",
    vocabSize: 40,
    hiddenSize: 16,
    intermediateSize: 24,
    nLayer: 2,
    nHead: 4,
    nKvHead: 2,
    headDim: 4,
    maxPositions: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    qkNorm: false,
    tieWordEmbeddings: false,
    ...over,
  };
}

/** Runs `fn` on a fresh temp folder named with `prefix`, removed afterwards. */
export async function withTmp(
  prefix: string,
  fn: (root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}
