/**
 * A whole file mapped into memory, read-only in effect (`mmap` with `MAP_PRIVATE` through Deno
 * FFI to libc): {@link mapFile}. Why: on a machine where fresh anonymous memory is slow to fault
 * in (a VM whose host backs each new page; measured here at ~300 MB/s, 7 s for the 0.5B
 * model's 2 GB of float32 weights), reading a file into new arrays costs the page faults, while
 * mapping it shares the kernel's page cache: measured at load 6, 10.7 s to read the 2 GB and
 * 5.2 s more to touch every page once, against 0.24 s to map and 1.5 s to touch. torch's
 * safetensors loader maps the file the same way.
 *
 * Lifetime: the mapping is unmapped when its ArrayBuffer is garbage-collected, that is when no
 * view of it is left (a FinalizationRegistry), so it is as safe as an ordinary array as long as
 * native code that reads it (an ORT session's external initializers) keeps the JS view alive,
 * which FfiSession (ort_ffi_session.ts) does. Writes through a view copy the page (`MAP_PRIVATE`): the file
 * never changes. A file truncated by another program while mapped makes reads past its new end
 * fault (SIGBUS); Proxima itself only ever replaces files by rename, which leaves the mapped
 * inode intact.
 *
 * @module
 */

/** libc's mmap and munmap, or null where FFI is not allowed or libc not found. */
type Libc = {
  mmap: (
    addr: null,
    len: bigint,
    prot: number,
    flags: number,
    fd: number,
    off: bigint,
  ) => Deno.PointerValue;
  munmap: (addr: Deno.PointerValue, len: bigint) => number;
  madvise: (addr: Deno.PointerValue, len: bigint, advice: number) => number;
  open: (path: BufferSource, flags: number) => number;
  close: (fd: number) => number;
};

let libc: Libc | null | undefined;

const PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MADV_POPULATE_READ = 22;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  const os = Deno.build.os;
  if (os !== "linux" && os !== "darwin") return null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    const lib = Deno.dlopen(os === "linux" ? "libc.so.6" : "libSystem.B.dylib", {
      mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
      munmap: { parameters: ["pointer", "usize"], result: "i32" },
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
      open: { parameters: ["buffer", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    });
    libc = lib.symbols as unknown as Libc;
  } catch {
    libc = null; // no libc by that name: callers read the file instead
  }
  return libc;
}

/** Unmaps a mapping once its ArrayBuffer is collected. */
const unmapper = new FinalizationRegistry<{ ptr: Deno.PointerValue; len: bigint }>(
  ({ ptr, len }) => {
    libc?.munmap(ptr, len);
  },
);

/** Mappings made so far, and the bytes mapped of each file by its real path (for tests). */
export const mapStats = { mapped: 0, bytes: new Map<string, number>() };

/** The file each live mapping's ArrayBuffer maps. */
const mappedPaths = new WeakMap<ArrayBufferLike, string>();

/**
 * The file a view of a {@link mapFile} mapping shows, and the view's byte offset in it;
 * undefined for any other memory. Lets a session name the file that holds a constant's
 * bytes instead of being handed a copy (session.ts `compileWithConstants`).
 */
export function mappedSource(view: ArrayBufferView): { path: string; offset: number } | undefined {
  const path = mappedPaths.get(view.buffer);
  return path === undefined ? undefined : { path, offset: view.byteOffset };
}

/**
 * Map the file at `path` (`size` bytes, its current length) copy-on-write; its bytes as a
 * Uint8Array over the mapping. Null when mapping is not possible here (no FFI permission, not
 * Linux or macOS, an empty file, mmap failed): the caller then reads the file.
 *
 * @example
 * ```ts
 * const bytes = mapFile("model.safetensors", (await Deno.stat("model.safetensors")).size);
 * if (bytes) new Float32Array(bytes.buffer, 4096, 16); // a tensor at an aligned offset
 * ```
 */
export function mapFile(path: string, size: number): Uint8Array<ArrayBuffer> | null {
  const c = loadLibc();
  if (!c || size <= 0) return null;
  const fd = c.open(new TextEncoder().encode(path + "\0"), 0 /* O_RDONLY */);
  if (fd < 0) return null;
  const len = BigInt(size);
  let ptr: Deno.PointerValue;
  try {
    // Writable and private: a write copies its page (the file never changes) instead of
    // faulting the process. MAP_POPULATE is not used: on a private writable mapping Linux
    // populates by writing, which copies every page (measured: 1 s, then 5 s to touch them).
    ptr = c.mmap(null, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0n);
  } finally {
    c.close(fd); // the mapping holds its own reference to the file
  }
  // MAP_FAILED is (void*)-1.
  if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) return null;
  // Linux ≥ 5.14: map the page-cache pages now, read-only (no copies), in one call rather than
  // one fault per 4 KiB page (2 GB then touched in 1.5 s instead of 2.3 s here). Advisory: an
  // older kernel says EINVAL and the pages fault in as they are read.
  if (Deno.build.os === "linux") c.madvise(ptr, len, MADV_POPULATE_READ);
  let buffer: ArrayBuffer;
  try {
    buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, size);
  } catch {
    c.munmap(ptr, len); // larger than an ArrayBuffer may be here: the caller reads instead
    return null;
  }
  unmapper.register(buffer, { ptr, len });
  mappedPaths.set(buffer, path);
  mapStats.mapped++;
  const real = Deno.realPathSync(path);
  mapStats.bytes.set(real, (mapStats.bytes.get(real) ?? 0) + size);
  return new Uint8Array(buffer);
}
