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
import { clipGradNorm, type Optimizer } from "./optim.ts";
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

/** Runs a compiled training step, keeping params and optimizer state in ping-pong buffers. */
export class Trainer {
  /** Completed optimizer steps. */
  steps = 0;
  hparams: Record<string, number>;
  private cur: Record<string, ort.Tensor> = {};
  private next: Record<string, ort.Tensor> = {};
  private frozenFeeds: Record<string, ort.Tensor> = {};
  private scalarOut: string[];

  private constructor(readonly spec: TrainStepSpec, readonly session: Session) {
    this.hparams = hparamDefaults(spec);
    this.scalarOut = session.outputNames.filter((n) => !n.startsWith("new/"));
  }

  /** Compile the step for `spec` and load initial params (copied; state starts at zero). */
  static async create(
    spec: TrainStepSpec,
    init: Record<string, Arr>,
    opts: SessionOptions = {},
  ): Promise<Trainer> {
    const session = await compile(buildTrainStep(spec), opts);
    const t = new Trainer(spec, session);
    for (const [n, { shape }] of Object.entries(spec.params)) {
      if (!init[n]) throw new Error(`Trainer: no initial value for parameter "${n}"`);
      for (const key of [io.param(n), ...spec.optimizer.slots.map((s) => io.state(s, n))]) {
        t.cur[key] = tensor(
          spec.dtype,
          shape,
          key === io.param(n) ? Trainer.copy(spec.dtype, init[n]) : undefined,
        );
        t.next[key] = tensor(spec.dtype, shape);
      }
    }
    for (const [n, { shape }] of Object.entries(spec.frozen ?? {})) {
      if (!init[n]) throw new Error(`Trainer: no value for frozen parameter "${n}"`);
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
    const feeds: Record<string, ort.Tensor> = { ...this.cur, ...this.frozenFeeds };
    for (const n of Object.keys(hparams)) {
      if (!(n in this.hparams)) {
        throw new Error(
          `Trainer.step: unknown hyperparameter "${n}" (known: ${
            Object.keys(this.hparams).join(", ")
          })`,
        );
      }
    }
    for (const [n, v] of Object.entries({ ...this.hparams, ...hparams })) {
      feeds[io.hparam(n)] = tensor(dtype, [], [v]);
    }
    feeds.step = tensor(dtype, [], [this.steps + 1]);
    for (const n of Object.keys(this.spec.batch)) {
      if (!batch[n]) throw new Error(`Trainer.step: missing batch input "${n}"`);
      feeds[io.batch(n)] = batch[n];
    }
    // Params/state go into the spare buffers; the small scalar outputs ORT allocates (null).
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const key of Object.keys(this.cur)) fetches[`new/${key}`] = this.next[key];
    for (const n of this.scalarOut) fetches[n] = null;
    const out = await this.session.run(feeds, fetches);
    [this.cur, this.next] = [this.next, this.cur];
    this.steps += K;
    const read = (n: string) => Array.from(out[n].data as Arr);
    const metrics: Record<string, number[]> = {};
    for (const n of this.scalarOut) if (n.startsWith("metric/")) metrics[n.slice(7)] = read(n);
    return { loss: read("loss"), gradNorm: read("grad_norm"), metrics };
  }

  /**
   * The live parameter tensors by parameter name (no copy), e.g. to feed an inference
   * session that shares the weights. They change on the next {@link step}.
   */
  paramTensors(): Record<string, ort.Tensor> {
    return Object.fromEntries(
      Object.keys(this.spec.params).map((n) => [n, this.cur[io.param(n)]]),
    );
  }

  /** Current parameter values (views of the live buffers: copy before the next run). */
  params(): Record<string, Arr> {
    return Object.fromEntries(
      Object.keys(this.spec.params).map((n) => [n, this.cur[io.param(n)].data as Arr]),
    );
  }

  /** Every tensor needed to resume exactly: params, optimizer state (copies). */
  stateDict(): Record<string, { dtype: "float32" | "float64"; shape: number[]; data: TypedArray }> {
    return Object.fromEntries(
      Object.entries(this.cur).map(([k, t]) => [
        k,
        {
          dtype: this.spec.dtype,
          shape: [...t.dims],
          data: Trainer.copy(this.spec.dtype, t.data as Arr),
        },
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
    for (const [k, t] of Object.entries(this.cur)) {
      const src = state[k];
      if (!src) throw new Error(`Trainer.loadStateDict: checkpoint lacks "${k}"`);
      if (src.data.length !== t.data.length) {
        throw new Error(
          `Trainer.loadStateDict: "${k}" has ${src.data.length} values, expected ${t.data.length}`,
        );
      }
      (t.data as Arr).set(src.data);
    }
    this.steps = step;
  }
}
