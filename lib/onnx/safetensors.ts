/**
 * Checkpoint IO in the Hugging Face safetensors format.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * (padded with spaces so that 8 + N is a multiple of 8), then the raw
 * little-endian tensor data, contiguous, with `data_offsets` relative to the
 * start of the data section.
 *
 * Encoding is deterministic and follows the reference writer (the Rust `safetensors` crate
 * behind `safetensors.torch.save_file` and transformers' `save_pretrained`): tensors are laid
 * out by descending dtype (the crate's `Dtype` order: I64, F64, F32, I32, BF16, F16, BOOL),
 * then by name, and the header lists them in that same order after `__metadata__` (whose keys
 * are sorted). Item sizes descend along the data section, so every tensor starts at a
 * multiple of its own item size from the 8-aligned data section: zero-copy readers can view
 * it in place. For a single-dtype file this is plain name order, byte-identical to the
 * reference.
 *
 * Half precision: `float16` (IEEE binary16, tag F16) and `bfloat16` (tag BF16) tensors hold
 * their raw bit patterns in a `Uint16Array`; {@link float16ToFloat32},
 * {@link bfloat16ToFloat32}, {@link float32ToFloat16} and {@link float32ToBfloat16} convert,
 * with the same rounding as torch's `.to(torch.float16 / torch.bfloat16)`.
 *
 * Large files: {@link openSafetensors} reads the header only and each tensor on demand, so a
 * multi-gigabyte checkpoint is never held in memory twice.
 *
 * @module
 */
import { InputError, isLfsPointer, lfsPointerError } from "../errors.ts";

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

interface DTypeInfo {
  tag: string;
  itemSize: number;
  /** Position in the reference crate's `Dtype` enum; the writer lays out descending. */
  rank: number;
  // deno-lint-ignore no-explicit-any
  ctor: any;
}

const DTYPES: Record<TensorDType, DTypeInfo> = {
  float32: { tag: "F32", itemSize: 4, rank: 11, ctor: Float32Array },
  float64: { tag: "F64", itemSize: 8, rank: 12, ctor: Float64Array },
  float16: { tag: "F16", itemSize: 2, rank: 7, ctor: Uint16Array },
  bfloat16: { tag: "BF16", itemSize: 2, rank: 8, ctor: Uint16Array },
  int64: { tag: "I64", itemSize: 8, rank: 13, ctor: BigInt64Array },
  int32: { tag: "I32", itemSize: 4, rank: 9, ctor: Int32Array },
  bool: { tag: "BOOL", itemSize: 1, rank: 0, ctor: Uint8Array },
};

const TAG_TO_DTYPE: Record<string, TensorDType> = Object.fromEntries(
  Object.entries(DTYPES).map(([dtype, info]) => [info.tag, dtype as TensorDType]),
);

/**
 * Tags of the format that this module cannot hold (quantised and unsigned types), with their
 * item sizes: a file holding them still parses, and only reading such a tensor fails.
 */
const FOREIGN_TAGS: Record<string, number> = {
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

// ---- half-precision conversions --------------------------------------------------------

/** Scratch for reading float32 bit patterns. */
const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** float32 bits of each binary16 pattern (exact, NaN payloads kept); built on first use. */
let f16Bits: Uint32Array | undefined;

function f16BitsTable(): Uint32Array {
  if (f16Bits) return f16Bits;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16, exp = (h >>> 10) & 0x1f, man = h & 0x3ff;
    if (exp === 0x1f) t[h] = (sign | 0x7f800000 | (man << 13)) >>> 0; // inf, NaN
    else if (exp > 0) t[h] = (sign | ((exp + 112) << 23) | (man << 13)) >>> 0; // normal
    else { // zero, subnormal: man * 2^-24 is exact in float32
      F32_SCRATCH[0] = man * 2 ** -24;
      t[h] = (sign | U32_SCRATCH[0]) >>> 0;
    }
  }
  return (f16Bits = t);
}

