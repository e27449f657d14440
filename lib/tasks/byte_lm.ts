/**
 * What the byte-level LM tasks (`sentiment`, `jsx`) share: their PPO defaults, the model and
 * SFT sections of their configs, the decoder config of a model section (`model.family`: GPT-2
 * or a Llama-family decoder), the SFT stage (fit a tiny decoder on (prompt, response) pairs,
 * save it as a Hugging Face folder that records the stage, load it back), and the sampling
 * pass of an evaluation (responses, KL to the reference).
 *
 * @example
 * ```ts
 * const m = await fitByteSft(byteDecoderConfig(c.model), c.sft, corpus, heldOut, {});
 * await saveSftStage(`${outDir}/model`, m, { stage: "my-sft", version: 1, config: c });
 * ```
 * @module
 */
import { z } from "zod";
import type { SessionOptions } from "../onnx/session.ts";
import {
  contextLength,
  type DecoderConfig,
  decoderShapes,
  familyOf,
  initDecoder,
} from "../nn/decoder.ts";
import { loadDecoderFolder, saveDecoderFolder } from "../nn/decoder_folder.ts";
import { generate } from "../nn/sample.ts";
import { evaluateSft, SftTrainer } from "../nn/sft.ts";
import { encodePairs, type TextPair } from "../nn/corpus.ts";
import {
  BYTE_EOS_ID,
  BYTE_VOCAB_SIZE,
  byteDecode,
  makeByteTokenizer,
  type TokenizerFiles,
} from "../nn/tokenizer.ts";
import { AdvantageSchema, LmKlBaseSchema, LmLossShape, PpoSchema } from "../ppo/config.ts";
import { type DefaultOverrides, withOverrides } from "../trial/overrides.ts";
import { Rng } from "../rng.ts";
import type { StageContext, StageDef, StageFn } from "../trial/contract.ts";
import type { LmPolicyView } from "../ppo/offline/problem.ts";
import { evalKl } from "./eval_kl.ts";

/**
 * {@link PpoSchema} (every key, same ranges, the same base defaults) with what LM tasks add:
 * `advantage`, the advantage estimator (GAE, or the critic-free GRPO, Dr. GRPO, RLOO,
 * REINFORCE++), the loss keys ({@link LmLossShape}) and `kl.bias_correction`. Its defaults are
 * PpoSchema's; the LM tasks' own are {@link LM_PPO_OVERRIDES}.
 */
export const LmPpoBaseSchema = PpoSchema.extend({
  kl: LmKlBaseSchema.default(LmKlBaseSchema.parse({})),
  advantage: AdvantageSchema,
  ...LmLossShape,
});

/**
 * The LM tasks' PPO defaults where they differ from {@link PpoSchema}'s (CleanRL's), keys
 * under `ppo`: γ = 1 (one score at EOS, no discount), lr 3e-4 without annealing, 2 PPO epochs,
 * vf_coef 0.1, no entropy bonus, grad clip 1, the k3 estimator for a kl-penalty surrogate
 * (the exact KL would need every position's full-vocabulary log-probs under π_old). Every LM
 * task's override record starts with these (`overridesUnder("ppo", LM_PPO_OVERRIDES)`).
 *
 * Why vf_coef 0.1 and 2 epochs: the value head shares the policy's trunk, so the value loss
 * moves the policy whatever the reward says; with CleanRL's 0.5 and 4 epochs that drift alone
 * took the policy ~2.5 nats from the reference in 20 updates even at β = 0.5–1, flattening the
 * β -> KL relation. With these defaults (3 PPO seeds × 2 SFT seeds) final KL fell
 * monotonically over β = 0, 0.1, 0.5 (e.g. 13.4 / 4.6 / 1.2 nats) on `sentiment`.
 */
export const LM_PPO_OVERRIDES: DefaultOverrides = {
  gamma: 1,
  lr: 3e-4,
  lr_anneal: false,
  epochs: 2,
  vf_coef: 0.1,
  ent_coef: 0,
  max_grad_norm: 1,
  "penalty.estimator": "k3",
};

/** {@link LmPpoBaseSchema} with {@link LM_PPO_OVERRIDES}: an LM task's `ppo` section as is. */
export const LmPpoSchema = withOverrides(LmPpoBaseSchema, LM_PPO_OVERRIDES);

