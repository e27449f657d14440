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
 * @module
 */
import type * as ort from "onnxruntime-node";
import { type DType, Graph, type Shape, type Value } from "./graph.ts";
import { gradients } from "./autodiff.ts";
import {
  buildOptimizerGraph,
  clipGradNorm,
  optimIo,
  type Optimizer,
  uniqueOutput,
} from "./optim.ts";
import { compile, type Session, type SessionOptions, tensor, type TypedArray } from "./session.ts";
import { loadSafetensors, saveSafetensors } from "./safetensors.ts";

export interface TrainStepSpec {
  dtype: "float32" | "float64";
  /** Trainable parameters by name. */
  params: Record<string, { shape: number[] }>;
  /** Parameters fed in but not updated (e.g. a frozen base under LoRA). */
  frozen?: Record<string, { shape: number[] }>;
  /** Batch inputs for ONE step (symbolic dims allowed). */
  batch: Record<string, { dtype: DType; shape: Shape }>;
  /**
   * Loss hyperparameters with their defaults (e.g. PPO's clip ε, vf_coef). Each becomes a
   * scalar graph input like the optimizer's, so one compiled step serves a whole sweep.
   */
  hparams?: Record<string, number>;
  /** Builds the scalar loss (and optional scalar metrics) from params, batch and hparams. */
  loss: (
    g: Graph,
    params: Record<string, Value>,
    batch: Record<string, Value>,
    hparams: Record<string, Value>,
  ) => {
    loss: Value;
    metrics?: Record<string, Value>;
  };
  optimizer: Optimizer;
  /** Clip the global gradient norm to hparam `max_grad_norm` (default true; +Infinity disables). */
  clipGradNorm?: boolean;
  /** Steps fused into one call with an ONNX Loop (default 1: no Loop). */
  fuse?: number;
}

/** Names of the model's inputs and outputs. */
export const io = {
  param: (n: string) => `param/${n}`,
  state: (slot: string, n: string) => `state/${slot}/${n}`,
  newParam: (n: string) => `new/param/${n}`,
  newState: (slot: string, n: string) => `new/state/${slot}/${n}`,
  hparam: (n: string) => `hp/${n}`,
  batch: (n: string) => `batch/${n}`,
  metric: (n: string) => `metric/${n}`,
};

/** Hyperparameters of a spec with defaults (optimizer's + max_grad_norm + the loss's). */
export function hparamDefaults(spec: TrainStepSpec): Record<string, number> {
  const fixed = {
    ...spec.optimizer.defaults,
    ...(spec.clipGradNorm === false ? {} : { max_grad_norm: Infinity }),
  };
  for (const n of Object.keys(spec.hparams ?? {})) {
    if (n in fixed) {
      throw new Error(`train step: loss hyperparameter "${n}" clashes with the optimizer's`);
    }
  }
  return {
    ...spec.optimizer.defaults,
    ...(spec.hparams ?? {}),
    ...(spec.clipGradNorm === false ? {} : { max_grad_norm: Infinity }),
  };
}

