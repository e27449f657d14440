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
 *
 * Safe against {@link unlockRemove}: a lock taken on a file that its holder removed meanwhile
 * (the path now names another file, or none) is dropped and taken again on the path's file.
 */
export async function lockTry(path: string, ms = 300): Promise<Deno.FsFile | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    const f = await Deno.open(path, { read: true, write: true, create: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      f.lock(true).then(() => true),
      new Promise<false>((r) =>
        timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))
      ),
    ]);
    clearTimeout(timer);
    if (!got) return null;
    if (await sameFile(f, path)) return f;
    f.close(); // the holder removed it on the way out: lock the path's current file
  }
}

/** Whether open file `f` is still the file at `path` (same device and inode). */
async function sameFile(f: Deno.FsFile, path: string): Promise<boolean> {
  const [a, b] = await Promise.all([f.stat(), Deno.stat(path).catch(() => null)]);
  return b !== null && a.dev === b.dev && a.ino === b.ino;
}

/**
 * Remove lock file `path` and release `f`, its lock: removed while still held, so no process
 * can lock the old file and believe it owns the path ({@link lockTry} checks).
 */
export async function unlockRemove(path: string, f: Deno.FsFile): Promise<void> {
  await Deno.remove(path).catch(() => {});
  f.close();
}