/** Output array for a conversion: `out` when given (length checked), else a new one. */
function outputOf<T extends Float32Array | Float64Array | Uint16Array>(
  n: number,
  out: T | undefined,
  make: (n: number) => T,
  fn: string,
): T {
  if (out === undefined) return make(n);
  if (out.length !== n) {
    throw new RangeError(`${fn}: out has ${out.length} elements, the input ${n}`);
  }
  return out;
}

/** Fill `out` from float32 bit patterns `bits` (exact for Float32Array, widened for f64). */
function fromBits(bits: Uint32Array, out: Float32Array | Float64Array, at: number): void {
  if (out instanceof Float32Array) {
    new Uint32Array(out.buffer, out.byteOffset + at * 4, bits.length).set(bits);
  } else {
    out.set(new Float32Array(bits.buffer, bits.byteOffset, bits.length), at);
  }
}

const CHUNK = 1 << 16;

/**
 * Decode bfloat16 bit patterns exactly (a bfloat16 is the top half of a float32). Writes into
 * `out` when given (a Float64Array widens exactly), else a new Float32Array.
 *
 * @example
 * ```ts
 * bfloat16ToFloat32(new Uint16Array([0x3f80, 0xc040])); // Float32Array [1, -3]
 * ```
 */
export function bfloat16ToFloat32<T extends Float32Array | Float64Array = Float32Array>(
  src: Uint16Array,
  out?: T,
): T {
  const dst = outputOf(src.length, out, (n) => new Float32Array(n) as T, "bfloat16ToFloat32");
  const bits = new Uint32Array(Math.min(src.length, CHUNK));
  for (let i = 0; i < src.length; i += CHUNK) {
    const k = Math.min(CHUNK, src.length - i), b = bits.subarray(0, k);
    for (let j = 0; j < k; j++) b[j] = src[i + j] << 16;
    fromBits(b, dst, i);
  }
  return dst;
}

/**
 * Decode IEEE binary16 bit patterns exactly (subnormals, ±0, ±inf; NaN payloads kept). Writes
 * into `out` when given (a Float64Array widens exactly), else a new Float32Array.
 *
 * @example
 * ```ts
 * float16ToFloat32(new Uint16Array([0x3c00, 0x0001])); // Float32Array [1, 2 ** -24]
 * ```
 */
export function float16ToFloat32<T extends Float32Array | Float64Array = Float32Array>(
  src: Uint16Array,
  out?: T,
): T {
  const dst = outputOf(src.length, out, (n) => new Float32Array(n) as T, "float16ToFloat32");
  const table = f16BitsTable();
  const bits = new Uint32Array(Math.min(src.length, CHUNK));
  for (let i = 0; i < src.length; i += CHUNK) {
    const k = Math.min(CHUNK, src.length - i), b = bits.subarray(0, k);
    for (let j = 0; j < k; j++) b[j] = table[src[i + j]];
    fromBits(b, dst, i);
  }
  return dst;
}

/** Apply `enc` (float32 bits -> 16-bit pattern) to every element of `src`. */
function encodeHalf(
  src: Float32Array | Float64Array,
  enc: (bits: number) => number,
  out: Uint16Array,
): Uint16Array {
  if (src instanceof Float32Array) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < bits.length; i++) out[i] = enc(bits[i]);
    return out;
  }
  // float64: round to float32 first (TypedArray.set rounds to nearest even), as torch does.
  const f32 = new Float32Array(Math.min(src.length, CHUNK));
  const bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < src.length; i += CHUNK) {
    const k = Math.min(CHUNK, src.length - i);
    f32.set(src.subarray(i, i + k));
    for (let j = 0; j < k; j++) out[i + j] = enc(bits[j]);
  }
  return out;
}

