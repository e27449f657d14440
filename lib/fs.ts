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

/** fsync a directory so renames in it are durable. Best effort: not every OS allows it. */
async function syncDir(path: string): Promise<void> {
  try {
    using f = await Deno.open(path, { read: true });
    await f.sync();
  } catch { /* not supported here */ }
}

/**
 * Write a folder of files atomically: everything goes into a sibling `<dir>.tmp-<hex>`, each
 * file fsynced, which is then renamed into place, so a reader never sees a partial folder. An
 * existing folder at `dir` is replaced as a whole, but only when it is empty or holds
 * `marker` (a typo like "." must not wipe a directory). `who` starts every error message.
 *
 * @example
 * ```ts
 * await writeFolderAtomic("out/adapter", [["adapter_config.json", bytes]], {
 *   who: "savePeftAdapter",
 *   marker: "adapter_config.json",
 * });
 * ```
 */
export async function writeFolderAtomic(
  dir: string,
  files: readonly (readonly [name: string, bytes: Uint8Array])[],
  opts: { who: string; marker: string },
): Promise<void> {
  dir = dir.length > 1 ? dir.replace(/\/+$/, "") || "/" : dir;
  const where = `${opts.who}: ${dir}`;
  let replace = false;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new Error(`${where}: exists and is not a directory`);
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    if (names.length > 0 && !names.includes(opts.marker)) {
      throw new Error(
        `${where}: refusing to replace a non-empty folder without ${opts.marker}; choose ` +
          `another path or remove it`,
      );
    }
    replace = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const hex = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  // Same parent as `dir`, so the final rename stays on one filesystem (atomic).
  const tmp = `${dir}.tmp-${hex}`, old = `${tmp}-old`;
  const parent = dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) || "/" : ".";
  try {
    await Deno.mkdir(tmp);
    for (const [name, bytes] of files) {
      if (name.includes("/")) {
        await Deno.mkdir(`${tmp}/${name.slice(0, name.lastIndexOf("/"))}`, { recursive: true });
      }
      using f = await Deno.open(`${tmp}/${name}`, { write: true, createNew: true });
      await writeAll(f, bytes);
      await f.sync();
    }
    await syncDir(tmp);
    // A directory cannot be renamed over a non-empty one: move the old one aside first. In
    // between, `dir` is briefly absent, never partial.
    if (replace) await Deno.rename(dir, old);
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      if (replace) await Deno.rename(old, dir).catch(() => {});
      throw e;
    }
    await syncDir(parent);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`${where}: cannot write: ${(e as Error).message}`, { cause: e });
  }
  if (replace) await Deno.remove(old, { recursive: true }).catch(() => {});
}
