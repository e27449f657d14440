/**
 * The PPO trainer. One function, {@link trainPpo}, reads top to bottom:
 * rollout -> rewards -> advantages (`ppo.advantage`: GAE, or a critic-free estimator of
 * lib/ppo/advantages.ts) -> epochs of shuffled minibatches -> diagnostics ->
 * KL controller -> metrics row -> checkpoint. What differs between classic control and
 * language models lives behind {@link PpoProblem}: how a rollout is collected, and which
 * model inputs a minibatch needs.
 *
 * Layout: a rollout is `rows` × `cols` positions (row-major). For environments a row is one
 * environment's stream of steps and every position is a training example; for language
 * models a row is one response and the whole row is one example (`exampleSize = cols`).
 *
 * @example
 * ```ts
 * const summary = await trainPpo(problem, { updates: 100, seed: 1, outDir: "results/x" });
 * ```
 * @module
 */
import { makeEntropyController } from "./entropy_control.ts";
import type * as ort from "onnxruntime-node";
import { tensor } from "../onnx/session.ts";
import type { Trainer } from "../onnx/train.ts";
import { Rng } from "../rng.ts";
import { isCriticFree, type PpoConfig } from "./config.ts";
import { computeAdvantages } from "./advantages.ts";
import { explainedVariance, maskedMoments, whiten } from "./gae.ts";
import { klEstimate, makeKlController } from "./kl.ts";
import { ppoHparams } from "./losses.ts";
import { minibatchStep } from "./micro_batches.ts";
import { checkpointDue, loadRunCheckpoint, saveRunCheckpoint } from "./checkpoint.ts";
import { StopRequested, type StopToken } from "./stop.ts";
import { exists, writeAll } from "../fs.ts";
import {
  type EpisodeRow,
  type MetricsRow,
  PPO_METRIC_COLUMNS,
  readEpisodes,
  readMetrics,
} from "./metrics_files.ts";
export { type EpisodeRow, type MetricsRow, PPO_METRIC_COLUMNS, readEpisodes, readMetrics };
import type { PhaseTimer } from "./phase_times.ts";

/** One update's experience. Arrays are rows × cols, row-major. */
export interface Rollout {
  rows: number;
  cols: number;
  /** Task reward per position (for LMs: the score at the last token, 0 elsewhere). */
  rewards: Float64Array;
  /** V(s) at rollout time. */
  values: Float64Array;
  /** The action (or token) taken at each position. */
  actions: Int32Array;
  /** log π_old(a) of the taken action. */
  logp: Float64Array;
  /** 1 where an episode ended at this position. */
  dones: Uint8Array;
  /** 1 = real position, 0 = padding (omit when all are real). */
  mask?: Uint8Array;
  /**
   * The positions the loss sees, when fewer than `mask`'s (TRL's mask_truncated_completions:
   * a response cut at the token limit is scored, and counts in its group's baseline, but is
   * left out of the loss).
   */
  lossMask?: Uint8Array;
  /** Bootstrap value per row (0 where the row ends its episode). */
  lastValues: Float64Array;
  /** log π_ref(a) of the taken actions, when a frozen reference policy exists. */
  refLogp?: Float64Array;
  /**
   * The exact KL(π_old‖π_ref) = Σ_a π_old(a)·(log π_old(a) − log π_ref(a)) at each position,
   * from the full distributions: what `ppo.kl.estimator = "full"` puts in the reward (a
   * problem that cannot give it cannot run that estimator).
   */
  refKl?: Float64Array;
  /** Consecutive rows that answer the same prompt (the critic-free estimators' groups; default 1). */
  groupSize?: number;
  /**
   * The reward's named components per row and their weights, when the task has them (for
   * `ppo.reward_aggregation` "normalize_then_sum").
   */
  components?: { values: readonly ArrayLike<number>[]; weights: readonly number[] };
  /** Positions per training example: 1 (each step) or cols (each whole row). */
  exampleSize: number;
  /** Samples this rollout counts for the adaptive KL controller (episodes or responses). */
  samples: number;
  /** Environment steps (or tokens) this rollout consumed, for the global step counter. */
  steps: number;
  /**
   * Episodes that finished during the rollout. `env` (which environment) and `step` (how many
   * environment steps into this rollout it ended, counting all envs) place each one exactly,
   * so the run's episodes.jsonl can answer "the last 100 episodes" without rounding to updates.
   */
  episodes: { return: number; length: number; env?: number; step?: number }[];
  /** Task-specific per-update numbers (e.g. reward-model and gold scores) for the metrics. */
  metrics?: Record<string, number>;
}