/** bfloat16 pattern of float32 bits `u`: round to nearest even; a NaN stays a NaN. */
function bf16FromBits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) {
    // NaN: keep sign and payload; if the payload lived only in the low half, set the quiet bit.
    const hi = u >>> 16;
    return (hi & 0x7f) === 0 ? hi | 0x40 : hi;
  }
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** binary16 pattern of float32 bits `u`: round to nearest even; overflow to ±inf. */
function f16FromBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const man = u & 0x7fffff;
  if (exp === 0xff) {
    if (man === 0) return sign | 0x7c00; // ±inf
    const m = man >>> 13; // NaN: keep the payload's top bits, quiet when they are all zero
    return sign | 0x7c00 | (m === 0 ? 0x200 : m);
  }
  const e = exp - 112; // binary16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const full = man | 0x800000, shift = 14 - e;
    const half = 1 << (shift - 1), rem = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rem > half || (rem === half && (m & 1) === 1)) m++; // may carry into the normals
    return sign | m;
  }
  const rem = man & 0x1fff;
  let h = sign | (e << 10) | (man >>> 13);
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // may carry up to inf
  return h;
}

/**
 * Round to bfloat16 bit patterns as torch's `.to(torch.bfloat16)` does: round to nearest,
 * ties to even; overflow gives ±inf. Float64 input is first rounded to float32 (torch's
 * double -> bfloat16 cast goes through float too). A NaN stays a NaN with its sign and top
 * payload bits (torch writes a canonical NaN instead: 0x7FC0, or 0xFFFF on its vectorised
 * path), so bfloat16 -> float32 -> bfloat16 reproduces every bit pattern.
 *
 * @example
 * ```ts
 * float32ToBfloat16(new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8])); // [0x3f80, 0x3f80, 0x3f82]
 * ```
 */
export function float32ToBfloat16(
  src: Float32Array | Float64Array,
  out?: Uint16Array,
): Uint16Array {
  const dst = outputOf(src.length, out, (n) => new Uint16Array(n), "float32ToBfloat16");
  return encodeHalf(src, bf16FromBits, dst);
}

/**
 * Round to IEEE binary16 bit patterns as torch's `.to(torch.float16)` does: round to
 * nearest, ties to even, gradual underflow to subnormals, overflow (≥ 65520) to ±inf.
 * Float64 input is first rounded to float32, as torch's double -> half cast does. A NaN stays
 * a NaN with its sign and top payload bits.
 *
 * @example
 * ```ts
 * float32ToFloat16(new Float32Array([1, 65504, 65520, 2 ** -25])); // [0x3c00, 0x7bff, 0x7c00, 0]
 * ```
 */
export function float32ToFloat16(src: Float32Array | Float64Array, out?: Uint16Array): Uint16Array {
  const dst = outputOf(src.length, out, (n) => new Uint16Array(n), "float32ToFloat16");
  return encodeHalf(src, f16FromBits, dst);
}

/** True for the floating-point dtypes. */
export function isFloatDType(dtype: TensorDType): dtype is FloatDType {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" ||
    dtype === "bfloat16";
}

/**
 * The values of a floating-point tensor as a Float32Array or Float64Array (`to`), converted
 * exactly from float16/bfloat16/float32 (float64 -> float32 rounds to nearest even). Returns
 * `t.data` itself when it already has the requested type.
 *
 * @example
 * ```ts
 * floatValues({ dtype: "bfloat16", shape: [1], data: new Uint16Array([0x4000]) }, "float64"); // Float64Array [2]
 * ```
 */
export function floatValues<T extends "float32" | "float64">(
  t: NamedTensor,
  to: T,
): T extends "float32" ? Float32Array : Float64Array {
  type Out = T extends "float32" ? Float32Array : Float64Array;
  const n = t.data.length;
  const make = () => (to === "float32" ? new Float32Array(n) : new Float64Array(n)) as Out;
  switch (t.dtype) {
    case "float32":
    case "float64": {
      const Arr = to === "float32" ? Float32Array : Float64Array;
      if (t.data instanceof Arr) return t.data as Out;
      const out = make();
      out.set(t.data as Float32Array | Float64Array);
      return out;
    }
    case "bfloat16":
      return bfloat16ToFloat32(t.data as Uint16Array, make());
    case "float16":
      return float16ToFloat32(t.data as Uint16Array, make());
    default:
      throw new TypeError(`floatValues: dtype ${t.dtype} is not a floating-point type`);
  }
}

