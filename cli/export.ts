/**
 * `deno task export results/<experiment> [more dirs] --to tensorboard|csv|parquet [--out DIR]`
 * — convert finished bundles for other tools (lib/report/export.ts): TensorBoard event files
 * (one run per trial), or one wide table of every metrics row (CSV, Parquet) with the trial id,
 * swept keys and seed. Written to `<experiment dir>/export/` unless `--out` says otherwise,
 * under a temporary name and renamed into place.
 *
 * Exit status: 0 written, 2 a usage error or unusable input (the message names the path or
 * flag and the fix).
 * @module
 */
import { UsageError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";
import { parseFlags } from "./flags.ts";
import { didYouMean } from "../lib/suggest.ts";
import { EXPORT_FORMATS, type ExportFormat, exportResults } from "../lib/report/export.ts";

const HELP = `Usage: deno task export <results/experiment> [<dir> ...] --to FORMAT [flags]

Converts the trial bundles of each experiment folder for other tools:
  --to tensorboard  one TensorBoard run per trial: <out>/tensorboard/<trial-id>/events.out.tfevents.*
                    (tensorboard --logdir <out>/tensorboard; W&B: wandb sync --sync-tensorboard)
                    and <out>/tensorboard/runs.json (each run's swept values, seed, bundle hash)
  --to csv          <out>/metrics.csv: a row per metrics.jsonl row with experiment, trial,
                    the swept keys and seed
  --to parquet      <out>/metrics.parquet: the same table as Parquet

Flags:
  --out <dir>    where to write (default: <experiment dir>/export; needed with several experiments)
  --no-verify    skip recomputing every bundle's hashes (faster; default: verify)
  --help`;

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags("export", args, {
    to: { type: "string" },
    out: { type: "string" },
    "no-verify": { type: "boolean" },
    help: { type: "boolean" },
  }, { allowPositionals: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.to === undefined) {
    throw new UsageError(`export: give --to ${EXPORT_FORMATS.join("|")} (see --help)`);
  }
  if (!EXPORT_FORMATS.includes(values.to as ExportFormat)) {
    const s = didYouMean(values.to, EXPORT_FORMATS);
    throw new UsageError(
      `export: unknown --to "${values.to}"${s ? ` (did you mean ${s}?)` : ""} — use one of ` +
        EXPORT_FORMATS.join(", "),
    );
  }
  if (positionals.length === 0) {
    throw new UsageError(
      "export: give a results folder, e.g. deno task export results/kl --to csv",
    );
  }
  const r = await exportResults(positionals, {
    to: values.to as ExportFormat,
    out: values.out,
    verify: !values["no-verify"],
  });
  for (const w of r.warnings) console.error(`note: ${w}`);
  console.log(`${r.trials} trials, ${r.rows} metrics rows -> ${r.files.join(", ")}`);
  return 0;
}

if (import.meta.main) await runCommand(() => main(Deno.args));
