/**
 * The entropy coefficient's controller (`ppo.entropy`): fixed (`ppo.ent_coef` throughout) or
 * Skywork-OR1's adaptive entropy control (He et al. 2025, "Skywork Open Reasoner 1 Technical
 * Report", arXiv:2505.22312, "Adaptive Entropy Control"), which holds the policy's entropy near a
 * target as the adaptive KL controller holds the KL: after an update whose mean entropy is e,
 *
 *   c ← max(0, c + Δ) if e < target,  max(0, c − Δ) if e > target   (c₀ = ppo.ent_coef)
 *
 * and the next update's loss uses c while e ≤ target, 0 above it (the bonus only props entropy
 * up, it never pushes an entropy above the target higher). Its state goes into checkpoints.
 *
 * @example
 * ```ts
 * const c = makeEntropyController({ ent_coef: 0, entropy: { control: "adaptive", target: 0.2, delta: 0.005 } });
 * c.update(0.1); c.coef; // 0.005 (entropy below target: the bonus rises and acts)
 * c.update(0.3); c.coef; // 0 (above target: c falls back to 0, and the bonus is off)
 * ```
 * @module
 */
import type { PpoConfig } from "./config.ts";

/** The entropy coefficient the next update's loss uses, and how it moves. */
export interface EntropyController {
  /** Whether the coefficient moves (control "adaptive"); fixed leaves the hparams alone. */
  readonly adaptive: boolean;
  /** The coefficient the next update's loss uses. */
  readonly coef: number;
  /** Feed the mean entropy per token measured over the last update. */
  update(entropy: number): void;
  state(): { coef: number; active: boolean };
  load(state: { coef: number; active: boolean }): void;
}

class Controller implements EntropyController {
  readonly adaptive: boolean;
  private c: number;
  private active = true;
  constructor(private cfg: Pick<PpoConfig, "ent_coef" | "entropy">) {
    this.adaptive = cfg.entropy?.control === "adaptive";
    this.c = cfg.ent_coef;
  }
  get coef() {
    return this.active ? this.c : 0;
  }
  update(e: number): void {
    if (!this.adaptive || !Number.isFinite(e)) return;
    const { target, delta } = this.cfg.entropy!;
    if (e < target) this.c = this.c + delta;
    else if (e > target) this.c = Math.max(0, this.c - delta);
    this.active = e <= target;
  }
  state() {
    return { coef: this.c, active: this.active };
  }
  load(s: { coef: number; active: boolean }) {
    if (typeof s?.coef !== "number") throw new Error("entropy controller state lacks coef");
    this.c = s.coef;
    this.active = s.active !== false;
  }
}

/** The controller `cfg.entropy` asks for (absent: fixed, as in classic-control configs). */
export function makeEntropyController(
  cfg: Pick<PpoConfig, "ent_coef" | "entropy">,
): EntropyController {
  return new Controller(cfg);
}
