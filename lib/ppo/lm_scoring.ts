/**
 * The LM policy-gradient problem's scoring (lib/ppo/lm_problem.ts): per response position,
 * log π(a_t), entropy and V from the models' parameters (the train step and the rollout's
 * scoring passes share these graph builders, so both compute the same numbers), the sequence
 * inputs and feeds of every scoring graph, the exact KL at a position, and a plain scorer.
 * @module
 */
import type * as ort from "onnxruntime-node";
import { Graph, type Value } from "../onnx/graph.ts";
import { compile, type Device, tensor } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import { gatherLogprobs, tokenLogprobs } from "../nn/gpt.ts";
import { type DecoderConfig, decoderForward, decoderHidden, decoderShapes } from "../nn/decoder.ts";
import { valueHead } from "../nn/heads.ts";
import type { FloatArray } from "../nn/sample.ts";
import { applyLora, type LoraConfig } from "../nn/lora.ts";
import { categoricalEntropy, type PolicyOutputs } from "./losses.ts";
import { chunkedHeadOutputs } from "./lm_head_chunks.ts";
import type { LmProblem, LmSequences } from "./lm_types.ts";

/** Parameter-name prefix of a separate value model's trunk. */
export const VALUE_MODEL_PREFIX = "value_model";

/** How the train step and the policy's scoring pass read the models (see createLmProblem). */
export interface ModelLayout {
  model: DecoderConfig;
  /** The separate value model's config (prefix {@link VALUE_MODEL_PREFIX}), if any. */
  valueCfg?: DecoderConfig;
  lora?: LoraConfig;
  /** The LM head only at the response's columns (`LmProblemOptions.logitsAtResponse`). */
  logitsAt?: boolean;
  /**
   * With `logitsAt`: the most response positions a feed has (max_new_tokens), over which the
   * head's vocabulary passes run in chunks (lib/ppo/lm_head_chunks.ts).
   */
  maxT?: number;
}

/**
 * Policy log-probs, entropy and values per response position from the full parameter record
 * (trainable and frozen): LoRA applied where configured, the value from the policy's trunk or
 * from the separate value model.
 */
export function modelOutputs(
  g: Graph,
  m: ModelLayout,
  p: Record<string, Value>,
  tokens: Value,
  mask: Value,
  pos: Value,
  actions: Value,
): { logp: Value; entropy: Value; logpAll: Value; value: Value } {
  // LoRA as PEFT computes it (x W + s·(x A) B): the frozen base is read as it is, and neither
  // a merged copy of every adapted matrix nor its full-size gradient is formed (for a 0.5B
  // model each is 2 GB per step).
  const adapted = m.lora ? applyLora(g, m.lora, withoutAdapters(p), p, { factored: true }) : p;
  const pi = responseOutputs(
    g,
    m.model,
    adapted,
    tokens,
    mask,
    pos,
    actions,
    !m.valueCfg,
    m.logitsAt,
    m.maxT,
  );
  if (!m.valueCfg) return pi as typeof pi & { value: Value };
  const hidden = decoderHidden(g, m.valueCfg, adapted, tokens, mask);
  // By descriptor, not by spread: a spread would read (and so build) the lazy entropy and
  // logpAll (see train_step.ts criticOutputs).
  const value = valueHead(g, g.gather(hidden, pos, 1), p);
  return Object.defineProperties(Object.getOwnPropertyDescriptors(pi) && {}, {
    ...Object.getOwnPropertyDescriptors(pi),
    value: { value, enumerable: true },
  }) as typeof pi & { value: Value };
}

/** The record without LoRA adapters (what applyLora reads as the base). */
export function withoutAdapters<T>(p: Record<string, T>): Record<string, T> {
  return Object.fromEntries(
    Object.entries(p).filter(([n]) => !n.endsWith(".lora_A") && !n.endsWith(".lora_B")),
  );
}

