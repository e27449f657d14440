/**
 * {@link Trainer}: runs a compiled training step (train_graph.ts) and owns its buffers. In
 * "graph" mode params and optimizer state live in two buffers each, swapped every call
 * (ping-pong), so ORT writes into preallocated outputs and a step allocates nothing; in
 * "split" mode they are held once and updated in place by a chunked optimizer session
 * (train_split.ts). Also checkpoints: the state dict and its safetensors file.
 *
 * Separate from the graph builders: this file is what happens at run time (buffers,
 * feeds and fetches, resume), the graphs say what a step computes.
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { DType } from "./graph.ts";
import { optimIo } from "./optim.ts";
import { compile, type Session, type SessionOptions, tensor, type TypedArray } from "./session.ts";
import { loadSafetensors, saveSafetensors } from "./safetensors.ts";
import { buildTrainStep, hparamDefaults, io, type TrainStepSpec } from "./train_graph.ts";
import {
  createSplit,
  OPTIMIZER_CHUNK,
  optimizeSplit,
  type Split,
  SPLIT_MIN,
  splitLive,
} from "./train_split.ts";
import { accumulatedNorm, addScratch } from "./train_accumulate.ts";

type Arr = Float32Array | Float64Array;

/**
 * The batch for a fused call: the same one-step batch repeated `k` times along a new
 * leading axis (k = 1 returns it unchanged). For distinct per-step batches, stack them.
 */
export function repeatSteps(t: ort.Tensor, k: number): ort.Tensor {
  if (k === 1) return t;
  const src = t.data as TypedArray;
  const out = new (src.constructor as new (n: number) => TypedArray)(src.length * k);
  for (let i = 0; i < k; i++) (out as Float32Array).set(src as Float32Array, i * src.length);
  return tensor(t.type as DType, [k, ...t.dims], out);
}

/** What one {@link Trainer.step} call returns. */
export interface StepResult {
  /** Loss of each fused step (length = fuse). */
  loss: number[];
  gradNorm: number[];
  metrics: Record<string, number[]>;
}

/** Options of {@link Trainer.create}: the session's, and where the optimizer runs. */
export interface TrainerOptions extends SessionOptions {
  /**
   * - "graph": the optimizer is part of the step graph, params and state live in two buffers
   *   each, swapped every call (ping-pong). Needed for `fuse` > 1.
   * - "split": the step graph writes the gradients into one buffer; a second, elementwise
   *   session applies clipping and the optimizer to flat chunks of params, gradients and state,
   *   each written in place. Params, gradients and state are held once (AdamW: 4 × params
   *   instead of 6 × plus the step's temporaries), and the optimizer's element-wise chains run
   *   on cache-sized chunks instead of whole tensors.
   * - "auto" (default): "split" for `fuse` 1 and at least {@link SPLIT_MIN} trainable values.
   *
   * Both modes run the same ops in the same order: the same bits (tests/onnx/train_test.ts).
   */
  optimizerMode?: "auto" | "graph" | "split";
  /** Elements per optimizer run in "split" mode (default {@link OPTIMIZER_CHUNK}). */
  optimizerChunk?: number;
  /**
   * "split" mode: large arrays of `init` (float arrays of the spec's dtype) become the live
   * parameters instead of being copied, so a loaded model is held once. They then change with
   * every step; read params through {@link Trainer.params}. Small tensors are always copied.
   */
  adopt?: boolean;
  /**
   * Gradient accumulation over micro-batches ({@link Trainer.stepAccumulated},
   * train_accumulate.ts): forces the "split" mode (`fuse` 1), whose step graph then writes only
   * gradients, loss and metrics, and adds one scratch gradient buffer per parameter.
   */
  accumulate?: boolean;
}

/**
 * Runs a compiled training step. Params and optimizer state live either in ping-pong buffers
 * updated by the step graph ("graph" mode) or once, updated in place by a separate optimizer
 * session ("split" mode); see {@link TrainerOptions.optimizerMode}.
 */