/** What a task or environment provides to the trainer. */
export interface PpoProblem {
  /**
   * The PPO settings the train step was compiled for (`createPpoTrainer`, train_step.ts); the update
   * (rewards, advantages, epochs, minibatches, KL controllers) reads the same object.
   */
  cfg: PpoConfig;
  /** The compiled PPO train step (`createPpoTrainer`; batch inputs named below). */
  trainer: Trainer;
  /** Act with the trainer's current params; all sampling draws from `rng`. */
  rollout(rng: Rng): Promise<Rollout>;
  /** Model inputs for the given examples (e.g. `obs`, `actions`), keyed by batch input name. */
  inputs(roll: Rollout, examples: number[]): Record<string, ort.Tensor>;
  /** State that persists across updates (environments, current observations), as JSON. */
  state(): unknown;
  load(state: unknown): void;
  /**
   * After an update's optimisation, with the optimizer steps it ran (before its diagnostics):
   * e.g. the LM problem's reference sync (ref_sync.ts), which the next rollout reads.
   */
  afterOptimize?(steps: number): Promise<void>;
}

export interface PpoRunOptions {
  /** Number of updates (the lr anneals linearly to 0 across them). */
  updates: number;
  /** Wall time per phase, for benchmarks (lib/ppo/phase_times.ts); absent: not timed. */
  phases?: PhaseTimer;
  /** Trial seed: the one generator for action sampling and minibatch shuffles. */
  seed: number;
  /** That generator, when the caller already drew from it (e.g. for the init). */
  rng?: Rng;
  /** Where metrics.jsonl, checkpoints/ and final.safetensors go (created). */
  outDir: string;
  /** Checkpoint every k updates (0 = only at the end). */
  checkpointEvery?: number;
  /** Continue from the newest checkpoint in outDir if there is one. */
  resume?: boolean;
  /** Called after each update with its metrics row (progress bars, logging). */
  onUpdate?: (row: MetricsRow, update: number) => void;
  /** Called once before the first update, with the update it starts from. */
  onStart?: (startUpdate: number) => void;
  /**
   * After update `update`'s optimisation, before its metrics row is written: more columns for
   * that row (a mid-training evaluation's `eval/*`), or null. Must not touch the training state.
   */
  extraMetrics?: (update: number) => Promise<MetricsRow | null>;
  /** After update `update`'s metrics row, before its run checkpoint (e.g. `checkpoint-N/`). */
  afterUpdate?: (update: number) => Promise<void>;
  /**
   * Write every finished episode to episodes.jsonl ({@link EpisodeRow}), for metrics over
   * exact episode windows (environments; LM tasks keep per-update means only).
   */
  episodeLog?: boolean;
  /**
   * A stop request (lib/ppo/stop.ts: preemption, a time limit): once it is made, the loop
   * writes a run checkpoint after the current update and throws {@link StopRequested}.
   */
  stop?: StopToken;
}

/**
 * Training produced a non-finite number (NaN or ±Infinity): a diverged loss or gradient, or a
 * task reward that is not a number. The message names the update, where it happened, and the
 * likely fix; the run stops there (its last checkpoint is left as it was).
 */
export class NonFiniteError extends Error {
  constructor(message: string, readonly update: number) {
    super(message);
    this.name = "NonFiniteError";
  }
}

/** Batch input names every PPO train step has (plus the problem's model inputs). */
export const PPO_BATCH = ["old_logp", "advantages", "returns", "old_values", "mask"] as const;

interface RunState {
  update: number;
  globalStep: number;
  rng: number[];
  kl: { beta: number };
  /** The kl-penalty surrogate's controller (absent in checkpoints of older runs). */
  penalty?: { beta: number };
  /** The adaptive entropy controller (only with ppo.entropy.control "adaptive"). */
  entropy?: { coef: number; active: boolean };
  problem: unknown;
  metricsBytes: number;
  /** Size of episodes.jsonl at the checkpoint (absent in checkpoints of older runs: 0). */
  episodesBytes?: number;
}

