/**
 * An offline method's trial problem: the policy (trainable), the frozen reference and the
 * data, trained by the method's own loop — no rollout, no reward model, no value model. The
 * task hands it the models and the data (preference pairs for DPO and its loss types, unpaired
 * labelled examples for KTO) and keeps the evaluation: the problem offers what evaluating a
 * policy needs ({@link LmPolicyView}: sampling, re-scoring, the weights), as an online
 * {@link LmProblem} does, and nothing of a rollout.
 *
 * @example
 * ```ts
 * const problem = await createOfflineProblem({
 *   model, init: sft.params, seed: 1,
 *   method: { name: "dpo", cfg: c.dpo, pairs, pairsPerUpdate: c.batch / 2, heldOut },
 * });
 * await problem.train({ updates: 10, seed: 1, rng: problem.rng, outDir });
 * const acc = await problem.preferenceAccuracy?.(); // held-out implicit-reward accuracy
 * ```
 * @module
 */
import type { Device } from "../../onnx/session.ts";
import type { SessionCache } from "../../onnx/session_cache.ts";
import type { DecoderConfig } from "../../nn/decoder.ts";
import { decoderShapes } from "../../nn/decoder.ts";
import { type FloatArray, generate } from "../../nn/sample.ts";
import { Rng } from "../../rng.ts";
import {
  compileSequenceScorer,
  createDpoTrainer,
  dpoAveraged,
  type DpoConfig,
  implicitRewardAccuracy,
} from "../dpo.ts";
import type { PreferencePair } from "../reward_model.ts";
import { compileLmScorer, type LmProblem } from "../lm_problem.ts";
import type { MetricsRow, PpoRunOptions } from "../trainer.ts";
import { createKtoTrainer, type KtoConfig, type KtoExample } from "./kto.ts";

/**
 * What evaluating, saving and measuring a policy reads, online or offline: the weights,
 * sampling and re-scoring on the problem's sessions, the reference, the models held.
 */
export type LmPolicyView = Pick<
  LmProblem,
  | "rng"
  | "model"
  | "reference"
  | "models"
  | "trainer"
  | "policyParams"
  | "releasePolicyParams"
  | "sample"
  | "release"
  | "rescore"
>;

/** An offline method's problem: the policy view and the method's training loop. */
export interface OfflineLmProblem extends LmPolicyView {
  /** Which loop `train` runs ("dpo": pairs, any DPO loss type; "kto": unpaired examples). */
  offline: "dpo" | "kto";
  /** Run the updates into `opts.outDir` (metrics.jsonl, checkpoints/, final.safetensors). */
  train(opts: PpoRunOptions): Promise<MetricsRow>;
  /**
   * DPO with held-out pairs: their preference accuracy under the current policy's implicit
   * reward β·log π/π_ref (ties ½: the starting policy, π = π_ref, scores ½) and under its plain
   * log-likelihood.
   */
  preferenceAccuracy?(): Promise<{ implicit: number; likelihood: number }>;
}

/** Whether a trial's problem is offline (trains by its own loop) rather than online. */
export const isOffline = (p: LmProblem | OfflineLmProblem): p is OfflineLmProblem =>
  "offline" in p && typeof p.train === "function";

/** The method and its data, for {@link createOfflineProblem}. */
export type OfflineMethod =
  | {
    name: "dpo";
    cfg: DpoConfig;
    /** Training pairs, used in order (update u: pairs u·P .. (u+1)·P − 1, cycling). */
    pairs: readonly PreferencePair[];
    /** P: pairs per update (2·P responses: a PPO update of batch 2·P has the same budget). */
    pairsPerUpdate: number;
    /** Held-out pairs for {@link OfflineLmProblem.preferenceAccuracy}. */
    heldOut?: readonly PreferencePair[];
    /** metrics.jsonl names: Proxima's (default) or TRL's (lib/ppo/dpo.ts). */
    columns?: "proxima" | "trl";
  }
  | {
    name: "kto";
    cfg: KtoConfig;
    examples: readonly KtoExample[];
    /** Examples per update. */
    perUpdate: number;
    /** Held-out pairs for {@link OfflineLmProblem.preferenceAccuracy} (summed log-probs). */
    heldOut?: readonly PreferencePair[];
  };

/** Options of {@link createOfflineProblem}. */
export interface OfflineProblemOptions {
  /** The policy's (and reference's) config. */
  model: DecoderConfig;
  /** The starting policy (e.g. the SFT stage, or the user's model); the reference is a copy. */
  init: Record<string, FloatArray>;
  method: OfflineMethod;
  /** Seed of the minibatch order. */
  seed: number;
  dtype?: "float32" | "float64";
  device?: Device;
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
}

/** The method's trainer, the reference and the scorers (see the module doc). */
export async function createOfflineProblem(o: OfflineProblemOptions): Promise<OfflineLmProblem> {
  const dtype = o.dtype ?? "float32";
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const session = { device: o.device, threads: o.threads, sessions: o.sessions };
  const init: Record<string, FloatArray> = {};
  for (const n of Object.keys(decoderShapes(o.model))) {
    if (!o.init[n]) throw new Error(`createOfflineProblem: init lacks parameter "${n}"`);
    init[n] = Arr.from(o.init[n]);
  }
  const reference: Record<string, FloatArray> = Object.fromEntries(
    Object.entries(init).map(([n, a]) => [n, Arr.from(a)]),
  );
  const m = o.method;
  const run = m.name === "dpo"
    ? await createDpoTrainer({
      model: o.model,
      cfg: m.cfg,
      init,
      pairs: m.pairs,
      pairsPerUpdate: m.pairsPerUpdate,
      columns: m.columns,
      dtype,
      session,
    })
    : await createKtoTrainer({
      model: o.model,
      cfg: m.cfg,
      init,
      reference,
      examples: m.examples,
      perUpdate: m.perUpdate,
      dtype,
      session,
    });
  const rescore = await compileLmScorer(o.model, { dtype, ...session });
  const params = Object.values(decoderShapes(o.model))
    .reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const problem: OfflineLmProblem = {
    offline: m.name,
    trainer: run.trainer,
    rng: new Rng(o.seed),
    model: o.model,
    reference,
    models: { policy: params, reference: params },
    policyParams: () => run.trainer.paramTensors(),
    sample: (prompts, opts) =>
      generate({ cfg: o.model, params: run.trainer.paramTensors() }, prompts, {
        ...opts,
        session,
      }),
    release: () => {},
    rescore,
    train: run.train,
  };
  if (m.heldOut) {
    const heldOut = m.heldOut;
    const scorer = await compileSequenceScorer(o.model, {
      dtype,
      // KTO's implicit reward is β·(log π − log π_ref) summed over the response.
      average: m.name === "dpo" ? dpoAveraged(m.cfg.loss) : false,
      session,
    });
    const refHeld = await scorer(reference, heldOut);
    problem.preferenceAccuracy = async () => {
      const pi = await scorer(run.trainer.paramTensors(), heldOut);
      let hits = 0;
      for (let i = 0; i < pi.chosen.length; i++) hits += pi.chosen[i] > pi.rejected[i] ? 1 : 0;
      return {
        implicit: implicitRewardAccuracy(pi, refHeld),
        likelihood: pi.chosen.length ? hits / pi.chosen.length : NaN,
      };
    };
  }
  return problem;
}
