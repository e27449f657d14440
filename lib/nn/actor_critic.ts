/**
 * The actor-critic for classic-control tasks, as CleanRL's ppo.py builds it: two separate
 * MLPs (actor: obs -> action logits, critic: obs -> V(s)), tanh hidden layers, orthogonal
 * init with gain √2 for hidden layers, 0.01 for the actor's output and 1 for the critic's,
 * zero biases.
 *
 * @example
 * ```ts
 * const cfg: ActorCriticConfig = { obsSize: 4, numActions: 2, hidden: [64, 64] };
 * const params = initActorCritic(cfg, new Rng(1), "float32");
 * // in a graph: const { logits, value } = actorCriticForward(g, cfg, p, obs);
 * ```
 * @module
 */
import type { Graph, Value } from "../onnx/graph.ts";
import type { Rng } from "../rng.ts";
import { type MlpConfig, mlpForward, mlpShapes } from "./mlp.ts";
import { orthogonal } from "./init.ts";

export interface ActorCriticConfig {
  obsSize: number;
  numActions: number;
  /** Hidden widths of each MLP (CleanRL: [64, 64]). */
  hidden: number[];
  activation?: MlpConfig["activation"];
}

export function actorMlp(cfg: ActorCriticConfig): MlpConfig {
  return {
    sizes: [cfg.obsSize, ...cfg.hidden, cfg.numActions],
    activation: cfg.activation ?? "tanh",
    prefix: "actor",
  };
}
export function criticMlp(cfg: ActorCriticConfig): MlpConfig {
  return {
    sizes: [cfg.obsSize, ...cfg.hidden, 1],
    activation: cfg.activation ?? "tanh",
    prefix: "critic",
  };
}

/** Parameter shapes by name (actor.* and critic.*). */
export function actorCriticShapes(cfg: ActorCriticConfig): Record<string, { shape: number[] }> {
  return { ...mlpShapes(actorMlp(cfg)), ...mlpShapes(criticMlp(cfg)) };
}

/** CleanRL's layer_init: orthogonal weights (gains √2 / 0.01 / 1), zero biases. */
export function initActorCritic(
  cfg: ActorCriticConfig,
  rng: Rng,
  dtype: "float32" | "float64",
): Record<string, Float32Array | Float64Array> {
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const out: Record<string, Float32Array | Float64Array> = {};
  for (const [mlp, outGain] of [[actorMlp(cfg), 0.01], [criticMlp(cfg), 1]] as const) {
    const L = mlp.sizes.length - 1;
    for (let i = 0; i < L; i++) {
      const [fanIn, fanOut] = [mlp.sizes[i], mlp.sizes[i + 1]];
      // Weights are stored [in, out]; torch's orthogonal_ acts on [out, in], so build that
      // and transpose (row-orthogonality of the torch layout is what the gains refer to).
      const w = orthogonal(fanOut, fanIn, i + 1 === L ? outGain : Math.SQRT2, rng);
      const t = new Arr(fanIn * fanOut);
      for (let r = 0; r < fanOut; r++) {
        for (let c = 0; c < fanIn; c++) t[c * fanOut + r] = w[r * fanIn + c];
      }
      out[`${mlp.prefix}.${i}.weight`] = t;
      out[`${mlp.prefix}.${i}.bias`] = new Arr(fanOut);
    }
  }
  return out;
}

/** obs [B, obsSize] -> logits [B, numActions], value [B]. */
export function actorCriticForward(
  g: Graph,
  cfg: ActorCriticConfig,
  params: Record<string, Value>,
  obs: Value,
): { logits: Value; value: Value } {
  const logits = mlpForward(g, actorMlp(cfg), params, obs);
  const value = g.squeeze(mlpForward(g, criticMlp(cfg), params, obs), [-1]);
  return { logits, value };
}