/** Run PPO for `opts.updates` updates (resuming if asked); returns the last metrics row. */
export async function trainPpo(problem: PpoProblem, opts: PpoRunOptions): Promise<MetricsRow> {
  const { outDir } = opts;
  const { cfg, trainer } = problem;
  const dtype = trainer.spec.dtype;
  await Deno.mkdir(outDir, { recursive: true });
  const metricsPath = `${outDir}/metrics.jsonl`;
  const episodesPath = `${outDir}/episodes.jsonl`;

  let rng = opts.rng ?? new Rng(opts.seed);
  // Two controllers: β of the KL to the reference policy, and β of the kl-penalty surrogate's
  // KL(π_old‖π). Each follows its own KL.
  const kl = makeKlController(cfg.kl);
  const penalty = makeKlController(cfg.penalty);
  // The entropy coefficient: fixed (the hparams' ent_coef, untouched) or adaptive (Skywork-OR1).
  const ent = makeEntropyController(cfg);
  let update = 0, globalStep = 0;
  let last: MetricsRow = {};

  // A finished run (final.safetensors is written last, atomically) has nothing left to do.
  const finalPath = `${outDir}/final.safetensors`;
  if (opts.resume && await exists(finalPath)) {
    await trainer.loadCheckpoint(finalPath);
    const lines = (await Deno.readTextFile(metricsPath)).split("\n").filter(Boolean);
    opts.onStart?.(opts.updates);
    return lines.length ? JSON.parse(lines.at(-1)!) : {};
  }
  await Deno.remove(finalPath).catch(() => {});

  // Resume: restore params, optimizer state, RNG, KL controller and the problem's state, and
  // cut metrics.jsonl and episodes.jsonl back to where they stood at the checkpoint.
  const resumed = opts.resume ? await loadRunCheckpoint<RunState>(outDir, trainer) : null;
  if (resumed) {
    const s = resumed.run;
    ({ update, globalStep } = s);
    rng = new Rng(s.rng);
    kl.load(s.kl);
    if (s.penalty) penalty.load(s.penalty);
    if (s.entropy) ent.load(s.entropy);
    problem.load(s.problem);
    const have = await Deno.stat(metricsPath).then((st) => st.size, () => -1);
    if (have < s.metricsBytes) {
      throw new Error(
        `cannot resume from ${resumed.path}: ${metricsPath} ` +
          (have < 0 ? "is missing" : `has ${have} bytes`) + ` but the checkpoint recorded ` +
          `${s.metricsBytes} (the file was truncated or replaced); restore it, or delete ` +
          `${outDir} to start the run again`,
      );
    }
    const f = await Deno.open(metricsPath, { write: true, create: true });
    await f.truncate(s.metricsBytes);
    f.close();
    await cutEpisodes(episodesPath, s.episodesBytes ?? 0, resumed.path, outDir);
  } else {
    await Deno.writeTextFile(metricsPath, "");
    await Deno.remove(episodesPath).catch(() => {});
  }
  opts.onStart?.(update);
  const metricsFile = await Deno.open(metricsPath, { append: true });
  // episodes.jsonl exists only for problems that have episodes (created at the first one).
  let episodesFile: Deno.FsFile | null = await Deno.open(episodesPath, { append: true })
    .catch(() => null);

  const hp = ppoHparams(cfg);
  const klInReward = cfg.kl.placement === "reward";
  const isPenalty = cfg.loss === "kl-penalty";
  const micro = cfg.micro_batches ?? 1;
  const trainingEnded = opts.stop?.training();
  try {
    for (; update < opts.updates; update++) {
      // 1. Rollout with the current policy.
      const roll = await problem.rollout(rng);
      const { rows, cols } = roll;
      const n = rows * cols, mask = roll.mask;
      globalStep += roll.steps;
      const badReward = roll.rewards.findIndex((r) => !Number.isFinite(r));
      if (badReward >= 0) {
        throw new NonFiniteError(
          `update ${update + 1}/${opts.updates}: the task returned a non-finite reward ` +
            `(${roll.rewards[badReward]}) at row ${Math.floor(badReward / cols)}, position ` +
            `${badReward % cols}; the reward function (or reward model) produced it, not PPO. ` +
            `Fix: check the task's reward function and its options`,
          update + 1,
        );
      }
      if (!roll.refLogp && klInReward && (kl.beta > 0 || cfg.kl.control !== "fixed")) {
        throw new Error(
          "ppo.kl (the KL to a reference policy) has β > 0 or an adaptive control, and this " +
            "task has no reference policy: set ppo.kl.beta to 0 with control fixed (for a KL " +
            'penalty to the previous policy, use ppo.loss = "kl-penalty" and ppo.penalty)',
        );
      }

      // 2. Rewards: the task's score, minus β·KL(π_old‖π_ref) per position (Ziegler et al.).
      const rewards = Float64Array.from(roll.rewards);
      let klRef: number | null = null;
      if (roll.refLogp) {
        let sum = 0;
        const est = cfg.kl.estimator;
        if (est === "full" && !roll.refKl) {
          throw new Error(
            'ppo.kl.estimator "full" needs the exact KL per position, and this problem\'s ' +
              "rollout does not give it (Rollout.refKl); use k1, k2 or k3",
          );
        }
        for (let i = 0; i < n; i++) {
          if (mask && !mask[i]) continue;
          const k = est === "full"
            ? roll.refKl![i]
            : klEstimate(est, roll.logp[i], roll.refLogp[i]);
          sum += k;
          if (klInReward) rewards[i] -= kl.beta * k;
        }
        klRef = sum / rows; // KL per sequence, the quantity the adaptive controller targets
      }
      const shaped = cfg.whiten_rewards ? whiten(rewards, mask, false) : rewards;

      // 3. Advantages and returns: masked GAE(γ, λ), or the critic-free estimator's.
      const { advantages, returns } = computeAdvantages(cfg.advantage ?? "gae", {
        rows,
        cols,
        rewards: shaped,
        values: roll.values,
        dones: roll.dones,
        mask,
        lastValues: roll.lastValues,
        gamma: cfg.gamma,
        lambda: cfg.lambda,
        groupSize: roll.groupSize ?? 1,
        scaleRewards: cfg.scale_rewards,
        ...(cfg.reward_aggregation === "normalize_then_sum"
          ? { aggregation: cfg.reward_aggregation, components: roll.components }
          : {}),
      });

      // 4. Epochs of shuffled minibatches. Learning rate annealed linearly (CleanRL).
      const lr = cfg.lr_anneal ? cfg.lr * (1 - update / opts.updates) : cfg.lr;
      const trainAt = opts.phases?.clock() ?? 0;
      const examples = n / roll.exampleSize;
      const sums: Record<string, number> = {};
      let steps = 0, epochsRun = 0;
      let penaltyKl: number | null = null;
      for (let epoch = 0; epoch < cfg.epochs; epoch++) {
        const perm = rng.permutation(examples);
        const epochKl = { sum: 0, count: 0 }, epochPenalty = { sum: 0, count: 0 };
        for (let m = 0; m < cfg.minibatches; m++) {
          const lo = Math.floor(m * examples / cfg.minibatches);
          const hi = Math.floor((m + 1) * examples / cfg.minibatches);
          if (hi === lo) continue;
          const idx = perm.slice(lo, hi);
          const ppo = gatherPpoBatch(roll, idx, advantages, returns, cfg.whiten_advantages, dtype);
          // One step per minibatch; with ppo.micro_batches, its rows in accumulated pieces.
          const r = await minibatchStep(trainer, idx, ppo, (e) => problem.inputs(roll, e), micro, {
            ...hp,
            beta: kl.beta,
            penalty_beta: penalty.beta,
            lr,
            ...(ent.adaptive ? { ent_coef: ent.coef } : {}),
          });
          if (!Number.isFinite(r.loss[0]) || !Number.isFinite(r.gradNorm[0])) {
            throw divergedError(r, cfg, update + 1, opts.updates, epoch + 1, m + 1, lr);
          }
          const stats = stepStats(r, sums);
          steps++;
          epochKl.sum += stats.approx_kl_k3, epochKl.count++;
          if (isPenalty) epochPenalty.sum += stats.kl_penalty, epochPenalty.count++;
        }
        epochsRun++;
        // Schulman's d is KL(π_old‖π) after the epochs; the last epoch's minibatches, each
        // measured just before its step, are the closest estimate the steps give for free.
        if (epochPenalty.count) penaltyKl = epochPenalty.sum / epochPenalty.count;
        // Early stop (CleanRL's target_kl): this epoch's mean approx KL (k3) went too far.
        if (cfg.target_kl !== null && epochKl.sum / epochKl.count > cfg.target_kl) break;
      }

      opts.phases?.add("training", trainAt);
      await problem.afterOptimize?.(steps);

      // 5. Diagnostics (minibatch metrics are means over every minibatch of every epoch).
      const mean = (k: string) => k in sums ? sums[k] / steps : null;
      const adv = maskedMoments(advantages, mask), ret = maskedMoments(returns, mask);
      const rew = maskedMoments(roll.rewards, mask);
      const ev = isCriticFree(cfg) ? NaN : explainedVariance(roll.values, returns, mask);
      const eps = roll.episodes;
      const row: MetricsRow = {
        update: update + 1,
        step: globalStep,
        lr,
        beta: kl.beta,
        penalty_beta: isPenalty ? penalty.beta : null,
        loss: mean("loss"),
        policy_loss: mean("policy_loss"),
        value_loss: mean("value_loss"),
        entropy: mean("entropy"),
        approx_kl_k1: mean("approx_kl_k1"),
        approx_kl_k3: mean("approx_kl_k3"),
        clipfrac: mean("clipfrac"),
        kl_penalty: mean("kl_penalty"),
        penalty_kl: penaltyKl,
        kl_ref_loss: mean("kl_ref_loss"),
        kl_ref: klRef,
        grad_norm: mean("grad_norm"),
        explained_variance: Number.isNaN(ev) ? null : ev,
        advantage_mean: adv.mean,
        advantage_std: adv.std,
        return_mean: ret.mean,
        reward_mean: rew.mean,
        epochs: epochsRun,
        episodes: eps.length,
        episodic_return: eps.length ? eps.reduce((s, e) => s + e.return, 0) / eps.length : null,
        episodic_length: eps.length ? eps.reduce((s, e) => s + e.length, 0) / eps.length : null,
        ...(roll.metrics ?? {}),
        // The coefficient this update's loss used (adaptive entropy control only).
        ...(ent.adaptive ? { ent_coef: ent.coef } : {}),
      };

      // 6. KL controllers: the reference β follows KL(π_old‖π_ref) per sample; the penalty β
      //    follows this update's KL(π_old‖π) (Schulman et al. 2017 §4, d = penalty_kl).
      if (klRef !== null) kl.update(klRef, roll.samples);
      if (penaltyKl !== null) penalty.update(penaltyKl, roll.samples);
      //    The entropy coefficient follows this update's mean entropy (adaptive control).
      const entropy = mean("entropy");
      if (entropy !== null) ent.update(entropy);

      // 7. Metrics row (and the episodes that ended in this rollout), then the checkpoint that
      //    records how far both files got.
      const extra = await opts.extraMetrics?.(update + 1);
      if (extra) Object.assign(row, extra);
      await writeAll(metricsFile, JSON.stringify(row) + "\n");
      if (opts.episodeLog && eps.length) {
        episodesFile ??= await Deno.open(episodesPath, { append: true, create: true });
        const stepBefore = globalStep - roll.steps;
        const lines = eps.map((e, i) => {
          const ep: EpisodeRow = {
            update: update + 1,
            step: stepBefore + (e.step ?? roll.steps),
            env: e.env ?? i,
            return: e.return,
            length: e.length,
          };
          return JSON.stringify(ep) + "\n";
        });
        await writeAll(episodesFile, lines.join(""));
      }
      last = row;
      await opts.afterUpdate?.(update + 1);
      opts.onUpdate?.(row, update + 1);
      // A requested stop (stop.ts: preemption, a time limit) checkpoints here and throws.
      const { save, stop } = checkpointDue(
        update + 1,
        opts.updates,
        opts.checkpointEvery,
        opts.stop?.reason,
      );
      if (save) {
        await metricsFile.sync();
        await episodesFile?.sync();
        const state: RunState = {
          update: update + 1,
          globalStep,
          rng: rng.state(),
          kl: kl.state(),
          penalty: penalty.state(),
          ...(ent.adaptive ? { entropy: ent.state() } : {}),
          problem: problem.state(),
          metricsBytes: (await metricsFile.stat()).size,
          episodesBytes: episodesFile ? (await episodesFile.stat()).size : 0,
        };
        const at = await saveRunCheckpoint(outDir, update + 1, trainer, state);
        if (stop) throw new StopRequested(update + 1, stop, at);
      }
    }
    await metricsFile.sync();
    await episodesFile?.sync();
  } finally {
    trainingEnded?.();
    metricsFile.close();
    episodesFile?.close();
  }
  // Final params + optimizer state (atomic write inside saveSafetensors).
  await trainer.saveCheckpoint(finalPath);
  return last;
}

