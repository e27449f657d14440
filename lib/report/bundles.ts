/**
 * Typed loading of result bundles for reports: one experiment folder
 * (`results/<experiment>/`), several, or a results root holding many experiments.
 *
 * Each trial bundle gives its identity (`config.json`: task, resolved config, code version),
 * `summary.json`, the rows of `metrics.jsonl`, the bundle hash from `manifest.json` (optionally
 * re-verified) and its swept values. Bundles record no experiment-level file listing the swept
 * keys, so they are derived: the flattened config keys whose values differ across the
 * experiment's bundles, `seed` excluded.
 *
 * Errors are {@link ReportError}s that name the path and the fix.
 *
 * @example
 * ```ts
 * import { loadResults, trialMetric } from "./bundles.ts";
 * const [kl] = await loadResults(["results/kl"], { verify: true });
 * console.log(kl.sweptKeys); // ["ppo.kl.beta"]
 * for (const t of kl.trials) console.log(t.id, t.swept, t.seed, trialMetric(t, "gold_score"));
 * ```
 * @module
 */
import { findBundles, MANIFEST, verifyBundle } from "../experiment/bundle.ts";
import { canonicalJson } from "../json.ts";
import { exists } from "../fs.ts";
import { finiteOrNull, meanFinite } from "./aggregate.ts";
import { UserError } from "../errors.ts";

/** A report input that cannot be used; the message names the path and the fix. */
export class ReportError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "ReportError";
  }
}

/** summary.json of a trial (see lib/experiment TrialSummary). */
export interface BundleSummary {
  metrics: Record<string, number | string | null>;
  last?: Record<string, number | string | null>;
  mean?: Record<string, number | null>;
  [k: string]: unknown;
}

/** One metrics.jsonl row (one PPO update). */
export type MetricsRow = Record<string, number | string | null>;

/** One trial bundle, loaded. */
export interface TrialBundle {
  /** The bundle folder. */
  dir: string;
  /** Trial id (the folder name). */
  id: string;
  /** The experiment folder's name. */
  experiment: string;
  task: string;
  codeVersion: string;
  /** The resolved trial config (config.json's `config`). */
  config: Record<string, unknown>;
  /** The config flattened to dotted keys (`"ppo.kl.beta"`); arrays are leaves. */
  flat: Record<string, unknown>;
  /** The config's `seed` (null when it has none). */
  seed: number | null;
  summary: BundleSummary;
  rows: MetricsRow[];
  /** Columns of metrics.jsonl with at least one finite number, in first-seen order. */
  columns: string[];
  /** manifest.json's bundle hash. */
  bundleHash: string;
  /** Values at the experiment's swept keys (filled by {@link loadExperimentResults}). */
  swept: Record<string, unknown>;
  /** env.json (versions, device, threads), or null when absent. */
  env: Record<string, unknown> | null;
}

/** The trials of one experiment folder. */
export interface ExperimentResults {
  /** The experiment folder's name (`kl` for results/kl). */
  name: string;
  dir: string;
  /** Trials sorted by swept values, then seed, then id. */
  trials: TrialBundle[];
  /** Config keys whose values differ across the trials, seed excluded (sorted). */
  sweptKeys: string[];
  /** Tasks of the trials (normally one). */
  tasks: string[];
  /** Code versions of the trials (more than one: bundles of older code are mixed in). */
  codeVersions: string[];
  /** Things the reader should know (unfinished trials skipped, mixed code versions). */
  warnings: string[];
}

export interface LoadOptions {
  /** Recompute every hash (lib/experiment verifyBundle) and refuse bundles that differ. */
  verify?: boolean;
}

/**
 * Flatten a nested config to dotted keys; arrays and non-plain values are leaves.
 *
 * @example
 * ```ts
 * flattenConfig({ seed: 1, ppo: { kl: { beta: 0.1 } }, hidden: [64, 64] });
 * // { seed: 1, "ppo.kl.beta": 0.1, hidden: [64, 64] }
 * ```
 */
export function flattenConfig(obj: Record<string, unknown>, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      Object.assign(out, flattenConfig(v as Record<string, unknown>, key));
    } else out[key] = v;
  }
  return out;
}

/**
 * The keys whose values differ across flattened configs (a key missing from some counts as
 * differing), `seed` excluded; sorted.
 *
 * @example
 * ```ts
 * deriveSweptKeys([{ seed: 1, lr: 1e-3, clip: 0.2 }, { seed: 2, lr: 3e-4, clip: 0.2 }]);
 * // ["lr"]
 * ```
 */
