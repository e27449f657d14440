/**
 * One PPO training run on a classic-control environment, from a validated config to a
 * folder of results (metrics.jsonl, episodes.jsonl, checkpoints/, final.safetensors). The CLI and the
 * experiment runner both call {@link runEnvTraining}.
 *
 * @example
 * ```ts
 * const cfg = parseEnvRunConfig({ env: "cartpole", seed: 1, total_steps: 500_000 });
 * await runEnvTraining(cfg, { outDir: "results/cartpole-1" });
 * ```
 * @module
 */
import type { StopToken } from "../ppo/stop.ts";
import { z } from "zod";
import { ConfigError, type ConfigProblem, formatIssues, PpoSchema } from "../ppo/config.ts";
import { type DefaultOverrides, withOverrides } from "../trial/overrides.ts";
import {
  type EpisodeRow,
  type MetricsRow,
  readEpisodes,
  readMetrics,
  trainPpo,
} from "../ppo/trainer.ts";

export { readEpisodes, readMetrics };
export type { EpisodeRow };
import type { Device } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import { ENV_IDS, makeVecEnv, resolveEnvId } from "./registry.ts";
import { createEnvProblem } from "./ppo.ts";

/**
 * Where the classic-control runs' defaults differ from the base ones (`ppo.*` are PpoSchema's,
 * CleanRL's, as they are): a checkpoint every 10 updates.
 */
export const ENV_OVERRIDES: DefaultOverrides = { checkpoint_every: 10 };

/** A classic-control run's config: the env, the rollout shape, the networks and `ppo.*`. */
const EnvRunBase = z.object({
  env: z.string().describe(`environment: ${ENV_IDS.join(", ")} (or cartpole, acrobot)`),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(1).describe("trial seed"),
  total_steps: z.number().int().positive().default(500_000).describe(
    "environment steps in total (updates = total_steps / (envs·steps), rounded down)",
  ),
  envs: z.number().int().min(1).max(4096).default(4).describe("parallel environments"),
  steps: z.number().int().min(1).default(128).describe("steps per environment per rollout"),
  hidden: z.array(z.number().int().positive()).min(1).default([64, 64]).describe(
    "hidden widths of actor and critic",
  ),
  checkpoint_every: z.number().int().min(0).default(0).describe(
    "checkpoint every k updates (0 = never)",
  ),
  ppo: PpoSchema.default(PpoSchema.parse({})),
}).strict();

/** {@link EnvRunBase} with the classic-control runs' defaults ({@link ENV_OVERRIDES}). */
export const EnvRunSchema = withOverrides(EnvRunBase, ENV_OVERRIDES);

export type EnvRunConfig = z.infer<typeof EnvRunSchema>;

/** Validate and default; errors name each bad key and its allowed values. */
export function parseEnvRunConfig(input: unknown, where = "config"): EnvRunConfig {
  const r = EnvRunSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, input, where));
  try {
    resolveEnvId(r.data.env);
  } catch (e) {
    throw new ConfigError(`${where}: env: ${(e as Error).message}`);
  }
  const [p] = envRunProblems(r.data);
  if (p) throw new ConfigError(`${where}: ${p.cause}; ${p.fix}`);
  return r.data;
}

/**
 * The cross-key checks of a parsed run config (the rollout against total_steps and the
 * minibatches), as {key, cause, fix}: what planning runs once per trial.
 */
export function envRunProblems(c: Omit<EnvRunConfig, "env">): ConfigProblem[] {
  const rollout = c.envs * c.steps;
  if (c.total_steps < rollout) {
    return [{
      key: "total_steps",
      cause: `total_steps (${c.total_steps}) is less than one rollout (envs·steps = ${rollout})`,
      fix: "raise total_steps or lower envs/steps",
    }];
  }
  if (c.ppo.minibatches > rollout) {
    return [{
      key: "ppo.minibatches",
      cause: `ppo.minibatches (${c.ppo.minibatches}) exceeds the rollout size (${rollout})`,
      fix: "lower it",
    }];
  }
  return [];
}

export interface EnvRunOptions {
  outDir: string;
  resume?: boolean;
  device?: Device;
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
  onStart?: (startUpdate: number, updates: number) => void;
  onUpdate?: (row: MetricsRow, update: number, updates: number) => void;
  /** A stop request: checkpoint after the current update and stop (lib/ppo/stop.ts). */
  stop?: StopToken;
}

/**
 * Mean return of the last `window` finished episodes (fewer if the run had fewer), from
 * episodes.jsonl: the final-performance number of CleanRL's benchmark tables
 * (openrlbenchmark's `metric_last_n_average_window`, 100). Null when no episode finished.
 */
export function recentReturn(episodes: EpisodeRow[], window = 100): number | null {
  const tail = episodes.slice(-window);
  return tail.length ? tail.reduce((s, e) => s + e.return, 0) / tail.length : null;
}

/**
 * The global step of the first episode whose own return and the returns of the `window − 1`
 * episodes before it average at least `threshold` — Gymnasium's "solved" test (CartPole-v1:
 * 475 over 100 consecutive episodes) — or null if that never happened.
 */
export function solvedAt(episodes: EpisodeRow[], threshold: number, window = 100): number | null {
  let sum = 0;
  for (let i = 0; i < episodes.length; i++) {
    sum += episodes[i].return;
    if (i >= window) sum -= episodes[i - window].return;
    if (i >= window - 1 && sum / window >= threshold) return episodes[i].step;
  }
  return null;
}

/** Train; returns the last metrics row and the number of updates. */
export async function runEnvTraining(
  cfg: EnvRunConfig,
  opts: EnvRunOptions,
): Promise<{ last: MetricsRow; updates: number }> {
  const env = makeVecEnv(cfg.env, cfg.envs);
  const updates = Math.floor(cfg.total_steps / (cfg.envs * cfg.steps));
  const problem = await createEnvProblem({
    env,
    steps: cfg.steps,
    cfg: cfg.ppo,
    seed: cfg.seed,
    hidden: cfg.hidden,
    device: opts.device,
    threads: opts.threads,
    sessions: opts.sessions,
  });
  const last = await trainPpo(problem, {
    updates,
    seed: cfg.seed,
    rng: problem.rng,
    outDir: opts.outDir,
    checkpointEvery: cfg.checkpoint_every,
    resume: opts.resume,
    stop: opts.stop,
    episodeLog: true,
    onStart: (u) => opts.onStart?.(u, updates),
    onUpdate: (row, u) => opts.onUpdate?.(row, u, updates),
  });
  return { last, updates };
}
