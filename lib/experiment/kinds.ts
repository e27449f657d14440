/**
 * Trial kinds: what an experiment's `task` names. The contract a kind fulfils (schema, run,
 * summarize, stages, ...) is lib/trial/contract.ts; the built-in kinds are the one explicit
 * list {@link TASKS} (lib/experiment/tasks.ts), which every command resolves task names
 * against.
 *
 * An experiment file may also pass a kind object as `task` (tests do). Nothing is registered:
 * planning takes the kind from the experiment, and a worker from the experiment file's default
 * export ({@link kindOfExperiment}), which it imports itself.
 * @module
 */
import type { TrialKind } from "../trial/contract.ts";
import { suggestion } from "../suggest.ts";
import { TASKS } from "./tasks.ts";

export type {
  StageContext,
  StageDef,
  StageFn,
  StageResult,
  TrialKind,
  TrialProgress,
  TrialRunContext,
  TrialSummary,
} from "../trial/contract.ts";

/**
 * The built-in kinds by lower-cased name and alias: a table computed once from the constant
 * {@link TASKS} list and never changed afterwards.
 */
const BUILT_IN: ReadonlyMap<string, TrialKind> = new Map(
  TASKS.flatMap((k) => [k.name, ...(k.aliases ?? [])].map((n) => [n.toLowerCase(), k] as const)),
);

/**
 * The kind for a task name or alias (case-insensitive): a built-in one, or `own` (a kind an
 * experiment file defines) when the name is its name or alias; null when none.
 */
export function findTrialKind(name: string, own?: TrialKind | null): TrialKind | null {
  const n = String(name).toLowerCase();
  if (own && [own.name, ...(own.aliases ?? [])].some((a) => a.toLowerCase() === n)) return own;
  return BUILT_IN.get(n) ?? null;
}

/**
 * The built-in kind that an experiment's own kind `own` clashes with (one of its names is a
 * built-in task's name or alias), or null.
 */
export function builtInClash(own: TrialKind): TrialKind | null {
  for (const n of [own.name, ...(own.aliases ?? [])]) {
    const k = BUILT_IN.get(n.toLowerCase());
    if (k && k !== own) return k;
  }
  return null;
}

/** Canonical names of the built-in kinds. */
export function trialKindNames(): string[] {
  return [...new Set([...BUILT_IN.values()].map((k) => k.name))].sort();
}

/** Error text for an unknown task. */
export function unknownTaskMessage(name: string): { cause: string; fix: string } {
  const all = [...BUILT_IN.keys()];
  const names = trialKindNames();
  const s = suggestion(String(name), [...names, ...all]);
  return {
    cause: `unknown task ${JSON.stringify(name)}${s}`,
    fix: `use one of the registered tasks: ${names.join(", ")}`,
  };
}