/** Build the training-step graph for `spec`. */
export function buildTrainStep(spec: TrainStepSpec): Graph {
  const g = new Graph("train_step");
  const { dtype, optimizer } = spec;
  const names = Object.keys(spec.params), frozenNames = Object.keys(spec.frozen ?? {});
  const K = spec.fuse ?? 1;
  const params = names.map((n) => g.input(io.param(n), dtype, spec.params[n].shape));
  const frozen = Object.fromEntries(
    frozenNames.map((n) => [n, g.input(io.param(n), dtype, spec.frozen![n].shape)]),
  );
  const states = optimizer.slots.map((s) =>
    names.map((n) => g.input(io.state(s, n), dtype, spec.params[n].shape))
  );
  const step = g.input("step", dtype, []);
  const hp = Object.fromEntries(
    Object.keys(hparamDefaults(spec)).map((h) => [h, g.input(io.hparam(h), dtype, [])]),
  );
  const batch = Object.fromEntries(
    Object.entries(spec.batch).map((
      [n, b],
    ) => [n, g.input(io.batch(n), b.dtype, K > 1 ? [K, ...b.shape] : b.shape)]),
  );

  /** forward -> backward -> clip -> optimizer, written into graph `b`. */
  const oneStep = (b: Graph, ps: Value[], ss: Value[][], t: Value, data: Record<string, Value>) => {
    const pmap = { ...frozen, ...Object.fromEntries(names.map((n, i) => [n, ps[i]])) };
    const { loss, metrics = {} } = spec.loss(b, pmap, data, hp);
    if (loss.rank !== 0 || loss.dtype !== dtype) {
      throw new Error(`train step: loss must be a ${dtype} scalar, got ${loss}`);
    }
    let grads = gradients(b, loss, ps);
    let gradNorm: Value;
    if (spec.clipGradNorm === false) {
      gradNorm = b.sqrt(grads.map((d) => b.reduceSum(b.mul(d, d))).reduce((x, y) => b.add(x, y)));
    } else ({ grads, norm: gradNorm } = clipGradNorm(b, grads, hp.max_grad_norm));
    const updated = ps.map((p, i) => optimizer.update(b, p, grads[i], ss.map((s) => s[i]), hp, t));
    return {
      params: updated.map((u) => u.param),
      states: optimizer.slots.map((_, s) => updated.map((u) => u.state[s])),
      scalars: { loss, grad_norm: gradNorm, ...metrics } as Record<string, Value>,
    };
  };

  let out: { params: Value[]; states: Value[][]; scalars: Record<string, Value> };
  if (K === 1) out = oneStep(g, params, states, step, batch);
  else {
    // Loop body: (iter, cond, params..., states..., step) -> (cond, params'..., states'..., step+1, scalars...)
    const body = new Graph("train_loop_body", g);
    const iter = body.freshInput("iter", "int64", []);
    const condIn = body.freshInput("cond", "bool", []);
    const bp = params.map((p) => body.freshInput("carry_param", dtype, p.shape));
    const bs = states.map((s) => s.map((v) => body.freshInput("carry_state", dtype, v.shape)));
    const bt = body.freshInput("carry_step", dtype, []);
    const slice = Object.fromEntries(
      Object.entries(batch).map(([n, v]) => [n, body.gather(v, iter, 0)]),
    );
    const r = oneStep(body, bp, bs, bt, slice);
    const scalarNames = Object.keys(r.scalars);
    body.output(body.identity(condIn));
    [...r.params, ...r.states.flat(), body.add(bt, 1)].forEach((v) => body.output(v));
    scalarNames.forEach((n) => body.output(body.identity(r.scalars[n])));
    const carried = [...params, ...states.flat(), step];
    const outs = g.node(
      "Loop",
      [g.scalar(K, "int64"), g.constant({ dtype: "bool", shape: [], data: [true] }), ...carried],
      { body: { kind: "graph", value: body } },
      undefined,
      [
        ...carried.map((v) => ({ dtype: v.dtype, shape: v.shape })),
        ...scalarNames.map((n) => ({ dtype: r.scalars[n].dtype, shape: [K] })),
      ],
    );
    const n = names.length;
    out = {
      params: outs.slice(0, n),
      states: optimizer.slots.map((_, s) => outs.slice(n + s * n, n + (s + 1) * n)),
      scalars: Object.fromEntries(scalarNames.map((name, i) => [name, outs[carried.length + i]])),
    };
  }
  names.forEach((n, i) => g.output(out.params[i], io.newParam(n)));
  optimizer.slots.forEach((s, si) =>
    names.forEach((n, i) => g.output(out.states[si][i], io.newState(s, n)))
  );
  for (const [k, v] of Object.entries(out.scalars)) {
    g.output(v, k === "loss" || k === "grad_norm" ? k : io.metric(k));
  }
  return g;
}

