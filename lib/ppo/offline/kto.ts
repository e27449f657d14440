/**
 * KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization") on
 * unpaired examples — a prompt, one completion and a label (desirable or not) — as TRL 1.13's
 * KTOTrainer trains it: summed response log-probs s, r = s − s_ref, the reference point
 * z = max(0, mean(log π(y'|x) − log π_ref(y'|x))) over the minibatch's KL pairs (each prompt
 * with the previous example's completion: TRL's `_get_kl_dataset` shift, here within the
 * shuffled minibatch rather than TRL's fixed chunks of the data), detached, and the loss of
 * lib/ppo/dpo_losses.ts's {@link ktoLoss}. `apo_zero_unpaired` needs no z.
 *
 * The loop is the offline methods' one (./loop.ts): update u takes the next `perUpdate`
 * examples; metrics under TRL's names: `loss`, `rewards/chosen` and `rewards/rejected` (mean
 * β·r of the desirable / undesirable examples), `rewards/margins`, `kl` (z).
 *
 * @example
 * ```ts
 * const kto = await createKtoTrainer({ model, cfg: KtoSchema.parse({}), init, examples,
 *   perUpdate: 8 });
 * await kto.train({ updates: 4, seed: 1, outDir: "results/kto" });
 * ```
 * @module
 */
import { z } from "zod";
import { adamw } from "../../onnx/optim.ts";
import { type SessionOptions, tensor } from "../../onnx/session.ts";
import { Trainer, type TrainStepSpec } from "../../onnx/train.ts";
import { type DecoderConfig, decoderShapes } from "../../nn/decoder.ts";
import type { FloatArray } from "../../nn/sample.ts";
import { compileSequenceScorer, makeResponseBatch, responseFeeds, sequenceLogps } from "../dpo.ts";
import { KTO_LOSS_TYPES, ktoLoss, ktoReferencePoint } from "../dpo_losses.ts";
import { offlineLoop } from "./loop.ts";
import type { MetricsRow, PpoRunOptions } from "../trainer.ts";

const positive = (d: string) => z.number().positive().describe(d);

/** The `kto` section of an LM task's config (TRL 1.13 KTOConfig's names). */
export const KtoSchema = z.object({
  loss: z.enum(KTO_LOSS_TYPES).default("kto").describe(
    "TRL 1.13 KTOConfig.loss_type: kto = 1 − σ(β(r − z)) for desirable and 1 − σ(β(z − r)) " +
      "for undesirable examples, z the KL reference point (Ethayarajh et al. 2024); " +
      "apo_zero_unpaired = 1 − σ(βr) / σ(βr) (D'Oosterlinck et al. 2024)",
  ),
  beta: positive("β: the implicit reward's scale, β·log π/π_ref").default(0.1),
  desirable_weight: positive("weight of the desirable examples' losses (TRL's)").default(1),
  undesirable_weight: positive("weight of the undesirable examples' losses (TRL's)").default(1),
  lr: positive("AdamW learning rate").default(3e-4),
  lr_anneal: z.boolean().default(false).describe("anneal lr linearly to 0 over the run"),
  epochs: z.number().int().min(1).default(2).describe("passes over each update's examples"),
  minibatches: z.number().int().min(1).default(4).describe("minibatches per pass"),
  weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
  max_grad_norm: positive("global gradient-norm clip").default(1),
}).strict();
export type KtoConfig = z.infer<typeof KtoSchema>;

/** One unpaired example: prompt and completion token ids, and whether it is desirable. */
export interface KtoExample {
  prompt: number[];
  completion: number[];
  label: boolean;
}

/** The KTO train step: batch = {@link makeResponseBatch} + `ref_logp`, `labels` (1/0), `z`. */
export function ktoSpec(
  cfg: DecoderConfig,
  kto: Pick<KtoConfig, "loss" | "desirable_weight" | "undesirable_weight">,
  dtype: "float32" | "float64" = "float32",
): TrainStepSpec {
  return {
    dtype,
    params: decoderShapes(cfg),
    batch: {
      tokens: { dtype: "int64", shape: ["B", "S"] },
      mask: { dtype: "int64", shape: ["B", "S"] },
      targets: { dtype: "int64", shape: ["B", "S"] },
      resp_mask: { dtype, shape: ["B", "S"] },
      ref_logp: { dtype, shape: ["B"] },
      labels: { dtype, shape: ["B"] },
      z: { dtype, shape: [] },
    },
    hparams: { beta: 0.1 },
    loss: (g, p, b, hp) => {
      const s = sequenceLogps(g, cfg, p, b as never);
      const { loss } = ktoLoss(g, kto.loss, s, b.ref_logp, b.labels, b.z, hp.beta, {
        desirableWeight: kto.desirable_weight,
        undesirableWeight: kto.undesirable_weight,
      });
      // Sums and counts per label: the update's mean reward of each is their ratio (TRL's).
      const reward = g.mul(hp.beta, g.sub(s, b.ref_logp));
      const bad = g.sub(1, b.labels);
      return {
        loss,
        metrics: {
          chosen_sum: g.reduceSum(g.mul(reward, b.labels)),
          chosen_count: g.reduceSum(b.labels),
          rejected_sum: g.reduceSum(g.mul(reward, bad)),
          rejected_count: g.reduceSum(bad),
        },
      };
    },
    optimizer: adamw,
  };
}

