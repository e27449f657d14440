/**
 * Reward-model stage of RLHF: a GPT trunk plus a scalar reward head (`r_head.*`, read at each
 * row's last real token, {@link rewardHead}) trained on preference pairs with the
 * Bradley–Terry loss
 *
 *     L = mean over pairs of −log σ(r(prompt ++ chosen) − r(prompt ++ rejected)),
 *
 * computed as `softplus(−d) = relu(−d) + log(1 + exp(−|d|))` so it never overflows. Training
 * runs through the engine's {@link Trainer} (forward, backward, clip and AdamW in one ONNX call,
 * all parameters as one flat vector by default). {@link evaluatePreferences} gives the held-out
 * preference accuracy (share of pairs with r_chosen > r_rejected; ties count as wrong),
 * {@link scoreSequences} scores any batch of token sequences with one forward-only session.
 *
 * Batch layout ({@link makePreferenceBatch}): the N chosen rows then the N rejected rows, each
 * `prompt ++ response`, right-padded to the widest row. Position ids follow the attention mask
 * (gpt.ts), so the padding side does not change any score.
 *
 * Files: `saveRewardModel` / `loadAnyRewardModel` (lib/nn/reward_folder.ts, re-exported here)
 * write and read a reward model as a Hugging Face folder in its family's own layout.
 *
 * @example
 * ```ts
 * const init = { ...sftParams, ...initHead(cfg.nEmbd, new Rng(1), "float32", { name: REWARD_HEAD }) };
 * const rm = await RewardModelTrainer.create(cfg, init, { hparams: { lr: 1e-3 } });
 * await rm.fit(trainPairs, { steps: 300, batchSize: 16, rng: new Rng(2) });
 * const { accuracy } = await evaluatePreferences({ cfg, params: rm.params() }, heldOutPairs);
 * await saveRewardModel("out/rm", { cfg, params: rm.params() });
 * ```
 * @module
 */
import type * as ort from "onnxruntime-node";
import { Graph, type Value } from "../onnx/graph.ts";
import { adamw, type Optimizer } from "../onnx/optim.ts";
import { compile, type SessionOptions, tensor } from "../onnx/session.ts";
import { processSessions } from "../onnx/session_cache.ts";
import { Trainer, type TrainStepSpec } from "../onnx/train.ts";
import { type FlatLayout, flattenSpec, packFlat, unpackFlat } from "../onnx/flat.ts";
import type { Rng } from "../rng.ts";
import { type DecoderConfig, decoderHidden, hiddenSize, trunkShapes } from "../nn/decoder.ts";
import { headNames, headShapes, nonPadMask, REWARD_HEAD, rewardHead } from "../nn/heads.ts";
import type { FloatArray } from "../nn/sample.ts";
import type { RewardModel } from "../nn/reward_folder.ts";
export {
  loadAnyRewardModel,
  type LoadedRewardModel,
  loadRewardModel,
  type RewardModel,
  saveRewardModel,
  type SaveRewardModelOptions,
} from "../nn/reward_folder.ts";

/** One preference: for `prompt`, `chosen` is preferred over `rejected` (token ids). */
export interface PreferencePair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** Shapes of a reward model's parameters: the GPT trunk's and the reward head's. */
export function rewardModelShapes(cfg: DecoderConfig): Record<string, { shape: number[] }> {
  return { ...trunkShapes(cfg), ...headShapes(hiddenSize(cfg), REWARD_HEAD) };
}

/** Rows laid out for the reward model: `[rows, width]` right-padded token ids and mask. */
export interface SequenceBatch {
  rows: number;
  width: number;
  tokens: BigInt64Array;
  mask: BigInt64Array;
}

/**
 * Right-pad token sequences (each ≥ 1 token) into one batch.
 *
 * @example
 * ```ts
 * makeSequenceBatch([[5, 6, 7], [8]], 0).tokens; // [5, 6, 7, 8, 0, 0]
 * ```
 */
export function makeSequenceBatch(seqs: readonly number[][], padTokenId = 0): SequenceBatch {
  if (seqs.length === 0) throw new RangeError("makeSequenceBatch: no sequences");
  seqs.forEach((s, i) => {
    if (s.length === 0) throw new RangeError(`makeSequenceBatch: sequence ${i} is empty`);
  });
  const rows = seqs.length, width = Math.max(...seqs.map((s) => s.length));
  const tokens = new BigInt64Array(rows * width).fill(BigInt(padTokenId));
  const mask = new BigInt64Array(rows * width);
  seqs.forEach((s, r) =>
    s.forEach((t, j) => {
      tokens[r * width + j] = BigInt(t);
      mask[r * width + j] = 1n;
    })
  );
  return { rows, width, tokens, mask };
}

