/**
 * DPO (Rafailov et al. 2023, "Direct Preference Optimization") and IPO (Azar et al. 2023, "A
 * General Theoretical Paradigm to Understand Learning from Human Preferences") on preference
 * pairs, with a frozen reference policy: offline, no reward model, no value model, no sampling.
 *
 * Per pair, with s(y) = log π(y | x) summed over the response tokens (IPO: averaged over them,
 * as TRL's `loss_type="ipo"` does) and s_ref the same under the reference,
 *
 *     h = (s(chosen) − s_ref(chosen)) − (s(rejected) − s_ref(rejected))
 *     DPO ("sigmoid"): L = −log σ(β·h) = softplus(−β·h)
 *     IPO ("ipo"):     L = (h − 1/(2β))²
 *
 * averaged over the minibatch's pairs. The implicit reward of a response is β·(s − s_ref); its
 * preference accuracy is the share of pairs whose chosen response gets the larger one.
 *
 * The training loop (lib/ppo/offline/loop.ts) has PPO's shape and budget: update u takes the next
 * `pairsPerUpdate` pairs (each a chosen and a rejected response: 2 × pairsPerUpdate responses,
 * what a PPO update of that batch samples), then `epochs` passes of `minibatches` shuffled
 * minibatches over them; metrics.jsonl gets one row per update, checkpoints and the final
 * state are written as {@link trainPpo} writes them, so an LM trial runs either.
 *
 * @example
 * ```ts
 * const { loss } = dpoLoss(g, "sigmoid", { chosen, rejected }, { chosen: rc, rejected: rr }, beta);
 * ```
 * @module
 */
import { z } from "zod";
import type * as ort from "onnxruntime-node";
import type { Graph, Value } from "../onnx/graph.ts";
import { Graph as GraphClass } from "../onnx/graph.ts";
import { adamw } from "../onnx/optim.ts";
import { compile, type Session, type SessionOptions, tensor } from "../onnx/session.ts";
import { Trainer, type TrainStepSpec } from "../onnx/train.ts";
import { type DecoderConfig, decoderForward, decoderShapes } from "../nn/decoder.ts";
import { tokenLogprobs } from "../nn/gpt.ts";
import type { FloatArray } from "../nn/sample.ts";
import type { PreferencePair } from "./reward_model.ts";
import {
  DPO_LOSS_TYPES,
  dpoAveraged,
  dpoLoss,
  type DpoLossType,
  dpoLossTypes,
  type PairLogps,
} from "./dpo_losses.ts";

export { DPO_LOSS_TYPES, dpoAveraged, dpoLoss, type DpoLossType, type PairLogps };
import type { MetricsRow, PpoRunOptions } from "./trainer.ts";
import { offlineLoop } from "./offline/loop.ts";

const positive = (d: string) => z.number().positive().describe(d);