/**
 * The forward + backward half of a step, for {@link Trainer}'s "split" mode: inputs as
 * {@link buildTrainStep}'s minus optimizer state, step and optimizer hyperparameters; outputs
 * the raw gradients (under the names in `grads`, which are the gradient values' own names, so
 * ORT writes each straight into its buffer), `loss`, `grad_norm`, the metrics and, when
 * clipping, the clip coefficient `clip_coef`. The optimizer runs in another session
 * ({@link buildOptimizerGraph}) on the same ops, so both modes give the same bits.
 */
export function buildGradStep(spec: TrainStepSpec): { graph: Graph; grads: string[] } {
  if ((spec.fuse ?? 1) !== 1) throw new Error("buildGradStep: fuse > 1 needs the graph mode");
  const g = new Graph("grad_step");
  const { dtype } = spec;
  const names = Object.keys(spec.params), frozenNames = Object.keys(spec.frozen ?? {});
  const params = names.map((n) => g.input(io.param(n), dtype, spec.params[n].shape));
  const frozen = Object.fromEntries(
    frozenNames.map((n) => [n, g.input(io.param(n), dtype, spec.frozen![n].shape)]),
  );
  const lossHp = [
    ...Object.keys(spec.hparams ?? {}),
    ...(spec.clipGradNorm === false ? [] : ["max_grad_norm"]),
  ];
  const hp = Object.fromEntries(lossHp.map((h) => [h, g.input(io.hparam(h), dtype, [])]));
  const batch = Object.fromEntries(
    Object.entries(spec.batch).map(([n, b]) => [n, g.input(io.batch(n), b.dtype, b.shape)]),
  );
  const pmap = { ...frozen, ...Object.fromEntries(names.map((n, i) => [n, params[i]])) };
  const { loss, metrics = {} } = spec.loss(g, pmap, batch, hp);
  if (loss.rank !== 0 || loss.dtype !== dtype) {
    throw new Error(`train step: loss must be a ${dtype} scalar, got ${loss}`);
  }
  const grads = gradients(g, loss, params);
  const outs = grads.map((d) => g.output(uniqueOutput(g, d)));
  let norm: Value;
  if (spec.clipGradNorm === false) {
    norm = g.sqrt(grads.map((d) => g.reduceSum(g.mul(d, d))).reduce((x, y) => g.add(x, y)));
  } else {
    // clipGradNorm's ops, without the scaling (the optimizer graph applies the coefficient).
    const sq = grads.map((d) => g.reduceSum(g.mul(d, d)));
    norm = g.sqrt(sq.reduce((a, b) => g.add(a, b)));
    g.output(g.min(g.div(hp.max_grad_norm, g.add(norm, 1e-6)), 1), optimIo.coef);
  }
  g.output(loss, "loss");
  g.output(norm, "grad_norm");
  for (const [k, v] of Object.entries(metrics)) g.output(v, io.metric(k));
  return { graph: g, grads: outs.map((v) => v.name) };
}

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
}

/** Trainable values from which "auto" picks the split optimizer. */
export const SPLIT_MIN = 1 << 20;
/** Default elements per optimizer run: 4 MB of float32 per array, so a chunk's chain stays in cache. */
export const OPTIMIZER_CHUNK = 1 << 20;
/** Alignment of each tensor in the split mode's flat buffers (elements: 64 bytes of float32). */
const ALIGN = 16;

/**
 * A contiguous run of params (with its gradients and optimizer state): one large tensor, or
 * the small ones packed together, so the optimizer runs over few, large chunks.
 */
interface Group {
  size: number;
  param: Arr;
  grad: Arr;
  state: Arr[];
}

