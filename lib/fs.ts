/**
 * Small file-system helpers every layer uses.
 * @module
 */

/** Whether `path` exists (any other error than "not found" is rethrown). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Write every byte of `data` to an open file (Deno's write may write fewer). */
export async function writeAll(f: Deno.FsFile, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  for (let off = 0; off < bytes.length;) off += await f.write(bytes.subarray(off));
}

/**
 * Write a file atomically: a temporary `<path>.tmp-<pid>` is written, fsynced and renamed
 * over `path`, so a reader (or a resumed run) sees the old or the new content, never a part.
 */
export async function writeFileSynced(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  {
    using f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await writeAll(f, data);
    await f.sync();
  }
  await Deno.rename(tmp, path);
}
