/**
 * Experiment files and their validation.
 *
 * ```ts
 * import { defineExperiment, grid } from "../lib/experiment/mod.ts";
 * export default defineExperiment({
 *   name: "clip",
 *   task: "CartPole-v1",
 *   base: { total_steps: 50_000, ppo: { lr: 2.5e-4 } },
 *   sweep: grid({ "ppo.clip": [0.1, 0.2, 0.3], seed: [1, 2, 3] }),
 *   metrics: ["return", "clipfrac:mean"],
 * });
 * ```
 *
 * {@link planExperiment} checks everything before any trial starts — the experiment's own
 * fields, the task, every base / sweep / override key against the task's config schema (with
 * a did-you-mean), every value of every trial (type, range, NaN), cross-key rules, the metric
 * names, and that no two trials are the same — and throws one {@link ExperimentError} listing
 * each problem with its key and fix. A valid plan lists the trials with their resolved
 * configs and ids.
 * @module
 */
import { z } from "zod";
import { ConfigError } from "../ppo/config.ts";
import { canonicalJson } from "./hash.ts";
import { contentHash, shortHash } from "../hash.ts";
import { builtInClash, findTrialKind, type TrialKind, unknownTaskMessage } from "./kinds.ts";
import { expandSweep, isSweep, type Point, type Sweep, SweepError } from "./sweep.ts";
import { didYouMean, suggestion } from "../suggest.ts";
import { describe, explainIssue, fmt, schemaPaths } from "./config_issues.ts";
import { resolveTrialConfig } from "../trial/resolve.ts";
export { schemaPaths };
import { pathToFileURL } from "node:url";
import { functionRewardsToModules } from "./reward_fns.ts";

const EXPERIMENT = Symbol.for("proxima.experiment");

/** What an experiment file declares. */
export interface ExperimentInput {
  /** Folder name under results/: letters, digits, `-`, `_`, `.`. */
  name: string;
  /** A built-in task (`"CartPole-v1"`, `"sentiment"`, ...) or a trial kind object. */
  task: string | TrialKind;
  /** Config shared by every trial: nested objects and/or dotted keys. */
  base?: Record<string, unknown>;
  /** The trials: grid / zip / random / concat / points. */
  sweep: Sweep;
  /** Columns of the summary table (the task's named metrics or metrics.jsonl columns). */
  metrics?: string[];
  description?: string;
  /**
   * For config keys that name a file or folder: the fix to print when that path is missing
   * (e.g. the environment variable that sets it, the script that writes it).
   */
  inputHelp?: Record<string, string>;
}

export interface Experiment extends ExperimentInput {
  readonly [EXPERIMENT]: true;
}

/**
 * Mark an experiment (validation happens in {@link planExperiment}, naming the file). Returns
 * a value and registers nothing: the sweep command and its workers import the file's default
 * export, and a kind object given as `task` is found there ({@link kindOfExperiment}).
 */
export function defineExperiment(input: ExperimentInput): Experiment {
  return Object.freeze({ ...input, [EXPERIMENT]: true as const });
}

/**
 * The trial kind an experiment defines itself (a kind object as `task`), or null when its
 * `task` names a built-in one.
 */
export function kindOfExperiment(exp: unknown): TrialKind | null {
  if (!isExperiment(exp)) return null;
  const t = exp.task as unknown;
  return typeof t === "object" && t !== null && typeof (t as TrialKind).name === "string" &&
      "schema" in t
    ? t as TrialKind
    : null;
}

export function isExperiment(x: unknown): x is Experiment {
  return typeof x === "object" && x !== null && (x as Experiment)[EXPERIMENT] === true;
}

/** One problem: where (key), what is wrong (cause), what to do (fix). */
export interface Problem {
  key: string;
  cause: string;
  fix: string;
}

/** Invalid experiment: names the file and lists every problem with its key and fix. */
export class ExperimentError extends ConfigError {
  constructor(readonly file: string, readonly problems: Problem[]) {
    const shown = problems.slice(0, 12);
    super(
      `${file}: ${problems.length === 1 ? "1 problem" : `${problems.length} problems`}` +
        ` (no trial was started)\n` +
        shown.map((p) => `  ${p.key}: ${p.cause}\n    fix: ${p.fix}`).join("\n") +
        (problems.length > shown.length
          ? `\n  ... and ${problems.length - shown.length} more`
          : ""),
    );
    this.name = "ExperimentError";
  }
}

