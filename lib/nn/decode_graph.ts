/**
 * The KV-cache decode step as one ONNX graph ({@link buildDecodeGraph}: params, past caches,
 * new tokens, mask and positions in; logits, log-probs, the tempered distribution and the
 * presents out, with LoRA applied factored when asked), and the checks of what is fed to it
 * (parameter feeds and their dtype, token ids).
 *
 * Separate from the decoder that compiles and runs it (gpt_decoder.ts) and from the sampling
 * loop (generate.ts): what one decode step computes, readable without a session.
 * @module
 */
import { Graph, type Value } from "../onnx/graph.ts";
import { type Tensor, tensor } from "../onnx/session.ts";
import type { KvCache } from "./attention.ts";
import { applyLora, type LoraConfig, loraShapes } from "./lora.ts";
import { type DecoderConfig, decoderDecodeStep, decoderShapes, kvLayout } from "./decoder.ts";

/** A float parameter / activation buffer. */
export type FloatArray = Float32Array | Float64Array;

/** Throws unless `t` is a token id of `cfg`'s vocabulary (`where` names it). */
export function checkToken(cfg: DecoderConfig, t: number, where: string): void {
  if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) {
    throw new RangeError(`GptDecoder: ${where}: token ${t} is not in [0, ${cfg.vocabSize})`);
  }
}

/**
 * Feeds for the parameters of `shapes`: tensors as given, typed arrays wrapped (no copy if
 * the dtype fits).
 */
export function paramFeeds(
  shapes: Record<string, { shape: number[] }>,
  dtype: "float32" | "float64",
  params: Record<string, FloatArray | Tensor>,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [n, { shape }] of Object.entries(shapes)) {
    const p = params[n];
    if (!p) throw new Error(`GptDecoder: missing parameter "${n}"`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (ArrayBuffer.isView(p)) {
      if (p.length !== size) {
        throw new Error(`GptDecoder: parameter "${n}" has ${p.length} values, expected ${size}`);
      }
      out[n] = tensor(dtype, shape, p);
    } else {
      if (p.type !== dtype || p.dims.join() !== shape.join()) {
        throw new Error(
          `GptDecoder: parameter "${n}" is ${p.type}[${p.dims}], expected ${dtype}[${shape}]`,
        );
      }
      out[n] = p;
    }
  }
  return out;
}

/**
 * The decode-step graph: params, past caches, new tokens, mask, positions -> logits, presents.
 * The presents are outputs under their own value names (`presents`), not renamed through an
 * Identity: each is also read by its layer's attention, so a renaming Identity would copy the
 * whole cache every step.
 */
export function buildDecodeGraph(
  cfg: DecoderConfig,
  dtype: "float32" | "float64",
  lora?: LoraConfig,
): { graph: Graph; presents: { key: string; value: string }[] } {
  const g = new Graph("gpt_decode");
  const inputs = (shapes: Record<string, { shape: number[] }>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([n, { shape }]) => [n, g.input(n, dtype, shape)]),
    );
  const base = inputs(decoderShapes(cfg));
  const params = lora
    ? applyLora(g, lora, base, inputs(loraShapes(decoderShapes(cfg), lora)), { factored: true })
    : base;
  const { kvHeads: H, headDim: hd } = kvLayout(cfg);
  const past: KvCache[] = Array.from({ length: cfg.nLayer }, (_, i) => ({
    key: g.input(`past.${i}.key`, dtype, ["B", H, "P", hd]),
    value: g.input(`past.${i}.value`, dtype, ["B", H, "P", hd]),
  }));
  const tokens = g.input("tokens", "int64", ["B", "S"]);
  const mask = g.input("attention_mask", "int64", ["B", "K"]);
  const positions = g.input("position_ids", "int64", ["B", "S"]);
  const out = decoderDecodeStep(g, cfg, params, tokens, past, mask, positions, {
    lastOnly: true,
  });
  g.output(out.logits, "logits");
  // The per-token passes over the vocabulary, as ORT kernels: log-probs (PPO's logp) and the
  // tempered distribution (sampling).
  g.output(g.logSoftmax(out.logits, -1), "logprobs");
  g.output(g.softmax(g.div(out.logits, g.input("temperature", dtype, [1])), -1), "probs");
  const own = (v: Value) =>
    g.output(g.producer.has(v) && !g.outputs.includes(v) ? v : g.identity(v));
  const presents = out.presents.map((c) => ({ key: own(c.key).name, value: own(c.value).name }));
  return { graph: g, presents };
}

/** The dtype of a policy's parameters (all must agree). */
export function paramsDtype(params: Record<string, FloatArray | Tensor>): "float32" | "float64" {
  const kinds = new Set(
    Object.values(params).map((p) =>
      ArrayBuffer.isView(p) ? (p instanceof Float64Array ? "float64" : "float32") : p.type
    ),
  );
  if (kinds.size !== 1 || !(kinds.has("float32") || kinds.has("float64"))) {
    throw new Error(`generate: parameters must be all float32 or all float64, got ${[...kinds]}`);
  }
  return [...kinds][0] as "float32" | "float64";
}
