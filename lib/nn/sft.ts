/**
 * Supervised fine-tuning (SFT) of a GPT policy: token cross entropy on the RESPONSE tokens of
 * (prompt, response) pairs only. Prompt tokens are context, never targets; padding is neither.
 *
 * Layout of a batch ({@link makeSftBatch}): each row is `prompt ++ response`, padded to the
 * longest row on the left or on the right (`padding`). Position ids follow the attention mask
 * (gpt.ts: `cumsum(mask) - 1`), so both layouts give the same loss up to float rounding. The
 * target at column t is the token at column t + 1; it is scored (weight 1 / #scored tokens in
 * the batch) exactly when that token is a response token, so the loss is the mean NLL per
 * response token of the batch. Targets at unscored columns are `padTokenId` and do not matter:
 * their weight is 0.
 *
 * Training runs through the engine's {@link Trainer} (forward, backward, clip and AdamW in
 * one ONNX call): {@link sftSpec} is the step's spec, {@link SftTrainer} drives it from token
 * pairs, and {@link evaluateSft} measures the held-out mean NLL per response token with a
 * forward-only session.
 *
 * @example
 * ```ts
 * const { train, heldOut } = makeCorpus({ seed: 1 });
 * const sft = await SftTrainer.create(cfg, initGpt(cfg, new Rng(1), "float32"));
 * const losses = await sft.fit(encodePairs(train), { steps: 300, batchSize: 16, rng: new Rng(2) });
 * const { meanNll } = await evaluateSft({ cfg, params: sft.paramTensors() }, encodePairs(heldOut));
 * ```
 * @module
 */
import { type DType, Graph, type Shape } from "../onnx/graph.ts";
import { adamw, type Optimizer } from "../onnx/optim.ts";
import { compile, type SessionOptions, type Tensor, tensor } from "../onnx/session.ts";
import { processSessions } from "../onnx/session_cache.ts";
import { Trainer, type TrainStepSpec } from "../onnx/train.ts";
import { type FlatLayout, flattenSpec, packFlat, unpackFlat } from "../onnx/flat.ts";
import type { Rng } from "../rng.ts";
import type { TokenPair } from "./corpus.ts";
import { tokenLogprobs } from "./gpt.ts";
import { type DecoderConfig, decoderForward, decoderShapes } from "./decoder.ts";
import type { FloatArray, GptPolicy } from "./sample.ts";
import { BYTE_EOS_ID } from "./tokenizer.ts";

/** Where a batch's padding goes. */
export type PaddingSide = "left" | "right";

/** Options of {@link makeSftBatch}. */
export interface SftBatchOptions {
  /** Token id of padding (masked out of attention and loss; its value does not matter). */
  padTokenId?: number;
  /** Pad on the left (prompts end-aligned, as for generation) or the right. Default right. */
  padding?: PaddingSide;
}

/** A batch of (prompt, response) rows laid out for {@link sftSpec}, `[rows, width]` row-major. */
export interface SftBatch {
  rows: number;
  /** Columns: the longest prompt + response. */
  width: number;
  /** Input tokens (padding = padTokenId). */
  tokens: BigInt64Array;
  /** Attention mask: 1 on prompt and response tokens, 0 on padding. */
  mask: BigInt64Array;
  /** Next-token targets: token t + 1 where it is a response token, else padTokenId. */
  targets: BigInt64Array;
  /** 1 where the target is scored (a response token), else 0. */
  scored: Uint8Array;
  /** Loss weights: `scored / count`, so Σ weights · NLL is the mean over response tokens. */
  weights: Float64Array;
  /** Number of scored tokens (Σ response lengths). */
  count: number;
}

/**
 * Lay out `examples` as one batch (see the module doc). Every prompt and response needs at
 * least one token (the first response token is predicted from the last prompt token).
 *
 * @example
 * ```ts
 * const b = makeSftBatch([{ prompt: [5, 6], response: [7, 256] }, { prompt: [9], response: [8] }], {
 *   padTokenId: 256,
 *   padding: "left",
 * });
 * // tokens  [5, 6, 7, 256 | 256, 256, 9, 8]   (row 0's last token is EOS, row 1 is left-padded)
 * // scored  [0, 1, 1, 0   | 0,   0,   1, 0]   (targets 7, 256 and 8)
 * ```
 */
