/**
 * OrtValues over JS memory for the FFI session: a tensor's own memory passed to ORT without a
 * copy (cached on the tensor object while its memory and dims are unchanged, released when
 * the tensor is garbage), constants for external initializers (tiny ones staged off V8's
 * heap), and the copy of an ORT-allocated output into a JS tensor. Separate from the session
 * (ort_ffi_session.ts) because it is the memory-ownership half of the binding: which memory
 * ORT reads or writes, and who frees each value.
 * @module
 */
import * as ort from "onnxruntime-node";
import {
  ARRAY,
  check,
  ELEM,
  ELEM_NAME,
  loadedRuntime,
  out8,
  type Ptr,
  ptrOf,
  type Runtime,
} from "./ort_ffi_api.ts";

/** OrtValues over tensors' own memory, by tensor object (see {@link tensorValueOf}). */
const valueCache = new WeakMap<
  ort.Tensor,
  { value: bigint; address: bigint; bytes: number; dims: number[] }
>();
/** Releases a cached OrtValue once its tensor is garbage (the value does not own the memory). */
const releaseValues = new FinalizationRegistry<bigint>((v) => {
  const runtime = loadedRuntime();
  if (runtime) runtime.api.ReleaseValue(Deno.UnsafePointer.create(v));
});

/** Smallest byte length passed as the tensor's own memory; smaller data is staged (copied). */
export const STAGE_BELOW = 64;

/** An OrtValue (not owning it) over `bytes` at `address`, of element type `elem`. */
export function tensorValue(
  rt: Runtime,
  address: bigint,
  bytes: number,
  dims: BigInt64Array,
  elem: number,
  what: string,
): bigint {
  check(
    rt.api,
    rt.api.CreateTensorWithDataAsOrtValue(
      rt.cpuInfo,
      Deno.UnsafePointer.create(address),
      BigInt(bytes),
      dims,
      BigInt(dims.length),
      elem,
      valueOut,
    ) as Ptr,
    `CreateTensorWithDataAsOrtValue (${what})`,
  );
  return valueOut[0];
}
const valueOut = new BigUint64Array(1);

/**
 * An OrtValue over a constant tensor's memory, and the memory (to keep alive with the session).
 * Tiny typed arrays may live on V8's heap, where they can move: those are copied into an
 * ArrayBuffer of their own (always off-heap).
 */
export function constantValue(rt: Runtime, name: string, t: ort.Tensor): [bigint, ArrayBufferView] {
  let data = t.data as ArrayBufferView;
  const elem = ELEM[t.type];
  if (!ArrayBuffer.isView(data) || elem === undefined) {
    throw new Error(`FfiSession: initializer "${name}": tensor type ${t.type}`);
  }
  if (data.byteLength < STAGE_BELOW) {
    const copy = new Uint8Array(new ArrayBuffer(Math.max(data.byteLength, 8)));
    copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    data = copy.subarray(0, data.byteLength);
  }
  const dims = BigInt64Array.from(t.dims, BigInt);
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data as BufferSource)));
  const value = tensorValue(rt, address, data.byteLength, dims, elem, `initializer "${name}"`);
  return [value, data];
}

/**
 * An OrtValue over `data` (the tensor's memory or its staged copy) with `t`'s dims. Values
 * over a tensor's own memory are cached on the tensor object and reused while its memory
 * and dims are unchanged (a trainer's params, a decoder's weights: fed every run).
 * `scratch` holds the dims passed to ORT (grown when a rank needs it; ORT copies them).
 */
export function tensorValueOf(
  rt: Runtime,
  t: ort.Tensor,
  data: ArrayBufferView,
  name: string,
  cache: boolean,
  scratch: { dims: BigInt64Array },
): bigint {
  const { api } = rt;
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data as BufferSource)));
  if (cache) {
    const hit = valueCache.get(t);
    if (hit && hit.address === address && hit.bytes === data.byteLength) {
      const d = t.dims;
      if (d.length === hit.dims.length && d.every((x, i) => x === hit.dims[i])) return hit.value;
    }
  }
  const elem = ELEM[t.type];
  if (elem === undefined) throw new Error(`FfiSession: "${name}": tensor type ${t.type}`);
  const rank = t.dims.length;
  if (rank > scratch.dims.length) scratch.dims = new BigInt64Array(rank);
  for (let i = 0; i < rank; i++) scratch.dims[i] = BigInt(t.dims[i]);
  const dims = scratch.dims.subarray(0, rank);
  const value = tensorValue(rt, address, data.byteLength, dims, elem, `"${name}"`);
  if (cache) {
    const old = valueCache.get(t);
    if (old) {
      releaseValues.unregister(old);
      api.ReleaseValue(Deno.UnsafePointer.create(old.value));
    }
    const entry = { value, address, bytes: data.byteLength, dims: [...t.dims] };
    valueCache.set(t, entry);
    releaseValues.register(t, value, entry);
  }
  return value;
}

/** A JS tensor with a copy of an ORT-allocated output. */
export function copyOut(rt: Runtime, v: NonNullable<Ptr>): ort.Tensor {
  const { api } = rt;
  const info = out8();
  check(api, api.GetTensorTypeAndShape(v, info) as Ptr, "shape");
  const ip = ptrOf(info);
  try {
    const elem = new Int32Array(1);
    check(api, api.GetTensorElementType(ip, elem) as Ptr, "type");
    const count = new BigUint64Array(1);
    check(api, api.GetDimensionsCount(ip, count) as Ptr, "rank");
    const dims = new BigInt64Array(Math.max(Number(count[0]), 1));
    check(api, api.GetDimensions(ip, dims, count[0]) as Ptr, "dims");
    const shape = Array.from(dims.subarray(0, Number(count[0])), Number);
    const type = ELEM_NAME[elem[0]];
    if (!type) throw new Error(`FfiSession: output element type ${elem[0]} is not supported`);
    const n = shape.reduce((a, b) => a * b, 1);
    const Arr = ARRAY[type];
    const bytes = n * (Arr as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const buf = new ArrayBuffer(bytes);
    if (bytes > 0) {
      const p = out8();
      check(api, api.GetTensorMutableData(v, p) as Ptr, "data");
      new Deno.UnsafePointerView(ptrOf(p)!).copyInto(new Uint8Array(buf));
    }
    return new ort.Tensor(type as "float32", new Arr(buf) as Float32Array, shape);
  } finally {
    api.ReleaseTensorTypeAndShapeInfo(ip);
  }
}