/** A model section of a byte-level LM task's config. */
export interface ByteModelSection {
  /** Decoder family: GPT-2 or a Llama-family decoder of the same size. */
  family: "gpt2" | "llama";
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
}

/**
 * The model section's schema (GPT-2, d = 64, L = 2, H = 4 by default; V = 257, the byte
 * tokenizer), with the task's context length: at least `min`, 64 by default (a task that needs
 * more says so in its override record, e.g. jsx's `"model.n_positions": 128`).
 */
export function byteModelSchema(nPositions: { min: number; help: string }) {
  return z.object({
    family: z.enum(["gpt2", "llama"]).default("gpt2").describe(
      "decoder family: gpt2 (GPT-2), or llama (a Llama-family decoder of the same size: " +
        "RMSNorm, RoPE, SwiGLU, tied embeddings)",
    ),
    n_embd: z.number().int().min(8).default(64).describe("model width d"),
    n_layer: z.number().int().min(1).default(2).describe("transformer blocks"),
    n_head: z.number().int().min(1).default(4).describe("attention heads (must divide d)"),
    n_positions: z.number().int().min(nPositions.min).default(64).describe(
      nPositions.help,
    ),
  }).strict();
}

/**
 * The SFT section's schema: the generated corpus (seed, size) and the optimisation (init and
 * batch-order seed, AdamW), 1000 steps by default (a task's own number of steps is an override in
 * its record, e.g. `"sft.steps": 300`).
 */
export function byteSftSchema(o: { stepsHelp: string; corpusHelp: string }) {
  return z.object({
    seed: z.number().int().default(1).describe("init and batch order"),
    corpus_seed: z.number().int().default(1).describe("seed of the generated corpus"),
    corpus_size: z.number().int().min(16).default(4000).describe(o.corpusHelp),
    steps: z.number().int().min(0).default(1000).describe(o.stepsHelp),
    batch_size: z.number().int().min(1).default(16).describe("examples per step"),
    lr: z.number().positive().default(3e-3).describe("AdamW learning rate"),
    weight_decay: z.number().min(0).default(0).describe("AdamW weight decay"),
    max_grad_norm: z.number().positive().default(1).describe("gradient-norm clip"),
  }).strict();
}

/**
 * The decoder config of a model section (byte vocabulary, V = 257): the family's `sized`
 * config (`ModelFamily.sized`). `family: "gpt2"`: GPT-2 (exactly the config it always was).
 * `family: "llama"`: a Llama-family decoder of the same width, depth and heads — full
 * multi-head attention (nKvHead = n_head), headDim = d / H, RMSNorm ε 1e-5, RoPE θ 10000, no biases, no q/k norm, tied embeddings (like GPT-2 and
 * SmolLM2). Its SwiGLU inner width is 4·d, GPT-2's MLP width, rather than Llama's ≈ 8/3·d:
 * the MLP then has 3 matrices of 4·d² instead of 2, but the hidden width — and so the
 * activation memory per token and the `n_embd` a config names — matches GPT-2's, and no
 * rounding rule (Llama's multiple of 256) has to be chosen for widths as small as 64.
 */
export function byteDecoderConfig(m: ByteModelSection): DecoderConfig {
  return familyOf(m.family).sized({
    vocabSize: BYTE_VOCAB_SIZE,
    positions: m.n_positions,
    hidden: m.n_embd,
    layers: m.n_layer,
    heads: m.n_head,
  });
}

/**
 * Session options of a stage run (the experiment runner passes threads and device; the stage
 * cache the run's own session cache).
 */
export function stageSession(
  ctx: Pick<SessionOptions, "threads" | "device" | "sessions">,
): SessionOptions {
  const s: SessionOptions = {};
  if (ctx.threads !== undefined) s.threads = ctx.threads;
  if (ctx.device !== undefined) s.device = ctx.device;
  if (ctx.sessions !== undefined) s.sessions = ctx.sessions;
  return s;
}

/** A policy in memory: decoder config (either family) and params. */
export interface ByteModel {
  cfg: DecoderConfig;
  params: Record<string, Float32Array | Float64Array>;
}

/** The SFT section keys {@link fitByteSft} reads. */
export interface ByteSftSection {
  seed: number;
  steps: number;
  batch_size: number;
  lr: number;
  weight_decay: number;
  max_grad_norm: number;
}

/**
 * Fit a freshly initialised decoder (drawn from `Rng(s.seed)`) on `corpus` with the SFT trainer
 * and measure its mean NLL per response token on `heldOut`. Deterministic in its inputs.
 */
