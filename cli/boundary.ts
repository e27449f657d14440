/**
 * The one error boundary every command runs in ({@link runCommand}). An error the user can
 * cause ({@link UserError} and its kinds: a flag, a config key, an experiment file, a model
 * folder, an output folder) ends as its message alone, naming the input, the cause and the
 * fix, and exit code 2. Anything else is a bug in Proxima: it is printed with its stack and a
 * line saying so and where to report it, and the command exits {@link EXIT_INTERNAL}.
 *
 * Exit codes of every command: 0 done, 1 the work ran but failed (a trial, a bundle that does
 * not verify), 2 bad input (nothing was started or written), 70 an internal error (a bug),
 * 130 interrupted.
 * @module
 */
import { InputError, UserError } from "../lib/errors.ts";

/** Exit code of bad input. */
export const EXIT_USAGE = 2;
/** Exit code of an internal error (sysexits' EX_SOFTWARE). */
export const EXIT_INTERNAL = 70;

/** Where a bug is reported. */
export const REPORT_BUGS = "please report it to the Proxima maintainers (an issue in the " +
  "project's tracker) with the command line and everything printed below";

/** Filesystem errors of Deno that name a path the user gave (their message holds the path). */
const FS_ERRORS = [
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.AlreadyExists,
  Deno.errors.IsADirectory,
  Deno.errors.NotADirectory,
];

/** Whether `e` is an error the user can fix (printed without a stack, exit 2). */
export function isUserError(e: unknown): boolean {
  return e instanceof UserError || FS_ERRORS.some((c) => e instanceof c) ||
    /\(os error (30|28|36)\)/.test(String((e as Error)?.message)); // read-only fs, disk full, name too long
}

/** The text printed for a user error: the message, then its fix when the message lacks it. */
export function formatUserError(command: string, e: unknown): string {
  const err = e as Error & { fix?: string };
  let msg = err.message;
  // A loader's message starts with the loader; say which command read it.
  if (e instanceof InputError && !msg.startsWith(`${command}:`)) msg = `${command}: ${msg}`;
  if (!(e instanceof UserError)) {
    msg = `${command}: ${msg}\n  fix: check the path named above, its permissions and the free ` +
      `space there`;
  }
  if (err.fix && !msg.includes(err.fix)) msg += `\n  fix: ${err.fix}`;
  return msg;
}

/** The text printed for an internal error: a line saying it is a bug, where to report it, the stack. */
export function formatInternalError(command: string, e: unknown): string {
  const stack = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  return `${command}: internal error: this is a bug in Proxima, not a problem with your ` +
    `input; ${REPORT_BUGS}.\n${stack}`;
}

/** The running command's name: its main module's file name (cli/generate.ts: "generate"). */
export function commandName(): string {
  return Deno.mainModule.replace(/^.*\//, "").replace(/\.[cm]?[jt]s$/, "");
}

/** Print `e` as the boundary does and exit with its code. */
export function exitWithError(command: string, e: unknown): never {
  if (isUserError(e)) {
    console.error(formatUserError(command, e));
    Deno.exit(EXIT_USAGE);
  }
  console.error(formatInternalError(command, e));
  Deno.exit(EXIT_INTERNAL);
}

/**
 * Run a command's `main` and exit with the code it returns; every error it throws (or leaves
 * unhandled in a callback) goes through the boundary: a {@link UserError} prints its message
 * and exits 2, anything else is reported as a bug with its stack (exit 70).
 *
 * @example
 * ```ts
 * if (import.meta.main) await runCommand(main); // "generate: ..." from cli/generate.ts
 * ```
 */
export async function runCommand(
  main: () => Promise<number | void>,
  command: string = commandName(),
): Promise<never> {
  const onRejection = (ev: PromiseRejectionEvent) => {
    ev.preventDefault();
    exitWithError(command, ev.reason);
  };
  const onError = (ev: ErrorEvent) => {
    ev.preventDefault();
    exitWithError(command, ev.error);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  let code: number | void;
  try {
    code = await main();
  } catch (e) {
    exitWithError(command, e);
  }
  Deno.exit(code ?? 0);
}
