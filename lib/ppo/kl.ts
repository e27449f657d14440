/**
 * KL divergence estimators and the controllers that move the KL coefficient β.
 *
 * The estimators follow Schulman's "Approximating KL divergence" note: for KL(p‖q) with
 * x ~ p and log r = log q(x) − log p(x),
 *   k1 = −log r (unbiased, high variance, can be negative),
 *   k2 = ½ (log r)² (biased, low variance, ≥ 0),
 *   k3 = (r − 1) − log r (unbiased, low variance, ≥ 0).
 * `full` is the exact Σ_a p(a)(log p(a) − log q(a)) over a discrete distribution.
 *
 * @example
 * ```ts
 * klEstimate("k3", -1.2, -1.0); // KL(p‖q) contribution of a sample with log p = −1.2, log q = −1.0
 * const ctl = makeKlController({ beta: 0.1, control: "adaptive", target: 6, horizon: 10000 });
 * ctl.update(8.0, 256); // KL was above target: β grows
 * ```
 * @module
 */
import type { KlConfig } from "./config.ts";

export type KlEstimator = "k1" | "k2" | "k3";

/** One sample's estimate of KL(p‖q), given log p(x) and log q(x) at x ~ p. */
export function klEstimate(kind: KlEstimator, logp: number, logq: number): number {
  const logr = logq - logp;
  switch (kind) {
    case "k1":
      return -logr;
    case "k2":
      return 0.5 * logr * logr;
    case "k3":
      return Math.expm1(logr) - logr;
  }
}

/** Exact KL(p‖q) between two discrete distributions given as log-probabilities. */
export function klFull(logp: ArrayLike<number>, logq: ArrayLike<number>): number {
  let kl = 0;
  for (let a = 0; a < logp.length; a++) kl += Math.exp(logp[a]) * (logp[a] - logq[a]);
  return kl;
}

/** A KL coefficient that may adapt to the measured KL; its state goes into checkpoints. */
export interface KlController {
  readonly beta: number;
  /** Feed the KL measured over the last update and how many samples it covered. */
  update(kl: number, samples: number): void;
  state(): { beta: number };
  load(state: { beta: number }): void;
}

class Controller implements KlController {
  beta: number;
  constructor(private cfg: Pick<KlConfig, "beta" | "control" | "target" | "horizon">) {
    this.beta = cfg.beta;
  }
  update(kl: number, samples: number): void {
    const { control, target, horizon } = this.cfg;
    if (control === "adaptive") {
      // Ziegler et al. 2019, §2.2: e_t = clip(KL/target − 1, −0.2, 0.2); β ← β(1 + K_β e_t),
      // with K_β = samples / horizon.
      const err = Math.min(0.2, Math.max(-0.2, kl / target - 1));
      this.beta *= 1 + err * samples / horizon;
    } else if (control === "schulman") {
      // Schulman et al. 2017, §4: halve β when KL < target/1.5, double it when KL > 1.5·target.
      if (kl < target / 1.5) this.beta /= 2;
      else if (kl > target * 1.5) this.beta *= 2;
    }
  }
  state() {
    return { beta: this.beta };
  }
  load(state: { beta: number }) {
    if (typeof state?.beta !== "number") throw new Error("KL controller state lacks beta");
    this.beta = state.beta;
  }
}

/** Fixed, adaptive (Ziegler) or Schulman-rule controller, per `cfg.control`. */
export function makeKlController(
  cfg: Pick<KlConfig, "beta" | "control" | "target" | "horizon">,
): KlController {
  return new Controller(cfg);
}