export class Trainer {
  /** Completed optimizer steps. */
  steps = 0;
  hparams: Record<string, number>;
  private cur: Record<string, ort.Tensor> = {};
  private next: Record<string, ort.Tensor> = {};
  private frozenFeeds: Record<string, ort.Tensor> = {};
  private scalarOut: string[];
  private split?: Split;

  private constructor(readonly spec: TrainStepSpec, readonly session: Session, split?: Split) {
    this.hparams = hparamDefaults(spec);
    this.split = split;
    const grads = new Set(Object.values(split?.gradOut ?? {}));
    this.scalarOut = session.outputNames.filter(
      (n) => !n.startsWith("new/") && !grads.has(n),
    );
  }

  /** "graph" or "split" (see {@link TrainerOptions.optimizerMode}). */
  get mode(): "graph" | "split" {
    return this.split ? "split" : "graph";
  }

  /** Compile the step for `spec` and load initial params (copied; state starts at zero). */
  static async create(
    spec: TrainStepSpec,
    init: Record<string, Arr>,
    opts: TrainerOptions = {},
  ): Promise<Trainer> {
    for (const n of Object.keys(spec.params)) {
      if (!init[n]) throw new Error(`Trainer: no initial value for parameter "${n}"`);
    }
    for (const n of Object.keys(spec.frozen ?? {})) {
      if (!init[n]) throw new Error(`Trainer: no value for frozen parameter "${n}"`);
    }
    const {
      optimizerMode = "auto",
      optimizerChunk = OPTIMIZER_CHUNK,
      adopt = false,
      accumulate = false,
      ...sessionOpts
    } = opts;
    const K = spec.fuse ?? 1;
    const count = Object.values(spec.params).reduce(
      (s, { shape }) => s + shape.reduce((a, b) => a * b, 1),
      0,
    );
    if (accumulate && optimizerMode === "graph") {
      throw new Error('Trainer: accumulate needs the "split" optimizer mode, not "graph"');
    }
    const split = accumulate || optimizerMode === "split" ||
      (optimizerMode === "auto" && K === 1 && count >= SPLIT_MIN);
    if (split && K !== 1) throw new Error(`Trainer: optimizerMode "split" needs fuse 1, got ${K}`);
    let t: Trainer;
    if (split) {
      const made = await createSplit(spec, init, sessionOpts, optimizerChunk, adopt, accumulate);
      t = new Trainer(spec, made.session, made.split);
    } else {
      t = new Trainer(spec, await compile(buildTrainStep(spec), sessionOpts));
      for (const [n, { shape }] of Object.entries(spec.params)) {
        for (const key of [io.param(n), ...spec.optimizer.slots.map((s) => io.state(s, n))]) {
          t.cur[key] = tensor(
            spec.dtype,
            shape,
            key === io.param(n) ? Trainer.copy(spec.dtype, init[n]) : undefined,
          );
          t.next[key] = tensor(spec.dtype, shape);
        }
      }
    }
    for (const [n, { shape }] of Object.entries(spec.frozen ?? {})) {
      t.frozenFeeds[io.param(n)] = tensor(spec.dtype, shape, init[n]);
    }
    return t;
  }

  private static copy(dtype: "float32" | "float64", a: Arr): Arr {
    return dtype === "float32" ? Float32Array.from(a) : Float64Array.from(a);
  }