/**
 * A Bradley–Terry batch: the chosen sequences (`prompt ++ chosen`) in rows 0..N−1, the rejected
 * ones (`prompt ++ rejected`) in rows N..2N−1.
 */
export function makePreferenceBatch(
  pairs: readonly PreferencePair[],
  padTokenId = 0,
): SequenceBatch {
  if (pairs.length === 0) throw new RangeError("makePreferenceBatch: no pairs");
  return makeSequenceBatch(
    [
      ...pairs.map((p) => [...p.prompt, ...p.chosen]),
      ...pairs.map((p) => [...p.prompt, ...p.rejected]),
    ],
    padTokenId,
  );
}

/** Per pair `d = r_chosen − r_rejected` from rewards `[2N]` laid out as {@link makePreferenceBatch}. */
function pairMargins(g: Graph, r: Value): Value {
  const halves = g.reshape(r, g.ints([2, -1]), [2, "N"]); // [2, N]
  const pick = (i: number) => g.gather(halves, g.scalar(i, "int64"), 0); // [N]
  return g.sub(pick(0), pick(1));
}

/** −log σ(d) = softplus(−d), overflow-free: relu(−d) + log(1 + exp(−|d|)). */
export function bradleyTerryLoss(g: Graph, d: Value): Value {
  return g.add(g.relu(g.neg(d)), g.log(g.add(g.exp(g.neg(g.abs(d))), 1)));
}

/** Options of {@link rewardModelSpec}. */
export interface RewardModelSpecOptions {
  /** Parameter dtype (default float32). */
  dtype?: "float32" | "float64";
  /** Optimizer (default AdamW). */
  optimizer?: Optimizer;
}

/**
 * The reward-model training step: Bradley–Terry loss over a batch from
 * {@link makePreferenceBatch}; metrics `accuracy` (share of pairs with d > 0) and `margin`
 * (mean d).
 */
export function rewardModelSpec(
  cfg: DecoderConfig,
  opts: RewardModelSpecOptions = {},
): TrainStepSpec {
  const dtype = opts.dtype ?? "float32";
  return {
    dtype,
    params: rewardModelShapes(cfg),
    batch: {
      tokens: { dtype: "int64", shape: ["B2", "S"] },
      mask: { dtype: "int64", shape: ["B2", "S"] },
    },
    loss: (g, p, b) => {
      const hidden = decoderHidden(g, cfg, p, b.tokens, b.mask);
      const d = pairMargins(g, rewardHead(g, hidden, b.mask, p));
      return {
        loss: g.reduceMean(bradleyTerryLoss(g, d)),
        metrics: {
          accuracy: g.reduceMean(g.cast(g.greater(d, 0), dtype)),
          margin: g.reduceMean(d),
        },
      };
    },
    optimizer: opts.optimizer ?? adamw,
  };
}

/** Options of {@link RewardModelTrainer.create}. */
export interface RewardModelTrainerOptions extends RewardModelSpecOptions {
  /** Session options (device, threads). */
  session?: SessionOptions;
  /** Default hyperparameters of every step (lr, weight_decay, max_grad_norm, ...). */
  hparams?: Record<string, number>;
  /** Padding token of the batches (masked; default 0). */
  padTokenId?: number;
  /** Train all parameters as one flat vector (lib/onnx/flat.ts; same math, faster). Default true. */
  flatParams?: boolean;
}

/** Options of {@link RewardModelTrainer.fit}. */
export interface RewardModelFitOptions {
  /** Optimizer steps. */
  steps: number;
  /** Pairs per step. */
  batchSize: number;
  /** Order of the pairs: a fresh permutation each epoch, batches cut from it in order. */
  rng: Rng;
  /** Hyperparameters for these steps. */
  hparams?: Record<string, number>;
  /** After each step: its index (0-based), loss and batch accuracy (before the update). */
  onStep?: (step: number, loss: number, accuracy: number) => void;
}

/**
 * Bradley–Terry training of a reward model through the engine's {@link Trainer}.
 *
 * @example
 * ```ts
 * const t = await RewardModelTrainer.create(cfg, init, { hparams: { lr: 1e-3, max_grad_norm: 1 } });
 * const { loss, accuracy } = await t.step(pairs.slice(0, 16));
 * ```
 */
export class RewardModelTrainer {
  private constructor(
    readonly cfg: DecoderConfig,
    /** The engine's trainer (one parameter "flat" unless `flatParams: false`). */
    readonly trainer: Trainer,
    private readonly opts: RewardModelTrainerOptions,
    private readonly layout?: FlatLayout,
  ) {}

