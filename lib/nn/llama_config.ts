/**
 * The configuration of the Llama-family decoder (`llama.ts`): one type for `llama`
 * (Llama 2/3.x, SmolLM2), `mistral`, `qwen2` and `qwen3`, which differ only by flags.
 * Field names are ours; the transformers `config.json` key is given in brackets.
 *
 * Parameter names are transformers' own (`model.layers.0.self_attn.q_proj.weight`, Linear
 * layout `[out, in]`), so a Hub folder loads and saves without renaming.
 * @module
 */

/** RoPE frequency scaling [rope_scaling / rope_parameters]. */
export type RopeScaling =
  | { type: "default" }
  /** Positions divided by `factor` (inv_freq / factor). */
  | { type: "linear"; factor: number }
  /** Llama 3.x: low frequencies divided by `factor`, high kept, a smooth ramp between. */
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  };

/** A Llama-family decoder's hyperparameters. */
export interface LlamaConfig {
  /** Discriminates from GPT-2's `GptConfig`. */
  family: "llama";
  /** transformers `model_type` this config came from (kept for saving) [model_type]. */
  modelType: "llama" | "mistral" | "qwen2" | "qwen3";
  /** Vocabulary size V [vocab_size]. */
  vocabSize: number;
  /** Model width d [hidden_size]. */
  hiddenSize: number;
  /** SwiGLU inner width [intermediate_size]. */
  intermediateSize: number;
  /** Number of decoder layers [num_hidden_layers]. */
  nLayer: number;
  /** Query heads [num_attention_heads]. */
  nHead: number;
  /** Key/value heads (grouped-query attention; = nHead for MHA) [num_key_value_heads]. */
  nKvHead: number;
  /** Per-head width [head_dim]; default hiddenSize / nHead. */
  headDim: number;
  /** Context length [max_position_embeddings]. */
  maxPositions: number;
  /** RMSNorm epsilon [rms_norm_eps]. */
  rmsNormEps: number;
  /** RoPE base [rope_theta]. */
  ropeTheta: number;
  /** RoPE scaling [rope_scaling]. */
  ropeScaling: RopeScaling;
  /** Biases on q/k/v projections (qwen2) [attention_bias, implied by qwen2]. */
  qkvBias: boolean;
  /** Bias on the output projection [attention_bias for llama]. */
  oBias: boolean;
  /** Biases on gate/up/down [mlp_bias]. */
  mlpBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (qwen3) [implied by qwen3]. */
  qkNorm: boolean;
  /** LM head shares the embedding matrix [tie_word_embeddings]. */
  tieWordEmbeddings: boolean;
  /** Mistral-style sliding attention window (keys further back are masked) [sliding_window]. */
  slidingWindow?: number;
  /** Parameter-name prefix of the trunk (default "model", as transformers). */
  prefix?: string;
}

/** Every parameter name of one decoder layer, transformers' names. */
export interface LlamaLayerNames {
  inputNorm: string;
  q: string;
  k: string;
  v: string;
  o: string;
  qBias: string;
  kBias: string;
  vBias: string;
  oBias: string;
  qNorm: string;
  kNorm: string;
  postNorm: string;
  gate: string;
  up: string;
  down: string;
  gateBias: string;
  upBias: string;
  downBias: string;
}

/**
 * Parameter names of the whole model. `lmHead` is transformers' "lm_head.weight" under the
 * default prefix (it is not a parameter when the head is tied to the embedding).
 */
