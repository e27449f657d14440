/**
 * The element types of safetensors files (our dtypes, the file's tags, item sizes, the
 * reference writer's layout order) and the byte-level helpers the reader and writer share.
 * The format itself is described in safetensors.ts, which re-exports the public names of this
 * module and of safetensors_half.ts, safetensors_write.ts, safetensors_header.ts and
 * safetensors_read.ts.
 * @module
 */

/** Element types supported by this reader/writer. */
export type TensorDType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "bool";

/** The floating-point element types. */
export type FloatDType = "float32" | "float64" | "float16" | "bfloat16";

/**
 * A tensor as stored in a checkpoint; `data` is flat, row-major, length = product(shape).
 * `float16` and `bfloat16` data are the raw bit patterns in a `Uint16Array`.
 */
export interface NamedTensor {
  dtype: TensorDType;
  shape: number[];
  data: Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;
}

/** How a dtype is stored: its tag, item size, layout rank and typed-array constructor. */
export interface DTypeInfo {
  tag: string;
  itemSize: number;
  /** Position in the reference crate's `Dtype` enum; the writer lays out descending. */
  rank: number;
  // deno-lint-ignore no-explicit-any
  ctor: any;
}

/** Every dtype this module holds, with its storage. */
export const DTYPES: Record<TensorDType, DTypeInfo> = {
  float32: { tag: "F32", itemSize: 4, rank: 11, ctor: Float32Array },
  float64: { tag: "F64", itemSize: 8, rank: 12, ctor: Float64Array },
  float16: { tag: "F16", itemSize: 2, rank: 7, ctor: Uint16Array },
  bfloat16: { tag: "BF16", itemSize: 2, rank: 8, ctor: Uint16Array },
  int64: { tag: "I64", itemSize: 8, rank: 13, ctor: BigInt64Array },
  int32: { tag: "I32", itemSize: 4, rank: 9, ctor: Int32Array },
  bool: { tag: "BOOL", itemSize: 1, rank: 0, ctor: Uint8Array },
};

/** The file's dtype tag ("F32", "BF16", ...) -> our dtype. */
export const TAG_TO_DTYPE: Record<string, TensorDType> = Object.fromEntries(
  Object.entries(DTYPES).map(([dtype, info]) => [info.tag, dtype as TensorDType]),
);

/**
 * Tags of the format that this module cannot hold (quantised and unsigned types), with their
 * item sizes: a file holding them still parses, and only reading such a tensor fails.
 */
export const FOREIGN_TAGS: Record<string, number> = {
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  U32: 4,
  U64: 8,
  C64: 8,
};

/** The header key of the string metadata (not a tensor). */
export const METADATA_KEY = "__metadata__";
/** Same limit as the reference implementation (100 MB). */
export const MAX_HEADER_SIZE = 100_000_000;

/** Whether this machine stores numbers little-endian (as the format does). */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Whether `obj` has its own property `key` (not an inherited one such as "constructor"). */
export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Set an own enumerable property; safe for keys like "__proto__". */
export function defineEntry<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Code-unit order of strings, as the reference writer sorts names. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Reverse the bytes of each `itemSize`-byte element (little-endian <-> big-endian host). */
export function swapInPlace(buf: Uint8Array, itemSize: number): void {
  for (let i = 0; i < buf.length; i += itemSize) buf.subarray(i, i + itemSize).reverse();
}

/** Copy little-endian `src` into a fresh, aligned buffer in host byte order. */
export function copyToHost(src: Uint8Array, itemSize: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(src.byteLength);
  out.set(src);
  if (!LITTLE_ENDIAN_HOST && itemSize > 1) swapInPlace(out, itemSize);
  return out;
}

/** Whether `shape` is an array of non-negative safe integers. */
export function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) &&
    shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0);
}

/** Elements of a tensor of `shape` (1 for a scalar). */
export function numElements(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