/**
 * A floating-point tensor cast to `dtype` (same rounding as torch's `.to(dtype)`); the tensor
 * itself when it already has that dtype.
 *
 * @example
 * ```ts
 * castFloatTensor({ dtype: "float32", shape: [2], data: new Float32Array([1, 2]) }, "bfloat16").data; // Uint16Array [0x3f80, 0x4000]
 * ```
 */
export function castFloatTensor(t: NamedTensor, dtype: FloatDType): NamedTensor {
  if (t.dtype === dtype) return t;
  if (!isFloatDType(t.dtype)) {
    throw new TypeError(`castFloatTensor: dtype ${t.dtype} is not a floating-point type`);
  }
  const shape = t.shape.slice();
  if (dtype === "float32" || dtype === "float64") {
    return { dtype, shape, data: floatValues(t, dtype) };
  }
  const wide = t.dtype === "float16" || t.dtype === "bfloat16"
    ? floatValues(t, "float32")
    : t.data as Float32Array | Float64Array;
  const data = dtype === "bfloat16" ? float32ToBfloat16(wide) : float32ToFloat16(wide);
  return { dtype, shape, data };
}

// ---- encoding ----------------------------------------------------------------------------

/** A tensor's dtype and shape: what the header records. */
export interface TensorSpec {
  dtype: TensorDType;
  shape: number[];
}

/** What {@link safetensorsLayout} returns. */
export interface SafetensorsLayout {
  /** The first bytes of the file: u64 length, header JSON, space padding. */
  header: Uint8Array;
  /** Tensor names in data order. */
  order: string[];
  /** Byte length of the data section. */
  dataLength: number;
}

/**
 * The layout of a safetensors file for tensors of these dtypes and shapes: data order
 * (descending dtype, then name, as the reference writer) and the header bytes.
 *
 * @example
 * ```ts
 * const { header, order } = safetensorsLayout({ w: { dtype: "bfloat16", shape: [2, 3] } }, { format: "pt" });
 * ```
 */
export function safetensorsLayout(
  specs: Record<string, TensorSpec>,
  metadata?: Record<string, string>,
): SafetensorsLayout {
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
  const checked = Object.keys(specs).map((name) => checkSpec(name, specs[name]));
  checked.sort((a, b) => b.info.rank - a.info.rank || compareKeys(a.name, b.name));
  let offset = 0;
  for (const { name, spec, info } of checked) {
    const end = offset + numElements(spec.shape) * info.itemSize;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${info.tag}","shape":[${
        spec.shape.join(",")
      }],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const headerJson = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = headerJson.length + ((8 - (headerJson.length % 8)) % 8);
  const header = new Uint8Array(8 + headerLen);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerLen), true);
  header.set(headerJson, 8);
  header.fill(0x20, 8 + headerJson.length);
  return { header, order: checked.map((c) => c.name), dataLength: offset };
}

/** The little-endian bytes of a checked tensor (a view on little-endian hosts). */
function leBytes(t: NamedTensor): Uint8Array {
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const itemSize = DTYPES[t.dtype].itemSize;
  if (LITTLE_ENDIAN_HOST || itemSize === 1) return raw;
  const out = raw.slice();
  swapInPlace(out, itemSize);
  return out;
}

