/**
 * Proxima's policy-gradient losses against TRL 1.13's own GRPO loss code: for every case of
 * tests/fixtures/trl/trl_grpo_losses.json (made by make_trl_losses.py beside it, from
 * GRPOTrainer._compute_loss on fixed inputs) the config's loss graph (float64, the train step's
 * own `ppoLossSetup`) gives the same loss and the same gradient with respect to the per-token
 * log-probs within 1e-6.
 */
import assert from "node:assert/strict";
import { Graph } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { ppoLoss } from "../../lib/ppo/losses.ts";
import { ppoLossSetup } from "../../lib/ppo/train_step.ts";
import { type PpoConfig, PpoSchema } from "../../lib/ppo/config.ts";
import { LmPpoSchema } from "../../lib/tasks/byte_lm.ts";

interface TrlCase {
  config: {
    name: string;
    loss_type: string;
    importance_sampling_level?: "token" | "sequence";
    beta?: number;
    epsilon?: number;
    epsilon_high?: number | null;
    delta?: number | null;
    use_bias_correction_kl?: boolean;
    sapo_temperature_pos?: number;
    sapo_temperature_neg?: number;
    top_entropy_quantile?: number;
    entropy_coef?: number;
  };
  loss: number;
  grad: number[][];
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/trl/trl_grpo_losses.json", import.meta.url)),
) as {
  max_completion_length: number;
  mask: number[][];
  logp: number[][];
  old_logp: number[][];
  ref_logp: number[][];
  advantages: number[];
  entropy: number[][];
  cases: TrlCase[];
};

const B = fixture.mask.length, T = fixture.mask[0].length;
const flat = (x: number[][]) => x.flat();

/** The LM task config of a TRL case (TRL's names are Proxima's keys). */
function configOf(c: TrlCase["config"]): PpoConfig {
  return LmPpoSchema.parse({
    advantage: "grpo",
    whiten_advantages: false,
    loss_type: c.loss_type,
    importance_sampling_level: c.importance_sampling_level ?? "token",
    clip: c.epsilon ?? 0.2,
    epsilon_high: c.epsilon_high ?? null,
    delta: c.delta ?? null,
    ent_coef: c.entropy_coef ?? 0,
    top_entropy_quantile: c.top_entropy_quantile ?? 1,
    kl: {
      placement: "loss",
      estimator: "k3",
      beta: c.beta ?? 0,
      bias_correction: c.use_bias_correction_kl ?? false,
    },
    sapo: {
      temperature_pos: c.sapo_temperature_pos ?? 1,
      temperature_neg: c.sapo_temperature_neg ?? 1.05,
    },
  }) as PpoConfig;
}

async function proxima(cfg: PpoConfig): Promise<{ loss: number; grad: Float64Array }> {
  const { variant, hparams } = ppoLossSetup(cfg, {
    reference: true,
    maxTokens: fixture.max_completion_length,
  });
  const g = new Graph("trl_loss");
  const x = (name: string) => g.input(name, "float64", [B, T]);
  const logp = x("logp"), oldLogp = x("old_logp"), refLogp = x("ref_logp");
  const advantages = x("advantages"), mask = x("mask"), entropy = x("entropy");
  const hp = Object.fromEntries(
    Object.keys(hparams).map((k) => [k, g.input(`hp_${k}`, "float64", [])]),
  );
  const { loss } = ppoLoss(
    g,
    variant,
    { logp, entropy },
    { oldLogp, advantages, mask, refLogp },
    hp as never,
  );
  g.output(loss, "loss");
  g.output(gradients(g, loss, [logp])[0], "d_logp");
  const s = await compile(g);
  // Advantages per token: each response's on its real tokens (TRL's (B,) broadcast), 0 on pads.
  const adv = fixture.mask.flatMap((row, b) => row.map((m) => m * fixture.advantages[b]));
  const t = (a: number[]) => tensor("float64", [B, T], a);
  const out = await s.run({
    logp: t(flat(fixture.logp)),
    old_logp: t(flat(fixture.old_logp)),
    ref_logp: t(flat(fixture.ref_logp)),
    advantages: t(adv),
    mask: t(flat(fixture.mask)),
    entropy: t(flat(fixture.entropy)),
    ...Object.fromEntries(
      Object.entries(hparams).map(([k, v]) => [`hp_${k}`, tensor("float64", [], [v])]),
    ),
  });
  return { loss: Number(out.loss.data[0]), grad: out.d_logp.data as Float64Array };
}

Deno.test("the fixture covers every TRL 1.13 loss type at both ratio levels", () => {
  const types = new Set(fixture.cases.map((c) => c.config.loss_type));
  assert.deepEqual(
    [...types].sort(),
    ["bnpo", "cispo", "dapo", "dr_grpo", "grpo", "luspo", "sapo", "vespo"],
  );
  for (const t of types) {
    for (const level of ["token", "sequence"]) {
      assert.ok(
        fixture.cases.some((c) =>
          c.config.loss_type === t && (c.config.importance_sampling_level ?? "token") === level
        ),
        `${t} at ${level} level`,
      );
    }
  }
  // PPO's own schema keeps none of the LM loss keys (classic control is unchanged).
  assert.ok(!("loss_type" in PpoSchema.shape));
});

for (const c of fixture.cases) {
  Deno.test(`TRL 1.13 ${c.config.name}: loss and d loss / d log π within 1e-6`, async () => {
    const ours = await proxima(configOf(c.config));
    assert.ok(
      Math.abs(ours.loss - c.loss) <= 1e-6,
      `loss ${ours.loss} vs TRL ${c.loss}`,
    );
    const want = flat(c.grad);
    for (let i = 0; i < want.length; i++) {
      assert.ok(
        Math.abs(ours.grad[i] - want[i]) <= 1e-6,
        `d/dlogp[${i}] ${ours.grad[i]} vs TRL ${want[i]}`,
      );
    }
  });
}