export function deriveSweptKeys(flats: readonly Record<string, unknown>[]): string[] {
  const keys = new Set(flats.flatMap((f) => Object.keys(f)));
  keys.delete("seed");
  return [...keys].filter((k) => new Set(flats.map((f) => canonicalJson(f[k] ?? null))).size > 1)
    .sort();
}

/**
 * Load every trial bundle under each path and group them by experiment folder (the bundle's
 * parent). A path may be an experiment folder, a results root, or one bundle. Hidden folders
 * (`.stages`, `.tmp-*`) are skipped; unfinished trials (`.tmp-*`) are reported as warnings.
 * Throws a {@link ReportError} when a path is missing or holds no bundle.
 */
export async function loadResults(
  paths: readonly string[],
  opts: LoadOptions = {},
): Promise<ExperimentResults[]> {
  if (paths.length === 0) {
    throw new ReportError(
      "no results folder given — pass one, e.g. `deno task report results/kl`",
    );
  }
  const byDir = new Map<string, string[]>();
  for (const raw of paths) {
    const path = raw.replace(/\/+$/, "") || "/";
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new ReportError(
        `${path}: no such folder — run \`deno task sweep experiments/${baseName(path)}.ts\` ` +
          `first, or pass the folder that holds the bundles (results/<experiment>)`,
      );
    }
    if (!st.isDirectory) {
      throw new ReportError(
        `${path}: not a folder — pass an experiment folder (results/<experiment>), not a file`,
      );
    }
    const bundles = (await findBundles(path)).filter((b) =>
      !b.slice(path.length).split("/").some((seg) => seg.startsWith("."))
    );
    if (bundles.length === 0) {
      throw new ReportError(
        `${path}: no bundles found — run \`deno task sweep experiments/${baseName(path)}.ts\` ` +
          `first (a bundle is a folder with a manifest.json, written when a trial finishes)`,
      );
    }
    for (const b of bundles) {
      const parent = b.replace(/\/[^/]+$/, "") || ".";
      const list = byDir.get(parent) ?? [];
      if (!list.includes(b)) list.push(b);
      byDir.set(parent, list);
    }
  }
  const out: ExperimentResults[] = [];
  for (const [dir, bundles] of byDir) out.push(await loadBundleSet(dir, bundles, opts));
  return out;
}

/**
 * Load one experiment folder (`results/<experiment>`): every bundle directly in it.
 * Throws a {@link ReportError} naming the folder when it has none.
 */
export async function loadExperimentResults(
  dir: string,
  opts: LoadOptions = {},
): Promise<ExperimentResults> {
  const all = await loadResults([dir], opts);
  if (all.length !== 1) {
    throw new ReportError(
      `${dir}: holds ${all.length} experiment folders (${all.map((e) => e.name).join(", ")}) — ` +
        `pass one of them, or use loadResults for several`,
    );
  }
  return all[0];
}

async function loadBundleSet(
  dir: string,
  bundleDirs: string[],
  opts: LoadOptions,
): Promise<ExperimentResults> {
  const name = baseName(dir);
  const trials: TrialBundle[] = [];
  for (const b of bundleDirs) trials.push(await loadTrialBundle(b, name, opts));
  const sweptKeys = deriveSweptKeys(trials.map((t) => t.flat));
  for (const t of trials) {
    t.swept = Object.fromEntries(sweptKeys.map((k) => [k, t.flat[k]]));
  }
  trials.sort((a, b) => {
    for (const k of sweptKeys) {
      const c = compareLoose(a.swept[k], b.swept[k]);
      if (c !== 0) return c;
    }
    return (a.seed ?? 0) - (b.seed ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  });
  const warnings: string[] = [];
  const unfinished: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      // A trial's work folder is .tmp-<16 hex digits> (other temporaries are not trials).
      const m = /^\.tmp-([0-9a-f]{16})$/.exec(e.name);
      if (e.isDirectory && m) unfinished.push(m[1]);
    }
  } catch { /* the folder is readable (bundles came from it); nothing to add */ }
  if (unfinished.length) {
    warnings.push(
      `${dir}: ${unfinished.length} unfinished trial${unfinished.length === 1 ? "" : "s"} ` +
        `(${unfinished.sort().join(", ")}) left out — run the sweep again to finish them`,
    );
  }
  const codeVersions = [...new Set(trials.map((t) => t.codeVersion))].sort();
  if (codeVersions.length > 1) {
    warnings.push(
      `${dir}: bundles from ${codeVersions.length} code versions (${codeVersions.join(", ")}) ` +
        `are mixed; the same setting may appear twice — move the old bundles away to compare ` +
        `one code version`,
    );
  }
  return {
    name,
    dir,
    trials,
    sweptKeys,
    tasks: [...new Set(trials.map((t) => t.task))].sort(),
    codeVersions,
    warnings,
  };
}

