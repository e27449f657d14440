/**
 * Optimizers as graph nodes. Every hyperparameter is a graph input (a scalar
 * `Value`), so one compiled session serves a whole sweep over lr, betas, decay...
 *
 * The update math follows PyTorch's `torch.optim.AdamW` / `SGD` and
 * `clip_grad_norm_` operation for operation, so results agree to rounding.
 * @module
 */
import type { Graph, Value } from "./graph.ts";

/** Hyperparameter values by name (graph inputs at run time). */
export type HParams = Record<string, Value>;

export interface Optimizer {
  name: string;
  /** Per-parameter state tensors, zero-initialised, same shape as the parameter. */
  slots: string[];
  /** Hyperparameters with their defaults. */
  defaults: Record<string, number>;
  /** Update one parameter. `step` is the 1-based step count (a float scalar). */
  update(
    g: Graph,
    p: Value,
    grad: Value,
    state: Value[],
    h: HParams,
    step: Value,
  ): { param: Value; state: Value[] };
}

/**
 * AdamW (Loshchilov & Hutter): bias-corrected Adam with decoupled weight decay.
 * Same order of operations as torch.optim.AdamW (PyTorch 1.13, foreach=False).
 */
export const adamw: Optimizer = {
  name: "adamw",
  slots: ["m", "v"],
  defaults: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
  update(g, p, grad, [m, v], h, step) {
    const decayed = g.mul(p, g.sub(1, g.mul(h.lr, h.weight_decay))); // decoupled decay first
    const m1 = g.add(g.mul(m, h.beta1), g.mul(grad, g.sub(1, h.beta1)));
    const v1 = g.add(g.mul(v, h.beta2), g.mul(g.mul(grad, grad), g.sub(1, h.beta2)));
    const bc1 = g.sub(1, g.pow(h.beta1, step)), bc2 = g.sub(1, g.pow(h.beta2, step));
    const denom = g.add(g.div(g.sqrt(v1), g.sqrt(bc2)), h.eps);
    const param = g.sub(decayed, g.mul(g.div(m1, denom), g.div(h.lr, bc1)));
    return { param, state: [m1, v1] };
  },
};

/**
 * SGD with momentum (and optional L2 weight decay), as torch.optim.SGD with
 * dampening 0: buf = momentum·buf + grad (buf starts at 0, so step 1 gives buf = grad).
 */
export const sgd: Optimizer = {
  name: "sgd",
  slots: ["momentum"],
  defaults: { lr: 1e-2, momentum: 0.9, weight_decay: 0 },
  update(g, p, grad, [buf], h) {
    const d = g.add(grad, g.mul(p, h.weight_decay));
    const buf1 = g.add(g.mul(buf, h.momentum), d);
    return { param: g.sub(p, g.mul(buf1, h.lr)), state: [buf1] };
  },
};

export const optimizers: Record<string, Optimizer> = { adamw, sgd };

/**
 * Global gradient-norm clipping, as torch.nn.utils.clip_grad_norm_:
 * coef = min(max_norm / (‖g‖₂ + 1e-6), 1), applied to every gradient.
 * Pass max_norm = +Infinity to disable (coef is then exactly 1).
 */
export function clipGradNorm(
  g: Graph,
  grads: Value[],
  maxNorm: Value,
): { grads: Value[]; norm: Value } {
  const sq = grads.map((d) => g.reduceSum(g.mul(d, d)));
  const norm = g.sqrt(sq.reduce((a, b) => g.add(a, b)));
  const coef = g.min(g.div(maxNorm, g.add(norm, 1e-6)), 1);
  return { grads: grads.map((d) => g.mul(d, coef)), norm };
}

/** Names of the optimizer graph's inputs and outputs ({@link buildOptimizerGraph}). */
export const optimIo = {
  param: "p",
  grad: "grad",
  coef: "clip_coef",
  step: "step",
  state: (slot: string) => `state/${slot}`,
  hparam: (n: string) => `hp/${n}`,
};

