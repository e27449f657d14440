/**
 * Gradient accumulation for the Trainer's "split" mode (train_split.ts): a minibatch too large
 * for one forward + backward runs as micro-batches, each through the accumulating grad step
 * ({@link buildGradStep} with `accumulate`). The first writes its gradients into the groups'
 * gradient buffers, each later one into their scratch buffers, added in here; then the summed
 * gradient's global norm gives the ONE clip coefficient, and the optimizer runs once, as
 * PyTorch's (and TRL's) gradient_accumulation_steps do.
 *
 * Each micro-batch's loss must be its share of the whole batch's (normalised by the whole
 * batch: lib/ppo/micro_batches.ts feeds PPO's normalisers), so that the summed gradient is the
 * whole batch's; its loss and metrics are summed the same way.
 *
 * Separate from train_split.ts (the buffers' layout and the optimizer's chunks): this file is
 * the arithmetic between the micro-batches' runs.
 * @module
 */
import type { Split } from "./train_split.ts";

/** Add every group's scratch gradients (the last micro-batch's) into its gradients. */
export function addScratch(sp: Split): void {
  for (const g of sp.groups) {
    const grad = g.grad, add = g.scratch;
    if (!add) throw new Error("Trainer: gradient accumulation needs the accumulating split mode");
    for (let i = 0; i < g.size; i++) grad[i] += add[i];
  }
}

/**
 * The global L2 norm of the summed gradients (float64 sums over every group; the packed
 * group's alignment gaps are zero). The clip coefficient is min(max_norm / (norm + 1e-6), 1),
 * the formula of optim.ts clipGradNorm.
 */
export function accumulatedNorm(sp: Split): { norm: number; coef: (maxNorm: number) => number } {
  let sq = 0;
  for (const g of sp.groups) {
    const grad = g.grad;
    for (let i = 0; i < g.size; i++) sq += grad[i] * grad[i];
  }
  const norm = Math.sqrt(sq);
  return { norm, coef: (maxNorm) => Math.min(maxNorm / (norm + 1e-6), 1) };
}