/** Load one trial bundle (swept values are left empty: they need the whole experiment). */
export async function loadTrialBundle(
  dir: string,
  experiment = baseName(dir.replace(/\/[^/]+\/?$/, "")),
  opts: LoadOptions = {},
): Promise<TrialBundle> {
  let bundleHash: string;
  if (opts.verify) {
    const v = await verifyBundle(dir);
    if (!v.ok) {
      throw new ReportError(
        `${dir}: bundle fails verification (` +
          v.problems.map((p) => `${p.file}: ${p.problem}`).join("; ") +
          `) — run \`deno task verify ${dir}\` for details; delete the bundle and run the ` +
          `sweep again to regenerate it`,
      );
    }
    bundleHash = v.bundleHash!;
  } else {
    const manifest = await readJson<{ bundle_hash?: unknown }>(dir, MANIFEST);
    if (typeof manifest.bundle_hash !== "string") {
      throw new ReportError(
        `${dir}/${MANIFEST}: no bundle_hash — the bundle is corrupt; run \`deno task verify ${dir}\``,
      );
    }
    bundleHash = manifest.bundle_hash;
  }
  const identity = await readJson<{ task?: unknown; config?: unknown; code_version?: unknown }>(
    dir,
    "config.json",
  );
  if (
    typeof identity.task !== "string" || identity.config === null ||
    typeof identity.config !== "object" || Array.isArray(identity.config)
  ) {
    throw new ReportError(
      `${dir}/config.json: not a trial identity ({task, config, code_version}) — is ${dir} a ` +
        `trial bundle? Pass results/<experiment>, not the stage cache`,
    );
  }
  const config = identity.config as Record<string, unknown>;
  const flat = flattenConfig(config);
  const summary = await readJson<BundleSummary>(dir, "summary.json");
  if (summary === null || typeof summary !== "object" || typeof summary.metrics !== "object") {
    throw new ReportError(`${dir}/summary.json: has no "metrics" object — the bundle is corrupt`);
  }
  const rows = await readMetricsRows(`${dir}/metrics.jsonl`);
  const columns: string[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (!seen.has(k) && finiteOrNull(v) !== null) {
        seen.add(k);
        columns.push(k);
      }
    }
  }
  // env.json is informational (versions, device): a bundle without one still reports.
  const env = await exists(`${dir}/env.json`)
    ? await readJson<Record<string, unknown>>(dir, "env.json")
    : null;
  return {
    dir,
    id: baseName(dir),
    experiment,
    task: identity.task,
    codeVersion: typeof identity.code_version === "string" ? identity.code_version : "",
    config,
    flat,
    seed: finiteOrNull(flat.seed),
    summary,
    rows,
    columns,
    bundleHash,
    swept: {},
    env,
  };
}

/** Parse a metrics.jsonl; a bad line is named by file and line number. */
export async function readMetricsRows(path: string): Promise<MetricsRow[]> {
  const text = await readBundleFile(path);
  const rows: MetricsRow[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new ReportError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw new ReportError(`${path}:${i + 1}: not a JSON object`);
    }
    rows.push(row as MetricsRow);
  });
  return rows;
}

/** A bundle file's text; a missing one is a ReportError that says how to check the bundle. */
async function readBundleFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const dir = path.replace(/\/[^/]*$/, "");
      throw new ReportError(
        `${path}: missing — the bundle is incomplete; run \`deno task verify ${dir}\``,
      );
    }
    throw e;
  }
}