/**
 * Encode tensors to safetensors bytes: laid out by descending dtype then name, as the
 * reference writer does (see the module doc); `metadata` → `__metadata__`, keys sorted.
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
  for (const name of Object.keys(tensors)) checkTensor(name, tensors[name]);
  const { header, order, dataLength } = safetensorsLayout(tensors, metadata);
  const out = new Uint8Array(header.length + dataLength);
  out.set(header);
  let pos = header.length;
  for (const name of order) {
    const raw = leBytes(tensors[name]);
    out.set(raw, pos);
    pos += raw.length;
  }
  return out;
}

/** Something bytes can be written to, such as a `Deno.FsFile`. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  let n = 0;
  while (n < bytes.length) n += await sink.write(bytes.subarray(n));
}

/**
 * Stream a safetensors file to `sink`: the header from `specs`, then each tensor as
 * `produce(name)` returns it, one at a time, so a model converted on the fly (say float32 ->
 * bfloat16) never exists whole in memory. Bytes equal {@link encodeSafetensors}'s.
 *
 * @example
 * ```ts
 * await writeSafetensors(file, specs, (name) => castFloatTensor(tensors[name], "bfloat16"), { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  sink: ByteSink,
  specs: Record<string, TensorSpec>,
  produce: (name: string) => NamedTensor | Promise<NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, order } = safetensorsLayout(specs, metadata);
  await writeAll(sink, header);
  for (const name of order) {
    const t = await produce(name);
    checkTensor(name, t);
    const spec = specs[name];
    if (t.dtype !== spec.dtype || t.shape.join(",") !== spec.shape.join(",")) {
      throw new Error(
        `safetensors: encode: tensor ${JSON.stringify(name)}: produced ${t.dtype} [${t.shape}], ` +
          `the header says ${spec.dtype} [${spec.shape}]`,
      );
    }
    await writeAll(sink, leBytes(t));
  }
}

/** Validate a dtype and shape for encoding; throws naming the tensor. */
function checkSpec(
  name: string,
  spec: TensorSpec,
): { name: string; spec: TensorSpec; info: DTypeInfo } {
  const where = `safetensors: encode: tensor ${JSON.stringify(name)}`;
  if (name === METADATA_KEY) throw new Error(`${where}: name is reserved`);
  if (spec === null || typeof spec !== "object") throw new Error(`${where}: not a tensor object`);
  const info = hasOwn(DTYPES, spec.dtype) ? DTYPES[spec.dtype] : undefined;
  if (info === undefined) throw new Error(`${where}: unknown dtype ${JSON.stringify(spec.dtype)}`);
  if (!isShape(spec.shape)) {
    throw new Error(
      `${where}: shape must be non-negative integers, got ${JSON.stringify(spec.shape)}`,
    );
  }
  return { name, spec, info };
}

/** Validate one tensor for encoding (dtype, shape, data type and length); throws naming it. */
function checkTensor(name: string, t: NamedTensor): void {
  const where = `safetensors: encode: tensor ${JSON.stringify(name)}`;
  const { info } = checkSpec(name, t);
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
  if (t.dtype === "bool") {
    const bad = (t.data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) {
      throw new Error(`${where}: bool data must be 0 or 1, got ${t.data[bad]} at ${bad}`);
    }
  }
}

// ---- decoding ----------------------------------------------------------------------------

/** One tensor's place in a safetensors file. */
export interface SafetensorsEntry {
  name: string;
  /** The file's dtype tag ("F32", "BF16", "I8", ...). */
  tag: string;
  /** Our dtype; undefined for a tag this module cannot hold (I8, U8, F8_*, ...). */
  dtype?: TensorDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** Every tensor, in data order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section (8 + header length). */
  dataStart: number;
  /** Bytes of the data section. */
  dataLength: number;
}

