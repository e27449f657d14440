/**
 * The flags every command that runs trials shares (`--jobs`, `--threads`, `--device`,
 * `--results`, `--quiet`, `--help`), parsed one way for `sweep` and `reproduce`: an unknown
 * flag is named with a did-you-mean, a bad value with the flag and what was given.
 * @module
 */
import type { ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { parseFlags } from "./flags.ts";

// The boundary and the usage error live in their own modules; re-exported for the commands.
export { runCommand } from "./boundary.ts";
export { UsageError };

/** Options of the shared run flags (for parseArgs). */
const RUN_OPTIONS = {
  jobs: { type: "string" },
  threads: { type: "string" },
  device: { type: "string" },
  results: { type: "string" },
  quiet: { type: "boolean" },
  help: { type: "boolean" },
} as const satisfies ParseArgsOptionsConfig;

/** The shared run flags, validated and defaulted. */
export interface RunFlags {
  jobs: number;
  threads: number;
  device: "cpu" | "cuda";
  results: string;
  quiet: boolean;
  help: boolean;
}

/**
 * Parse `args` for `command` with the run flags plus `extra` options: returns the run flags,
 * the raw values of the extra ones and the positionals.
 *
 * @example
 * ```ts
 * const { run, values, positionals } = parseRunFlags("sweep", Deno.args, {
 *   "dry-run": { type: "boolean" },
 * });
 * ```
 */
export function parseRunFlags<E extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  extra: E,
) {
  const options = { ...RUN_OPTIONS, ...extra };
  const { values, positionals } = parseFlags(command, args, options, { allowPositionals: true });
  const v = values as Record<string, string | boolean | string[] | undefined>;
  const int = (name: string, dflt: number) => {
    const raw = v[name] as string | undefined;
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new UsageError(`${command}: --${name} must be a positive integer (got "${raw}")`);
    }
    return n;
  };
  const device = (v.device as string | undefined) ?? "cpu";
  if (device !== "cpu" && device !== "cuda") {
    throw new UsageError(`${command}: --device must be cpu or cuda (got "${device}")`);
  }
  const run: RunFlags = {
    jobs: int("jobs", navigator.hardwareConcurrency || 1),
    threads: int("threads", 1),
    device,
    results: ((v.results as string | undefined) ?? "results").replace(/\/+$/, "") || "/",
    quiet: Boolean(v.quiet),
    help: Boolean(v.help),
  };
  return { run, values, positionals };
}
