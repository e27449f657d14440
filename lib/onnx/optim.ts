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