/** The `dpo` section of an LM task's config. */
export const DpoSchema = z.object({
  loss: z.union([z.enum(DPO_LOSS_TYPES), z.array(z.enum(DPO_LOSS_TYPES)).min(1)])
    .default("sigmoid").describe(
      "TRL 1.13 DPOConfig.loss_type, one or a list (summed with loss_weights): sigmoid = DPO, " +
        "−log σ(β·h) (Rafailov et al. 2023); ipo = IPO, (h − 1/(2β))² on per-token mean " +
        "log-ratios (Azar et al. 2023); hinge, robust, nca_pair, bco_pair, sppo_hard, " +
        "apo_zero, apo_down, sigmoid_norm, exo_pair, discopop (lib/ppo/dpo_losses.ts)",
    ),
  loss_weights: z.array(z.number().min(0)).min(1).nullable().default(null).describe(
    "weight of each loss type in `loss` (TRL's loss_weights); null = 1 each",
  ),
  label_smoothing: z.number().min(0).lt(0.5).default(0).describe(
    "ε of the robust and exo_pair losses (TRL's label_smoothing: the assumed share of " +
      "flipped preference labels)",
  ),
  discopop_tau: positive("τ of the discopop loss's mixing σ(βh/τ)").default(0.05),
  beta: positive("β: the implicit reward's scale, β·log π/π_ref (KL strength)").default(0.1),
  lr: positive("AdamW learning rate").default(3e-4),
  lr_anneal: z.boolean().default(false).describe("anneal lr linearly to 0 over the run"),
  epochs: z.number().int().min(1).default(2).describe("passes over each update's pairs"),
  minibatches: z.number().int().min(1).default(4).describe("minibatches per pass"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: positive("global gradient-norm clip").default(1),
}).strict();
export type DpoConfig = z.infer<typeof DpoSchema>;

/** A preference batch: `[2N, S]` rows (chosen then rejected), right-padded. */
export interface PairBatch {
  rows: number;
  width: number;
  tokens: BigInt64Array;
  mask: BigInt64Array;
  /** The token after each position (0 at the last column). */
  targets: BigInt64Array;
  /** 1 where that next token is a response token (what the sequence log-prob sums). */
  respMask: Float64Array;
}

/** Chosen rows 0..N−1 (`prompt ++ chosen`), rejected rows N..2N−1, right-padded with `pad`. */
export function makePairBatch(pairs: readonly PreferencePair[], pad = 0): PairBatch {
  if (pairs.length === 0) throw new RangeError("makePairBatch: no pairs");
  return makeResponseBatch([
    ...pairs.map((p) => ({ prompt: p.prompt, response: p.chosen })),
    ...pairs.map((p) => ({ prompt: p.prompt, response: p.rejected })),
  ], pad);
}

/** One row per `prompt ++ response`, right-padded with `pad` (the layout of {@link PairBatch}). */
export function makeResponseBatch(
  rows: readonly { prompt: readonly number[]; response: readonly number[] }[],
  pad = 0,
): PairBatch {
  if (rows.length === 0) throw new RangeError("makeResponseBatch: no rows");
  rows.forEach((r, i) => {
    if (!r.prompt.length || !r.response.length) {
      throw new RangeError(`makePairBatch: row ${i} has an empty prompt or response`);
    }
  });
  const width = Math.max(...rows.map((r) => r.prompt.length + r.response.length));
  const n = rows.length * width;
  const b: PairBatch = {
    rows: rows.length,
    width,
    tokens: new BigInt64Array(n).fill(BigInt(pad)),
    mask: new BigInt64Array(n),
    targets: new BigInt64Array(n).fill(BigInt(pad)),
    respMask: new Float64Array(n),
  };
  rows.forEach((r, i) => {
    const seq = [...r.prompt, ...r.response];
    seq.forEach((t, s) => {
      b.tokens[i * width + s] = BigInt(t);
      b.mask[i * width + s] = 1n;
      if (s + 1 < seq.length) {
        b.targets[i * width + s] = BigInt(seq[s + 1]);
        if (s + 1 >= r.prompt.length) b.respMask[i * width + s] = 1;
      }
    });
  });
  return b;
}

/** Per row `[B]`: Σ (or mean, `average`) of log π(next token) over the response positions. */
export function sequenceLogps(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  b: Record<"tokens" | "mask" | "targets" | "resp_mask", Value>,
  average = false,
): Value {
  const { logits } = decoderForward(g, cfg, params, b.tokens, b.mask);
  const logp = tokenLogprobs(g, logits, b.targets); // [B, S]
  const sum = g.reduceSum(g.mul(logp, b.resp_mask), [1]);
  return average ? g.div(sum, g.max(g.reduceSum(b.resp_mask, [1]), 1)) : sum;
}

/** First and second half of a `[2N]` vector. */
function halves(g: Graph, x: Value): PairLogps {
  const h = g.reshape(x, g.ints([2, -1]), [2, "N"]);
  const pick = (i: number) => g.gather(h, g.scalar(i, "int64"), 0);
  return { chosen: pick(0), rejected: pick(1) };
}

/**
 * The DPO train step for a decoder: params by name, batch as {@link makePairBatch} +
 * `ref_logp` (sums, or per-token means for a lone "ipo": {@link dpoAveraged}).
 */
export function dpoSpec(
  cfg: DecoderConfig,
  dpo:
    | DpoConfig["loss"]
    | Pick<DpoConfig, "loss" | "loss_weights" | "label_smoothing" | "discopop_tau">,
  dtype: "float32" | "float64" = "float32",
): TrainStepSpec {
  const d = typeof dpo === "string" || Array.isArray(dpo)
    ? { loss: dpo, loss_weights: null, label_smoothing: 0, discopop_tau: 0.05 }
    : dpo;
  const averaged = dpoAveraged(d.loss);
  const needCounts = !averaged &&
    dpoLossTypes(d.loss).some((t) => t === "ipo" || t === "sigmoid_norm");
  return {
    dtype,
    params: decoderShapes(cfg),
    batch: {
      tokens: { dtype: "int64", shape: ["B2", "S"] },
      mask: { dtype: "int64", shape: ["B2", "S"] },
      targets: { dtype: "int64", shape: ["B2", "S"] },
      resp_mask: { dtype, shape: ["B2", "S"] },
      ref_logp: { dtype, shape: ["B2"] },
    },
    hparams: { beta: 0.1 },
    loss: (g, p, b, hp) => {
      const pi = halves(g, sequenceLogps(g, cfg, p, b as never, averaged));
      return dpoLoss(g, d.loss, pi, halves(g, b.ref_logp), hp.beta, {
        ...(d.loss_weights ? { weights: d.loss_weights } : {}),
        ...(needCounts ? { counts: halves(g, g.reduceSum(b.resp_mask, [1])) } : {}),
        labelSmoothing: d.label_smoothing,
        discopopTau: d.discopop_tau,
      });
    },
    optimizer: adamw,
  };
}

/** Batch tensors of a {@link makePairBatch} or {@link makeResponseBatch} batch. */
export function responseFeeds(
  b: PairBatch,
  dtype: "float32" | "float64",
): Record<string, ort.Tensor> {
  const shape = [b.rows, b.width];
  const F = dtype === "float32" ? Float32Array : Float64Array;
  return {
    tokens: tensor("int64", shape, b.tokens),
    mask: tensor("int64", shape, b.mask),
    targets: tensor("int64", shape, b.targets),
    resp_mask: tensor(dtype, shape, F.from(b.respMask)),
  };
}

/**
 * An inference session for sequence log-probs (`seq_logp [B]`) of a plain decoder under given
 * params: the reference's s_ref for training, and either model's for evaluation.
 */
export async function compileSequenceScorer(
  cfg: DecoderConfig,
  opts: { dtype?: "float32" | "float64"; average?: boolean; session?: SessionOptions } = {},
): Promise<
  (params: Record<string, FloatArray | ort.Tensor>, pairs: readonly PreferencePair[]) => Promise<{
    chosen: Float64Array;
    rejected: Float64Array;
  }>
> {
  const dtype = opts.dtype ?? "float32";
  const g = new GraphClass("dpo_seq_logp");
  const shapes = decoderShapes(cfg);
  const params = Object.fromEntries(
    Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
  );
  const b = {
    tokens: g.input("tokens", "int64", ["B2", "S"]),
    mask: g.input("mask", "int64", ["B2", "S"]),
    targets: g.input("targets", "int64", ["B2", "S"]),
    resp_mask: g.input("resp_mask", dtype, ["B2", "S"]),
  };
  g.output(sequenceLogps(g, cfg, params, b, opts.average), "seq_logp");
  const session: Session = await compile(g, opts.session ?? {});
  return async (p, pairs) => {
    const chosen = new Float64Array(pairs.length), rejected = new Float64Array(pairs.length);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [n, s] of Object.entries(shapes)) {
      const v = p[n];
      if (!v) throw new Error(`sequence scorer: missing parameter "${n}"`);
      feeds[n] = ArrayBuffer.isView(v) ? tensor(dtype, s.shape, v as FloatArray) : v as ort.Tensor;
    }
    for (let at = 0; at < pairs.length; at += 32) {
      const part = pairs.slice(at, at + 32);
      const out = await session.run({ ...feeds, ...responseFeeds(makePairBatch(part), dtype) });
      const d = out.seq_logp.data as FloatArray;
      part.forEach((_, i) => {
        chosen[at + i] = d[i];
        rejected[at + i] = d[part.length + i];
      });
    }
    return { chosen, rejected };
  };
}

