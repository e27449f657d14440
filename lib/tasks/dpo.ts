/**
 * DPO (or IPO) as an LM task's offline trial: {@link createDpoProblem} wraps lib/ppo/dpo.ts's
 * trainer as an {@link LmProblem} whose `train` replaces PPO, so a task's trial (stages →
 * evaluate → train → evaluate → eval.json, `defineLmTask`) runs it unchanged and its evaluation
 * samples from the DPO policy as it samples from a PPO one.
 *
 * Models held while training: the policy (trainable) and the frozen reference (its initial
 * weights, scored once over every pair) — no reward model, no value model, no sampling.
 *
 * @example
 * ```ts
 * const problem = await createDpoProblem({
 *   model: sft.cfg, init: sft.params, cfg: c.dpo, ppo: c.ppo, seed: c.seed,
 *   pairs, pairsPerUpdate: c.batch / 2, heldOut,
 * });
 * const acc = await problem.preferenceAccuracy(); // held-out implicit-reward accuracy
 * ```
 * @module
 */
import type { Device } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import type { DecoderConfig } from "../nn/decoder.ts";
import { decoderShapes } from "../nn/decoder.ts";
import { type FloatArray, generate } from "../nn/sample.ts";
import type { PpoConfig } from "../ppo/config.ts";
import {
  compileSequenceScorer,
  createDpoTrainer,
  dpoAveraged,
  type DpoConfig,
  implicitRewardAccuracy,
} from "../ppo/dpo.ts";
import type { PreferencePair } from "../ppo/reward_model.ts";
import { Rng } from "../rng.ts";
import { compileLmScorer, type LmProblem } from "../ppo/lm_problem.ts";

/** Options of {@link createDpoProblem}. */
export interface DpoProblemOptions {
  /** The policy's (and reference's) config. */
  model: DecoderConfig;
  /** The starting policy (e.g. the SFT stage); the reference is a copy. */
  init: Record<string, FloatArray>;
  cfg: DpoConfig;
  /** The task's PPO section (unused by DPO; carried as `LmProblem.cfg`). */
  ppo: PpoConfig;
  /** Seed of the minibatch order. */
  seed: number;
  /** Training pairs, used in order (update u: pairs u·P .. (u+1)·P − 1). */
  pairs: readonly PreferencePair[];
  /** P: pairs per update (2·P responses: a PPO update of batch 2·P has the same budget). */
  pairsPerUpdate: number;
  /** Held-out pairs for {@link DpoProblem.preferenceAccuracy}. */
  heldOut: readonly PreferencePair[];
  dtype?: "float32" | "float64";
  device?: Device;
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
}

/** An offline DPO problem: an LmProblem that trains by `train`, plus its preference metric. */
export interface DpoProblem extends LmProblem {
  train: NonNullable<LmProblem["train"]>;
  /**
   * Held-out preference accuracy of the current policy's implicit reward β·log π/π_ref (ties
   * ½: the starting policy, π = π_ref, scores ½) and of its plain log-likelihood.
   */
  preferenceAccuracy(): Promise<{ implicit: number; likelihood: number }>;
}

/** The DPO trainer, the reference and the scorers, as an {@link LmProblem} (see the module doc). */
export async function createDpoProblem(o: DpoProblemOptions): Promise<DpoProblem> {
  const dtype = o.dtype ?? "float32";
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const session = { device: o.device, threads: o.threads, sessions: o.sessions };
  const init: Record<string, FloatArray> = {};
  for (const n of Object.keys(decoderShapes(o.model))) {
    if (!o.init[n]) throw new Error(`createDpoProblem: init lacks parameter "${n}"`);
    init[n] = Arr.from(o.init[n]);
  }
  const reference: Record<string, FloatArray> = Object.fromEntries(
    Object.entries(init).map(([n, a]) => [n, Arr.from(a)]),
  );
  const dpo = await createDpoTrainer({
    model: o.model,
    cfg: o.cfg,
    init,
    pairs: o.pairs,
    pairsPerUpdate: o.pairsPerUpdate,
    dtype,
    session,
  });
  const rescore = await compileLmScorer(o.model, { dtype, ...session });
  const scorer = await compileSequenceScorer(o.model, {
    dtype,
    average: dpoAveraged(o.cfg.loss),
    session,
  });
  const refHeld = await scorer(reference, o.heldOut);
  const params = Object.values(decoderShapes(o.model))
    .reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const offline = (what: string) => () => {
    throw new Error(`DPO is offline: it has no ${what}`);
  };
  return {
    cfg: o.ppo,
    trainer: dpo.trainer,
    rng: new Rng(o.seed),
    model: o.model,
    reference,
    models: { policy: params, reference: params },
    policyParams: () => dpo.trainer.paramTensors(),
    sample: (prompts, opts) =>
      generate({ cfg: o.model, params: dpo.trainer.paramTensors() }, prompts, { ...opts, session }),
    release: () => {},
    rescore,
    rollout: offline("rollouts"),
    inputs: offline("PPO inputs"),
    state: () => ({}),
    load: () => {},
    train: dpo.train,
    async preferenceAccuracy() {
      const pi = await scorer(dpo.trainer.paramTensors(), o.heldOut);
      let hits = 0;
      for (let i = 0; i < pi.chosen.length; i++) hits += pi.chosen[i] > pi.rejected[i] ? 1 : 0;
      return {
        implicit: implicitRewardAccuracy(pi, refHeld),
        likelihood: pi.chosen.length ? hits / pi.chosen.length : NaN,
      };
    },
  };
}