/**
 * Parse and validate the header of a safetensors file: `bytes` holds at least its first
 * 8 + N bytes, `fileLength` is the whole file's size. Checks what the reference reader checks
 * (offsets tile the data section exactly, sizes match shape and dtype), and reports a file
 * shorter than its header describes as "truncated file". Tensors of dtypes this module cannot
 * hold (I8, F8_E4M3, ...) are listed with `dtype` undefined.
 *
 * @example
 * ```ts
 * const { entries, dataStart } = parseSafetensorsHeader(bytes);
 * ```
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  fileLength = bytes.byteLength,
  source = "<bytes>",
): SafetensorsHeader {
  function fail(what: string): never {
    throw new InputError("safetensors", source, what, READ_FIX);
  }
  // "version " read as a header length is far past the limit: say what the file is.
  if (LFS_HEAD.test(head8(bytes)) || isLfsPointer(bytes.subarray(0, 64))) {
    throw lfsPointerError("safetensors", source);
  }
  if (fileLength < 8 || bytes.byteLength < 8) {
    fail(`truncated file: ${fileLength} bytes, need at least 8 for the header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    fail(`header length ${n64} exceeds the ${MAX_HEADER_SIZE} byte limit`);
  }
  const n = Number(n64);
  if (8 + n > fileLength) {
    fail(`truncated file: header length ${n} but only ${fileLength - 8} bytes follow`);
  }
  if (8 + n > bytes.byteLength) {
    throw new RangeError(`parseSafetensorsHeader: pass at least the first ${8 + n} bytes`);
  }
  const entries = parseHeaderJson(bytes.subarray(8, 8 + n), fail);
  const metadata = parseMetadata(entries, fail);
  const dataStart = 8 + n;
  const dataLength = fileLength - dataStart;
  const parsed: SafetensorsEntry[] = [];
  for (const name of Object.keys(entries)) {
    if (name !== METADATA_KEY) parsed.push(parseEntry(name, entries[name], fail));
  }
  checkRange(parsed, dataLength, fail);
  return { entries: checkTiling(parsed, dataLength, fail), metadata, dataStart, dataLength };
}

type Fail = (what: string) => never;

/** The fix for a file that cannot be read as safetensors. */
const READ_FIX =
  "re-download or re-save the file (it is truncated, damaged or not a safetensors file)";
/** A Git LFS pointer's first 8 bytes, which a reader would take for the header length. */
const LFS_HEAD = /^version $/;
const head8 = (b: Uint8Array) => new TextDecoder().decode(b.subarray(0, 8));

function parseHeaderJson(raw: Uint8Array, fail: Fail): Record<string, unknown> {
  let headerText = "";
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(raw);
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
  return header as Record<string, unknown>;
}

function parseMetadata(entries: Record<string, unknown>, fail: Fail): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (!hasOwn(entries, METADATA_KEY)) return metadata;
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
  return metadata;
}

/** One header entry, checked on its own (dtype, shape, offsets, size). */
function parseEntry(name: string, value: unknown, fail: Fail): SafetensorsEntry {
  const bad = (what: string): never => fail(`tensor ${JSON.stringify(name)}: ${what}`);
  const e = value as Record<string, unknown>;
  if (e === null || typeof e !== "object" || Array.isArray(e)) bad("entry must be an object");
  const tag = e.dtype;
  const known = typeof tag === "string" && hasOwn(TAG_TO_DTYPE, tag);
  if (!known && !(typeof tag === "string" && hasOwn(FOREIGN_TAGS, tag))) {
    bad(
      `unknown dtype ${JSON.stringify(tag)} (supported: ${Object.keys(TAG_TO_DTYPE).join(", ")})`,
    );
  }
  const dtype = known ? TAG_TO_DTYPE[tag as string] : undefined;
  const itemSize = dtype ? DTYPES[dtype].itemSize : FOREIGN_TAGS[tag as string];
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
  const expected = numElements(shape) * itemSize;
  if (end - begin !== expected) {
    bad(
      `shape [${shape}] with dtype ${tag} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${
        end - begin
      }`,
    );
  }
  const out: SafetensorsEntry = { name, tag: tag as string, shape, begin, end };
  if (dtype) out.dtype = dtype;
  return out;
}

