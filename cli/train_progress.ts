/**
 * What `deno task train --task …` shows while PPO runs. On a terminal: a cli-progress bar whose
 * fields are the task's progress columns (lm: `reward/total`, `kl_ref`). Anywhere else (output
 * piped to a file, a CI log, `| tee`): one log line per `logging_steps` updates, the way TRL's
 * trainers log, e.g. `{'update': 3, 'total': 10, 'reward': 0.41, 'kl': 0.02, 'tokens/s': 812}`.
 *
 * The bar's payload keys are `f0`, `f1`, …, never the column names: cli-progress only fills
 * `{name}` tokens made of word characters, so a column such as `reward/total` printed itself
 * literally (`reward {reward/total}`).
 * @module
 */
import cliProgress from "cli-progress";

/** One progress field: the label shown and the metrics.jsonl column it reads. */
export type ProgressFields = Record<string, string>;

/** The bar's format string for `fields`: every placeholder is a cli-progress token. */
export function barFormat(fields: ProgressFields): string {
  return "{bar} {value}/{total} updates | {tps} tokens/s | " +
    Object.keys(fields).map((label, i) => `${label} {f${i}}`).join(" | ") +
    " | ETA {eta_formatted}";
}

/** A number for the bar (3 decimals), "-" when the row has none. */
export function fmtField(x: unknown): string {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(3) : "-";
}

/** The bar's payload for a metrics row (keys `f0`, `f1`, … as {@link barFormat} names them). */
export function barPayload(fields: ProgressFields, row: Record<string, unknown> | null) {
  return Object.fromEntries(
    Object.values(fields).map((col, i) => [`f${i}`, row ? fmtField(row[col]) : "-"]),
  );
}

/** A value as Python prints it in a dict: 4 significant digits, ints as ints. */
function pyNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const s = Number(x.toPrecision(4));
  return Math.abs(s) < 1e-4 && s !== 0 ? s.toExponential(3) : String(s);
}

/**
 * One log line as TRL prints its logs: a Python dict of numbers. Fields whose value is not a
 * finite number are left out, so every field shown is a number.
 */
export function logLine(values: Record<string, unknown>): string {
  const parts = Object.entries(values)
    .filter(([, v]) => typeof v === "number" && Number.isFinite(v))
    .map(([k, v]) => `'${k}': ${pyNumber(v as number)}`);
  return `{${parts.join(", ")}}`;
}

/** Whether log line `update` of `total` is due every `every` updates (the last one always is). */
export function logDue(update: number, total: number, every: number): boolean {
  return update === total || (every > 0 && update % every === 0);
}

/** The training display: a bar on a terminal, log lines otherwise (or nothing when quiet). */
export interface TrainDisplay {
  start(total: number, update: number): void;
  update(update: number, row: Record<string, unknown>, tps: number): void;
  stop(): void;
}

/**
 * The display for `fields`: a bar when stdout and stderr are terminals (cli-progress draws on
 * stderr), log lines on stdout otherwise, nothing with `quiet`. `loggingSteps`: a log line
 * every that many updates (and at the last one).
 */
export function trainDisplay(
  fields: ProgressFields,
  opts: {
    quiet?: boolean;
    tty?: boolean;
    loggingSteps?: number;
    write?: (line: string) => void;
  } = {},
): TrainDisplay {
  if (opts.quiet) return { start() {}, update() {}, stop() {} };
  const tty = opts.tty ?? (Deno.stdout.isTerminal() && Deno.stderr.isTerminal());
  if (tty) {
    const bar = new cliProgress.SingleBar(
      { format: barFormat(fields), hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    return {
      start: (total, u) => bar.start(total, u, { ...barPayload(fields, null), tps: "-" }),
      update: (u, row, tps) => bar.update(u, { ...barPayload(fields, row), tps }),
      stop: () => bar.stop(),
    };
  }
  const write = opts.write ?? ((l: string) => console.log(l));
  let total = 0;
  return {
    start: (t, u) => {
      total = t;
      if (u > 0) write(`resuming at update ${u}/${t}`);
    },
    update: (u, row, tps) => {
      if (!logDue(u, total, opts.loggingSteps ?? 1)) return;
      write(logLine({
        update: u,
        total,
        ...Object.fromEntries(Object.entries(fields).map(([label, col]) => [label, row[col]])),
        "tokens/s": tps,
      }));
    },
    stop() {},
  };
}
