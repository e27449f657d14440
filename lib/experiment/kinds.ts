/**
 * Trial kinds: what an experiment's `task` names. The contract a kind fulfils (schema, run,
 * summarize, stages, ...) is lib/trial/contract.ts; the built-in kinds are the one explicit
 * list {@link TASKS} (lib/experiment/tasks.ts), which every command resolves task names
 * against.
 *
 * An experiment file may also pass a kind object as `task` (tests do): `defineExperiment`
 * registers it, and workers import the experiment file, so it is registered there too.
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

const KINDS = new Map<string, TrialKind>();

/** Register a kind (re-registering the same object is a no-op; another one by the same name is refused). */
export function registerTrialKind<C extends Record<string, unknown>>(
  kind: TrialKind<C>,
): TrialKind<C> {
  for (const n of [kind.name, ...(kind.aliases ?? [])]) {
    const prev = KINDS.get(n.toLowerCase());
    if (prev && prev !== kind) {
      throw new Error(`trial kind "${n}" is already registered (by ${prev.name})`);
    }
  }
  for (const n of [kind.name, ...(kind.aliases ?? [])]) KINDS.set(n.toLowerCase(), kind);
  return kind;
}

for (const kind of TASKS) registerTrialKind(kind);

/** The kind for a task name or alias (case-insensitive), or null. */
export function findTrialKind(name: string): TrialKind | null {
  return KINDS.get(String(name).toLowerCase()) ?? null;
}

/** Canonical names of all registered kinds. */
export function trialKindNames(): string[] {
  return [...new Set([...KINDS.values()].map((k) => k.name))].sort();
}

/** Error text for an unknown task. */
export function unknownTaskMessage(name: string): { cause: string; fix: string } {
  const all = [...KINDS.keys()];
  const names = trialKindNames();
  const s = suggestion(String(name), [...names, ...all]);
  return {
    cause: `unknown task ${JSON.stringify(name)}${s}`,
    fix: `use one of the registered tasks: ${names.join(", ")}`,
  };
}
