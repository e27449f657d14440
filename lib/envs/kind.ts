/**
 * Classic-control trial kinds (the task contract of lib/trial/contract.ts, listed in
 * lib/experiment/tasks.ts): `CartPole-v1` (alias `cartpole`) and `Acrobot-v1` (alias
 * `acrobot`). The config is {@link EnvRunSchema} without `env` (the task is the env): seed,
 * total_steps, envs, steps, hidden, checkpoint_every and every `ppo.*` key.
 *
 * Named metrics (summary.json `metrics`): `return` (mean return of the last 100 episodes),
 * `solved_at` (first step the 100-episode mean reached the env's reward threshold, or null),
 * `episodes`, `steps`, `updates`. Any metrics.jsonl column can be listed too: `clipfrac` is
 * its value in the last update, `clipfrac:mean` its mean over the run.
 * @module
 */
import {
  ENV_OVERRIDES,
  type EnvRunConfig,
  envRunProblems,
  EnvRunSchema,
  recentReturn,
  runEnvTraining,
  solvedAt,
} from "./run.ts";
import { PPO_METRIC_COLUMNS, readEpisodes, readMetrics } from "../ppo/trainer.ts";
import { envSpec } from "./registry.ts";
import type { TrialKind, TrialSummary } from "../trial/contract.ts";

const EnvTrialSchema = EnvRunSchema.omit({ env: true });
export type EnvTrialConfig = Omit<EnvRunConfig, "env">;

/** metrics.jsonl columns of an env PPO run (see trainPpo). */
export const ENV_METRIC_COLUMNS = PPO_METRIC_COLUMNS;

function envKind(id: "CartPole-v1" | "Acrobot-v1", alias: string): TrialKind<EnvTrialConfig> {
  const threshold = envSpec(id).rewardThreshold;
  return {
    name: id,
    aliases: [alias],
    description: `PPO (CleanRL ppo.py defaults) on Gymnasium's ${id}`,
    schema: EnvTrialSchema,
    overrides: ENV_OVERRIDES,
    keyHints: {
      env: `the environment is the experiment's task: write task: "${id}" (or "${
        id === "CartPole-v1" ? "Acrobot-v1" : "CartPole-v1"
      }") instead of an env key`,
    },
    // Cross-key checks on the parsed config (planning's one schema parse), not a second parse.
    check: (config) => envRunProblems(config),
    work(config) {
      const per = config.envs * config.steps;
      return { total: Math.floor(config.total_steps / per), unit: "updates", steps: per };
    },
    finalFiles: ["final.safetensors"],
    async run(config, outDir, ctx) {
      const per = config.envs * config.steps;
      let ret: number | null = null;
      await runEnvTraining({ ...config, env: id }, {
        outDir,
        resume: ctx.resume,
        stop: ctx.stop,
        device: ctx.device,
        threads: ctx.threads,
        sessions: ctx.trial?.sessions,
        onStart: (u, total) => ctx.onProgress({ done: u, total, step: u * per }),
        onUpdate: (row, u, total) => {
          if (row.episodic_return !== null) ret = Number(row.episodic_return);
          ctx.onProgress({ done: u, total, step: Number(row.step), info: { return: ret }, row });
        },
      });
    },
    async summarize(outDir): Promise<TrialSummary> {
      const rows = await readMetrics(outDir), episodes = await readEpisodes(outDir);
      const last = rows.at(-1) ?? {};
      const mean: Record<string, number | null> = {};
      for (const c of ENV_METRIC_COLUMNS) {
        const vs = rows.map((r) => r[c]).filter((v): v is number => typeof v === "number");
        mean[c] = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
      }
      return {
        metrics: {
          return: recentReturn(episodes, 100),
          solved_at: threshold === undefined ? null : solvedAt(episodes, threshold, 100),
          episodes: episodes.length,
          steps: Number(last.step ?? 0),
          updates: rows.length,
        },
        last,
        mean,
      };
    },
    metricNames: {
      named: {
        return: "mean return of the last 100 episodes",
        solved_at: `first step at which the 100-episode mean reached ${threshold ?? "-"}`,
        episodes: "episodes finished",
        steps: "environment steps",
        updates: "PPO updates",
      },
      columns: [...ENV_METRIC_COLUMNS],
    },
  };
}

export const CARTPOLE_KIND: TrialKind<EnvTrialConfig> = envKind("CartPole-v1", "cartpole");
export const ACROBOT_KIND: TrialKind<EnvTrialConfig> = envKind("Acrobot-v1", "acrobot");
