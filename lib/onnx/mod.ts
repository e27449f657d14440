/**
 * The engine: typed ONNX graph builder, gradient rules + reverse-mode autodiff,
 * optimizers as graph nodes, training-step compilation and ORT sessions,
 * safetensors checkpoint IO.
 * @module
 */
export * from "./graph.ts";
export { gradientRules, gradients, type GradRule, unbroadcast } from "./autodiff.ts";
export * from "./optim.ts";
export * from "./session.ts";
export * from "./session_cache.ts";
export { FfiSession, ffiStatus } from "./ort_ffi.ts";
export * from "./train.ts";
export * from "./safetensors.ts";
export * from "./flat.ts";
