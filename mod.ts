/**
 * Proxima: reproducible PPO / RLHF experiments whose every training step runs
 * inside ONNX Runtime. Layers (each points only down): onnx -> nn -> ppo ->
 * tasks/envs -> experiment -> report -> cli.
 * @module
 */
export * from "./lib/onnx/mod.ts";
export * from "./lib/nn/mod.ts";
export * from "./lib/ppo/mod.ts";
export * from "./lib/envs/mod.ts";
export * from "./lib/tasks/mod.ts";
export * from "./lib/experiment/mod.ts";
export { Rng } from "./lib/rng.ts";