export function makeSftBatch(
  examples: readonly TokenPair[],
  opts: SftBatchOptions = {},
): SftBatch {
  const pad = opts.padTokenId ?? BYTE_EOS_ID, side = opts.padding ?? "right";
  if (side !== "left" && side !== "right") {
    throw new RangeError(`makeSftBatch: padding must be "left" or "right", got ${side}`);
  }
  const rows = examples.length;
  if (rows === 0) throw new RangeError("makeSftBatch: no examples");
  examples.forEach((e, i) => {
    if (e.prompt.length === 0) throw new RangeError(`makeSftBatch: example ${i}: empty prompt`);
    if (e.response.length === 0) {
      throw new RangeError(`makeSftBatch: example ${i}: empty response`);
    }
  });
  const width = Math.max(...examples.map((e) => e.prompt.length + e.response.length));
  const n = rows * width;
  const tokens = new BigInt64Array(n).fill(BigInt(pad)), mask = new BigInt64Array(n);
  const targets = new BigInt64Array(n).fill(BigInt(pad)), scored = new Uint8Array(n);
  let count = 0;
  examples.forEach((e, b) => {
    const seq = [...e.prompt, ...e.response];
    const off = b * width + (side === "left" ? width - seq.length : 0);
    seq.forEach((t, s) => {
      tokens[off + s] = BigInt(t);
      mask[off + s] = 1n;
      if (s >= e.prompt.length) { // token s is a response token: the target of column s - 1
        targets[off + s - 1] = BigInt(t);
        scored[off + s - 1] = 1;
        count++;
      }
    });
  });
  const weights = Float64Array.from(scored, (s) => s / count);
  return { rows, width, tokens, mask, targets, scored, weights, count };
}

/** The batch inputs of the SFT step (and of the evaluation graph). */
function batchInputs(dtype: "float32" | "float64"): Record<string, { dtype: DType; shape: Shape }> {
  return {
    tokens: { dtype: "int64", shape: ["B", "T"] },
    mask: { dtype: "int64", shape: ["B", "T"] },
    targets: { dtype: "int64", shape: ["B", "T"] },
    weights: { dtype, shape: ["B", "T"] },
  };
}

/** Options of {@link sftSpec}. */
export interface SftSpecOptions {
  /** Parameter dtype (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  /** Optimizer (default AdamW). */
  optimizer?: Optimizer;
  /** Steps fused per call (default 1). */
  fuse?: number;
}

/**
 * The SFT training step: `loss = -Σ weights · log π(target)` over the batch, i.e. the mean NLL
 * per response token when `weights` come from {@link makeSftBatch}.
 *
 * @example
 * ```ts
 * const trainer = await Trainer.create(sftSpec(cfg), initGpt(cfg, new Rng(1), "float32"));
 * ```
 */
export function sftSpec(cfg: DecoderConfig, opts: SftSpecOptions = {}): TrainStepSpec {
  const dtype = opts.dtype ?? "float32";
  return {
    dtype,
    params: decoderShapes(cfg),
    batch: batchInputs(dtype),
    loss: (g, p, b) => {
      const { logits } = decoderForward(g, cfg, p, b.tokens, b.mask);
      const lp = tokenLogprobs(g, logits, b.targets);
      return { loss: g.neg(g.reduceSum(g.mul(lp, b.weights))) };
    },
    optimizer: opts.optimizer ?? adamw,
    fuse: opts.fuse,
  };
}

/** The feeds of a batch for a graph built from {@link batchInputs}. */
function batchFeeds(b: SftBatch, dtype: "float32" | "float64"): Record<string, Tensor> {
  const shape = [b.rows, b.width];
  return {
    tokens: tensor("int64", shape, b.tokens),
    mask: tensor("int64", shape, b.mask),
    targets: tensor("int64", shape, b.targets),
    weights: tensor(dtype, shape, dtype === "float64" ? b.weights : Float32Array.from(b.weights)),
  };
}