export function llamaNames(cfg: LlamaConfig): {
  embed: string;
  layers: LlamaLayerNames[];
  norm: string;
  lmHead: string;
} {
  const p = cfg.prefix ?? "model";
  const n = (s: string) => (p === "" ? s : `${p}.${s}`);
  return {
    embed: n("embed_tokens.weight"),
    layers: Array.from({ length: cfg.nLayer }, (_, i) => {
      const l = (s: string) => n(`layers.${i}.${s}`);
      return {
        inputNorm: l("input_layernorm.weight"),
        q: l("self_attn.q_proj.weight"),
        k: l("self_attn.k_proj.weight"),
        v: l("self_attn.v_proj.weight"),
        o: l("self_attn.o_proj.weight"),
        qBias: l("self_attn.q_proj.bias"),
        kBias: l("self_attn.k_proj.bias"),
        vBias: l("self_attn.v_proj.bias"),
        oBias: l("self_attn.o_proj.bias"),
        qNorm: l("self_attn.q_norm.weight"),
        kNorm: l("self_attn.k_norm.weight"),
        postNorm: l("post_attention_layernorm.weight"),
        gate: l("mlp.gate_proj.weight"),
        up: l("mlp.up_proj.weight"),
        down: l("mlp.down_proj.weight"),
        gateBias: l("mlp.gate_proj.bias"),
        upBias: l("mlp.up_proj.bias"),
        downBias: l("mlp.down_proj.bias"),
      };
    }),
    norm: n("norm.weight"),
    // transformers keeps the head outside the trunk ("lm_head.weight"); a copy of the model
    // under another prefix (e.g. a separate value model) keeps its head under that prefix.
    lmHead: p === "model" ? "lm_head.weight" : n("lm_head.weight"),
  };
}

/** Validates a config: positive integers, head counts that divide. Throws RangeError. */
export function validateLlamaConfig(cfg: LlamaConfig): void {
  for (
    const k of [
      "vocabSize",
      "hiddenSize",
      "intermediateSize",
      "nLayer",
      "nHead",
      "nKvHead",
      "headDim",
      "maxPositions",
    ] as const
  ) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) {
      throw new RangeError(`LlamaConfig.${k} must be a positive integer, got ${cfg[k]}`);
    }
  }
  if (cfg.nHead % cfg.nKvHead !== 0) {
    throw new RangeError(
      `LlamaConfig: nHead ${cfg.nHead} is not a multiple of nKvHead ${cfg.nKvHead}`,
    );
  }
  if (cfg.headDim % 2 !== 0) {
    throw new RangeError(`LlamaConfig: headDim ${cfg.headDim} must be even (RoPE pairs)`);
  }
  if (!(cfg.rmsNormEps > 0) || !(cfg.ropeTheta > 0)) {
    throw new RangeError(`LlamaConfig: rmsNormEps and ropeTheta must be positive`);
  }
}

/**
 * Parameter shapes by transformers name, in a fixed order (embedding, layers, final norm,
 * LM head when untied). Linear weights are `[out, in]` as torch stores them.
 *
 * @example
 * ```ts
 * llamaShapes(cfg)["model.layers.0.self_attn.k_proj.weight"]; // { shape: [nKvHead * headDim, hiddenSize] }
 * ```
 */
export function llamaShapes(cfg: LlamaConfig): Record<string, { shape: number[] }> {
  validateLlamaConfig(cfg);
  const d = cfg.hiddenSize, hd = cfg.headDim, qd = cfg.nHead * hd, kvd = cfg.nKvHead * hd;
  const f = cfg.intermediateSize, nm = llamaNames(cfg);
  const out: Record<string, { shape: number[] }> = { [nm.embed]: { shape: [cfg.vocabSize, d] } };
  for (const l of nm.layers) {
    out[l.inputNorm] = { shape: [d] };
    out[l.q] = { shape: [qd, d] };
    out[l.k] = { shape: [kvd, d] };
    out[l.v] = { shape: [kvd, d] };
    if (cfg.qkvBias) {
      out[l.qBias] = { shape: [qd] };
      out[l.kBias] = { shape: [kvd] };
      out[l.vBias] = { shape: [kvd] };
    }
    if (cfg.qkNorm) {
      out[l.qNorm] = { shape: [hd] };
      out[l.kNorm] = { shape: [hd] };
    }
    out[l.o] = { shape: [d, qd] };
    if (cfg.oBias) out[l.oBias] = { shape: [d] };
    out[l.postNorm] = { shape: [d] };
    out[l.gate] = { shape: [f, d] };
    out[l.up] = { shape: [f, d] };
    out[l.down] = { shape: [d, f] };
    if (cfg.mlpBias) {
      out[l.gateBias] = { shape: [f] };
      out[l.upBias] = { shape: [f] };
      out[l.downBias] = { shape: [d] };
    }
  }
  out[nm.norm] = { shape: [d] };
  if (!cfg.tieWordEmbeddings) out[nm.lmHead] = { shape: [cfg.vocabSize, d] };
  return out;
}