/** Import an experiment file and return its default export (errors name the file and fix). */
export async function loadExperiment(file: string): Promise<Experiment> {
  const fail = (key: string, cause: string, fix: string): never => {
    throw new ExperimentError(file, [{ key, cause, fix }]);
  };
  let st: Deno.FileInfo | null = null;
  try {
    st = await Deno.stat(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) fail("file", (e as Error).message, "check the path");
  }
  if (!st) {
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ".";
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (/\.(ts|js|mjs)$/.test(e.name)) names.push(e.name);
      }
    } catch { /* no such folder */ }
    const base = file.split("/").at(-1)!;
    const m = didYouMean(base, names);
    return fail(
      "file",
      "no such experiment file" + (m ? ` (did you mean ${dir}/${m}?)` : ""),
      names.length
        ? `give one of ${names.map((n) => `${dir}/${n}`).join(", ")}`
        : "give the path of an experiment file, e.g. experiments/kl.ts",
    );
  }
  if (!st.isFile) fail("file", "is not a file", "give the path of an experiment .ts file");
  if (!/\.(ts|js|mjs|mts)$/.test(file)) {
    fail("file", "is not a TypeScript/JavaScript module", "experiment files end in .ts");
  }
  const abs = file.startsWith("/") ? file : `${Deno.cwd()}/${file}`;
  let mod: Record<string, unknown>;
  try {
    // pathToFileURL escapes `#`, `?`, `%` and spaces, which a `file://` + path string does not.
    mod = await import(pathToFileURL(abs).href);
  } catch (e) {
    const msg = String((e as Error)?.message ?? e).split("\n").slice(0, 6).join("\n    ");
    return fail(
      "module",
      `cannot be loaded: ${msg}`,
      "fix the error above (the file must be a valid TypeScript module that imports " +
        "defineExperiment from lib/experiment/mod.ts)",
    );
  }
  if (!("default" in mod)) {
    fail(
      "default export",
      "missing",
      "end the file with `export default defineExperiment({ name, task, base, sweep, metrics })`",
    );
  }
  if (!isExperiment(mod.default)) {
    fail(
      "default export",
      `is not an experiment (got ${describe(mod.default)})`,
      "wrap it: `export default defineExperiment({ ... })`",
    );
  }
  const fnProblems = await functionRewardsToModules(file, mod.default as Experiment);
  if (fnProblems.length) throw new ExperimentError(file, fnProblems);
  return mod.default as Experiment;
}

/** A trial of a plan. */
export interface PlannedTrial {
  /** 1-based position in the sweep. */
  index: number;
  /** 16 hex digits: sha256 of canonical config.json. */
  id: string;
  /** config.json: task, resolved config, code version. */
  identity: TrialIdentity;
  /** The swept values of this trial (dotted key -> value). */
  point: Point;
  work: { total: number; unit: string; steps: number };
}

/** What a trial is: the content of its config.json; its id is the hash of this. */
export interface TrialIdentity {
  task: string;
  config: Record<string, unknown>;
  code_version: string;
  /** sha256 of each input file or folder the kind names (config key -> hash), when any. */
  inputs?: Record<string, string>;
}

/** Trial id of an identity (16 hex digits of sha256 of its canonical JSON). */
export function trialId(identity: TrialIdentity): string {
  return shortHash(canonicalJson(identity));
}

export interface Plan {
  file: string;
  name: string;
  kind: TrialKind;
  trials: PlannedTrial[];
  /** Keys the sweep varies (in order of first appearance), for table columns. */
  sweptKeys: string[];
  metrics: string[];
  codeVersion: string;
}

