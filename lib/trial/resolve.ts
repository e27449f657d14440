/**
 * A trial's config is resolved once, where the trial is planned: the kind's `resolve` (an LM
 * task's `method` record), its zod schema (every default filled) and its cross-key `check`,
 * in {@link resolveTrialConfig}. What runs the trial gets that resolved config (config.json)
 * and only confirms it ({@link resolvedConfig}): the trial id is its hash (checked by the
 * caller), and one schema parse, with no cross-key checks, gives it its types — none at all in
 * the process that resolved it (`deno task train` plans and runs in one process).
 *
 * {@link configCounts} counts the parses and checks of this process, so tests can hold "parsed
 * once per process, validated once".
 *
 * @example
 * ```ts
 * const r = resolveTrialConfig(kind, { ppo: { lr: 1e-4 } });
 * if (r.ok && !r.problems.length) runIt(resolvedConfig(kind, r.config)); // no second parse
 * ```
 * @module
 */
import type { z } from "zod";
import { canonicalJson } from "../json.ts";
import { ConfigError, type ConfigProblem, formatIssues } from "../ppo/config.ts";
import type { TrialKind } from "./contract.ts";

/** Schema parses and cross-key checks of trial configs in this process (for tests). */
export const configCounts = { parses: 0, checks: 0 };

/** Zero {@link configCounts} (tests, before the work they count). */
export function resetConfigCounts(): void {
  configCounts.parses = 0;
  configCounts.checks = 0;
}

/**
 * Configs this process resolved (or confirmed): handed back as they are, never parsed again.
 * Weak, so a config lives no longer than its trial.
 */
const RESOLVED = new WeakSet<object>();

/** What a kind needs to resolve a config (a {@link TrialKind}, or a task while it is built). */
export type Resolver<C> = Pick<TrialKind<Record<string, unknown>>, "resolve"> & {
  schema: z.ZodType<C>;
  check?(config: C): ConfigProblem[];
};

/** The outcome of {@link resolveTrialConfig}. */
export type Resolution<C> =
  /** Parsed and checked: `problems` are the cross-key ones (empty: a valid trial). */
  | { ok: true; config: C; problems: ConfigProblem[] }
  /** The kind's `resolve` refused it (a method record contradicted). */
  | { ok: false; problems: ConfigProblem[]; issues?: undefined }
  /** The schema refused it. */
  | { ok: false; issues: z.core.$ZodIssue[]; problems?: undefined };

/**
 * Resolve a raw config (what an experiment's base, sweep point and `--set` make): the kind's
 * `resolve`, one schema parse, one run of its cross-key `check`. The config it returns is
 * recorded as resolved in this process.
 */
export function resolveTrialConfig<C>(
  kind: Resolver<C>,
  raw: Record<string, unknown>,
): Resolution<C> {
  const pre = kind.resolve?.(raw) ?? { config: raw, problems: [] };
  if (pre.problems.length) return { ok: false, problems: pre.problems };
  configCounts.parses++;
  const r = kind.schema.safeParse(pre.config);
  if (!r.success) return { ok: false, issues: r.error.issues };
  configCounts.checks++;
  const problems = kind.check?.(r.data) ?? [];
  if (!problems.length && r.data && typeof r.data === "object") RESOLVED.add(r.data);
  return { ok: true, config: r.data, problems };
}

/**
 * {@link resolveTrialConfig}, throwing a {@link ConfigError} that names every bad key (`where`
 * starts the message, e.g. "sentiment config").
 */
export function parseTrialConfig<C>(kind: Resolver<C>, raw: unknown, where: string): C {
  const r = resolveTrialConfig(kind, (raw ?? {}) as Record<string, unknown>);
  if (r.ok && !r.problems.length) return r.config;
  if (!r.ok && r.issues) throw new ConfigError(formatIssues(r.issues, raw, where));
  const ps = r.problems!;
  throw Object.assign(
    new ConfigError(
      `${where}: ` + ps.map((p) => `${p.key}: ${p.cause}; fix: ${p.fix}`).join("\n  "),
    ),
    ps.length === 1 ? ps[0] : {},
  );
}

/**
 * The typed config of a trial request whose config was resolved at planning (the caller has
 * checked that it hashes to the trial id): the same object when this process resolved it,
 * else one schema parse — no `resolve`, no cross-key checks — that must give back exactly
 * the config (a config that is not a resolved one of this kind gives null).
 */
export function resolvedConfig<C>(kind: { schema: z.ZodType<C> }, config: unknown): C | null {
  if (config && typeof config === "object" && RESOLVED.has(config)) return config as C;
  configCounts.parses++;
  const r = kind.schema.safeParse(config);
  if (!r.success || canonicalJson(r.data) !== canonicalJson(config)) return null;
  if (r.data && typeof r.data === "object") RESOLVED.add(r.data);
  return r.data;
}

/** Whether this process resolved (or confirmed) this very config object. */
export function isResolved(config: unknown): boolean {
  return Boolean(config && typeof config === "object" && RESOLVED.has(config));
}