async function readJson<T>(dir: string, file: string): Promise<T> {
  const path = `${dir}/${file}`;
  const text = await readBundleFile(path);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new ReportError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

function baseName(path: string): string {
  return path.replace(/\/+$/, "").split("/").at(-1) || path;
}

function compareLoose(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  const sa = canonicalJson(a ?? null), sb = canonicalJson(b ?? null);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

// ---- metrics of a trial --------------------------------------------------------------

/**
 * One number per trial for a metric name, in the sweep summary's convention:
 * - a named metric of summary.json (`return`, `gold_score`, `kl`, ...) as it is;
 * - `col:mean`: the mean of a metrics.jsonl column over the run;
 * - `col` or `col:last`: the column's last finite value.
 * Null when the trial has no such metric.
 *
 * @example
 * ```ts
 * trialMetric(trial, "gold_score");    // summary.metrics.gold_score (sentiment)
 * trialMetric(trial, "clipfrac:mean"); // mean clipfrac over the updates
 * trialMetric(trial, "kl_ref");        // kl_ref of the last update that logged it
 * ```
 */
export function trialMetric(trial: TrialBundle, name: string): number | null {
  const named = trial.summary.metrics?.[name];
  if (named !== undefined) return finiteOrNull(named);
  const m = /^(.*):(mean|last)$/.exec(name);
  const col = m ? m[1] : name;
  if (m && m[2] === "mean") {
    const s = finiteOrNull(trial.summary.mean?.[col]);
    return s ?? meanFinite(trial.rows, col);
  }
  for (let i = trial.rows.length - 1; i >= 0; i--) {
    const v = finiteOrNull(trial.rows[i][col]);
    if (v !== null) return v;
  }
  return null;
}

/** Whether any trial has a value for `name` ({@link trialMetric}'s conventions). */
export function hasMetric(trials: readonly TrialBundle[], name: string): boolean {
  return trials.some((t) => trialMetric(t, name) !== null);
}

/** Whether any trial logs column `col` in metrics.jsonl (a finite value in some row). */
export function hasColumn(trials: readonly TrialBundle[], col: string): boolean {
  return trials.some((t) => t.columns.includes(col));
}

/**
 * Metrics.jsonl columns worth plotting by default, in families picked by what the bundles
 * log: RLHF (sentiment) bundles get the scores and the KL to the reference, env bundles the
 * episodic return and the KL penalty term. The first family with a logged column wins.
 */
export const DEFAULT_CURVE_METRICS: readonly (readonly string[])[] = [
  ["gold_score", "rm_score", "kl_ref"],
  ["episodic_return", "kl_penalty"],
];

/** Diagnostics panel columns (PPO health). */
export const DIAGNOSTIC_METRICS: readonly string[] = [
  "clipfrac",
  "entropy",
  "explained_variance",
];

/** Candidates (first present wins) for the KL axis of the KL–reward frontier. */
export const FRONTIER_KL_CANDIDATES: readonly string[] = [
  "kl",
  "kl_ref:last",
  "kl_penalty:mean",
  "approx_kl_k3:mean",
  "approx_kl_k1:mean",
];

/** Candidates (first present wins) for the reward axis of the KL–reward frontier. */
export const FRONTIER_REWARD_CANDIDATES: readonly string[] = [
  "gold_score",
  // lm and jsx: the evaluated total reward, the quantity PPO optimises.
  "reward",
  "rm_score",
  "return",
  "episodic_return:last",
  "reward_mean:last",
];

/** The curve metrics to plot: the first {@link DEFAULT_CURVE_METRICS} family the trials log. */
export function defaultCurveMetrics(trials: readonly TrialBundle[]): string[] {
  // LM tasks with a reward list: the optimised reward (`reward/total`) and each component
  // (`reward/rm`, `reward/length`, ...) first.
  const rewards = [...new Set(trials.flatMap((t) => t.columns))]
    .filter((c) => c.startsWith("reward/"))
    .sort((a, b) => (a === "reward/total" ? -1 : b === "reward/total" ? 1 : a < b ? -1 : 1));
  for (const family of DEFAULT_CURVE_METRICS) {
    const picked = family.filter((c) => hasColumn(trials, c));
    if (picked.length) return [...rewards, ...picked];
  }
  if (rewards.length) return rewards;
  // Unknown task: its first logged column that is not bookkeeping.
  const skip = new Set(["update", "step", "epochs", "episodes", "lr"]);
  const first = trials.flatMap((t) => t.columns).find((c) => !skip.has(c));
  return first ? [first] : [];
}

/** The first candidate metric some trial has, or null. */
export function firstPresent(
  trials: readonly TrialBundle[],
  candidates: readonly string[],
): string | null {
  return candidates.find((c) => hasMetric(trials, c)) ?? null;
}