  /**
   * Run one call (`fuse` optimizer steps). `batch` tensors have the spec's batch
   * shapes (with a leading `fuse` axis when fused). `hparams` override defaults for this call.
   * On a trainer created with `accumulate`, the batch is one micro-batch that is the whole
   * ({@link stepAccumulated} of one).
   */
  async step(
    batch: Record<string, ort.Tensor>,
    hparams: Record<string, number> = {},
  ): Promise<StepResult> {
    const K = this.spec.fuse ?? 1;
    if (this.split?.scratchFetches) return await this.stepAccumulated([batch], hparams);
    const { hp, feeds, fetches } = this.feeds(batch, hparams);
    const step = tensor(this.spec.dtype, [], [this.steps + 1]);
    let out: Record<string, ort.Tensor>;
    if (this.split) {
      const sp = this.split;
      Object.assign(fetches, sp.gradFetches);
      out = await this.session.run(feeds, fetches);
      await optimizeSplit(this.spec, sp, hp, step, out[optimIo.coef]);
    } else {
      Object.assign(feeds, this.cur);
      feeds.step = step;
      // Params/state go into the spare buffers; the small scalar outputs ORT allocates (null).
      for (const key of Object.keys(this.cur)) fetches[`new/${key}`] = this.next[key];
      out = await this.session.run(feeds, fetches);
      [this.cur, this.next] = [this.next, this.cur];
    }
    this.steps += K;
    const read = (n: string) => Array.from(out[n].data as Arr);
    const metrics: Record<string, number[]> = {};
    for (const n of this.scalarOut) if (n.startsWith("metric/")) metrics[n.slice(7)] = read(n);
    return { loss: read("loss"), gradNorm: read("grad_norm"), metrics };
  }

  /**
   * ONE optimizer step over a batch given as micro-batches (a trainer created with
   * `accumulate`): each runs the forward + backward alone, their gradients are summed, and the
   * summed gradient gets one global-norm clip and one optimizer update. Each micro-batch's loss
   * must be its share of the whole batch's (normalised by the whole batch), so the sum is the
   * batch's gradient; `loss` and the metrics are the micro-batches' sums, `gradNorm` the summed
   * gradient's norm.
   */
  async stepAccumulated(
    batches: Record<string, ort.Tensor>[],
    hparams: Record<string, number> = {},
  ): Promise<StepResult> {
    const sp = this.split;
    if (!sp?.scratchFetches) {
      throw new Error("Trainer.stepAccumulated: create the trainer with accumulate: true");
    }
    if (batches.length === 0) throw new Error("Trainer.stepAccumulated: no micro-batches");
    const sums: Record<string, number> = {};
    let hpFeeds: Record<string, ort.Tensor> = {};
    for (let i = 0; i < batches.length; i++) {
      const { hp, feeds, fetches } = this.feeds(batches[i], hparams);
      hpFeeds = hp;
      Object.assign(fetches, i === 0 ? sp.gradFetches : sp.scratchFetches);
      const out = await this.session.run(feeds, fetches);
      if (i > 0) addScratch(sp);
      for (const n of this.scalarOut) sums[n] = (sums[n] ?? 0) + (out[n].data as Arr)[0];
    }
    const { norm, coef } = accumulatedNorm(sp);
    const maxNorm = { ...this.hparams, ...hparams }.max_grad_norm;
    const clip = this.spec.clipGradNorm !== false
      ? tensor(this.spec.dtype, [], [coef(maxNorm)])
      : undefined;
    const step = tensor(this.spec.dtype, [], [this.steps + 1]);
    await optimizeSplit(this.spec, sp, hpFeeds, step, clip);
    this.steps += 1;
    const metrics: Record<string, number[]> = {};
    for (const n of this.scalarOut) if (n.startsWith("metric/")) metrics[n.slice(7)] = [sums[n]];
    return { loss: [sums.loss], gradNorm: [norm], metrics };
  }