  /** Compile the step and start from `init` (trunk + `r_head.*`, copied). */
  static async create(
    cfg: DecoderConfig,
    init: Record<string, FloatArray>,
    opts: RewardModelTrainerOptions = {},
  ): Promise<RewardModelTrainer> {
    const spec = rewardModelSpec(cfg, opts);
    for (const n of Object.keys(spec.params)) {
      if (!init[n]) throw new Error(`RewardModelTrainer: init lacks parameter "${n}"`);
    }
    if (opts.flatParams === false) {
      return new RewardModelTrainer(cfg, await Trainer.create(spec, init, opts.session), opts);
    }
    const flat = flattenSpec(spec);
    const trainer = await Trainer.create(
      flat.spec,
      { flat: packFlat(flat.layout, init, spec.dtype) },
      opts.session,
    );
    return new RewardModelTrainer(cfg, trainer, opts, flat.layout);
  }

  /** One optimizer step on `pairs`; loss and accuracy are the batch's before the update. */
  async step(
    pairs: readonly PreferencePair[],
    hparams: Record<string, number> = {},
  ): Promise<{ loss: number; accuracy: number; margin: number }> {
    const b = makePreferenceBatch(pairs, this.opts.padTokenId ?? 0);
    const shape = [b.rows, b.width];
    const r = await this.trainer.step(
      { tokens: tensor("int64", shape, b.tokens), mask: tensor("int64", shape, b.mask) },
      { ...this.opts.hparams, ...hparams },
    );
    return { loss: r.loss[0], accuracy: r.metrics.accuracy[0], margin: r.metrics.margin[0] };
  }

  /**
   * `steps` optimizer steps over `pairs` in random order (epochs of a fresh permutation from
   * `rng`; a batch never spans two epochs). Returns every step's loss.
   */
  async fit(pairs: readonly PreferencePair[], o: RewardModelFitOptions): Promise<number[]> {
    if (!Number.isInteger(o.steps) || o.steps < 0) {
      throw new RangeError(`RewardModelTrainer.fit: steps must be an integer >= 0, got ${o.steps}`);
    }
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
      throw new RangeError(
        `RewardModelTrainer.fit: batchSize must be an integer >= 1, got ${o.batchSize}`,
      );
    }
    if (pairs.length === 0) throw new RangeError("RewardModelTrainer.fit: no pairs");
    const bs = Math.min(o.batchSize, pairs.length);
    const losses: number[] = [];
    let order: number[] = [], at = 0;
    for (let s = 0; s < o.steps; s++) {
      if (at + bs > order.length) [order, at] = [o.rng.permutation(pairs.length), 0];
      const batch = order.slice(at, at + bs).map((i) => pairs[i]);
      at += bs;
      const r = await this.step(batch, o.hparams);
      losses.push(r.loss);
      o.onStep?.(s, r.loss, r.accuracy);
    }
    return losses;
  }

  /** Current parameter values by name (views of the live buffers: copy before the next step). */
  params(): Record<string, FloatArray> {
    const p = this.trainer.params();
    return this.layout ? unpackFlat(this.layout, p[this.layout.name]) : p;
  }
}

// ---- inference --------------------------------------------------------------------

/** Options of {@link scoreSequences} and {@link evaluatePreferences}. */
export interface RewardScoreOptions {
  /** Rows per forward call (default 64). */
  batchSize?: number;
  /** Padding token (masked; default 0). */
  padTokenId?: number;
  /** Session options (device, threads). */
  session?: SessionOptions;
}

/**
 * The scoring graph's session by config, dtype, options and pad id, memoised in the options'
 * session cache (the trial's own, or the process's outside a trial): an immutable compiled
 * graph with no weights in it (they are inputs).
 */
function scoreSession(
  cfg: DecoderConfig,
  dtype: "float32" | "float64",
  opts: SessionOptions,
  readAtPadId?: number,
) {
  const key = JSON.stringify([cfg, dtype, opts, readAtPadId ?? null]);
  return (opts.sessions ?? processSessions).memo(`reward_score|${key}`, () => {
    const g = new Graph("reward_model");
    const params = Object.fromEntries(
      Object.entries(rewardModelShapes(cfg)).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    );
    const tokens = g.input("tokens", "int64", ["B", "S"]);
    const mask = g.input("mask", "int64", ["B", "S"]);
    const hidden = decoderHidden(g, cfg, params, tokens, mask);
    // A Hub classifier reads its score at the rightmost token that is not the pad id (see
    // nonPadMask); Proxima's reward models at the last real token of the mask.
    const at = readAtPadId === undefined ? mask : nonPadMask(g, tokens, readAtPadId);
    g.output(rewardHead(g, hidden, at, params), "reward");
    return compile(g, opts);
  });
}

