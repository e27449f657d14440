/**
 * The PPO train step, one function for every policy: classic-control actor-critics
 * (lib/envs/ppo.ts) and language models (lib/ppo/lm_problem.ts) differ only in their parameters,
 * their model inputs and how they compute log π(a), entropy and V per position; the batch
 * inputs PPO adds, the loss ({@link ppoLoss}) with the variant the config picks, its
 * hyperparameter inputs, AdamW and gradient clipping are assembled here, from the one
 * {@link PpoConfig} the problem carries.
 *
 * Batch inputs: the model's own (`obs`, `actions` or `tokens`, ...), then `old_logp`,
 * `advantages`, `returns`, `old_values`, `mask` (shape `positions`; a critic-free estimator,
 * `ppo.advantage` ≠ "gae", has no `returns` and `old_values`, and its policy no value output),
 * then `old_logp_all` (`[...positions, numActions]`, only for the kl-penalty surrogate with the
 * exact KL), `ref_logp` (only when a reference policy exists and its KL is placed in the
 * loss) and `ref_logp_all` (`[...positions, numActions]`, that KL with the exact estimator).
 *
 * @example
 * ```ts
 * const trainer = await createPpoTrainer({
 *   cfg, dtype: "float32", params: actorCriticShapes(model), init,
 *   inputs: { obs: { dtype: "float32", shape: ["B", 4] }, actions: { dtype: "int64", shape: ["B"] } },
 *   positions: ["B"], numActions: 2,
 *   policy: (g, p, b) => { ... return { logp, entropy, value, logpAll }; },
 * });
 * ```
 * @module
 */
import { ESTIMATORS, LOSS_TYPE_FACTS } from "./estimators.ts";
import type { Graph, Value } from "../onnx/graph.ts";
import type { Device } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import { Trainer, type TrainStepSpec } from "../onnx/train.ts";
import { adamw } from "../onnx/optim.ts";
import { isCriticFree, type LossType, type PpoConfig } from "./config.ts";
import { lossTypeAggregation, objectiveHparams, type PolicyObjective } from "./policy_loss.ts";
import {
  type LossAggregation,
  type PolicyOutputs,
  ppoBatchValues,
  type PpoHparams,
  ppoHparams,
  ppoLoss,
  type PpoLossVariant,
  ppoOptimizerHparams,
} from "./losses.ts";

/** Options of {@link createPpoTrainer}. */
export interface PpoTrainStepOptions {
  /** The PPO settings (loss variant, KL placement and estimators, hyperparameter defaults). */
  cfg: PpoConfig;
  dtype: "float32" | "float64";
  /** Trainable parameters by name. */
  params: TrainStepSpec["params"];
  /** Parameters fed in but never updated (a frozen base under LoRA adapters). */
  frozen?: TrainStepSpec["frozen"];
  /** Initial values of every trainable and frozen parameter (copied). */
  init: Record<string, Float32Array | Float64Array>;
  /** The model's batch inputs (observations and actions, or tokens and positions). */
  inputs: TrainStepSpec["batch"];
  /** Shape of a minibatch's per-position PPO values: `["B"]` or `["B", "T"]`. */
  positions: (string | number)[];
  /**
   * Actions per position: needed only for the exact KLs (the kl-penalty surrogate's
   * `old_logp_all`, the reference KL's `ref_logp_all` when it is in the loss).
   */
  numActions?: number;
  /**
   * The token budget Dr. GRPO divides its summed loss by (`ppo.advantage = "dr_grpo"`): an LM
   * task's `max_new_tokens`.
   */
  maxTokens?: number;
  /** A frozen reference policy exists (RLHF): its KL may be placed in the loss (`ref_logp`). */
  reference?: boolean;
  /**
   * log π(a), entropy, V (and log π over all actions) per position, from params and batch;
   * no V for a critic-free estimator.
   */
  policy(g: Graph, params: Record<string, Value>, batch: Record<string, Value>): PolicyOutputs;
  device?: Device;
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
}

/** The loss hyperparameter inputs by name (see {@link ppoHparams}, {@link objectiveHparams}). */
function hparamValues(hp: Record<string, Value>): PpoHparams {
  return { ...hp } as unknown as PpoHparams;
}

/**
 * The loss type a config resolves to: `ppo.loss_type`, else the advantage estimator's own
 * (estimators.ts: grpo's "grpo", dr_grpo's "dr_grpo"), else PPO's token mean.
 */
export function resolvedLossType(cfg: Pick<PpoConfig, "advantage" | "loss_type">): LossType {
  if (cfg.loss_type != null) return cfg.loss_type;
  return cfg.advantage ? ESTIMATORS[cfg.advantage].lossType : "token";
}

/** The loss reduction a config uses (undefined: PPO's token mean). */
export function lossAggregation(
  cfg: Pick<PpoConfig, "advantage" | "loss_type">,
  maxTokens?: number,
): LossAggregation | undefined {
  const how = lossTypeAggregation(resolvedLossType(cfg), maxTokens);
  return how === "token" ? undefined : how;
}

/**
 * The per-token objective a config picks; undefined for PPO's own surrogate (`loss`), so that
 * PPO's graph is built exactly as before.
 */
