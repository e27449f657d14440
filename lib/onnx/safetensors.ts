/**
 * Checkpoint IO in the Hugging Face safetensors format.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * (padded with spaces so that 8 + N is a multiple of 8), then the raw
 * little-endian tensor data, contiguous, with `data_offsets` relative to the
 * start of the data section. Encoding is deterministic: tensor and metadata
 * keys are written sorted, so the same tensors always give the same bytes.
 *
 * @module
 */

/** Element types supported by this reader/writer. */
export type TensorDType = "float32" | "float64" | "int64" | "int32" | "bool";

/** A tensor as stored in a checkpoint; `data` is flat, row-major, length = product(shape). */
export interface NamedTensor {
  dtype: TensorDType;
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
}

interface DTypeInfo {
  tag: string;
  itemSize: number;
  // deno-lint-ignore no-explicit-any
  ctor: any;
}

const DTYPES: Record<TensorDType, DTypeInfo> = {
  float32: { tag: "F32", itemSize: 4, ctor: Float32Array },
  float64: { tag: "F64", itemSize: 8, ctor: Float64Array },
  int64: { tag: "I64", itemSize: 8, ctor: BigInt64Array },
  int32: { tag: "I32", itemSize: 4, ctor: Int32Array },
  bool: { tag: "BOOL", itemSize: 1, ctor: Uint8Array },
};

const TAG_TO_DTYPE: Record<string, TensorDType> = {
  F32: "float32",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  BOOL: "bool",
};

const METADATA_KEY = "__metadata__";
/** Same limit as the reference implementation (100 MB). */
const MAX_HEADER_SIZE = 100_000_000;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Set an own enumerable property; safe for keys like "__proto__". */
function defineEntry<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Reverse the bytes of each `itemSize`-byte element (little-endian <-> big-endian host). */
function swapInPlace(buf: Uint8Array, itemSize: number): void {
  for (let i = 0; i < buf.length; i += itemSize) buf.subarray(i, i + itemSize).reverse();
}

/** Copy little-endian `src` into a fresh, aligned buffer in host byte order. */
function copyToHost(src: Uint8Array, itemSize: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(src.byteLength);
  out.set(src);
  if (!LITTLE_ENDIAN_HOST && itemSize > 1) swapInPlace(out, itemSize);
  return out;
}

function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) &&
    shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0);
}