/** Feeds of a reward model's parameters (typed arrays wrapped, tensors passed as they are). */
function paramFeeds(rm: RewardModel): {
  feeds: Record<string, ort.Tensor>;
  dtype: "float32" | "float64";
} {
  const feeds: Record<string, ort.Tensor> = {};
  let dtype: "float32" | "float64" | undefined;
  for (const [n, { shape }] of Object.entries(rewardModelShapes(rm.cfg))) {
    const p = rm.params[n];
    if (!p) throw new Error(`reward model: missing parameter "${n}"`);
    const t = ArrayBuffer.isView(p)
      ? tensor(p instanceof Float64Array ? "float64" : "float32", shape, p)
      : p;
    if (dtype && t.type !== dtype) throw new Error("reward model: parameters of mixed dtypes");
    dtype = t.type as "float32" | "float64";
    feeds[n] = t;
  }
  return { feeds, dtype: dtype! };
}

/**
 * The reward of each token sequence (e.g. `prompt ++ response`, read at its last token), as
 * float64; forward only, batched. The parameters are only read.
 *
 * @example
 * ```ts
 * const r = await scoreSequences(rm, [[...prompt, ...response, EOS]]); // Float64Array [1]
 * ```
 */
export async function scoreSequences(
  rm: RewardModel,
  seqs: readonly number[][],
  opts: RewardScoreOptions = {},
): Promise<Float64Array> {
  const out = new Float64Array(seqs.length);
  if (seqs.length === 0) return out;
  const { feeds, dtype } = paramFeeds(rm);
  const session = await scoreSession(rm.cfg, dtype, opts.session ?? {}, rm.readAtPadId);
  const bs = opts.batchSize ?? 64;
  for (let i = 0; i < seqs.length; i += bs) {
    const b = makeSequenceBatch(seqs.slice(i, i + bs), opts.padTokenId ?? 0);
    const shape = [b.rows, b.width];
    const r = await session.run({
      ...feeds,
      tokens: tensor("int64", shape, b.tokens),
      mask: tensor("int64", shape, b.mask),
    });
    out.set(r.reward.data as FloatArray, i);
  }
  return out;
}

/** What {@link evaluatePreferences} returns. */
export interface PreferenceEval {
  /** Share of pairs with r_chosen > r_rejected (ties count as wrong). */
  accuracy: number;
  /** Mean Bradley–Terry loss −log σ(d). */
  loss: number;
  /** Mean margin d = r_chosen − r_rejected. */
  margin: number;
  /** Pairs evaluated. */
  pairs: number;
}

/**
 * Held-out preference accuracy and Bradley–Terry loss of a reward model.
 *
 * @example
 * ```ts
 * const { accuracy } = await evaluatePreferences(rm, heldOut); // ≥ 0.8 on `sentiment`
 * ```
 */
export async function evaluatePreferences(
  rm: RewardModel,
  pairs: readonly PreferencePair[],
  opts: RewardScoreOptions = {},
): Promise<PreferenceEval> {
  if (pairs.length === 0) throw new RangeError("evaluatePreferences: no pairs");
  const rc = await scoreSequences(rm, pairs.map((p) => [...p.prompt, ...p.chosen]), opts);
  const rr = await scoreSequences(rm, pairs.map((p) => [...p.prompt, ...p.rejected]), opts);
  let right = 0, loss = 0, margin = 0;
  for (let i = 0; i < pairs.length; i++) {
    const d = rc[i] - rr[i];
    if (d > 0) right++;
    loss += Math.max(-d, 0) + Math.log1p(Math.exp(-Math.abs(d)));
    margin += d;
  }
  const n = pairs.length;
  return { accuracy: right / n, loss: loss / n, margin: margin / n, pairs: n };
}

/**
 * Fold an affine normalisation into the reward head: the returned head scores
 * `(r − mean) / std` (e.g. mean 0, std 1 over the starting policy's samples, as
 * lm-human-preferences normalises its reward model). Returns new head arrays; `params` is not
 * modified.
 */
export function normalizeRewardHead(
  params: Record<string, FloatArray>,
  mean: number,
  std: number,
): Record<string, FloatArray> {
  if (!(std > 0) || !Number.isFinite(mean)) {
    throw new RangeError(
      `normalizeRewardHead: need std > 0 and a finite mean, got ${mean}, ${std}`,
    );
  }
  const n = headNames(REWARD_HEAD);
  const w = params[n.weight], b = params[n.bias];
  if (!w || !b) throw new Error(`normalizeRewardHead: missing "${!w ? n.weight : n.bias}"`);
  const map = (a: FloatArray, f: (x: number) => number): FloatArray =>
    a instanceof Float64Array ? a.map(f) : Float32Array.from(a, f);
  return { [n.weight]: map(w, (x) => x / std), [n.bias]: map(b, (x) => (x - mean) / std) };
}
