/**
 * Sampling from a GPT policy with a KV cache: the model runs as one compiled ONNX decode step
 * (prefill = a step with an empty cache), and every random choice is made in TypeScript
 * (generate.ts) from one seeded `Rng`, so a seed fixes the samples byte for byte.
 *
 * {@link generate} turns a batch of prompts into a PPO rollout: N rows × T response positions,
 * left-padded prompts, padding after EOS, a response mask, and log π(a) of every sampled token
 * under the UNMODIFIED policy (see {@link Generation.logp}).
 *
 * @example
 * ```ts
 * const cfg: GptConfig = { vocabSize: 64, nPositions: 64, nEmbd: 32, nLayer: 2, nHead: 4 };
 * const params = initGpt(cfg, new Rng(1), "float32");
 * const out = await generate({ cfg, params }, [[1, 2, 3], [4]], {
 *   maxNewTokens: 16, temperature: 1, topP: 0.9, eosTokenId: 0, padTokenId: 0, rng: new Rng(7),
 * });
 * out.tokens; // Int32Array [rows * cols], padTokenId after each row's EOS
 * out.logp; // Float64Array, log π(a) of each sampled token (0 where mask is 0)
 * ```
 *
 * This module re-exports the parts, which live beside it:
 * - decode_graph.ts: the decode-step graph and the checks of its feeds;
 * - gpt_decoder.ts: {@link GptDecoder} (shared or with the weights compiled in) and
 *   {@link DecodeState};
 * - generate.ts: {@link generate}, the seeded sampling loop and the rollout layout;
 * - sampling.ts: the sampling distributions (temperature, top-k, top-p) and draws.
 * @module
 */
export {
  argmax,
  logSoftmax,
  sampleIndex,
  type SamplingOptions,
  samplingProbs,
  topKFilter,
  topPFilter,
} from "./sampling.ts";
export type { FloatArray } from "./decode_graph.ts";
export { type DecodeState, GptDecoder } from "./gpt_decoder.ts";
export {
  generate,
  type GenerateOptions,
  type Generation,
  type GptPolicy,
  ORT_VOCAB_MIN,
  PACK_MIN_PARAMS,
  PACK_MIN_TOKENS,
} from "./generate.ts";
