/**
 * Reading safetensors tensors: whole files in memory ({@link decodeSafetensors},
 * {@link loadSafetensors}) or one tensor at a time from disk ({@link openSafetensors}), on top
 * of the header parser of safetensors_header.ts.
 * @module
 */
import { InputError } from "../errors.ts";
import { mapFile } from "./file_map.ts";
import {
  defineEntry,
  DTYPES,
  LITTLE_ENDIAN_HOST,
  MAX_HEADER_SIZE,
  type NamedTensor,
  type TensorDType,
} from "./safetensors_dtypes.ts";
import {
  type Fail,
  parseSafetensorsHeader,
  READ_FIX,
  type SafetensorsEntry,
  type SafetensorsHeader,
  tensorFromBytes,
  unsupportedDtype,
} from "./safetensors_header.ts";

/**
 * Decode and validate safetensors bytes; returned arrays are aligned copies.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = decodeSafetensors(bytes, "model.safetensors");
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "<bytes>",
): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new InputError("safetensors", source, what, READ_FIX);
  };
  const header = parseSafetensorsHeader(bytes, bytes.byteLength, source);
  const bad = header.entries.find((e) => e.dtype === undefined);
  if (bad) fail(unsupportedDtype(bad));
  const tensors: Record<string, NamedTensor> = {};
  for (const e of header.entries) {
    const raw = bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end);
    defineEntry(
      tensors,
      e.name,
      tensorFromBytes(e as SafetensorsEntry & { dtype: TensorDType }, raw, false, fail),
    );
  }
  return { tensors, metadata: header.metadata };
}

/** A safetensors file opened for reading tensors one at a time (see {@link openSafetensors}). */
export interface SafetensorsFile {
  /** The path it was opened from. */
  readonly path: string;
  /** The validated header. */
  readonly header: SafetensorsHeader;
  /** The entry named `name`, or undefined. */
  entry(name: string): SafetensorsEntry | undefined;
  /**
   * Read one tensor (a fresh aligned array; a view of the mapping when the file is mapped and
   * the tensor's offset is a multiple of its item size); throws for an unknown name or dtype.
   */
  read(name: string): Promise<NamedTensor>;
  /** Whether the file is mapped (see {@link OpenSafetensorsOptions.map}). */
  readonly mapped: boolean;
  /** Close the file. */
  close(): void;
}

/** Read exactly `buf.length` bytes at `pos`, or fail naming how many came. */
async function readAt(file: Deno.FsFile, pos: number, buf: Uint8Array, fail: Fail) {
  await file.seek(pos, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const k = await file.read(buf.subarray(got));
    if (k === null) {
      fail(`truncated file: wanted ${buf.length} bytes at ${pos}, the file ended after ${got}`);
    }
    got += k!;
  }
}

/** The error for a safetensors file that cannot be opened: missing, or unreadable (permissions). */
function readError(path: string, err: unknown): InputError {
  if (err instanceof Deno.errors.NotFound) {
    return new InputError("safetensors", path, "file not found", "check the path", {
      cause: err,
      message: `safetensors: file not found: ${path}`,
    });
  }
  return new InputError(
    "safetensors",
    path,
    `cannot read: ${(err as Error).message}`,
    "check the path and its permissions",
    { cause: err, message: `safetensors: cannot read ${path}: ${(err as Error).message}` },
  );
}

/** Options of {@link openSafetensors}. */
export interface OpenSafetensorsOptions {
  /**
   * Map the file (file_map.ts) where the platform and permissions allow, and return tensors as
   * views of the mapping instead of reading them into fresh arrays: no copy, and no fresh pages
   * to fault in (7 s → 0.2 s for 2 GB on a VM). The views live on after {@link SafetensorsFile.close};
   * writes to them copy the page, never reach the file. Falls back to reading when the file
   * cannot be mapped or a tensor is not aligned in it.
   */
  map?: boolean;
}