function numElements(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Encode tensors to safetensors bytes (keys sorted, `metadata` → `__metadata__`).
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } });
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const metaKeys = Object.keys(metadata).sort(compareKeys);
    for (const k of metaKeys) {
      if (typeof metadata[k] !== "string") {
        throw new Error(
          `safetensors: encode: metadata "${k}": value must be a string, got ${typeof metadata[
            k
          ]}`,
        );
      }
    }
    if (metaKeys.length > 0) {
      const body = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
      parts.push(`${JSON.stringify(METADATA_KEY)}:{${body.join(",")}}`);
    }
  }

  const names = Object.keys(tensors).sort(compareKeys);
  const chunks: { raw: Uint8Array; itemSize: number }[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const where = `safetensors: encode: tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) throw new Error(`${where}: name is reserved`);
    if (t === null || typeof t !== "object") throw new Error(`${where}: not a tensor object`);
    const info = hasOwn(DTYPES, t.dtype) ? DTYPES[t.dtype] : undefined;
    if (info === undefined) throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!isShape(t.shape)) {
      throw new Error(
        `${where}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`,
      );
    }
    if (!(t.data instanceof info.ctor)) {
      throw new Error(
        `${where}: dtype ${t.dtype} needs data of type ${info.ctor.name}, got ${
          t.data?.constructor?.name ?? typeof t.data
        }`,
      );
    }
    const n = numElements(t.shape);
    if (t.data.length !== n) {
      throw new Error(
        `${where}: shape [${t.shape}] has ${n} elements but data has ${t.data.length}`,
      );
    }
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (t.dtype === "bool") {
      const bad = raw.findIndex((v) => v > 1);
      if (bad >= 0) {
        throw new Error(`${where}: bool data must be 0 or 1, got ${raw[bad]} at ${bad}`);
      }
    }
    const end = offset + raw.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${info.tag}","shape":[${
        t.shape.join(",")
      }],"data_offsets":[${offset},${end}]}`,
    );
    chunks.push({ raw, itemSize: info.itemSize });
    offset = end;
  }

  const headerJson = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = headerJson.length + ((8 - (headerJson.length % 8)) % 8);
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(headerJson, 8);
  out.fill(0x20, 8 + headerJson.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const { raw, itemSize } of chunks) {
    out.set(raw, pos);
    if (!LITTLE_ENDIAN_HOST && itemSize > 1) {
      swapInPlace(out.subarray(pos, pos + raw.length), itemSize);
    }
    pos += raw.length;
  }
  return out;
}

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
  function fail(what: string): never {
    throw new Error(`safetensors: ${source}: ${what}`);
  }
  if (bytes.byteLength < 8) {
    fail(`truncated file: ${bytes.byteLength} bytes, need at least 8 for the header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    fail(`header length ${n64} exceeds the ${MAX_HEADER_SIZE} byte limit`);
  }
  const n = Number(n64);
  if (8 + n > bytes.byteLength) {
    fail(`truncated file: header length ${n} but only ${bytes.byteLength - 8} bytes follow`);
  }

  let headerText = "";
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail("header is not valid UTF-8");
  }
  if (!headerText.startsWith("{")) fail(`header JSON must start with "{"`);
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail("header JSON must be an object");
  }
  const entries = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  if (hasOwn(entries, METADATA_KEY)) {
    const m = entries[METADATA_KEY];
    if (m === null || typeof m !== "object" || Array.isArray(m)) {
      fail(`"${METADATA_KEY}" must be an object of strings`);
    }
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (typeof v !== "string") {
        fail(`"${METADATA_KEY}" key ${JSON.stringify(k)}: value must be a string`);
      }
      defineEntry(metadata, k, v as string);
    }
  }

  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  interface Entry {
    name: string;
    dtype: TensorDType;
    shape: number[];
    begin: number;
    end: number;
  }
  const parsed: Entry[] = [];
  for (const name of Object.keys(entries)) {
    if (name === METADATA_KEY) continue;
    const bad = (what: string): never => fail(`tensor ${JSON.stringify(name)}: ${what}`);
    const e = entries[name] as Record<string, unknown>;
    if (e === null || typeof e !== "object" || Array.isArray(e)) bad("entry must be an object");
    const tag = e.dtype;
    if (typeof tag !== "string" || !hasOwn(TAG_TO_DTYPE, tag)) {
      bad(
        `unknown dtype ${JSON.stringify(tag)} (supported: ${Object.keys(TAG_TO_DTYPE).join(", ")})`,
      );
    }
    const dtype = TAG_TO_DTYPE[tag as string];
    if (!isShape(e.shape)) {
      bad(`shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const shape = (e.shape as number[]).slice();
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
    ) {
      bad(`data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    if (end < begin) bad(`data_offsets [${begin}, ${end}]: end is before begin`);
    if (end > dataLen) {
      bad(`data_offsets [${begin}, ${end}] out of range: data section has ${dataLen} bytes`);
    }
    const expected = numElements(shape) * DTYPES[dtype].itemSize;
    if (end - begin !== expected) {
      bad(
        `shape [${shape}] with dtype ${tag} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${
          end - begin
        }`,
      );
    }
    parsed.push({ name, dtype, shape, begin, end });
  }

  // Contiguity: sorted by begin, offsets must tile [0, dataLen) exactly.
  const byOffset = parsed.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of byOffset) {
    if (e.begin !== cursor) {
      fail(
        `tensor ${
          JSON.stringify(e.name)
        }: data_offsets [${e.begin}, ${e.end}] not contiguous: expected begin ${cursor}` +
          (e.begin < cursor ? " (overlaps previous tensor)" : " (gap before tensor)"),
      );
    }
    cursor = e.end;
  }
  if (cursor !== dataLen) {
    fail(`data section has ${dataLen} bytes but tensors cover only ${cursor}`);
  }

  const tensors: Record<string, NamedTensor> = {};
  for (const e of parsed) {
    const info = DTYPES[e.dtype];
    const raw = copyToHost(
      bytes.subarray(dataStart + e.begin, dataStart + e.end),
      info.itemSize,
    );
    if (e.dtype === "bool") {
      const badAt = raw.findIndex((v) => v > 1);
      if (badAt >= 0) {
        fail(`tensor ${JSON.stringify(e.name)}: bool value ${raw[badAt]} at index ${badAt}`);
      }
    }
    const data = e.dtype === "bool" ? raw : new info.ctor(raw.buffer);
    defineEntry(tensors, e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Atomically write a safetensors file (temp file in the same dir, fsync, rename).
 *
 * @example
 * ```ts
 * await saveSafetensors("ckpt.safetensors", tensors, { step: "100" });
 * ```
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  const rnd = crypto.getRandomValues(new Uint8Array(8));
  const hex = Array.from(rnd, (b) => b.toString(16).padStart(2, "0")).join("");
  const tmp = `${path}.tmp-${hex}`;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    let written = 0;
    while (written < bytes.length) {
      written += await file.write(bytes.subarray(written));
    }
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(tmp, path);
  } catch (err) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`safetensors: cannot save ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
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
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`safetensors: file not found: ${path}`, { cause: err });
    }
    throw new Error(`safetensors: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return decodeSafetensors(bytes, path);
}
