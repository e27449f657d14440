/**
 * Checks a command runs before its expensive part (loading models, the first evaluation): an
 * output folder must be creatable and writable, so `--out FILE` or a folder on a read-only
 * filesystem is refused in milliseconds instead of after the first update. The checks create
 * nothing that stays: a probe file is removed at once, and a missing folder is not created.
 * @module
 */
import { UsageError } from "../lib/errors.ts";

/** Why writing under `dir` failed, in words (the OS message stays in brackets). */
function whyNotWritable(e: unknown): string {
  const msg = (e as Error).message;
  if (/os error 30\b/.test(msg)) {
    return `is not writable: it is on a read-only file system (${msg})`;
  }
  if (e instanceof Deno.errors.PermissionDenied) return `is not writable (${msg})`;
  return `cannot be written (${msg})`;
}

/** The nearest existing folder at or above `path`, with what was found there. */
async function nearestExisting(path: string): Promise<{ at: string; info: Deno.FileInfo }> {
  let p = path.replace(/\/+$/, "") || "/";
  for (;;) {
    try {
      return { at: p, info: await Deno.stat(p) };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) && !(e instanceof Deno.errors.NotADirectory)) {
        throw e;
      }
      const up = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) || "/" : ".";
      if (up === p) throw e;
      p = up;
    }
  }
}

/**
 * Refuse output folder `dir` (given by `flag` of `command`) when it cannot be used: it is a
 * file, a file sits where one of its parents should be, or the folder (or the nearest existing
 * parent, when it does not exist yet) is not writable or on a read-only filesystem. Nothing is
 * left behind.
 *
 * @example
 * ```ts
 * await checkOutputDir("train", "--out", "results/train/cartpole-seed1");
 * ```
 */
export async function checkOutputDir(command: string, flag: string, dir: string): Promise<void> {
  const fix = `give ${flag} a folder you can write to (it is created if missing)`;
  const { at, info } = await nearestExisting(dir);
  const normalized = dir.replace(/\/+$/, "") || "/";
  if (!info.isDirectory) {
    throw new UsageError(
      at === normalized
        ? `${command}: ${flag} ${dir}: is a file, not a folder`
        : `${command}: ${flag} ${dir}: ${at} is a file, so the folder cannot be created there`,
      { fix },
    );
  }
  try {
    const probe = await Deno.makeTempFile({ dir: at, prefix: ".proxima-write-test-" });
    await Deno.remove(probe);
  } catch (e) {
    const where = at === normalized ? "" : ` (its parent ${at} exists)`;
    throw new UsageError(
      `${command}: ${flag} ${dir}${where}: ${at === normalized ? "the folder" : at} ` +
        whyNotWritable(e),
      { fix },
    );
  }
}