/**
 * The optimizer alone, for one flat chunk `[N]` of parameters: inputs the chunk's params,
 * raw gradients, optimizer state, the clip coefficient (when `clip`), the step and the
 * optimizer's hyperparameters; outputs the new params and state. The ops are those of the
 * train-step graph's optimizer, in the same order (`grad · coef`, then `update`), so both give
 * the same bits.
 *
 * Meant to run in place (each new value written over its input's memory): throws unless that
 * is safe, i.e. every reader of an input runs before the node that overwrites it
 * ({@link checkInPlace}). Outputs keep the names of the values that compute them (no renaming
 * Identity, which would cost a copy per value); `outputs` gives them.
 */
export function buildOptimizerGraph(
  g: Graph,
  optimizer: Optimizer,
  dtype: "float32" | "float64",
  clip: boolean,
): { graph: Graph; outputs: { param: string; state: string[] } } {
  const p = g.input(optimIo.param, dtype, ["N"]);
  const d = g.input(optimIo.grad, dtype, ["N"]);
  const state = optimizer.slots.map((s) => g.input(optimIo.state(s), dtype, ["N"]));
  const coef = clip ? g.input(optimIo.coef, dtype, []) : undefined;
  const step = g.input(optimIo.step, dtype, []);
  const hp = Object.fromEntries(
    Object.keys(optimizer.defaults).map((h) => [h, g.input(optimIo.hparam(h), dtype, [])]),
  );
  const grad = coef ? g.mul(d, coef) : d;
  const u = optimizer.update(g, p, grad, state, hp, step);
  const outs = [u.param, ...u.state].map((v) => g.output(uniqueOutput(g, v)));
  const names = outs.map((v) => v.name);
  checkInPlace(g, [
    [optimIo.param, names[0]],
    ...optimizer.slots.map((s, i) => [optimIo.state(s), names[i + 1]] as [string, string]),
  ]);
  return { graph: g, outputs: { param: names[0], state: names.slice(1) } };
}

/**
 * `v` itself when it can be a graph output under its own name (computed by a node, not yet an
 * output), else an Identity copy of it.
 */
export function uniqueOutput(g: Graph, v: Value): Value {
  const free = g.producer.has(v) && !g.outputs.includes(v);
  return free ? v : g.identity(v);
}

/**
 * Throw unless every `[input, output]` pair of `g` may share memory: each node that reads the
 * input must be an ancestor of the node that writes the output (then, whatever order ORT picks,
 * the input is read before it is overwritten), and the output must be computed by a node, not
 * be the input itself.
 */
export function checkInPlace(g: Graph, pairs: [string, string][]): void {
  const byName = new Map<string, Value>();
  for (const v of g.inputs) byName.set(v.name, v);
  for (const v of g.outputs) byName.set(v.name, v);
  const ancestors = (v: Value): Set<object> => {
    const seen = new Set<object>();
    const stack = [g.producer.get(v)];
    while (stack.length) {
      const n = stack.pop();
      if (!n || seen.has(n)) continue;
      seen.add(n);
      for (const i of n.inputs) if (i) stack.push(g.producer.get(i));
    }
    return seen;
  };
  for (const [inName, outName] of pairs) {
    const input = byName.get(inName), output = byName.get(outName);
    if (!input || !output) throw new Error(`checkInPlace: no value "${!input ? inName : outName}"`);
    const writer = g.producer.get(output);
    if (!writer) throw new Error(`checkInPlace: "${outName}" is not computed by a node`);
    const before = ancestors(output);
    for (const n of g.nodes) {
      if (n.inputs.includes(input) && !before.has(n)) {
        throw new Error(
          `checkInPlace: "${outName}" cannot overwrite "${inName}": a ${n.op} node reads ` +
            `"${inName}" and need not run before the ${writer.op} that writes "${outName}"`,
        );
      }
    }
  }
}