/** Options of {@link SftTrainer.create}. */
export interface SftTrainerOptions extends SftSpecOptions, SftBatchOptions {
  /** Session options (device, threads). */
  session?: SessionOptions;
  /** Default hyperparameters of every step (lr, weight_decay, max_grad_norm, ...). */
  hparams?: Record<string, number>;
  /**
   * Train the parameters as one flat vector (lib/onnx/flat.ts): same math, ~400 fewer graph
   * nodes in the optimizer, faster steps. Default true. The Trainer then holds one parameter
   * `"flat"`; {@link SftTrainer.params} / {@link SftTrainer.paramTensors} still give them by name.
   */
  flatParams?: boolean;
}

/** Options of {@link SftTrainer.fit}. */
export interface SftFitOptions {
  /** Optimizer steps. */
  steps: number;
  /** Examples per step. */
  batchSize: number;
  /** Order of the examples: a fresh permutation each epoch, batches cut from it in order. */
  rng: Rng;
  /** Hyperparameters for these steps (override the trainer's defaults). */
  hparams?: Record<string, number>;
  /** Called after each step with its index (0-based) and loss. */
  onStep?: (step: number, loss: number) => void;
}

/**
 * SFT on token pairs through the engine's {@link Trainer}: one ONNX call per optimizer step.
 *
 * @example
 * ```ts
 * const sft = await SftTrainer.create(cfg, init, { hparams: { lr: 3e-3 }, padding: "left" });
 * const loss = await sft.step(examples.slice(0, 16)); // mean NLL per response token, before the update
 * ```
 */
export class SftTrainer {
  private constructor(
    readonly cfg: DecoderConfig,
    /** The engine's trainer (one parameter "flat" unless `flatParams: false`). */
    readonly trainer: Trainer,
    private readonly opts: SftTrainerOptions,
    private readonly layout?: FlatLayout,
  ) {}

  /** Compile the SFT step for `cfg` and start from `init` (copied). */
  static async create(
    cfg: DecoderConfig,
    init: Record<string, FloatArray>,
    opts: SftTrainerOptions = {},
  ): Promise<SftTrainer> {
    const spec = sftSpec(cfg, opts);
    if (opts.flatParams === false) {
      return new SftTrainer(cfg, await Trainer.create(spec, init, opts.session), opts);
    }
    const flat = flattenSpec(spec);
    const start = { flat: packFlat(flat.layout, init, spec.dtype) };
    const trainer = await Trainer.create(flat.spec, start, opts.session);
    return new SftTrainer(cfg, trainer, opts, flat.layout);
  }

  /** One optimizer step on a ready-made batch; returns its loss (before the update). */
  async stepBatch(batch: SftBatch, hparams: Record<string, number> = {}): Promise<number> {
    const dtype = this.trainer.spec.dtype;
    const r = await this.trainer.step(batchFeeds(batch, dtype), {
      ...this.opts.hparams,
      ...hparams,
    });
    return r.loss[0];
  }

  /** One optimizer step on `examples` (one batch); returns its loss (before the update). */
  step(examples: readonly TokenPair[], hparams: Record<string, number> = {}): Promise<number> {
    return this.stepBatch(makeSftBatch(examples, this.opts), hparams);
  }

  /**
   * `steps` optimizer steps over `examples` in random order (epochs of a fresh permutation
   * from `rng`; a batch never spans two epochs, so every batch has `batchSize` examples when
   * there are at least that many). Returns the loss of every step.
   */
  async fit(examples: readonly TokenPair[], o: SftFitOptions): Promise<number[]> {
    if (!Number.isInteger(o.steps) || o.steps < 0) {
      throw new RangeError(`SftTrainer.fit: steps must be an integer >= 0, got ${o.steps}`);
    }
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
      throw new RangeError(`SftTrainer.fit: batchSize must be an integer >= 1, got ${o.batchSize}`);
    }
    if (examples.length === 0) throw new RangeError("SftTrainer.fit: no examples");
    const bs = Math.min(o.batchSize, examples.length);
    const losses: number[] = [];
    let order: number[] = [], at = 0;
    for (let s = 0; s < o.steps; s++) {
      if (at + bs > order.length) [order, at] = [o.rng.permutation(examples.length), 0];
      const batch = order.slice(at, at + bs).map((i) => examples[i]);
      at += bs;
      const loss = await this.step(batch, o.hparams);
      losses.push(loss);
      o.onStep?.(s, loss);
    }
    return losses;
  }

  /** The live parameter tensors by name (no copy; they change at the next step). */
  paramTensors(): Record<string, Tensor> {
    if (!this.layout) return this.trainer.paramTensors();
    const { layout } = this, dtype = this.trainer.spec.dtype;
    return Object.fromEntries(
      Object.entries(this.params()).map(([n, v]) => [
        n,
        tensor(dtype, layout.shapes[layout.names.indexOf(n)], v),
      ]),
    );
  }

  /** Current parameter values by name (views of the live buffers: copy before the next step). */
  params(): Record<string, FloatArray> {
    const p = this.trainer.params();
    return this.layout ? unpackFlat(this.layout, p[this.layout.name]) : p;
  }
}