/**
 * Per response position: log π(a_t), entropy, and (with a value head) V, for int64
 * `tokens`/`mask` `[B, S]`, the response's columns `pos [T]` (those whose logits score each
 * response token) and the response tokens `actions [B, T]`. Shared by the train step and the
 * rollout's scoring passes, so both compute the same numbers.
 */
export function responseOutputs(
  g: Graph,
  cfg: DecoderConfig,
  params: Record<string, Value>,
  tokens: Value,
  mask: Value,
  pos: Value,
  actions: Value,
  withValue: boolean,
  at = false,
  maxT?: number,
): { logp: Value; entropy: Value; logpAll: Value; value?: Value } {
  // `at`: the LM head only at the response's columns (TRL's logits_to_keep), so the [B, S, V]
  // logits of every prompt position, and their gradient, are never formed. Otherwise the head
  // runs over all S columns and the logits are gathered (the results existing tasks keep).
  const out = decoderForward(g, cfg, params, tokens, mask, at ? { at: pos } : {});
  if (at && maxT !== undefined) {
    // The head and its vocabulary passes over chunks of positions: no [B, T, V] at once.
    const head = chunkedHeadOutputs(g, out.hidden, out.logits, actions, maxT);
    return {
      logp: head.logp,
      get entropy() {
        return head.entropy;
      },
      get logpAll() {
        return head.logpAll;
      },
      value: withValue ? valueHead(g, out.hidden, params) : undefined,
    };
  }
  if (at) {
    // One [B, T, V] log-softmax for the log-probs and the entropy, and the entropy (two more
    // [B, T, V] tensors: ORT runs nodes nobody reads) only where it is read: the train step.
    const logpAll = g.logSoftmax(out.logits, -1);
    let entropy: Value | undefined;
    return {
      logp: gatherLogprobs(g, logpAll, actions),
      get entropy() {
        return entropy ??= categoricalEntropy(g, logpAll);
      },
      logpAll,
      value: withValue ? valueHead(g, out.hidden, params) : undefined,
    };
  }
  const lt = g.gather(out.logits, pos, 1); // [B, T, V]
  const logpAll = g.logSoftmax(lt, -1);
  return {
    logp: tokenLogprobs(g, lt, actions),
    entropy: categoricalEntropy(g, logpAll),
    logpAll,
    value: withValue ? valueHead(g, g.gather(out.hidden, pos, 1), params) : undefined,
  };
}

/**
 * The train step's model inputs (rows B, sequence S, response columns T: symbolic names, or
 * sizes where planning builds the step at a trial's shape).
 */
export function lmTrainInputs(B: string | number, S: string | number, T: string | number) {
  const i64 = (shape: (string | number)[]) => ({ dtype: "int64" as const, shape });
  return {
    tokens: i64([B, S]),
    attention_mask: i64([B, S]),
    response_pos: i64([T]),
    actions: i64([B, T]),
  };
}

/**
 * The train step's policy (createLmProblem's, and planning's memory count builds the same):
 * log π, entropy, log π over the vocabulary and, with a critic, V at the response positions.
 */
export function lmTrainPolicy(
  layout: ModelLayout,
  critic: boolean,
): (g: Graph, p: Record<string, Value>, b: Record<string, Value>) => PolicyOutputs {
  return (g, p, b) =>
    !critic
      ? responseOutputs(
        g,
        layout.model,
        layout.lora ? applyLora(g, layout.lora, withoutAdapters(p), p, { factored: true }) : p,
        b.tokens,
        b.attention_mask,
        b.response_pos,
        b.actions,
        false,
        layout.logitsAt,
        layout.maxT,
      )
      : modelOutputs(g, layout, p, b.tokens, b.attention_mask, b.response_pos, b.actions);
}

/** The scoring graphs' sequence inputs (the layout of {@link sequenceFeeds}). */
export function sequenceInputs(g: Graph): [tokens: Value, mask: Value, pos: Value, actions: Value] {
  return [
    g.input("tokens", "int64", ["B", "S"]),
    g.input("attention_mask", "int64", ["B", "S"]),
    g.input("response_pos", "int64", ["T"]),
    g.input("actions", "int64", ["B", "T"]),
  ];
}