export async function fitByteSft(
  cfg: DecoderConfig,
  s: ByteSftSection,
  corpus: readonly TextPair[],
  heldOut: readonly TextPair[],
  session: SessionOptions,
): Promise<ByteModel & { heldOutNll: number }> {
  const rng = new Rng(s.seed);
  const sft = await SftTrainer.create(cfg, initDecoder(cfg, rng, "float32"), {
    session,
    hparams: { lr: s.lr, weight_decay: s.weight_decay, max_grad_norm: s.max_grad_norm },
  });
  await sft.fit(encodePairs(corpus), { steps: s.steps, batchSize: s.batch_size, rng });
  const params = Object.fromEntries(
    Object.entries(sft.params()).map(([n, v]) => [n, Float32Array.from(v)]),
  );
  const { meanNll } = await evaluateSft({ cfg, params }, encodePairs(heldOut), { session });
  return { cfg, params, heldOutNll: meanNll };
}

/**
 * Save an SFT policy as a Hugging Face folder (byte tokenizer, EOS = pad) whose config.json
 * records the stage that made it (`proxima_stage`: name, version, config, held-out NLL):
 * in its family's own writer (`saveDecoderFolder`).
 */
export async function saveSftStage(
  dir: string,
  m: ByteModel & { heldOutNll: number },
  stage: { stage: string; version: number; config: unknown },
): Promise<void> {
  const tokenizer = makeByteTokenizer({ modelMaxLength: contextLength(m.cfg) });
  const config = {
    eos_token_id: BYTE_EOS_ID,
    pad_token_id: BYTE_EOS_ID,
    proxima_stage: { ...stage, held_out_nll: m.heldOutNll },
  };
  await saveDecoderFolder(dir, m.cfg, m.params, { config, tokenizer });
}

/**
 * The problem's current policy as a Hugging Face folder with the byte tokenizer (EOS = pad),
 * as {@link saveSftStage} writes the SFT policy: `save_steps`' `checkpoint-N/` of the byte-level
 * tasks (sentiment, jsx).
 */
export async function saveBytePolicy(dir: string, problem: LmPolicyView): Promise<void> {
  const cfg = problem.model, current = problem.policyParams();
  // The policy's own weights (the trainer also holds the value head or value trunk).
  const params = Object.fromEntries(
    Object.keys(decoderShapes(cfg)).map((n) => {
      const p = current[n];
      return [n, ArrayBuffer.isView(p) ? p : (p.data as Float32Array | Float64Array)];
    }),
  );
  const tokenizer = makeByteTokenizer({ modelMaxLength: contextLength(cfg) });
  const config = { eos_token_id: BYTE_EOS_ID, pad_token_id: BYTE_EOS_ID };
  await saveDecoderFolder(dir, cfg, params, { config, tokenizer });
}

/** A byte-level model folder of either family (see {@link loadByteModel}). */
export interface ByteModelFolder extends ByteModel {
  /** The parsed config.json, all keys. */
  config: Record<string, unknown>;
  /** Tokenizer files present in the folder, parsed; undefined without a tokenizer.json. */
  tokenizer?: TokenizerFiles;
}

/**
 * Load a causal-LM folder of either family, each with its family's reader
 * (`loadDecoderFolder`), plus its tokenizer files.
 */
export function loadByteModel(dir: string): Promise<ByteModelFolder> {
  return loadDecoderFolder(dir, "loadByteModel");
}

/** The config of a byte-level SFT stage: the model section and an SFT section with a corpus. */
export interface ByteSftStageConfig {
  model: ByteModelSection;
  sft: ByteSftSection & { corpus_seed: number; corpus_size: number };
}

/**
 * A byte-level SFT stage: a tiny decoder (drawn from `sft.seed`) fit on `corpus(config, seed,
 * size)` — `sft.corpus_size` pairs from `sft.corpus_seed`, held out 256 pairs from a second
 * stream (`corpus_seed + 1_000_003`: the corpus is a distribution, not a list) — and saved to
 * `<outDir>/model` ({@link saveSftStage}). `fit` trains the same policy in memory.
 */
