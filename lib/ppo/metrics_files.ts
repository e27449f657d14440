/**
 * The files a PPO run logs, one JSON row per line: metrics.jsonl (a {@link MetricsRow} per
 * update, {@link PPO_METRIC_COLUMNS} first) and episodes.jsonl (an {@link EpisodeRow} per
 * finished episode), and their readers. Split from trainer.ts, which writes them.
 * @module
 */

/** One metrics.jsonl row. */
export type MetricsRow = Record<string, number | null>;

/** The columns of every metrics.jsonl row trainPpo writes (a rollout's own metrics follow). */
export const PPO_METRIC_COLUMNS: readonly string[] = [
  "update",
  "step",
  "lr",
  "beta",
  "penalty_beta",
  "loss",
  "policy_loss",
  "value_loss",
  "entropy",
  "approx_kl_k1",
  "approx_kl_k3",
  "clipfrac",
  "kl_penalty",
  "penalty_kl",
  "kl_ref_loss",
  "kl_ref",
  "grad_norm",
  "explained_variance",
  "advantage_mean",
  "advantage_std",
  "return_mean",
  "reward_mean",
  "epochs",
  "episodes",
  "episodic_return",
  "episodic_length",
];

/** Read the metrics.jsonl that {@link trainPpo} wrote into `outDir`; errors name the line. */
export async function readMetrics(outDir: string): Promise<MetricsRow[]> {
  return parseJsonl(`${outDir}/metrics.jsonl`, await Deno.readTextFile(`${outDir}/metrics.jsonl`));
}

/** The finished episodes of a run (episodes.jsonl), in the order they ended; [] if it has none. */
export async function readEpisodes(outDir: string): Promise<EpisodeRow[]> {
  const path = `${outDir}/episodes.jsonl`;
  const text = await Deno.readTextFile(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  });
  return parseJsonl(path, text);
}

/** One JSON value per non-blank line; a bad line is named by file and line number. */
function parseJsonl<T>(path: string, text: string): T[] {
  return text.split("\n").filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`${path}: line ${i + 1} is not JSON`);
    }
  });
}

/**
 * One finished episode, a line of episodes.jsonl (written only by problems that have
 * episodes): the update whose rollout it ended in, the global environment step at its end,
 * which environment, its return and its length. CleanRL logs the same per-episode record
 * (`charts/episodic_return` at `global_step`), and benchmarks average the last 100 of them.
 */
export interface EpisodeRow {
  update: number;
  step: number;
  env: number;
  return: number;
  length: number;
}
