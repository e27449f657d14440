/**
 * Advisory file locks (flock) that the kernel drops when the holder dies, even by SIGKILL:
 * one per trial (a resumed sweep's worker waits for a killed sweep's orphaned worker to
 * exit) and one per experiment folder (two sweeps on one folder refuse to run together).
 * @module
 */

/** Lock `path` (created if missing) exclusively, waiting as long as it takes. */
export async function lockWait(path: string): Promise<Deno.FsFile> {
  const f = await Deno.open(path, { read: true, write: true, create: true });
  await f.lock(true);
  return f;
}

/**
 * Lock `path` exclusively if it is free within `ms`; null when another process holds it.
 * (Deno has no non-blocking flock: the wait is raced against a timer, and the waiting call is
 * abandoned with the process, which is about to report the conflict and exit.)
 */
export async function lockTry(path: string, ms = 300): Promise<Deno.FsFile | null> {
  const f = await Deno.open(path, { read: true, write: true, create: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const got = await Promise.race([
    f.lock(true).then(() => true),
    new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  return got ? f : null;
}