/**
 * Open a safetensors file: reads and validates the header only; each {@link SafetensorsFile.read}
 * reads one tensor's bytes. Memory stays at one tensor beyond what the caller keeps, however
 * large the file. Errors name `path`; a file shorter than its header says is "truncated".
 *
 * @example
 * ```ts
 * const f = await openSafetensors("model.safetensors");
 * try {
 *   const w = await f.read("model.embed_tokens.weight");
 * } finally {
 *   f.close();
 * }
 * ```
 */
export async function openSafetensors(
  path: string,
  opts: OpenSafetensorsOptions = {},
): Promise<SafetensorsFile> {
  const fail = (what: string): never => {
    throw new InputError("safetensors", path, what, READ_FIX);
  };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw readError(path, err);
  }
  try {
    const size = (await file.stat()).size;
    const mapped = opts.map ? mapFile(path, size) : null;
    if (mapped) {
      const st = mappedFile(path, mapped, fail); // throws for a bad header: closed below
      file.close(); // the mapping is the file from here on
      return st;
    }
    const lenBytes = new Uint8Array(Math.min(8, size));
    await readAt(file, 0, lenBytes, fail);
    let head = lenBytes;
    if (size >= 8) {
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n <= BigInt(MAX_HEADER_SIZE) && 8 + Number(n) <= size) {
        head = new Uint8Array(8 + Number(n));
        await readAt(file, 0, head, fail);
      }
    }
    const header = parseSafetensorsHeader(head, size, path);
    const byName = new Map(header.entries.map((e) => [e.name, e]));
    return {
      path,
      header,
      entry: (name) => byName.get(name),
      read: async (name) => {
        const e = readable(byName, name, fail);
        const raw = new Uint8Array(e.end - e.begin);
        await readAt(file, header.dataStart + e.begin, raw, fail);
        return tensorFromBytes(e, raw, true, fail);
      },
      mapped: false,
      close: () => file.close(),
    };
  } catch (err) {
    file.close();
    throw err;
  }
}

/** The entry `name` of a file, with a dtype this reader decodes; `fail` otherwise. */
function readable(
  byName: Map<string, SafetensorsEntry>,
  name: string,
  fail: Fail,
): SafetensorsEntry & { dtype: TensorDType } {
  const e = byName.get(name);
  if (!e) fail(`no tensor ${JSON.stringify(name)}`);
  if (e!.dtype === undefined) fail(unsupportedDtype(e!));
  return e as SafetensorsEntry & { dtype: TensorDType };
}

/** A mapped file: the header parsed from the mapping, each tensor a view of it when aligned. */
function mappedFile(path: string, bytes: Uint8Array<ArrayBuffer>, fail: Fail): SafetensorsFile {
  const header = parseSafetensorsHeader(bytes, bytes.byteLength, path);
  const byName = new Map(header.entries.map((e) => [e.name, e]));
  return {
    path,
    header,
    entry: (name) => byName.get(name),
    // deno-lint-ignore require-await
    read: async (name) => {
      const t = readable(byName, name, fail);
      const at = header.dataStart + t.begin;
      const raw = bytes.subarray(at, header.dataStart + t.end);
      const info = DTYPES[t.dtype];
      // A view needs the offset aligned to the item size and little-endian bytes; bool values
      // are checked (tensorFromBytes), so they are copied like any other odd case.
      if (at % info.itemSize !== 0 || !LITTLE_ENDIAN_HOST || t.dtype === "bool") {
        return tensorFromBytes(t, raw, false, fail);
      }
      const data = new info.ctor(bytes.buffer, at, raw.byteLength / info.itemSize);
      return { dtype: t.dtype, shape: t.shape.slice(), data };
    },
    mapped: true,
    close: () => {}, // the mapping goes when its last view is collected (file_map.ts)
  };
}

/**
 * Read and decode a safetensors file; errors name `path`.
 *
 * @example
 * ```ts
 * const { tensors } = await loadSafetensors("ckpt.safetensors");
 * ```
 */
export async function loadSafetensors(
  path: string,
): Promise<{ tensors: Record<string, NamedTensor>; metadata: Record<string, string> }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw readError(path, err);
  }
  return decodeSafetensors(bytes, path);
}
