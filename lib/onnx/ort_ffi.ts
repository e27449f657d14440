/**
 * ONNX Runtime's C API through Deno's FFI: the same `libonnxruntime` that onnxruntime-node
 * ships and loads (same version, same kernels, so the same bits), without the Node binding's
 * copies.
 *
 * Why: onnxruntime-node 1.30 copies EVERY fetched output into a fresh JS ArrayBuffer, even one
 * given as a preallocated output (measured: a run with a preallocated 16M-float output returns a
 * different buffer, writes to it do not reach the caller's tensor, and RSS grows by the output's
 * size per run until GC). For a 124M-parameter train step that is 1.5 GB of copies and garbage
 * per step. Here an output given by the caller is written in place and returned as the same
 * tensor object, and an output may even be the same memory as an input (an in-place update),
 * which the optimizer sessions use (see optim_session.ts for when that is safe).
 *
 * Runs are synchronous FFI calls, like onnxruntime-node's (which ran on the JS thread too): a
 * nonblocking call (ORT on another thread, JS awaiting) cost ~60 µs more per run (measured:
 * 80 vs 18 µs for a one-node graph), which a decode step or an optimizer chunk pays every
 * time. Session creation, which can take seconds, is nonblocking.
 *
 * CPU only; sessions on other devices use onnxruntime-node (session.ts chooses).
 *
 * This module is the binding's public face; the parts live beside it:
 * - ort_ffi_api.ts: the C API function table, loading the library, status checks;
 * - ort_ffi_values.ts: OrtValues over JS memory (cached, staged, copied out);
 * - ort_ffi_session.ts: {@link FfiSession}, creating and running a model.
 * @module
 */
export { ffiStatus } from "./ort_ffi_api.ts";
export { FfiSession, type FfiSessionOptions } from "./ort_ffi_session.ts";