export interface PlanOptions {
  /** The experiment file (for messages). */
  file: string;
  codeVersion: string;
  /** Dotted key -> value applied to every trial last (`--set total_steps=2048`). */
  overrides?: Record<string, unknown>;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TOP_KEYS = ["name", "task", "base", "sweep", "metrics", "description", "inputHelp"];

/** Validate an experiment and list its trials; throws {@link ExperimentError}. */
export function planExperiment(exp: Experiment, opts: PlanOptions): Plan {
  const problems: Problem[] = [];
  const add = (key: string, cause: string, fix: string) => {
    if (!problems.some((p) => p.key === key && p.cause === cause)) {
      problems.push({ key, cause, fix });
    }
  };
  const done = () => {
    if (problems.length) throw new ExperimentError(opts.file, problems);
  };

  // 1. The experiment's own fields.
  for (const k of Object.keys(exp)) {
    if (!TOP_KEYS.includes(k)) {
      add(k, `unknown experiment field${suggestion(k, TOP_KEYS)}`, `use ${TOP_KEYS.join(", ")}`);
    }
  }
  if (typeof exp.name !== "string" || !NAME_RE.test(exp.name)) {
    add(
      "name",
      exp.name === undefined ? "missing" : `${fmt(exp.name)} is not a valid folder name`,
      'give a name of letters, digits, "-", "_" or "." (it becomes results/<name>/)',
    );
  }
  let kind: TrialKind | null = null;
  if (typeof exp.task === "string") {
    kind = findTrialKind(exp.task);
    if (!kind) {
      const m = unknownTaskMessage(exp.task);
      add("task", m.cause, m.fix);
    }
  } else if (typeof exp.task === "object" && exp.task !== null && "schema" in exp.task) {
    kind = exp.task as TrialKind;
    const clash = builtInClash(kind);
    if (clash) {
      add(
        "task",
        `the trial kind "${kind.name}" takes a name of the built-in task "${clash.name}"`,
        "rename the trial kind",
      );
      kind = null;
    }
  } else {
    const m = unknownTaskMessage(String(exp.task));
    add("task", exp.task === undefined ? "missing" : m.cause, m.fix);
  }
  if (
    exp.metrics !== undefined &&
    (!Array.isArray(exp.metrics) || exp.metrics.some((m) => typeof m !== "string"))
  ) {
    add(
      "metrics",
      `must be a list of metric names (got ${fmt(exp.metrics)})`,
      'write metrics: ["return"]',
    );
  }
  if (
    exp.base !== undefined &&
    (typeof exp.base !== "object" || exp.base === null || Array.isArray(exp.base))
  ) {
    add(
      "base",
      `must be an object of config keys (got ${fmt(exp.base)})`,
      "write base: { total_steps: 50000 }",
    );
  }
  let points: Point[] = [];
  if (exp.sweep === undefined) {
    add("sweep", "missing: the experiment has no trials", "add sweep: grid({ seed: [1, 2, 3] })");
  } else if (!isSweep(exp.sweep)) {
    add(
      "sweep",
      `must be built with grid/zip/random/concat/points (got ${describe(exp.sweep)})`,
      "write sweep: grid({ seed: [1, 2, 3] })",
    );
  } else {
    try {
      points = expandSweep(exp.sweep);
    } catch (e) {
      if (!(e instanceof SweepError)) throw e;
      add(e.key ? `sweep "${e.key}"` : "sweep", e.message, e.fix);
    }
  }
  if (!kind) done();
  const k = kind!;
  done();

  // 2. Keys: base, sweep and overrides against the task's config schema.
  const { leaves, objects } = schemaPaths(k.schema);
  const known = [...leaves, ...objects];
  const checkKey = (key: string, where: string) => {
    if (leaves.has(key) || objects.has(key)) return true;
    const parent = key.split(".").slice(0, -1).join(".");
    const hint = k.keyHints?.[key];
    const m = didYouMean(key, known);
    if (leaves.has(parent)) {
      add(
        `${where} "${key}"`,
        `"${parent}" is a value, not a group of keys`,
        `set "${parent}" itself`,
      );
    } else {
      add(
        `${where} "${key}"`,
        `unknown config key for task ${k.name}` + (m ? ` (did you mean "${m}"?)` : ""),
        hint ?? (m ? `rename it to "${m}"` : `use one of: ${[...leaves].slice(0, 40).join(", ")}`),
      );
    }
    return false;
  };
  const flatten = (obj: Record<string, unknown>, prefix: string, out: Point, where: string) => {
    for (const [key, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (objects.has(path) && typeof v === "object" && v !== null && !Array.isArray(v)) {
        flatten(v as Record<string, unknown>, path, out, where);
      } else if (checkKey(path, where)) out[path] = v;
    }
    return out;
  };
  const base = flatten((exp.base ?? {}) as Record<string, unknown>, "", {}, "base");
  const overrides = flatten(opts.overrides ?? {}, "", {}, "--set");
  const sweptKeys: string[] = [];
  for (const p of points) {
    for (const key of Object.keys(p)) {
      if (!sweptKeys.includes(key)) {
        sweptKeys.push(key);
        checkKey(key, "sweep");
      }
    }
  }
  done();

  // 3. Every trial's config: merge base < sweep point < overrides, then parse.
  const trials: PlannedTrial[] = [];
  const seen = new Map<string, number>();
  const inputHashes = new Map<string, string>(); // input path -> content hash
  points.forEach((point, i) => {
    const src = new Map<string, string>();
    const raw: Record<string, unknown> = {};
    const assign = (key: string, v: unknown, where: string) => {
      const parts = key.split(".");
      let o = raw;
      for (const p of parts.slice(0, -1)) {
        if (typeof o[p] !== "object" || o[p] === null || Array.isArray(o[p])) o[p] = {};
        o = o[p] as Record<string, unknown>;
      }
      try {
        o[parts.at(-1)!] = structuredClone(v);
      } catch {
        o[parts.at(-1)!] = Symbol("not plain data");
      }
      src.set(key, where);
    };
    for (const [key, v] of Object.entries(base)) assign(key, v, "base");
    for (const [key, v] of Object.entries(point)) assign(key, v, `sweep point ${i + 1}`);
    for (const [key, v] of Object.entries(overrides)) assign(key, v, "--set");
    const origin = (key: string) => {
      for (let p = key; p; p = p.split(".").slice(0, -1).join(".")) {
        if (src.has(p)) return src.get(p)!;
      }
      return "default";
    };
    // Resolved once, here: the kind's `resolve` (an LM task's `method` record), its schema,
    // its cross-key checks (lib/trial/resolve.ts). Workers get the result and only confirm it.
    const r = resolveTrialConfig(k, raw);
    if (!r.ok && r.problems) {
      for (const p of r.problems) add(`${p.key} (${origin(p.key)})`, p.cause, p.fix);
      return;
    }
    if (!r.ok) {
      for (const issue of r.issues) {
        const key = issue.path.map(String).join(".");
        const given = issue.path.reduce<unknown>(
          (
            o,
            p,
          ) => (o && typeof o === "object"
            ? (o as Record<string, unknown>)[p as string]
            : undefined),
          raw,
        );
        const { cause, fix } = explainIssue(issue, given, key, known, k);
        add(`${key || "config"} (${origin(key)})`, cause, fix);
      }
      return;
    }
    const config = r.config as Record<string, unknown>;
    for (const p of r.problems) add(`${p.key} (${origin(p.key)})`, p.cause, p.fix);
    const identity: TrialIdentity = { task: k.name, config, code_version: opts.codeVersion };
    const inputs = hashInputs(
      k,
      config,
      inputHashes,
      (key, cause, fix) => add(`${key} (${origin(key)})`, cause, exp.inputHelp?.[key] ?? fix),
    );
    if (Object.keys(inputs).length) identity.inputs = inputs;
    const id = trialId(identity);
    const prev = seen.get(id);
    if (prev !== undefined) {
      add(
        `sweep point ${i + 1}`,
        `is the same trial as sweep point ${prev + 1} (${fmt(points[prev])} and ${fmt(point)} ` +
          `resolve to the same config${Object.keys(overrides).length ? " after --set" : ""})`,
        "remove the duplicate value, or sweep a key that tells them apart (e.g. seed)",
      );
      return;
    }
    seen.set(id, i);
    trials.push({ index: i + 1, id, identity, point, work: k.work(config) });
  });

  // 4. Metrics.
  const metrics = exp.metrics ?? Object.keys(k.metricNames.named).slice(0, 1);
  const named = Object.keys(k.metricNames.named), cols = k.metricNames.columns;
  for (const m of metrics) {
    const [baseName, agg, extra] = m.split(":");
    const ok = extra === undefined &&
      (agg === undefined
        ? named.includes(baseName) || cols.includes(baseName)
        : (agg === "mean" || agg === "last") && cols.includes(baseName));
    if (!ok) {
      const all = [...named, ...cols, ...cols.map((c) => `${c}:mean`)];
      add(
        `metrics "${m}"`,
        `unknown metric for task ${k.name}${suggestion(m, all)}`,
        `use ${named.join(", ")}, or a metrics.jsonl column (${
          cols.join(", ")
        }), optionally with :mean`,
      );
    }
  }
  done();
  return {
    file: opts.file,
    name: exp.name,
    kind: k,
    trials,
    sweptKeys,
    metrics,
    codeVersion: opts.codeVersion,
  };
}

/**
 * The content hash of each input (file or folder) a config names (`TrialKind.inputs`), each
 * path hashed once per `cache`; an unreadable one is reported to `problem` (key, cause, fix).
 */
function hashInputs(
  k: TrialKind,
  config: Record<string, unknown>,
  cache: Map<string, string>,
  problem: (key: string, cause: string, fix: string, missing: boolean) => void,
): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const { key, path } of k.inputs?.(config) ?? []) {
    try {
      // Trials of a sweep usually share their input folders: hash each one once.
      if (!cache.has(path)) cache.set(path, contentHash(path));
      inputs[key] = cache.get(path)!;
    } catch (e) {
      const missing = e instanceof Deno.errors.NotFound;
      problem(
        key,
        missing
          ? `${path}: no such file or folder`
          : `${path}: cannot read: ${(e as Error).message}`,
        missing
          ? `check the path (relative paths start at ${Deno.cwd()})` +
            // Only a key with a default can be left out.
            ((k.schema.shape as Record<string, z.ZodType>)[key]?.safeParse(undefined).success
              ? ", or remove the key to use the task's default"
              : "")
          : "check the permissions",
        missing,
      );
    }
  }
  return inputs;
}