export function policyObjective(cfg: PpoConfig): PolicyObjective | undefined {
  const lossType = resolvedLossType(cfg);
  const level = cfg.importance_sampling_level ?? "token";
  const clipHigh = (cfg.epsilon_high ?? null) !== null || LOSS_TYPE_FACTS[lossType].clipHigh;
  const delta = (cfg.delta ?? null) !== null;
  const plain = LOSS_TYPE_FACTS[lossType].plain;
  const q = cfg.top_entropy_quantile ?? 1;
  if (plain && level === "token" && !clipHigh && !delta && q === 1) return undefined;
  if (cfg.loss !== "clip") {
    throw new Error(
      `ppo: loss "${cfg.loss}" has no loss_type "${lossType}" / ${level}-level / clip-high / ` +
        'delta variant; use loss "clip"',
    );
  }
  return { lossType, level, clipHigh, delta, ...(q < 1 ? { topEntropyQuantile: q } : {}) };
}

/** The policy's outputs as the loss sees them: a critic-free estimator has no V. */
function criticOutputs(out: PolicyOutputs, critic: boolean): PolicyOutputs {
  if (critic) {
    if (!out.value) throw new Error("ppo: the policy gives no value (V) for GAE");
    return out;
  }
  // Copied by descriptor, not by spread: a spread reads every getter, and the chunked head's
  // `entropy` and `logpAll` are getters that build their nodes on first read (logpAll: a
  // [B, T, V] concatenation nobody reads, which ORT still runs: 311 MB at the 0.5B bench's peak).
  const rest = Object.defineProperties({}, Object.getOwnPropertyDescriptors(out)) as PolicyOutputs;
  delete rest.value;
  return rest;
}

/**
 * The loss variant and hyperparameter defaults a config compiles to: what {@link
 * createPpoTrainer} builds its loss from (and what tests/ppo/trl_losses_test.ts checks against
 * TRL's own loss code).
 */
export function ppoLossSetup(
  cfg: PpoConfig,
  o: { reference?: boolean; maxTokens?: number } = {},
): { variant: PpoLossVariant; hparams: Record<string, number> } {
  const aggregate = lossAggregation(cfg, o.maxTokens);
  const objective = policyObjective(cfg);
  return {
    variant: {
      loss: cfg.loss,
      valueClip: cfg.clip_value !== null,
      kl: cfg.kl,
      penalty: cfg.penalty,
      hasReference: o.reference,
      ...(aggregate ? { aggregate } : {}),
      ...(objective ? { objective } : {}),
      ...(cfg.kl.bias_correction ? { klBiasCorrection: true } : {}),
    },
    hparams: { ...ppoHparams(cfg), ...(objective ? objectiveHparams(objective, cfg) : {}) },
  };
}

/**
 * The PPO train step's spec (what {@link createPpoTrainer} compiles): the model's batch inputs
 * plus PPO's, the loss the config picks, AdamW and clipping. Graph-only: planning builds it to
 * count the step's memory (lib/tasks/memory_train.ts) without compiling anything.
 */
export function ppoTrainStepSpec(
  opts: Omit<PpoTrainStepOptions, "init" | "device" | "threads" | "sessions">,
): TrainStepSpec {
  const { cfg, dtype, positions } = opts;
  const f = (shape: (string | number)[]) => ({ dtype, shape });
  const exactPenalty = cfg.loss === "kl-penalty" && cfg.penalty.estimator === "full";
  if (exactPenalty && opts.numActions === undefined) {
    throw new Error(
      'ppo: penalty.estimator "full" needs the action count (log-probs over every action)',
    );
  }
  const refInLoss = opts.reference === true && cfg.kl.placement === "loss";
  const exactRef = refInLoss && cfg.kl.estimator === "full";
  if (exactRef && opts.numActions === undefined) {
    throw new Error('ppo: kl.estimator "full" in the loss needs the action count');
  }
  const critic = !isCriticFree(cfg);
  const { variant, hparams } = ppoLossSetup(cfg, opts);
  return {
    dtype,
    params: opts.params,
    ...(opts.frozen ? { frozen: opts.frozen } : {}),
    batch: {
      ...opts.inputs,
      old_logp: f(positions),
      advantages: f(positions),
      ...(critic ? { returns: f(positions), old_values: f(positions) } : {}),
      mask: f(positions),
      ...(exactPenalty ? { old_logp_all: f([...positions, opts.numActions!]) } : {}),
      ...(refInLoss ? { ref_logp: f(positions) } : {}),
      ...(exactRef ? { ref_logp_all: f([...positions, opts.numActions!]) } : {}),
    },
    hparams,
    loss: (g, p, b, hp) =>
      ppoLoss(
        g,
        variant,
        criticOutputs(opts.policy(g, p, b), critic),
        ppoBatchValues(b),
        hparamValues(hp),
      ),
    optimizer: adamw,
    clipGradNorm: cfg.max_grad_norm !== null,
  };
}

/**
 * Compile the PPO train step for a policy and load its initial parameters; the trainer's
 * optimizer hyperparameters (AdamW ε, weight decay, gradient-norm clip) come from `cfg`.
 */
export async function createPpoTrainer(
  opts: PpoTrainStepOptions,
  variant: { spec?: (s: TrainStepSpec) => TrainStepSpec; accumulate?: boolean } = {},
): Promise<Trainer> {
  const { cfg } = opts;
  const spec = (variant.spec ?? ((s) => s))(ppoTrainStepSpec(opts));
  const trainer = await Trainer.create(spec, opts.init, {
    device: opts.device,
    threads: opts.threads,
    sessions: opts.sessions,
    ...(variant.accumulate ? { accumulate: true } : {}),
  });
  trainer.hparams = { ...trainer.hparams, ...ppoOptimizerHparams(cfg) };
  return trainer;
}