/** Held-out preference accuracy of the implicit reward β·(s − s_ref) (ties count ½). */
export function implicitRewardAccuracy(
  pi: { chosen: Float64Array; rejected: Float64Array },
  ref: { chosen: Float64Array; rejected: Float64Array },
): number {
  let hits = 0;
  for (let i = 0; i < pi.chosen.length; i++) {
    const h = (pi.chosen[i] - ref.chosen[i]) - (pi.rejected[i] - ref.rejected[i]);
    hits += h > 0 ? 1 : h === 0 ? 0.5 : 0;
  }
  return pi.chosen.length ? hits / pi.chosen.length : NaN;
}

/** The columns of every metrics.jsonl row the DPO loop writes (`columns: "proxima"`). */
export const DPO_METRIC_COLUMNS: readonly string[] = [
  "update",
  "step",
  "lr",
  "beta",
  "loss",
  "accuracy",
  "margin",
  "chosen_reward",
  "rejected_reward",
  "grad_norm",
  "epochs",
];

/**
 * The same under TRL's DPOTrainer names (`columns: "trl"`), plus `kl`: the mean log-ratio
 * log π/π_ref of the update's responses (chosen and rejected alike), KL(π‖π_ref)'s k1 estimate
 * where the data was sampled from π (on other data, how far the policy has moved on it).
 */