  /** One run's feeds (frozen, hyperparameters, batch, live params) and scalar fetches. */
  private feeds(batch: Record<string, ort.Tensor>, hparams: Record<string, number>) {
    for (const n of Object.keys(hparams)) {
      if (!(n in this.hparams)) {
        throw new Error(
          `Trainer.step: unknown hyperparameter "${n}" (known: ${
            Object.keys(this.hparams).join(", ")
          })`,
        );
      }
    }
    const hp: Record<string, ort.Tensor> = {};
    for (const [n, v] of Object.entries({ ...this.hparams, ...hparams })) {
      hp[io.hparam(n)] = tensor(this.spec.dtype, [], [v]);
    }
    const feeds: Record<string, ort.Tensor> = { ...this.frozenFeeds, ...hp };
    for (const n of Object.keys(this.spec.batch)) {
      if (!batch[n]) throw new Error(`Trainer.step: missing batch input "${n}"`);
      feeds[io.batch(n)] = batch[n];
    }
    if (this.split) {
      for (const [n, v] of Object.entries(this.split.views)) {
        feeds[io.param(n)] = v;
      }
    }
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const n of this.scalarOut) fetches[n] = null;
    return { hp, feeds, fetches };
  }

  /**
   * The live parameter tensors by parameter name (no copy), e.g. to feed an inference
   * session that shares the weights. They change on the next {@link step}.
   */
  paramTensors(): Record<string, ort.Tensor> {
    if (this.split) return { ...this.split.views };
    return Object.fromEntries(
      Object.keys(this.spec.params).map((n) => [n, this.cur[io.param(n)]]),
    );
  }

  /** Current parameter values (views of the live buffers: copy before the next run). */
  params(): Record<string, Arr> {
    return Object.fromEntries(
      Object.entries(this.paramTensors()).map(([n, t]) => [n, t.data as Arr]),
    );
  }

  /** The live params and optimizer state by state-dict key (views). */
  private live(): Record<string, Arr> {
    if (!this.split) {
      return Object.fromEntries(Object.entries(this.cur).map(([k, t]) => [k, t.data as Arr]));
    }
    return splitLive(this.spec, this.split);
  }

  /**
   * Every tensor needed to resume exactly: params, optimizer state (copies; with `copy` false
   * the live buffers, valid until the next step).
   */
  stateDict(
    copy = true,
  ): Record<string, { dtype: "float32" | "float64"; shape: number[]; data: TypedArray }> {
    const shapeOf = (k: string) => {
      const n = k.startsWith("param/") ? k.slice(6) : k.slice(k.indexOf("/", 6) + 1);
      return [...this.spec.params[n].shape];
    };
    return Object.fromEntries(
      Object.entries(this.live()).map(([k, data]) => [
        k,
        {
          dtype: this.spec.dtype,
          shape: shapeOf(k),
          data: copy ? Trainer.copy(this.spec.dtype, data) : data,
        },
      ]),
    );
  }

  /**
   * Write params + optimizer state + step counter to one safetensors file (atomic).
   * `metadata` is stored alongside (e.g. RNG state, KL controller state as JSON strings).
   */
  async saveCheckpoint(path: string, metadata: Record<string, string> = {}): Promise<void> {
    // The live buffers themselves (no copy: nothing steps while the file is written).
    await saveSafetensors(path, this.stateDict(false), {
      ...metadata,
      "proxima.step": String(this.steps),
      "proxima.optimizer": this.spec.optimizer.name,
      "proxima.graph": this.session.hash,
    });
  }

  /** Restore a {@link saveCheckpoint} file; returns its metadata. Errors name the file. */
  async loadCheckpoint(path: string): Promise<Record<string, string>> {
    const { tensors, metadata } = await loadSafetensors(path);
    if (metadata["proxima.optimizer"] !== this.spec.optimizer.name) {
      throw new Error(
        `${path}: checkpoint was written by optimizer "${metadata["proxima.optimizer"]}", ` +
          `this trainer uses "${this.spec.optimizer.name}"`,
      );
    }
    try {
      this.loadStateDict(
        tensors as Record<string, { data: ArrayLike<number> }>,
        Number(metadata["proxima.step"]),
      );
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    return metadata;
  }

  /** Restore from {@link stateDict} output (and the step counter). */
  loadStateDict(state: Record<string, { data: ArrayLike<number> }>, step: number): void {
    for (const [k, t] of Object.entries(this.live())) {
      const src = state[k];
      if (!src) throw new Error(`Trainer.loadStateDict: checkpoint lacks "${k}"`);
      if (src.data.length !== t.length) {
        throw new Error(
          `Trainer.loadStateDict: "${k}" has ${src.data.length} values, expected ${t.length}`,
        );
      }
      t.set(src.data);
    }
    this.steps = step;
  }
}