/** Options of {@link createKtoTrainer}. */
export interface KtoTrainerOptions {
  model: DecoderConfig;
  cfg: KtoConfig;
  /** The starting policy (also the frozen reference unless `reference` is given). Copied. */
  init: Record<string, FloatArray>;
  /** The frozen reference (default `init`). */
  reference?: Record<string, FloatArray>;
  /** The examples, used in order: update u takes examples u·P .. (u+1)·P − 1 (cycling). */
  examples: readonly KtoExample[];
  /** P: examples per update. */
  perUpdate: number;
  dtype?: "float32" | "float64";
  session?: SessionOptions;
}

/** The KTO columns of metrics.jsonl, in order. */
export const KTO_METRIC_COLUMNS: readonly string[] = [
  "update",
  "step",
  "lr",
  "beta",
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/margins",
  "kl",
  "grad_norm",
  "epochs",
];

/**
 * Compile the KTO step and the sequence scorer, score every example under the reference once,
 * and return the trainer with its training loop.
 */
export async function createKtoTrainer(
  o: KtoTrainerOptions,
): Promise<{ trainer: Trainer; train(opts: PpoRunOptions): Promise<MetricsRow> }> {
  const dtype = o.dtype ?? "float32", { cfg } = o;
  const trainer = await Trainer.create(
    { ...ktoSpec(o.model, cfg, dtype), clipGradNorm: true },
    o.init,
    o.session ?? {},
  );
  trainer.hparams = {
    ...trainer.hparams,
    beta: cfg.beta,
    weight_decay: cfg.weight_decay,
    max_grad_norm: cfg.max_grad_norm,
  };
  const reference = o.reference ?? o.init;
  const score = await compileSequenceScorer(o.model, { dtype, session: o.session });
  // The scorer takes pairs: its "chosen" rows are the examples, its "rejected" their KL pairs.
  const kl = (pick: number[]) =>
    pick.map((i, k) => ({
      prompt: o.examples[i].prompt,
      chosen: o.examples[i].completion,
      rejected: o.examples[pick[(k + pick.length - 1) % pick.length]].completion,
    }));
  const all = Array.from({ length: o.examples.length }, (_, i) => i);
  const ref = (await score(reference, kl(all))).chosen;
  const train = offlineLoop({
    trainer,
    cfg,
    name: "KTO",
    section: "kto",
    count: o.examples.length,
    perUpdate: o.perUpdate,
    tokensOf: (i) => o.examples[i].completion.length,
    step: async (pick, lr) => {
      let zPoint = 0;
      if (cfg.loss === "kto") {
        const pairs = kl(pick);
        const pi = await score(trainer.paramTensors(), pairs);
        const pr = await score(reference, pairs);
        zPoint = ktoReferencePoint(pi.rejected, pr.rejected);
      }
      const b = makeResponseBatch(
        pick.map((i) => ({ prompt: o.examples[i].prompt, response: o.examples[i].completion })),
      );
      const r = await trainer.step({
        ...responseFeeds(b, dtype),
        ref_logp: tensor(dtype, [b.rows], pick.map((i) => ref[i])),
        labels: tensor(dtype, [b.rows], pick.map((i) => o.examples[i].label ? 1 : 0)),
        z: tensor(dtype, [], [zPoint]),
      }, { lr });
      return { ...r, metrics: { ...r.metrics, kl: [zPoint] } }; // z: the row's `kl`
    },
    row: ({ update, step, lr }, mean) => {
      const ratio = (s: string, n: string) => {
        const c = mean(n);
        return c ? mean(s)! / c : null;
      };
      const c = ratio("chosen_sum", "chosen_count");
      const r = ratio("rejected_sum", "rejected_count");
      return {
        update,
        step,
        lr,
        beta: cfg.beta,
        loss: mean("loss"),
        "rewards/chosen": c,
        "rewards/rejected": r,
        "rewards/margins": c === null || r === null ? null : c - r,
        kl: cfg.loss === "kto" ? mean("kl") : null,
        grad_norm: mean("grad_norm"),
        epochs: cfg.epochs,
      };
    },
  });
  return { trainer, train };
}