export const DPO_TRL_METRIC_COLUMNS: readonly string[] = [
  "update",
  "step",
  "lr",
  "beta",
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/margins",
  "rewards/accuracies",
  "kl",
  "grad_norm",
  "epochs",
];

/** What {@link createDpoTrainer} builds. */
export interface DpoRun {
  /** The train step (policy params by the decoder's names; AdamW state). */
  trainer: Trainer;
  /** Run the DPO updates into `opts.outDir` (metrics.jsonl, checkpoints/, final.safetensors). */
  train(opts: PpoRunOptions): Promise<MetricsRow>;
}

/** Options of {@link createDpoTrainer}. */
export interface DpoTrainerOptions {
  model: DecoderConfig;
  cfg: DpoConfig;
  /** The starting policy (also the frozen reference unless `reference` is given). Copied. */
  init: Record<string, FloatArray>;
  /** The frozen reference (default `init`). */
  reference?: Record<string, FloatArray>;
  /** The preference pairs, used in order: update u takes pairs u·P .. (u+1)·P − 1 (cycling). */
  pairs: readonly PreferencePair[];
  /** P: pairs per update. */
  pairsPerUpdate: number;
  /** The metrics.jsonl names: Proxima's (default, {@link DPO_METRIC_COLUMNS}) or TRL's. */
  columns?: "proxima" | "trl";
  dtype?: "float32" | "float64";
  session?: SessionOptions;
}

/**
 * Compile the DPO step and the reference's scorer, score every pair under the reference once,
 * and return the trainer with its training loop (lib/ppo/offline/loop.ts).
 */
export async function createDpoTrainer(o: DpoTrainerOptions): Promise<DpoRun> {
  const dtype = o.dtype ?? "float32";
  const { cfg } = o;
  if (!Number.isInteger(o.pairsPerUpdate) || o.pairsPerUpdate < 1) {
    throw new RangeError(`DPO: pairsPerUpdate must be an integer ≥ 1 (${o.pairsPerUpdate})`);
  }
  if (o.pairs.length === 0) throw new RangeError("DPO: no preference pairs");
  const spec = { ...dpoSpec(o.model, cfg, dtype), clipGradNorm: true };
  const trainer = await Trainer.create(spec, o.init, o.session ?? {});
  trainer.hparams = {
    ...trainer.hparams,
    beta: cfg.beta,
    weight_decay: cfg.weight_decay,
    max_grad_norm: cfg.max_grad_norm,
  };
  const refScore = await compileSequenceScorer(o.model, {
    dtype,
    average: dpoAveraged(cfg.loss),
    session: o.session,
  });
  const ref = await refScore(o.reference ?? o.init, o.pairs);
  const trl = o.columns === "trl";
  const train = offlineLoop({
    trainer,
    cfg,
    name: "DPO",
    section: "dpo",
    count: o.pairs.length,
    perUpdate: o.pairsPerUpdate,
    // `step` counts response tokens trained on (chosen + rejected), as PPO's counts sampled ones.
    tokensOf: (i) => o.pairs[i].chosen.length + o.pairs[i].rejected.length,
    step: (pick, lr) => {
      const b = makePairBatch(pick.map((i) => o.pairs[i]));
      const refLogp = [...pick.map((i) => ref.chosen[i]), ...pick.map((i) => ref.rejected[i])];
      return trainer.step({
        ...responseFeeds(b, dtype),
        ref_logp: tensor(dtype, [b.rows], refLogp),
      }, { lr });
    },
    row: ({ update, step, lr }, mean) => {
      const head = { update, step, lr, beta: cfg.beta, loss: mean("loss") };
      const tail = { grad_norm: mean("grad_norm"), epochs: cfg.epochs };
      if (!trl) {
        return {
          ...head,
          accuracy: mean("accuracy"),
          margin: mean("margin"),
          chosen_reward: mean("chosen_reward"),
          rejected_reward: mean("rejected_reward"),
          ...tail,
        };
      }
      const c = mean("chosen_reward"), r = mean("rejected_reward");
      return {
        ...head,
        "rewards/chosen": c,
        "rewards/rejected": r,
        "rewards/margins": mean("margin"),
        "rewards/accuracies": mean("accuracy"),
        // Mean β·log-ratio of both responses over β: the data's mean log π/π_ref.
        kl: c === null || r === null ? null : (c + r) / (2 * cfg.beta),
        ...tail,
      };
    },
  });
  return { trainer, train };
}
