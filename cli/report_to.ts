/**
 * `--report_to none|tensorboard` of `deno task train` and `deno task sweep`: where metrics rows
 * also go while training (lib/tensorboard). A run option, not a config key: it changes no
 * result, so trial ids and bundles are the same with or without it.
 * @module
 */
import { ConfigError } from "../lib/ppo/config.ts";
import { parseReportTo, REPORT_TO, type ReportTo } from "../lib/tensorboard/mod.ts";

/** The flag's help lines (indented as `deno task train --help`'s run flags). */
export const REPORT_TO_HELP = `--report_to none|tensorboard
                     also log every metrics row while training as TensorBoard event files
                     in <parent of --out>/tensorboard/<run>/ (default none)`;

/** The value of `--report_to` (absent: "none"); a bad one is a {@link ConfigError} (exit 2). */
export function reportToFlag(value: unknown, command: string): ReportTo {
  if (value === undefined) return "none";
  const r = parseReportTo(value);
  if (r) return r;
  throw new ConfigError(
    `${command}: --report_to ${
      value === true ? "needs a value" : `"${value}" is not one of ${REPORT_TO.join(", ")}`
    }\n  fix: --report_to tensorboard (event files beside the results), or leave it out`,
  );
}
