/**
 * A training step as ONE ONNX model, built from a {@link TrainStepSpec}: params, optimizer
 * state, step counter, hyperparameters and a batch in; new params, new state, loss and
 * diagnostics out ({@link buildTrainStep}; with `fuse: K`, K steps inside an ONNX Loop). And
 * its forward + backward half alone ({@link buildGradStep}), for the split optimizer.
 *
 * Separate from the runtime that runs them (trainer.ts, train_split.ts): this file only
 * builds graphs, so what a step computes can be read (and hashed) without compiling anything.
 * @module
 */
import { type DType, Graph, type Shape, type Value } from "./graph.ts";
import { gradients } from "./autodiff.ts";
import { traced } from "../setup_trace.ts";
import { clipGradNorm, optimIo, type Optimizer, uniqueOutput } from "./optim.ts";

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
    const { loss, metrics = {} } = traced(
      "graph: train_step forward",
      () => spec.loss(b, pmap, data, hp),
    );
    if (loss.rank !== 0 || loss.dtype !== dtype) {
      throw new Error(`train step: loss must be a ${dtype} scalar, got ${loss}`);
    }
    let grads = traced("graph: train_step autodiff", () => gradients(b, loss, ps));
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
 *
 * With `accumulate` (gradient accumulation over micro-batches, train_accumulate.ts) it leaves
 * out `grad_norm` and `clip_coef`: the norm and the clip belong to the summed gradient, which
 * the runtime computes after the last micro-batch.
 */
export function buildGradStep(
  spec: TrainStepSpec,
  accumulate = false,
): { graph: Graph; grads: string[] } {
  if ((spec.fuse ?? 1) !== 1) throw new Error("buildGradStep: fuse > 1 needs the graph mode");
  const g = new Graph(accumulate ? "grad_step_accumulate" : "grad_step");
  const { dtype } = spec;
  const names = Object.keys(spec.params), frozenNames = Object.keys(spec.frozen ?? {});
  const params = names.map((n) => g.input(io.param(n), dtype, spec.params[n].shape));
  const frozen = Object.fromEntries(
    frozenNames.map((n) => [n, g.input(io.param(n), dtype, spec.frozen![n].shape)]),
  );
  const lossHp = [
    ...Object.keys(spec.hparams ?? {}),
    ...(spec.clipGradNorm === false || accumulate ? [] : ["max_grad_norm"]),
  ];
  const hp = Object.fromEntries(lossHp.map((h) => [h, g.input(io.hparam(h), dtype, [])]));
  const batch = Object.fromEntries(
    Object.entries(spec.batch).map(([n, b]) => [n, g.input(io.batch(n), b.dtype, b.shape)]),
  );
  const pmap = { ...frozen, ...Object.fromEntries(names.map((n, i) => [n, params[i]])) };
  const { loss, metrics = {} } = traced(
    "graph: grad_step forward",
    () => spec.loss(g, pmap, batch, hp),
  );
  if (loss.rank !== 0 || loss.dtype !== dtype) {
    throw new Error(`train step: loss must be a ${dtype} scalar, got ${loss}`);
  }
  const grads = traced("graph: grad_step autodiff", () => gradients(g, loss, params));
  const outs = grads.map((d) => g.output(uniqueOutput(g, d)));
  if (accumulate) {
    g.output(loss, "loss");
    for (const [k, v] of Object.entries(metrics)) g.output(v, io.metric(k));
    return { graph: g, grads: outs.map((v) => v.name) };
  }
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