/** The split mode's buffers and optimizer session. */
interface Split {
  groups: Group[];
  /** Per parameter: its group and offset. */
  where: Record<string, { group: Group; offset: number; size: number }>;
  /** Per parameter, the step graph's output name of its gradient. */
  gradOut: Record<string, string>;
  optimizer: Session;
  optOut: { param: string; state: string[] };
  chunk: number;
  views: Record<string, ort.Tensor>;
  gradFetches: Record<string, ort.Tensor>;
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
      ...sessionOpts
    } = opts;
    const K = spec.fuse ?? 1;
    const count = Object.values(spec.params).reduce(
      (s, { shape }) => s + shape.reduce((a, b) => a * b, 1),
      0,
    );
    const split = optimizerMode === "split" || (optimizerMode === "auto" && K === 1 &&
      count >= SPLIT_MIN);
    if (split && K !== 1) throw new Error(`Trainer: optimizerMode "split" needs fuse 1, got ${K}`);
    let t: Trainer;
    if (split) {
      const { graph, grads } = buildGradStep(spec);
      const clip = spec.clipGradNorm !== false;
      const opt = buildOptimizerGraph(
        new Graph(`${spec.optimizer.name}_step`),
        spec.optimizer,
        spec.dtype,
        clip,
      );
      const [session, optimizer] = await Promise.all([
        compile(graph, sessionOpts),
        compile(opt.graph, sessionOpts),
      ]);
      const names = Object.keys(spec.params);
      const Buf = spec.dtype === "float32" ? Float32Array : Float64Array;
      const chunk = Math.max(ALIGN, Math.floor(optimizerChunk / ALIGN) * ALIGN);
      const sizeOf = (n: string) => spec.params[n].shape.reduce((a, b) => a * b, 1);
      for (const n of names) {
        if (init[n].length !== sizeOf(n)) {
          throw new Error(`Trainer: "${n}" has ${init[n].length} values, expected ${sizeOf(n)}`);
        }
      }
      // Tensors of at least a quarter chunk get a group of their own; the rest share one.
      const big = (n: string) => sizeOf(n) >= chunk / 4;
      // Zero-filled, so their pages are touched now rather than during the first steps.
      const zeros = (n: number) => new Buf(n).fill(0);
      const groups: Group[] = [];
      const where: Split["where"] = {};
      let packSize = 0;
      const packed: string[] = [];
      for (const n of names) {
        if (!big(n)) {
          packed.push(n);
          packSize += Math.ceil(sizeOf(n) / ALIGN) * ALIGN;
          continue;
        }
        const own = adopt && init[n] instanceof Buf;
        const param = own ? init[n] : Buf.from(init[n]);
        const group: Group = {
          size: sizeOf(n),
          param,
          grad: zeros(sizeOf(n)),
          state: spec.optimizer.slots.map(() => zeros(sizeOf(n))),
        };
        groups.push(group);
        where[n] = { group, offset: 0, size: sizeOf(n) };
      }
      if (packed.length) {
        const pack: Group = {
          size: packSize,
          param: zeros(packSize),
          grad: zeros(packSize),
          state: spec.optimizer.slots.map(() => zeros(packSize)),
        };
        groups.push(pack);
        let at = 0;
        for (const n of packed) {
          pack.param.set(init[n], at);
          where[n] = { group: pack, offset: at, size: sizeOf(n) };
          at += Math.ceil(sizeOf(n) / ALIGN) * ALIGN;
        }
      }
      const views: Record<string, ort.Tensor> = {}, gradFetches: Record<string, ort.Tensor> = {};
      const gradOut: Record<string, string> = {};
      names.forEach((n, i) => {
        const { group, offset, size } = where[n];
        const at = (
          b: Arr,
        ) => (offset === 0 && size === b.length ? b : b.subarray(offset, offset + size));
        views[n] = tensor(spec.dtype, spec.params[n].shape, at(group.param));
        gradOut[n] = grads[i];
        gradFetches[grads[i]] = tensor(spec.dtype, spec.params[n].shape, at(group.grad));
      });
      t = new Trainer(spec, session, {
        groups,
        where,
        gradOut,
        optimizer,
        optOut: opt.outputs,
        chunk,
        views,
        gradFetches,
      });
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
   */
  async step(
    batch: Record<string, ort.Tensor>,
    hparams: Record<string, number> = {},
  ): Promise<StepResult> {
    const { dtype } = this.spec;
    const K = this.spec.fuse ?? 1;
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
      hp[io.hparam(n)] = tensor(dtype, [], [v]);
    }
    const feeds: Record<string, ort.Tensor> = { ...this.frozenFeeds, ...hp };
    const step = tensor(dtype, [], [this.steps + 1]);
    for (const n of Object.keys(this.spec.batch)) {
      if (!batch[n]) throw new Error(`Trainer.step: missing batch input "${n}"`);
      feeds[io.batch(n)] = batch[n];
    }
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const n of this.scalarOut) fetches[n] = null;
    let out: Record<string, ort.Tensor>;
    if (this.split) {
      const sp = this.split;
      for (const [n, v] of Object.entries(sp.views)) feeds[io.param(n)] = v;
      Object.assign(fetches, sp.gradFetches);
      out = await this.session.run(feeds, fetches);
      await this.optimize(sp, hp, step, out[optimIo.coef]);
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

  /** Split mode: clip + optimizer over the flat buffers, chunk by chunk, in place. */
  private async optimize(
    sp: Split,
    hp: Record<string, ort.Tensor>,
    step: ort.Tensor,
    coef: ort.Tensor | undefined,
  ): Promise<void> {
    const { dtype, optimizer } = this.spec;
    const common: Record<string, ort.Tensor> = { ...hp, [optimIo.step]: step };
    if (coef) common[optimIo.coef] = coef;
    for (const g of sp.groups) {
      for (let a = 0; a < g.size; a += sp.chunk) {
        const b = Math.min(a + sp.chunk, g.size);
        const view = (buf: Arr) => tensor(dtype, [b - a], buf.subarray(a, b));
        const p = view(g.param);
        const state = g.state.map(view);
        const feeds: Record<string, ort.Tensor> = {
          ...common,
          [optimIo.param]: p,
          [optimIo.grad]: view(g.grad),
        };
        const fetches: Record<string, ort.Tensor> = { [sp.optOut.param]: p };
        optimizer.slots.forEach((s, i) => {
          feeds[optimIo.state(s)] = state[i];
          fetches[sp.optOut.state[i]] = state[i];
        });
        await sp.optimizer.run(feeds, fetches);
      }
    }
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
    const sp = this.split;
    const out: Record<string, Arr> = {};
    for (const n of Object.keys(this.spec.params)) {
      const { group, offset, size } = sp.where[n];
      const at = (b: Arr) => b.subarray(offset, offset + size);
      out[io.param(n)] = at(group.param);
      this.spec.optimizer.slots.forEach((s, i) => (out[io.state(s, n)] = at(group.state[i])));
    }
    return out;
  }

  /** Every tensor needed to resume exactly: params, optimizer state (copies). */
  stateDict(): Record<string, { dtype: "float32" | "float64"; shape: number[]; data: TypedArray }> {
    const shapeOf = (k: string) => {
      const n = k.startsWith("param/") ? k.slice(6) : k.slice(k.indexOf("/", 6) + 1);
      return [...this.spec.params[n].shape];
    };
    return Object.fromEntries(
      Object.entries(this.live()).map(([k, data]) => [
        k,
        { dtype: this.spec.dtype, shape: shapeOf(k), data: Trainer.copy(this.spec.dtype, data) },
      ]),
    );
  }

  /**
   * Write params + optimizer state + step counter to one safetensors file (atomic).
   * `metadata` is stored alongside (e.g. RNG state, KL controller state as JSON strings).
   */
  async saveCheckpoint(path: string, metadata: Record<string, string> = {}): Promise<void> {
    await saveSafetensors(path, this.stateDict(), {
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