/** Offsets past the data section: a truncated file when the entries add up to more. */
function checkRange(parsed: SafetensorsEntry[], dataLength: number, fail: Fail): void {
  const past = parsed.find((e) => e.end > dataLength);
  if (!past) return;
  let need = 0, sum = 0;
  for (const e of parsed) {
    need = Math.max(need, e.end);
    sum += e.end - e.begin;
  }
  const truncated = sum === need;
  fail(
    `${truncated ? "truncated file: " : ""}tensor ${JSON.stringify(past.name)}: ` +
      `data_offsets [${past.begin}, ${past.end}] out of range: data section has ${dataLength} ` +
      `bytes` + (truncated ? `, the header's tensors need ${need}` : ""),
  );
}

/** Sorted by offset, entries must tile [0, dataLength) exactly; returns them in that order. */
function checkTiling(
  parsed: SafetensorsEntry[],
  dataLength: number,
  fail: Fail,
): SafetensorsEntry[] {
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
  if (cursor !== dataLength) {
    fail(`data section has ${dataLength} bytes but tensors cover only ${cursor}`);
  }
  return byOffset;
}

/** The message for a tensor of a dtype this module cannot hold. */
function unsupportedDtype(e: SafetensorsEntry): string {
  return `tensor ${JSON.stringify(e.name)}: unsupported dtype ${e.tag} (supported: ${
    Object.keys(TAG_TO_DTYPE).join(", ")
  })`;
}

/** A tensor from its little-endian bytes (copied into a fresh aligned buffer). */
function tensorFromBytes(
  e: SafetensorsEntry & { dtype: TensorDType },
  raw: Uint8Array,
  fresh: boolean,
  fail: Fail,
): NamedTensor {
  const info = DTYPES[e.dtype];
  let host: Uint8Array<ArrayBuffer>;
  if (fresh && raw.byteOffset === 0 && raw.buffer.byteLength === raw.byteLength) {
    host = raw as Uint8Array<ArrayBuffer>;
    if (!LITTLE_ENDIAN_HOST && info.itemSize > 1) swapInPlace(host, info.itemSize);
  } else {
    host = copyToHost(raw, info.itemSize);
  }
  if (e.dtype === "bool") {
    const badAt = host.findIndex((v) => v > 1);
    if (badAt >= 0) {
      fail(`tensor ${JSON.stringify(e.name)}: bool value ${host[badAt]} at index ${badAt}`);
    }
  }
  const data = e.dtype === "bool" ? host : new info.ctor(host.buffer);
  return { dtype: e.dtype, shape: e.shape.slice(), data };
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
  /** Read one tensor (a fresh aligned array); throws for an unknown name or dtype. */
  read(name: string): Promise<NamedTensor>;
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
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const fail = (what: string): never => {
    throw new InputError("safetensors", path, what, READ_FIX);
  };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InputError("safetensors", path, "file not found", "check the path", {
        cause: err,
        message: `safetensors: file not found: ${path}`,
      });
    }
    throw new InputError(
      "safetensors",
      path,
      `cannot read: ${(err as Error).message}`,
      "check the path and its permissions",
      { cause: err, message: `safetensors: cannot read ${path}: ${(err as Error).message}` },
    );
  }
  try {
    const size = (await file.stat()).size;
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
        const e = byName.get(name);
        if (!e) fail(`no tensor ${JSON.stringify(name)}`);
        if (e!.dtype === undefined) fail(unsupportedDtype(e!));
        const raw = new Uint8Array(e!.end - e!.begin);
        await readAt(file, header.dataStart + e!.begin, raw, fail);
        return tensorFromBytes(e as SafetensorsEntry & { dtype: TensorDType }, raw, true, fail);
      },
      close: () => file.close(),
    };
  } catch (err) {
    file.close();
    throw err;
  }
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
      throw new InputError("safetensors", path, "file not found", "check the path", {
        cause: err,
        message: `safetensors: file not found: ${path}`,
      });
    }
    throw new InputError(
      "safetensors",
      path,
      `cannot read: ${(err as Error).message}`,
      "check the path and its permissions",
      { cause: err, message: `safetensors: cannot read ${path}: ${(err as Error).message}` },
    );
  }
  return decodeSafetensors(bytes, path);
}