/**
 * A config this process resolved already (`resolveTrialConfig`, lib/trial/resolve.ts) as the
 * one trial of a plan — its inputs hashed, its id — without resolving it again: what
 * `deno task train` runs. Throws {@link ExperimentError} for an unreadable input.
 */
export function planResolvedTrial(
  kind: TrialKind,
  config: Record<string, unknown>,
  opts: { file: string; codeVersion: string },
): PlannedTrial {
  const problems: Problem[] = [];
  const identity: TrialIdentity = { task: kind.name, config, code_version: opts.codeVersion };
  const inputs = hashInputs(kind, config, new Map(), (key, cause, fix) => {
    problems.push({ key, cause, fix });
  });
  if (problems.length) throw new ExperimentError(opts.file, problems);
  if (Object.keys(inputs).length) identity.inputs = inputs;
  return { index: 1, id: trialId(identity), identity, point: {}, work: kind.work(config) };
}

/**
 * Read and check every trial's inputs (`TrialKind.validate`: model folders, prompt files)
 * before any trial starts; throws an {@link ExperimentError} listing each problem once.
 * A kind without `validate` has nothing to check (e.g. "prompts: data.jsonl row 3: is 900
 * tokens ...").
 */
export async function validateInputs(plan: Plan): Promise<void> {
  const validate = plan.kind.validate;
  if (!validate) return;
  const problems: Problem[] = [];
  const ctx = { memo: new Map<string, Promise<unknown>>() }; // this plan's reads, shared
  for (const t of plan.trials) {
    let found: Problem[];
    try {
      found = await validate.call(plan.kind, t.identity.config, ctx);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // A ConfigError that carries its key, cause and fix (lib/tasks/inputs.ts) keeps them.
      const p = e as ConfigError & Partial<Problem>;
      found = [
        p.key && p.cause && p.fix
          ? { key: p.key, cause: p.cause, fix: p.fix }
          : { key: `trial ${t.index}`, cause: e.message, fix: "fix the input named above" },
      ];
    }
    for (const p of found) {
      if (!problems.some((q) => q.key === p.key && q.cause === p.cause)) problems.push(p);
    }
  }
  if (problems.length) throw new ExperimentError(plan.file, problems);
}
