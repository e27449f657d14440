/**
 * Half precision for safetensors tensors: `float16` (IEEE binary16) and `bfloat16` bit
 * patterns to and from float32/float64, with the same rounding as torch's
 * `.to(torch.float16 / torch.bfloat16)`, and casts between the floating-point dtypes.
 * @module
 */
import { type FloatDType, type NamedTensor, type TensorDType } from "./safetensors_dtypes.ts";

/** Scratch for reading float32 bit patterns. */
const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/**
 * float32 bits of each binary16 pattern (exact, NaN payloads kept); built on first use.
 * Process-wide on purpose: a constant table (256 KB), the same for every caller.
 */
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
