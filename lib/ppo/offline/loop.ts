/**
 * The training loop of the offline methods (DPO and its loss types, KTO): no rollout, fixed
 * data used in order. Update u takes the next `perUpdate` examples (a preference pair or an
 * unpaired example, cycling through the data), then `epochs` passes of `minibatches` shuffled
 * minibatches over them; metrics.jsonl gets one row per update; checkpoints, resume, a
 * requested stop (lib/ppo/stop.ts) and the final state are handled as {@link trainPpo} handles
 * them, so an LM trial runs either.
 *
 * The method gives the minibatch step (its batch, its reference scores, its graph) and the row
 * it reports from the per-step means; the loop owns the order, the files and the budget.
 *
 * @example
 * ```ts
 * const train = offlineLoop({ trainer, cfg: c.dpo, name: "DPO", count: pairs.length,
 *   perUpdate: 4, tokensOf, step: (pick, lr) => trainer.step(feeds(pick), { lr }), row });
 * await train({ updates: 10, seed: 1, outDir: "results/dpo" });
 * ```
 * @module
 */
import type { Trainer } from "../../onnx/train.ts";
import { Rng } from "../../rng.ts";
import { exists, writeAll } from "../../fs.ts";
import { checkpointDue, loadRunCheckpoint, saveRunCheckpoint } from "../checkpoint.ts";
import { StopRequested } from "../stop.ts";
import { type MetricsRow, type PpoRunOptions, stepStats } from "../trainer.ts";

/** The optimiser settings every offline method's config section has. */
export interface OfflineOptimConfig {
  lr: number;
  lr_anneal: boolean;
  epochs: number;
  minibatches: number;
}

/** One train step's outputs (what `Trainer.step` returns). */
export interface OfflineStepResult {
  loss: ArrayLike<number>;
  gradNorm: ArrayLike<number>;
  metrics: Record<string, ArrayLike<number>>;
}

/** What {@link offlineLoop} needs from a method. */
export interface OfflineLoopOptions {
  trainer: Trainer;
  cfg: OfflineOptimConfig;
  /** The method's name in error messages ("DPO", "KTO"). */
  name: string;
  /** The config section whose keys the errors name ("dpo", "kto"). */
  section: string;
  /** Examples in the data (pairs or unpaired examples). */
  count: number;
  /** Examples per update. */
  perUpdate: number;
  /** Response tokens of example i (the `step` column counts them, as PPO counts sampled ones). */
  tokensOf(i: number): number;
  /** Run one train step on examples `pick` (data indices) at learning rate `lr`. */
  step(pick: number[], lr: number): Promise<OfflineStepResult>;
  /**
   * The metrics row of an update: `mean(k)` is the mean of output `k` (`loss`, `grad_norm`, a
   * metric of the graph) over the update's steps, null when no step had it.
   */
  row(
    u: { update: number; step: number; lr: number },
    mean: (k: string) => number | null,
  ): MetricsRow;
}

/** The training loop of an offline method (see the module doc). */
export function offlineLoop(o: OfflineLoopOptions): (opts: PpoRunOptions) => Promise<MetricsRow> {
  const { trainer, cfg } = o;
  if (!Number.isInteger(o.perUpdate) || o.perUpdate < 1) {
    throw new RangeError(`${o.name}: examples per update must be an integer ≥ 1 (${o.perUpdate})`);
  }
  if (o.count === 0) throw new RangeError(`${o.name}: no training examples`);
  return async (opts: PpoRunOptions): Promise<MetricsRow> => {
    const { outDir } = opts;
    await Deno.mkdir(outDir, { recursive: true });
    const metricsPath = `${outDir}/metrics.jsonl`, finalPath = `${outDir}/final.safetensors`;
    let rng = opts.rng ?? new Rng(opts.seed);
    let update = 0;
    if (opts.resume && await exists(finalPath)) {
      await trainer.loadCheckpoint(finalPath);
      const lines = (await Deno.readTextFile(metricsPath)).split("\n").filter(Boolean);
      opts.onStart?.(opts.updates);
      return lines.length ? JSON.parse(lines.at(-1)!) : {};
    }
    const resumed = opts.resume
      ? await loadRunCheckpoint<{ update: number; rng: number[]; metricsBytes: number }>(
        outDir,
        trainer,
      )
      : null;
    if (resumed) {
      update = resumed.run.update;
      rng = new Rng(resumed.run.rng);
      const f = await Deno.open(metricsPath, { write: true, create: true });
      await f.truncate(resumed.run.metricsBytes);
      f.close();
    } else await Deno.writeTextFile(metricsPath, "");
    opts.onStart?.(update);
    const file = await Deno.open(metricsPath, { append: true });
    const P = o.perUpdate;
    const examplesOf = (u: number) => Array.from({ length: P }, (_, j) => (u * P + j) % o.count);
    let tokens = 0;
    for (let u = 0; u < update; u++) for (const i of examplesOf(u)) tokens += o.tokensOf(i);
    let last: MetricsRow = {};
    const trainingEnded = opts.stop?.training();
    try {
      for (; update < opts.updates; update++) {
        const idx = examplesOf(update);
        for (const i of idx) tokens += o.tokensOf(i);
        const lr = cfg.lr_anneal ? cfg.lr * (1 - update / opts.updates) : cfg.lr;
        const sums: Record<string, number> = {};
        let steps = 0;
        for (let e = 0; e < cfg.epochs; e++) {
          const perm = rng.permutation(P);
          for (let m = 0; m < cfg.minibatches; m++) {
            const lo = Math.floor(m * P / cfg.minibatches);
            const hi = Math.floor((m + 1) * P / cfg.minibatches);
            if (hi === lo) continue;
            const r = await o.step(perm.slice(lo, hi).map((k) => idx[k]), lr);
            if (!Number.isFinite(r.loss[0]) || !Number.isFinite(r.gradNorm[0])) {
              throw new Error(
                `${o.name} update ${update + 1}/${opts.updates}: the loss or gradient is not ` +
                  `finite (loss ${r.loss[0]}); lower ${o.section}.lr (${cfg.lr}) or ` +
                  `${o.section}.max_grad_norm`,
              );
            }
            stepStats(r, sums);
            steps++;
          }
        }
        const mean = (k: string) => k in sums ? sums[k] / steps : null;
        const row = o.row({ update: update + 1, step: tokens, lr }, mean);
        const extra = await opts.extraMetrics?.(update + 1);
        if (extra) Object.assign(row, extra);
        await writeAll(file, JSON.stringify(row) + "\n");
        last = row;
        await opts.afterUpdate?.(update + 1);
        opts.onUpdate?.(row, update + 1);
        // A requested stop (preemption, a time limit) checkpoints here and throws, as trainPpo.
        const { save, stop } = checkpointDue(
          update + 1,
          opts.updates,
          opts.checkpointEvery,
          opts.stop?.reason,
        );
        if (save) {
          await file.sync();
          const at = await saveRunCheckpoint(outDir, update + 1, trainer, {
            update: update + 1,
            rng: rng.state(),
            metricsBytes: (await file.stat()).size,
          });
          if (stop) throw new StopRequested(update + 1, stop, at);
        }
      }
      await file.sync();
    } finally {
      trainingEnded?.();
      file.close();
    }
    await trainer.saveCheckpoint(finalPath);
    return last;
  };
}