/** Cut episodes.jsonl back to its size at the checkpoint (a resumed run rewrites the rest). */
async function cutEpisodes(path: string, bytes: number, checkpoint: string, outDir: string) {
  const have = await Deno.stat(path).then((st) => st.size, () => -1);
  if (bytes === 0) return void await Deno.remove(path).catch(() => {});
  if (have < bytes) {
    throw new Error(
      `cannot resume from ${checkpoint}: ${path} ` +
        (have < 0 ? "is missing" : `has ${have} bytes`) + ` but the checkpoint recorded ` +
        `${bytes} (the file was truncated or replaced); restore it, or delete ` +
        `${outDir} to start the run again`,
    );
  }
  const f = await Deno.open(path, { write: true });
  await f.truncate(bytes);
  f.close();
}

function divergedError(
  r: {
    loss: ArrayLike<number>;
    gradNorm: ArrayLike<number>;
    metrics: Record<string, ArrayLike<number>>;
  },
  cfg: PpoConfig,
  update: number,
  updates: number,
  epoch: number,
  minibatch: number,
  lr: number,
): NonFiniteError {
  const parts = [`loss ${r.loss[0]}`, `grad_norm ${r.gradNorm[0]}`];
  for (const k of ["policy_loss", "value_loss", "entropy"]) {
    if (k in r.metrics) parts.push(`${k} ${r.metrics[k][0]}`);
  }
  const num = (x: number) =>
    (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3))
      ? x.toExponential()
      : String(Number(x.toPrecision(6)));
  const fixes = [
    `lower ppo.lr (now ${num(cfg.lr)}${cfg.lr_anneal ? `, ${num(lr)} at this update` : ""})`,
  ];
  if (cfg.max_grad_norm === null) fixes.push("set ppo.max_grad_norm (e.g. 0.5)");
  else fixes.push(`lower ppo.max_grad_norm (${cfg.max_grad_norm})`);
  if (cfg.loss !== "clip") fixes.push(`use ppo.loss "clip" (now "${cfg.loss}")`);
  return new NonFiniteError(
    `update ${update}/${updates} (epoch ${epoch}, minibatch ${minibatch}): training diverged, ` +
      `the ${Number.isFinite(r.loss[0]) ? "gradient norm" : "loss"} is not finite ` +
      `(${parts.join(", ")}). Likely fix: ${fixes.join(", or ")}`,
    update,
  );
}

