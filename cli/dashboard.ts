/**
 * `deno task dashboard [results/] [--port N] [--host H]` — serve the live dashboard of a
 * results folder (a results root, or one experiment folder) at http://127.0.0.1:8787/ and
 * keep it current while sweeps run (lib/report/dashboard). Read-only: it never writes into
 * the results folder. Ctrl-C stops it.
 *
 * Exit status: 0 stopped, 2 a usage error or unusable input (the message names the flag or
 * path and the fix).
 * @module
 */
import { UsageError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";
import { parseFlags } from "./flags.ts";

const HELP = `Usage: deno task dashboard [results/] [flags]

Serves a local web page for the experiments under a results folder (default: results): their
trials (status, swept keys, final metrics, bundle hash), curves of any metric with seed bands
(mean ± std over the seeds of a setting), the KL–reward frontier, per-trial diagnostics,
evaluation samples before/after training, and the paper tables of \`deno task reproduce\`.
Running trials' metrics appear as they are written, without a reload. Read-only.

Flags:
  --port N     the port (default 8787; 0 = any free port)
  --host H     the address to listen on (default 127.0.0.1: this machine only)
  --help       this text`;

/** Parsed flags of the dashboard command. */
export interface DashboardFlags {
  root: string;
  port: number;
  host: string;
  help: boolean;
}

/** Parse the command line; a bad flag is a UsageError naming it. */
export function parseDashboardFlags(args: string[]): DashboardFlags {
  const { values, positionals } = parseFlags("dashboard", args, {
    port: { type: "string" },
    host: { type: "string" },
    help: { type: "boolean" },
  }, { allowPositionals: true });
  if (positionals.length > 1) {
    throw new UsageError(
      `dashboard: one results folder at a time (got ${positionals.join(", ")}); pass the ` +
        `results root to see every experiment in it`,
    );
  }
  const rawPort = values.port ?? "8787";
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65535) {
    throw new UsageError(
      `dashboard: --port must be a port number 0-65535 (got "${rawPort}"); 0 picks a free one`,
    );
  }
  const host = values.host ?? "127.0.0.1";
  if (!host) throw new UsageError(`dashboard: --host needs an address, e.g. 127.0.0.1`);
  return {
    root: (positionals[0] ?? "results").replace(/\/+$/, "") || "/",
    port,
    host,
    help: Boolean(values.help),
  };
}

async function main(args: string[]): Promise<number> {
  const flags = parseDashboardFlags(args);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  // The server (and the report layer it loads) only after the flags passed: a bad flag or
  // --help answers without loading it.
  const { startDashboard } = await import("../lib/report/dashboard/mod.ts");
  let d;
  try {
    d = await startDashboard({ root: flags.root, hostname: flags.host, port: flags.port });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `dashboard: port ${flags.port} on ${flags.host} is in use — pass another --port, or ` +
          `--port 0 for any free one`,
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable || e instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(
        `dashboard: cannot listen on ${flags.host}:${flags.port} (${e.message})`,
      );
    }
    throw e;
  }
  const exps = d.watcher.experiments();
  const trials = exps.reduce((s, e) => s + e.trials.length, 0);
  console.log(
    `dashboard: ${d.url} — ${flags.root}/: ${exps.length} experiment${
      exps.length === 1 ? "" : "s"
    }, ${trials} trial${trials === 1 ? "" : "s"} (read-only; Ctrl-C to stop)`,
  );
  const stop = () => void d.close();
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  await d.finished;
  return 0;
}

if (import.meta.main) await runCommand(() => main(Deno.args));