// ---- evaluation -----------------------------------------------------------------

/** What {@link evaluateSft} returns. */
export interface SftEval {
  /** Mean NLL per response token (nats): sumNll / tokens. */
  meanNll: number;
  /** Σ NLL over every response token (nats). */
  sumNll: number;
  /** Response tokens scored. */
  tokens: number;
}

/** Options of {@link evaluateSft}. */
export interface SftEvalOptions extends SftBatchOptions {
  /** Examples per forward call (default 64). */
  batchSize?: number;
  /** Session options (device, threads). */
  session?: SessionOptions;
}

/**
 * The SFT evaluation graph's session by config, dtype and options, memoised in the options'
 * session cache (the trial's own, or the process's outside a trial): an immutable compiled
 * graph with no weights in it (they are inputs).
 */
function evalSession(cfg: DecoderConfig, dtype: "float32" | "float64", opts: SessionOptions) {
  return (opts.sessions ?? processSessions).memo(
    `sft_eval|${JSON.stringify([cfg, dtype, opts])}`,
    () => {
      const g = new Graph("sft_eval");
      const params = Object.fromEntries(
        Object.entries(decoderShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
      );
      const b = Object.fromEntries(
        Object.entries(batchInputs(dtype)).map(([n, v]) => [n, g.input(n, v.dtype, v.shape)]),
      );
      const { logits } = decoderForward(g, cfg, params, b.tokens, b.mask);
      g.output(g.neg(g.reduceSum(g.mul(tokenLogprobs(g, logits, b.targets), b.weights))), "nll");
      return compile(g, opts);
    },
  );
}

/**
 * Held-out mean NLL per response token of a policy on `examples` (forward only, batched;
 * padding and prompt targets are not scored). The sum is accumulated in float64.
 *
 * @example
 * ```ts
 * const { meanNll, tokens } = await evaluateSft({ cfg, params }, encodePairs(heldOut));
 * ```
 */
export async function evaluateSft(
  policy: GptPolicy,
  examples: readonly TokenPair[],
  opts: SftEvalOptions = {},
): Promise<SftEval> {
  if (examples.length === 0) throw new RangeError("evaluateSft: no examples");
  const { cfg } = policy;
  const bs = opts.batchSize ?? 64;
  const feedsP: Record<string, Tensor> = {};
  let dtype: "float32" | "float64" | undefined;
  for (const [n, { shape }] of Object.entries(decoderShapes(cfg))) {
    const p = policy.params[n];
    if (!p) throw new Error(`evaluateSft: missing parameter "${n}"`);
    const t = ArrayBuffer.isView(p)
      ? tensor(p instanceof Float64Array ? "float64" : "float32", shape, p)
      : p;
    if (dtype && t.type !== dtype) throw new Error("evaluateSft: parameters of mixed dtypes");
    dtype = t.type as "float32" | "float64";
    feedsP[n] = t;
  }
  const session = await evalSession(cfg, dtype!, opts.session ?? {});
  let sumNll = 0, tokens = 0;
  for (let i = 0; i < examples.length; i += bs) {
    const b = makeSftBatch(examples.slice(i, i + bs), opts);
    b.weights.set(b.scored); // 0/1: the graph returns the batch's NLL sum
    const out = await session.run({ ...feedsP, ...batchFeeds(b, dtype!) });
    sumNll += Number((out.nll.data as Float32Array)[0]);
    tokens += b.count;
  }
  return { meanNll: sumNll / tokens, sumNll, tokens };
}