/**
 * The PPO batch inputs for the chosen examples: old_logp, advantages (whitened over the
 * minibatch's real positions when asked, as CleanRL's norm_adv), returns, old_values, mask.
 * Shape [examples] when each example is one position, else [examples, cols].
 */
export function gatherPpoBatch(
  roll: Rollout,
  examples: number[],
  advantages: Float64Array,
  returns: Float64Array,
  whitenAdv: boolean,
  dtype: "float32" | "float64",
): Record<string, ort.Tensor> {
  const size = roll.exampleSize, len = examples.length * size;
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const take = (src: ArrayLike<number>) => {
    const out = new Float64Array(len);
    examples.forEach((e, j) => {
      for (let k = 0; k < size; k++) out[j * size + k] = src[e * size + k];
    });
    return out;
  };
  const real = roll.mask ? take(roll.mask) : new Float64Array(len).fill(1);
  const mask = roll.lossMask ? take(roll.lossMask) : real;
  const adv = whitenAdv ? whiten(take(advantages), mask) : take(advantages);
  const shape = size === 1 ? [examples.length] : [examples.length, size];
  const t = (a: Float64Array) => tensor(dtype, shape, Arr.from(a));
  return {
    old_logp: t(take(roll.logp)),
    advantages: t(adv),
    returns: t(take(returns)),
    old_values: t(take(roll.values)),
    mask: t(mask),
  };
}

/**
 * One train step's numbers (loss, grad norm, the loss's metrics), each also added to `sums`
 * (for the update's means).
 */
export function stepStats(
  r: {
    loss: ArrayLike<number>;
    gradNorm: ArrayLike<number>;
    metrics: Record<string, ArrayLike<number>>;
  },
  sums: Record<string, number>,
): Record<string, number> {
  const stats: Record<string, number> = {
    loss: r.loss[0],
    grad_norm: r.gradNorm[0],
    ...Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, v[0]])),
  };
  for (const [k, v] of Object.entries(stats)) sums[k] = (sums[k] ?? 0) + v;
  return stats;
}
