/**
 * A training step as ONE ONNX model: params, optimizer state, step counter,
 * hyperparameters and a batch in; new params, new state, loss and diagnostics out.
 * With `fuse: K` the model runs K steps inside an ONNX Loop, each on its own slice
 * of a batch stacked along a leading K axis (amortising the JS <-> ORT hand-off).
 *
 * {@link Trainer} owns the buffers: two per parameter / state tensor, swapped each
 * call (ping-pong), so ORT writes into preallocated outputs and a step allocates nothing.
 *
 * @example
 * ```ts
 * const trainer = await Trainer.create({
 *   dtype: "float32",
 *   params: { w: { shape: [4, 1] } },
 *   batch: { x: { dtype: "float32", shape: ["B", 4] }, y: { dtype: "float32", shape: ["B", 1] } },
 *   loss: (g, p, b) => { const e = g.sub(g.matmul(b.x, p.w), b.y); return { loss: g.reduceMean(g.mul(e, e)) }; },
 *   optimizer: adamw,
 * }, { w: new Float32Array(4) });
 * const { loss } = await trainer.step({ x, y }, { lr: 1e-2 });
 * ```
 *
 * This module re-exports the parts, which live beside it:
 * - train_graph.ts: {@link TrainStepSpec}, the step and gradient-step graphs, io names;
 * - trainer.ts: {@link Trainer}, which runs a step and owns its buffers and checkpoints;
 * - train_split.ts: the split optimizer mode's buffer layout and chunked optimizer;
 * - train_accumulate.ts: gradient accumulation over micro-batches ({@link Trainer} with
 *   `accumulate`, `stepAccumulated`): summed gradients, one clip, one optimizer step.
 * @module
 */
export {
  buildGradStep,
  buildTrainStep,
  hparamDefaults,
  io,
  type TrainStepSpec,
} from "./train_graph.ts";
export { OPTIMIZER_CHUNK, SPLIT_MIN } from "./train_split.ts";
export { repeatSteps, type StepResult, Trainer, type TrainerOptions } from "./trainer.ts";