/**
 * Feeds of {@link sequenceInputs} for rows `rows` (default all) of `seqs`: tokens and mask
 * `[B, W + T]`, the columns whose logits score each response token `[T]`, the response tokens
 * `[B, T]`.
 */
export function sequenceFeeds(seqs: LmSequences, rows?: number[]): Record<string, ort.Tensor> {
  const W = seqs.promptWidth, T = seqs.cols, S = W + T;
  const pick = rows ?? Array.from({ length: seqs.rows }, (_, r) => r), B = pick.length;
  const tok = new BigInt64Array(B * S), msk = new BigInt64Array(B * S);
  const act = new BigInt64Array(B * T);
  pick.forEach((r, j) => {
    for (let s = 0; s < S; s++) {
      tok[j * S + s] = BigInt(seqs.sequences[r * S + s]);
      msk[j * S + s] = BigInt(seqs.sequenceMask[r * S + s]);
    }
    for (let t = 0; t < T; t++) act[j * T + t] = BigInt(seqs.tokens[r * T + t]);
  });
  const pos = BigInt64Array.from({ length: T }, (_, t) => BigInt(W - 1 + t));
  return {
    tokens: tensor("int64", [B, S], tok),
    attention_mask: tensor("int64", [B, S], msk),
    response_pos: tensor("int64", [T], pos),
    actions: tensor("int64", [B, T], act),
  };
}

/** Σ_a p(a)·(log p(a) − log q(a)) at position `i` of `[positions, V]` log-prob arrays. */
export function exactKlAt(logp: Float32Array, logq: Float32Array, i: number, V: number): number {
  let kl = 0;
  for (let a = i * V; a < (i + 1) * V; a++) kl += Math.exp(logp[a]) * (logp[a] - logq[a]);
  return kl;
}

/**
 * Log-probs of the response tokens under any params of a plain decoder `model`, for sequences
 * laid out as {@link generate} does (`[rows, cols]`, junk at padding): {@link LmProblem.rescore}
 * without a value head, for problems that build no PPO train step (DPO). With `full`, also the
 * log-probs over the whole vocabulary (`all`, `[rows, cols, V]`: the exact evaluation KL).
 */
export async function compileLmScorer(
  model: DecoderConfig,
  opts: {
    dtype?: "float32" | "float64";
    device?: Device;
    threads?: number;
    full?: boolean;
    sessions?: SessionCache;
    /** Give the arena's free regions back after each run (session.ts `shrinkArena`). */
    shrinkArena?: boolean;
  } = {},
): Promise<
  (
    ...a: Parameters<LmProblem["rescore"]>
  ) => Promise<{ logp: Float64Array; all?: FloatArray }>
> {
  const dtype = opts.dtype ?? "float32";
  const shapes = decoderShapes(model);
  const g = new Graph(opts.full ? "lm_score_all" : "lm_score");
  const params = Object.fromEntries(
    Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
  );
  const io = sequenceInputs(g);
  const out = responseOutputs(g, model, params, ...io, false);
  g.output(out.logp, "logp");
  if (opts.full) g.output(out.logpAll, "logp_all");
  const session = await compile(g, {
    device: opts.device,
    threads: opts.threads,
    sessions: opts.sessions,
    ...(opts.shrinkArena ? { shrinkArena: true } : {}),
  });
  return async (p, seqs) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [n, s] of Object.entries(shapes)) {
      const v = p[n];
      if (!v) throw new Error(`LmProblem.rescore: missing parameter "${n}"`);
      feeds[n] = ArrayBuffer.isView(v) ? tensor(dtype, s.shape, v) : v;
    }
    const r = await session.run({ ...feeds, ...sequenceFeeds(seqs) });
    return {
      logp: Float64Array.from(r.logp.data as FloatArray),
      // A copy: a session may reuse its output buffers on the next run.
      ...(opts.full ? { all: (r.logp_all.data as FloatArray).slice() } : {}),
    };
  };
}
