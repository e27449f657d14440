/**
 * `deno task bench [name] [--threads N] [--steps N]`: benchmarks that print ratios
 * against a reference measured in the same run. Names: engine, gpt, ppo, scale, scale-ppo, rl
 * (default: all).
 * `scale` (real-size models vs PyTorch 2.13): `--models gpt2,qwen`, `--scale-rounds N`,
 * `--scale-steps N` (per side per round), `--scale-warmup N`, `--roll-rounds N`, `--no-rollout`,
 * `--no-train` (rollouts only). `scale-ppo` (a 2-update LoRA PPO trial on the 0.5B shape, peak
 * RSS against 16 GB): `--cache DIR`, `--ppo-max-rss-gb N` (watchdog, default 20).
 * `--cache DIR` (keep the model folders), `--max-rss-gb N` (watchdog).
 * `rl` (GRPO in Proxima's lm trial vs TRL's GRPOTrainer, bench/rl.ts): `--rl-shapes small,qwen`,
 * `--rl-updates N` (measured, per side), `--rl-warmup N`, `--rl-micro-batches N` (gradient
 * accumulation on both sides), `--rl-max-rss-gb N` (watchdog),
 * `--rl-sequential qwen` (those shapes one side after the other, for machines that cannot
 * hold both at once),
 * `--rollout-rows 8,32,128` (also Proxima's rollout tokens/s of the 0.5B shape at those rows,
 * beside the weight-bandwidth and matmul bounds; `--rl-shapes none` runs only that).
 * `--env-steps N` and `--env ID` size the ppo benchmark (default 102400 steps, CartPole-v1).
 * @module
 */
import { anchorPython } from "./anchor.ts";
import { benchEngine } from "./engine.ts";
import { benchGpt } from "./gpt.ts";
import { benchPpo } from "./ppo.ts";
import { benchScale } from "./scale.ts";
import { benchScalePpo } from "./scale_ppo.ts";
import { benchRl } from "./rl.ts";
import { UsageError } from "../lib/errors.ts";
import { runCommand } from "../cli/boundary.ts";
import { numberFlag, parseFlags } from "../cli/flags.ts";

async function main(): Promise<void> {
  const { values, positionals } = parseFlags("bench", Deno.args, {
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "50" },
    warmup: { type: "string", default: "5" },
    fuse: { type: "string", default: "10" },
    "env-steps": { type: "string", default: "102400" },
    env: { type: "string", default: "CartPole-v1" },
    rounds: { type: "string", default: "2" },
    "scale-rounds": { type: "string", default: "4" },
    "scale-steps": { type: "string", default: "2" },
    "scale-warmup": { type: "string", default: "4" },
    "roll-rounds": { type: "string", default: "3" },
    models: { type: "string", default: "gpt2,qwen" },
    "max-rss-gb": { type: "string", default: "15" },
    cache: { type: "string" },
    "no-rollout": { type: "boolean", default: false },
    "no-train": { type: "boolean", default: false },
    "ppo-max-rss-gb": { type: "string", default: "20" },
    "rl-shapes": { type: "string", default: "small,qwen" },
    "rl-updates": { type: "string", default: "4" },
    "rl-warmup": { type: "string", default: "1" },
    "rl-max-rss-gb": { type: "string", default: "22" },
    "rl-sequential": { type: "string", default: "" },
    "rl-micro-batches": { type: "string", default: "1" },
    "rollout-rows": { type: "string", default: "" },
  }, { allowPositionals: true });
  // Every number is checked before any benchmark starts (they run for minutes).
  for (
    const k of [
      "threads",
      "steps",
      "fuse",
      "env-steps",
      "rounds",
      "scale-rounds",
      "scale-steps",
      "roll-rounds",
      "rl-updates",
      "rl-micro-batches",
    ] as const
  ) {
    numberFlag("bench", k, values[k], { integer: true, min: 1 });
  }
  for (const k of ["warmup", "scale-warmup", "rl-warmup"] as const) {
    numberFlag("bench", k, values[k], { integer: true, min: 0 });
  }
  for (const k of ["max-rss-gb", "ppo-max-rss-gb", "rl-max-rss-gb"] as const) {
    numberFlag("bench", k, values[k], { min: 0, minInclusive: false });
  }

  const benches: Record<string, () => Promise<void>> = {
    engine: () =>
      benchEngine({
        threads: Number(values.threads),
        steps: Number(values.steps),
        warmup: Number(values.warmup),
        fuse: Number(values.fuse),
      }),
    gpt: () =>
      benchGpt({
        threads: Number(values.threads),
        steps: Number(values.steps),
        warmup: Number(values.warmup),
      }),
    ppo: () =>
      benchPpo({
        threads: Number(values.threads),
        envSteps: Number(values["env-steps"]),
        env: values.env,
        rounds: Number(values.rounds),
      }),
    scale: () =>
      benchScale({
        threads: Number(values.threads),
        rounds: Number(values["scale-rounds"]),
        roundSteps: Number(values["scale-steps"]),
        warmup: Number(values["scale-warmup"]),
        rollRounds: Number(values["roll-rounds"]),
        models: values.models.split(","),
        maxRssGb: Number(values["max-rss-gb"]),
        cache: values.cache,
        noRollout: values["no-rollout"],
        noTrain: values["no-train"],
      }),
    "scale-ppo": () =>
      benchScalePpo({
        threads: Number(values.threads),
        cache: values.cache,
        maxRssGb: Number(values["ppo-max-rss-gb"]),
      }),
    rl: () =>
      benchRl({
        threads: Number(values.threads),
        shapes: values["rl-shapes"].split(","),
        updates: Number(values["rl-updates"]),
        warmup: Number(values["rl-warmup"]),
        cache: values.cache,
        maxRssGb: Number(values["rl-max-rss-gb"]),
        sequential: values["rl-sequential"].split(",").filter((x) => x),
        rolloutRows: values["rollout-rows"] ? values["rollout-rows"].split(",").map(Number) : [],
        microBatches: Number(values["rl-micro-batches"]),
      }),
  };

  const names = positionals.length ? positionals : Object.keys(benches);
  for (const n of names) {
    if (!benches[n]) {
      throw new UsageError(`bench: unknown benchmark "${n}"`, {
        fix: `name one of ${Object.keys(benches).join(", ")}`,
      });
    }
  }
  // A missing anchor is found before any model is built, not minutes into a bench.
  if (names.some((n) => NEEDS_ANCHOR.has(n))) anchorPython();
  for (const n of names) await benches[n]();
}

/** The benches that compare with the anchor (PyTorch 2.13 + transformers in a venv). */
const NEEDS_ANCHOR = new Set(["engine", "gpt", "scale", "rl"]);

if (import.meta.main) await runCommand(main);
