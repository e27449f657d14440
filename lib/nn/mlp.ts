/**
 * A multi-layer perceptron as a graph builder: Linear -> act -> ... -> Linear.
 * Weights are stored [in, out] so a layer is one Gemm (x @ W + b).
 *
 * @example
 * ```ts
 * const cfg: MlpConfig = { sizes: [4, 64, 64, 2], activation: "tanh" };
 * const init = initMlp(cfg, new Rng(1), "float32");
 * // inside a train-step loss: const logits = mlpForward(g, cfg, params, x);
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";

export interface MlpConfig {
  /** Layer widths including input and output, e.g. [4, 64, 64, 2]. */
  sizes: number[];
  activation: "tanh" | "relu" | "gelu";
  /** Parameter-name prefix (default "mlp"). */
  prefix?: string;
}

const names = (cfg: MlpConfig, i: number) => {
  const p = cfg.prefix ?? "mlp";
  return { w: `${p}.${i}.weight`, b: `${p}.${i}.bias` };
};

/** Parameter shapes by name. */
export function mlpShapes(cfg: MlpConfig): Record<string, { shape: number[] }> {
  const out: Record<string, { shape: number[] }> = {};
  for (let i = 0; i + 1 < cfg.sizes.length; i++) {
    const { w, b } = names(cfg, i);
    out[w] = { shape: [cfg.sizes[i], cfg.sizes[i + 1]] };
    out[b] = { shape: [cfg.sizes[i + 1]] };
  }
  return out;
}

/** PyTorch nn.Linear's default init: U(-1/√fan_in, 1/√fan_in) for weight and bias. */
export function initMlp(
  cfg: MlpConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const out: Record<string, Float32Array | Float64Array> = {};
  for (const [name, { shape }] of Object.entries(mlpShapes(cfg))) {
    const bound = 1 / Math.sqrt(cfg.sizes[Number(name.split(".").at(-2))]);
    const a = new Arr(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
    out[name] = a;
  }
  return out;
}

/** Forward pass for x of shape [batch, sizes[0]] -> [batch, sizes.at(-1)]. */
export function mlpForward(
  g: Graph,
  cfg: MlpConfig,
  params: Record<string, Value>,
  x: Value,
): Value {
  let h = x;
  for (let i = 0; i + 1 < cfg.sizes.length; i++) {
    const { w, b } = names(cfg, i);
    h = g.add(g.matmul(h, params[w]), params[b]);
    if (i + 2 < cfg.sizes.length) {
      h = cfg.activation === "tanh"
        ? g.tanh(h)
        : cfg.activation === "relu"
        ? g.relu(h)
        : g.gelu(h, "tanh");
    }
  }
  return h;
}