export function byteSftStage<C extends ByteSftStageConfig>(o: {
  name: string;
  description: string;
  schema: z.ZodType<C>;
  /** Part of the saved folder's `proxima_stage` record. */
  version: number;
  corpus(config: C, seed: number, size: number): TextPair[];
  /**
   * Called with each policy the stage fits and the stage run's context (e.g. to keep it in the
   * trial's memo for a later stage).
   */
  onFit?(config: C, m: ByteModel & { heldOutNll: number }, ctx: StageContext): void;
}): StageDef<C> & {
  fit(config: C, session: SessionOptions): Promise<ByteModel & { heldOutNll: number }>;
} {
  const fit = (c: C, session: SessionOptions) =>
    fitByteSft(
      byteDecoderConfig(c.model),
      c.sft,
      o.corpus(c, c.sft.corpus_seed, c.sft.corpus_size),
      o.corpus(c, c.sft.corpus_seed + 1_000_003, 256),
      session,
    );
  return {
    name: o.name,
    description: o.description,
    schema: o.schema,
    fit,
    async run(config, outDir, ctx) {
      const c = o.schema.parse(config);
      const m = await fit(c, stageSession(ctx));
      o.onFit?.(c, m, ctx);
      await saveSftStage(`${outDir}/model`, m, { stage: o.name, version: o.version, config: c });
    },
  };
}

/** A trained (or cached) SFT policy: a stage's Hugging Face folder, loaded. */
export interface SftStage extends ByteModel {
  /** Its Hugging Face folder (`<stage folder>/model`). */
  dir: string;
  /** The stage folder's content hash (or the input folder's, for a policy given by path). */
  hash: string;
  /** Held-out mean NLL per response token (nats). */
  heldOutNll: number;
  /** True when the stage folder was reused. */
  cached: boolean;
}

/**
 * The SFT stage `name` for `config` from `stage` (trained on the first call for a config,
 * reused after), loaded; `log` gets one line (`<label>: cached|trained in s, held-out NLL`).
 */
export async function loadSftStage(
  stage: StageFn,
  name: string,
  config: unknown,
  opts: { log?: (line: string) => void; label?: string } = {},
): Promise<SftStage> {
  const t0 = performance.now();
  const r = await stage(name, config);
  const dir = `${r.dir}/model`;
  const f = await loadByteModel(dir);
  const meta = f.config.proxima_stage as { held_out_nll: number };
  opts.log?.(
    `${opts.label ?? "sft"}: ${
      r.cached ? "cached" : `trained in ${((performance.now() - t0) / 1e3).toFixed(1)} s`
    }, held-out NLL ${meta.held_out_nll.toFixed(3)} nats/token: ${dir}`,
  );
  return {
    dir,
    hash: r.hash,
    cfg: f.cfg,
    params: f.params,
    heldOutNll: meta.held_out_nll,
    cached: r.cached,
  };
}

/** Token ids -> text, special tokens (EOS) dropped. */
export function decodeByteText(ids: number[]): string {
  return byteDecode(ids, { skipSpecialTokens: true });
}

/** What {@link sampleForEval} returns. */
export interface EvalSamples {
  /** What {@link generate} returned (tokens, masks, log-probs, `ended`). */
  gen: Awaited<ReturnType<typeof generate>>;
  /** The decoded responses (EOS dropped). */
  texts: string[];
  /** Mean KL(π‖π_ref) per response: exact over the vocabulary, summed over its positions. */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  responseLength: number;
  /** Share of responses that ended with EOS. */
  eosRate: number;
}

/**
 * The sampling pass of an evaluation: one response per prompt from the problem's current
 * policy (plain sampling from `new Rng(seed)`, EOS = pad = the byte tokenizer's), scored by the
 * frozen reference for the KL — the same prompts and seed give the same draws before and
 * after PPO.
 */
export async function sampleForEval(
  problem: LmPolicyView,
  prompts: number[][],
  opts: { maxNewTokens: number; seed: number; session?: SessionOptions },
): Promise<EvalSamples> {
  const gen = await problem.sample(prompts, {
    maxNewTokens: opts.maxNewTokens,
    eosTokenId: BYTE_EOS_ID,
    padTokenId: BYTE_EOS_ID,
    rng: new Rng(opts.seed),
  });
  let len = 0;
  for (let i = 0; i < gen.rows * gen.cols; i++) len += gen.mask[i];
  const n = gen.rows;
  return {
    gen,
    texts: gen.responses.map(decodeByteText),
    kl: await evalKl(problem, gen, opts.session),
    responseLength: len / n,
    eosRate: gen.ended.reduce((a, b) => a + b, 0) / n,
  };
}
