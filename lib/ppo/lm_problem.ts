/**
 * PPO on a GPT policy with token-level episodes: the same {@link trainPpo} that drives the
 * classic-control actor-critic (`lib/envs/ppo.ts`), with a language model behind
 * {@link PpoProblem}.
 *
 * One rollout = one batch of prompts from an {@link LmTask}; for each prompt the policy
 * samples a response ({@link generate}, KV cache, one seeded {@link Rng}); the task scores
 * each (prompt, response) with one scalar, placed at the response's last real token (its EOS,
 * or the last token when it was cut at `maxNewTokens`), where the episode ends. Every response
 * token is one PPO action; the Rollout is `rows = batch` × `cols = longest response`, one
 * whole row per training example (`exampleSize = cols`), padding after each row's end masked.
 *
 * Models (the four of RLHF; the reward model lives in the task's score):
 * - policy = a GPT (trainable), optionally through LoRA adapters ({@link LmProblemOptions.lora}:
 *   the base weights are frozen inputs of the train step, only the adapters and heads train);
 * - value = {@link LmProblemOptions.valueModel}: `"shared"` (default) puts a value head on the
 *   policy's trunk (`v_head.*`, TRL's `AutoModelForCausalLMWithValueHead` layout), so the value
 *   loss trains the trunk too; `"separate"` gives it its own GPT trunk (`value_model.*`,
 *   initialised as a copy of the policy's initial weights, as lm-human-preferences does) and the
 *   value loss never touches the policy. One train step updates both (one loss, one AdamW);
 * - reference = a frozen copy of the initial GPT weights, run in its own inference session
 *   once per rollout (log π_ref of the sampled tokens, `Rollout.refLogp`). It never enters the
 *   train step: with `kl.placement = "loss"` its log-probs come in as the batch input
 *   `ref_logp`, so no update can touch it. Only `ppo.sync_ref_model` (TR-DPO, ref_sync.ts)
 *   moves it toward the policy, between updates.
 *
 * Positions: prompts are left-padded to the batch's widest (width W), so response token t of
 * every row sits at column W + t of the sequence, and the logits that score it (and the value
 * of the state before it) are those at column W − 1 + t. The train step and the rollout's
 * scoring pass read those T columns with one `Gather` along time (`response_pos = W−1 ..
 * W+T−2`), which has a gradient rule; a `Slice` would need constant bounds.
 *
 * Groups: with `samplesPerPrompt` = k the task is asked for batch / k prompts and each is
 * sampled k times, in consecutive rows (`Rollout.groupSize` = k): the groups the critic-free
 * estimators (`ppo.advantage` = grpo, dr_grpo, rloo) take their baselines from.
 *
 * Critic-free runs (`ppo.advantage` ≠ "gae") hold no value model at all: no value head, no
 * separate value trunk, no value parameters in the train step or its checkpoints, and no
 * value pass over the rollout.
 *
 * Exact KL (`ppo.kl.estimator = "full"`): the rollout scores the sequences with the policy and
 * the reference over the whole vocabulary (rows × cols × V log-probs each, kept for the
 * update) and takes Σ_a π(a)·(log π(a) − log π_ref(a)) per position: in the reward as
 * `Rollout.refKl`, in the loss from the train step's own log-softmax against the batch input
 * `ref_logp_all`.
 *
 * Log-probs: `Rollout.logp` is what {@link generate} measured while sampling (the log-softmax
 * of the decode step's logits in the model's dtype, unmodified policy), not a re-scoring pass, so the first
 * minibatch of a fresh run measures how well the KV-cache decoder and the full forward agree
 * (ratio 1, approx KL ≈ 0; the `logp_gap` metric reports the largest difference per rollout).
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({ gamma: 1, lambda: 0.95, kl: { beta: 0.05 } });
 * const problem = await createLmProblem({
 *   model: { vocabSize: 16, nPositions: 32, nEmbd: 32, nLayer: 1, nHead: 2 },
 *   task: {
 *     prompts: (n, _index, rng) => Array.from({ length: n }, () => [1 + rng.int(15)]),
 *     score: (_p, responses) => responses.map((r) => r.filter((t) => t === 3).length / r.length),
 *   },
 *   cfg, seed: 1, batch: 32, maxNewTokens: 8, eosTokenId: 0, padTokenId: 0,
 * });
 * await trainPpo(problem, { updates: 30, seed: 1, outDir: "results/lm", rng: problem.rng });
 * ```
 * @module
 */
import { memTrace } from "../onnx/mem_trace.ts";
import { UserError } from "../errors.ts";
import { mixReference, syncsDue } from "./ref_sync.ts";
import type * as ort from "onnxruntime-node";
import { Graph } from "../onnx/graph.ts";
import { compile, type Session, tensor } from "../onnx/session.ts";
import { decoderShapes, hiddenSize, initDecoder, sameFamily, trunkShapes } from "../nn/decoder.ts";
import { headNames, headShapes, initHead, VALUE_HEAD } from "../nn/heads.ts";
import {
  type FloatArray,
  generate,
  type GenerateOptions,
  type Generation,
  GptDecoder,
} from "../nn/sample.ts";
import { initLora, loraShapes, mergeLora } from "../nn/lora.ts";
import { Rng } from "../rng.ts";
import { ADVANTAGE_ESTIMATORS, isCriticFree } from "../ppo/config.ts";
import { createPpoTrainerFor } from "./micro_batches.ts";
import { softOverlongPunishment } from "../ppo/shaping.ts";
import type { Rollout } from "../ppo/trainer.ts";
import type { LmProblem, LmProblemOptions, LmScores, LmSequences } from "./lm_types.ts";
import { drawInformative } from "./lm_dynamic.ts";
import { traceLine } from "../setup_trace.ts";
import {
  exactKlAt,
  lmTrainInputs,
  lmTrainPolicy,
  type ModelLayout,
  modelOutputs,
  responseOutputs,
  sequenceFeeds,
  sequenceInputs,
  VALUE_MODEL_PREFIX,
} from "./lm_scoring.ts";

export type { LmProblem, LmProblemOptions, LmScores, LmSequences, LmTask } from "./lm_types.ts";
export { compileLmScorer, VALUE_MODEL_PREFIX } from "./lm_scoring.ts";

/** Per-rollout data the PPO inputs need beyond the Rollout itself. */
interface Extra {
  seqs: LmSequences;
  /** `[rows, cols, V]` log π_ref over the vocabulary (the exact KL in the loss). */
  refAll?: Float32Array;
}

/**
 * Compile the PPO train step, the scoring sessions and the reference for a decoder policy.
 *
 * Init order from `new Rng(opts.seed)`: the policy (unless `opts.init`), then the value head;
 * the returned `rng` carries on from there. The reference is not checkpointed: it is the
 * initial GPT again, so a resumed run must be created with the same `seed`/`init` (trainPpo
 * then restores the policy, optimizer, rng and the prompt cursor from the checkpoint).
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({ gamma: 1, kl: { beta: 0.05, placement: "reward" } });
 * const problem = await createLmProblem({
 *   model, task, cfg, seed: 1, batch: 32, maxNewTokens: 8, eosTokenId: 1, padTokenId: 0,
 * });
 * const roll = await problem.rollout(problem.rng); // rows = 32 responses, cols ≤ 8
 * roll.metrics; // { score_mean, response_length, eos_rate, logp_gap }
 * ```
 */
export async function createLmProblem(opts: LmProblemOptions): Promise<LmProblem> {
  const { model, cfg, task } = opts;
  const dtype = opts.dtype ?? "float32";
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  if (!Number.isInteger(opts.batch) || opts.batch < 1) {
    throw new RangeError(`createLmProblem: batch must be an integer >= 1, got ${opts.batch}`);
  }
  // The exact KL needs full reference (and old) distributions per position, rows × cols × V
  // numbers per rollout: not kept. The sampled-token estimators need only log-probs.
  const klInLoss = cfg.kl.placement === "loss";
  const exactKl = cfg.kl.estimator === "full";
  const critic = !isCriticFree(cfg);
  const k = opts.samplesPerPrompt ?? 1;
  if (!Number.isInteger(k) || k < 1 || opts.batch % k !== 0) {
    throw new RangeError(
      `createLmProblem: batch ${opts.batch} must be a multiple of samplesPerPrompt ${k} (≥ 1)`,
    );
  }
  if (cfg.advantage !== undefined && !ADVANTAGE_ESTIMATORS.includes(cfg.advantage)) {
    throw new Error(
      `createLmProblem: unknown advantage estimator "${cfg.advantage}" (one of ` +
        `${ADVANTAGE_ESTIMATORS.join(", ")})`,
    );
  }
  if (!critic && opts.valueModel !== undefined && opts.valueModel !== "shared") {
    throw new Error(
      `createLmProblem: ppo.advantage "${cfg.advantage}" is critic-free and holds no value ` +
        'model; leave valueModel at "shared" (or unset) or use ppo.advantage "gae"',
    );
  }
  if (cfg.loss === "kl-penalty" && cfg.penalty.estimator === "full") {
    throw new Error(
      'createLmProblem: penalty.estimator "full" is not supported for language models (it ' +
        "would keep rows × cols × vocab log-probs of π_old); use k1, k2 or k3",
    );
  }
  const rng = new Rng(opts.seed);
  const modelShape = decoderShapes(model);
  const policyNames = Object.keys(modelShape);
  const init: Record<string, FloatArray> = {};
  const drawn = opts.init ? undefined : initDecoder(model, rng, dtype);
  for (const n of Object.keys(modelShape)) {
    const src = opts.init?.[n] ?? drawn?.[n];
    if (!src) throw new Error(`createLmProblem: init lacks policy parameter "${n}"`);
    init[n] = opts.adoptInit && src instanceof Arr ? src : Arr.from(src);
  }
  // A separate value model starts as a copy of the policy's initial weights, or of another
  // model's trunk, under its own names (the trunk only: a value model needs no LM head).
  const vm = opts.valueModel ?? "shared";
  const valueSource = !critic
    ? undefined
    : typeof vm === "object"
    ? { cfg: vm.cfg, init: vm.init }
    : vm === "separate"
    ? { cfg: model, init }
    : undefined;
  const layout: ModelLayout = {
    model,
    valueCfg: valueSource && { ...valueSource.cfg, prefix: VALUE_MODEL_PREFIX },
    lora: opts.lora && opts.lora.r > 0 ? opts.lora : undefined,
    logitsAt: opts.logitsAtResponse === true,
    ...(opts.logitsAtResponse ? { maxT: opts.maxNewTokens } : {}),
  };
  if (layout.lora && layout.valueCfg && !sameFamily(layout.valueCfg, model)) {
    throw new Error(
      "createLmProblem: LoRA needs the value model's trunk in the policy's family (one adapter " +
        "layout); use a value model of the same family, or no LoRA",
    );
  }
  const valueShape = layout.valueCfg ? trunkShapes(layout.valueCfg) : {};
  if (valueSource) {
    const srcNames = Object.keys(trunkShapes(valueSource.cfg));
    Object.keys(valueShape).forEach((n, i) => {
      const src = valueSource.init[srcNames[i]];
      if (!src) throw new Error(`createLmProblem: value model init lacks "${srcNames[i]}"`);
      init[n] = Arr.from(src);
    });
  }
  const d = hiddenSize(layout.valueCfg ?? model);
  if (critic) {
    const head = initHead(d, rng, dtype, { std: opts.valueHeadStd ?? 0 });
    const given = typeof vm === "object" ? vm.head : undefined;
    for (const [n, a] of Object.entries(head)) init[n] = given?.[n] ? Arr.from(given[n]) : a;
  }
  const valueHeadShape = critic ? headShapes(d) : {};
  // The trunks' weights: trained as they are, or frozen under LoRA adapters (drawn last, so
  // a run without LoRA draws exactly what it always did).
  const trunkShape = { ...modelShape, ...valueShape };
  const adapterShape = layout.lora ? loraShapes(trunkShape, layout.lora) : {};
  if (layout.lora) Object.assign(init, initLora(trunkShape, layout.lora, rng, dtype));
  // The reference: its own copy, so nothing that owns the policy's buffers can reach it. With
  // LoRA the base is frozen (only ever fed to sessions, never written): it is the reference,
  // which is why the reference sync is refused with LoRA (config.ts refSyncProblems).
  if (layout.lora && cfg.sync_ref_model) {
    throw new UserError(
      "ppo.sync_ref_model: with lora the reference is the adapters' frozen base; fix: set " +
        "ppo.sync_ref_model to false, or turn lora off",
    );
  }
  const reference: Record<string, FloatArray> = Object.fromEntries(
    Object.keys(modelShape).map((n) => [n, layout.lora ? init[n] : Arr.from(init[n])]),
  );

  traceLine("problem: init and reference copied");
  const params = layout.lora
    ? { ...adapterShape, ...valueHeadShape }
    : { ...trunkShape, ...valueHeadShape };
  const frozen = layout.lora ? trunkShape : undefined;
  const sessionOpts = { device: opts.device, threads: opts.threads, sessions: opts.sessions };
  /** The policy's frozen base under LoRA (the reference's arrays: never written). */
  const base = Object.fromEntries(policyNames.map((n) => [n, init[n]])) as Record<
    string,
    Float32Array | Float64Array
  >;
  // The sessions are built concurrently, each on an ORT thread (the FFI's CreateSession is
  // nonblocking): the LoRA sampler (its base weights compiled in and pre-packed; it takes the
  // live adapters as inputs at each sample, so it needs nothing the trainer or a resume sets),
  // the scoring passes, and the train step's. One after the other they were the 0.5B shape's
  // set-up: sampler 30 s, train step 13 s, scoring 1.2 s at load 7.
  let sampler: Promise<GptDecoder> | undefined = layout.lora
    ? GptDecoder.withWeights(model, base, sessionOpts, layout.lora)
    : undefined;
  sampler?.catch(() => {}); // awaited at the first sample; a failure surfaces there
  // Scoring graphs (inference): the policy's with values (every trainable and frozen
  // parameter, the train step's model code; GAE only), a plain GPT's log-probs (the
  // reference), and for the exact KL a plain GPT's log-probs over the whole vocabulary.
  const policyShape = { ...params, ...(frozen ?? {}) };
  const scoreGraph = (withValue: boolean, all = false) => {
    const g = new Graph(withValue ? "lm_score_value" : all ? "lm_score_all" : "lm_score");
    const shapes = withValue ? policyShape : modelShape;
    const params = Object.fromEntries(
      Object.entries(shapes).map(([n, s]) => [n, g.input(n, dtype, s.shape)]),
    );
    const io = sequenceInputs(g);
    const out = withValue
      ? modelOutputs(g, layout, params, ...io)
      : responseOutputs(g, model, params, ...io, false, layout.logitsAt, layout.maxT);
    g.output(out.logp, "logp");
    if (out.value) g.output(out.value, "value");
    if (all) g.output(out.logpAll, "logp_all");
    return compile(g, sessionOpts);
  };
  const scoring = Promise.all([
    critic ? scoreGraph(true) : null,
    scoreGraph(false),
    exactKl ? scoreGraph(false, true) : null,
  ]);
  scoring.catch(() => {}); // awaited after the trainer; a failure surfaces there
  const trainer = await createPpoTrainerFor({
    cfg,
    dtype,
    params,
    frozen,
    init,
    inputs: lmTrainInputs("B", "S", "T"),
    positions: ["B", "T"],
    reference: true,
    numActions: model.vocabSize,
    maxTokens: opts.maxNewTokens,
    policy: lmTrainPolicy(layout, critic),
    ...sessionOpts,
  }).catch((e) => {
    sampler?.then((d) => d.release(), () => {}); // not the trial's: its cache would not free it
    throw e;
  });
  traceLine("problem: trainer ready");
  const count = (shapes: Record<string, { shape: number[] }>) =>
    Object.values(shapes).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const models: Record<string, number> = {
    policy: count(modelShape) + (layout.lora ? count(loraShapes(modelShape, layout.lora)) : 0),
    ...(critic
      ? {
        value: count(valueShape) + count(valueHeadShape) +
          (layout.lora && layout.valueCfg ? count(loraShapes(valueShape, layout.lora)) : 0),
      }
      : {}),
    reference: count(modelShape),
  };

  const [policySession, refSession, fullSession] = await scoring;
  traceLine("problem: scoring sessions ready");
  // Frozen trunk weights (LoRA) as tensors, fed with the trainer's live params.
  const frozenTensors: Record<string, ort.Tensor> = Object.fromEntries(
    Object.entries(frozen ?? {}).map(([n, s]) => [n, tensor(dtype, s.shape, init[n])]),
  );
  const policyParams = (): Record<string, ort.Tensor | FloatArray> => {
    if (!layout.lora) return trainer.paramTensors();
    // Read only (scored, saved): the untargeted weights (the embedding) are not copied.
    return mergeLora(
      base,
      trainer.params() as Record<string, Float32Array | Float64Array>,
      layout.lora,
      { share: true }, // read only, as the live tensors without LoRA: unchanged weights shared
    );
  };

  const runScore = async (
    params: Record<string, ort.Tensor | FloatArray>,
    seqs: LmSequences,
    all: boolean,
  ) => {
    const withValue = headNames(VALUE_HEAD).weight in params;
    if (withValue && !policySession) {
      throw new Error("LmProblem.rescore: a value head given to a critic-free problem");
    }
    const session: Session = all ? fullSession! : withValue ? policySession! : refSession;
    const shapes = withValue && !all ? policyShape : modelShape;
    if (withValue) params = { ...frozenTensors, ...params };
    const feeds: Record<string, ort.Tensor> = {};
    for (const [n, s] of Object.entries(shapes)) {
      const p = params[n];
      if (!p) throw new Error(`LmProblem.rescore: missing parameter "${n}"`);
      feeds[n] = ArrayBuffer.isView(p) ? tensor(dtype, s.shape, p) : p;
    }
    return await session.run({ ...feeds, ...sequenceFeeds(seqs) });
  };
  const rescore = async (
    params: Record<string, ort.Tensor | FloatArray>,
    seqs: LmSequences,
  ): Promise<{ logp: Float64Array; value?: Float64Array }> => {
    const out = await runScore(params, seqs, false);
    return {
      logp: Float64Array.from(out.logp.data as FloatArray),
      value: out.value ? Float64Array.from(out.value.data as FloatArray) : undefined,
    };
  };
  /** Log-probs of the sampled tokens and over the vocabulary (`[rows, cols, V]`, float32). */
  const rescoreAll = async (params: Record<string, ort.Tensor | FloatArray>, seqs: LmSequences) => {
    const out = await runScore(params, seqs, true);
    return {
      logp: Float64Array.from(out.logp.data as FloatArray),
      all: Float32Array.from(out.logp_all.data as FloatArray),
    };
  };
  const V = model.vocabSize;

  const sample = async (prompts: number[][], o: Omit<GenerateOptions, "session">) => {
    const session = sessionOpts;
    if (!layout.lora) {
      return generate({ cfg: model, params: trainer.paramTensors() }, prompts, { ...o, session });
    }
    sampler ??= GptDecoder.withWeights(model, base, session, layout.lora);
    const decoder = await sampler;
    return generate({ cfg: model, params: trainer.paramTensors() }, prompts, { ...o, decoder });
  };

  memTrace("lm problem: trainer and scoring sessions built");
  const extras = new WeakMap<Rollout, Extra>();
  let cursor = 0; // prompts handed out so far
  let optimizerSteps = 0; // for the reference sync (sync_ref_model)

  const problem: LmProblem = {
    cfg,
    trainer,
    rng,
    model,
    reference,
    policyParams,
    releasePolicyParams(p) {
      if (!layout.lora) return; // the trainer's live tensors
      for (const [n, a] of Object.entries(p)) {
        // A merged copy (mergeLora's own buffer), not the base's array: detaching it frees its
        // memory now (the merged targets otherwise stayed resident into the next train step).
        const buf = ArrayBuffer.isView(a) && a !== base[n] ? a.buffer : null;
        if (buf instanceof ArrayBuffer && !buf.detached) buf.transfer(0);
      }
    },
    sample,
    release() {
      sampler?.then((d) => d.release());
      sampler = undefined;
    },
    rescore,
    models,
    async rollout(rng: Rng): Promise<Rollout> {
      const asked = opts.batch / k;
      const drawBatch = async () => {
        const distinct = task.prompts(asked, cursor, rng);
        if (distinct.length !== asked) {
          throw new Error(
            `LmTask.prompts: ${distinct.length} prompts for a batch of ${opts.batch}` +
              (k > 1 ? ` (${asked} prompts × ${k} samples each)` : ""),
          );
        }
        cursor += distinct.length;
        const prompts = k === 1
          ? distinct
          : distinct.flatMap((p) => Array.from({ length: k }, () => p));
        return await sample(prompts, {
          ...opts.sampling,
          maxNewTokens: opts.maxNewTokens,
          eosTokenId: opts.eosTokenId,
          padTokenId: opts.padTokenId,
          rng,
        });
      };
      const scoreOf = async (g: Generation): Promise<LmScores> => {
        const s = await task.score(g.prompts, g.responses);
        return Array.isArray(s) ? { scores: s } : s;
      };
      const genAt = opts.phases?.clock() ?? 0;
      // DAPO's dynamic sampling: batches until the groups whose scores differ fill one.
      const dynamic = cfg.dynamic_sampling != null
        ? await drawInformative({
          groups: asked,
          k,
          maxBatches: cfg.dynamic_sampling,
          pad: opts.padTokenId,
          draw: async () => {
            const g = await drawBatch();
            return { gen: g, scored: await scoreOf(g) };
          },
        })
        : null;
      const gen = dynamic ? dynamic.gen : await drawBatch();
      opts.phases?.add("generation", genAt);
      const scoreAt = opts.phases?.clock() ?? 0;
      const { rows, cols, mask } = gen;
      const seqs: LmSequences = gen;
      // Values of the state before each response token (current params; GAE only), and the
      // reference's log-probs of the sampled tokens: one full forward each over prompt +
      // response. The exact KL scores both policies over the whole vocabulary instead.
      const [pol, ref, full] = await Promise.all([
        critic ? rescore(trainer.paramTensors(), seqs) : null,
        exactKl ? null : rescore(reference, seqs),
        exactKl
          ? Promise.all([rescoreAll(policyParams(), seqs), rescoreAll(reference, seqs)])
          : null,
      ]);
      const refLogp = full ? full[1].logp : ref!.logp;
      // The sampler's log-probs against a full forward: the values pass (GAE) or the exact-KL
      // pass measures it; a critic-free run without the exact KL makes no policy pass.
      const polLogp = pol?.logp ?? full?.[0].logp ?? null;
      const scored = dynamic ? dynamic.scored : await task.score(gen.prompts, gen.responses);
      const { scores, metrics: taskMetrics, components } = Array.isArray(scored)
        ? { scores: scored, components: undefined }
        : scored;
      if (scores.length !== rows || scores.some((s) => !Number.isFinite(s))) {
        throw new Error(`LmTask.score: expected ${rows} finite scores, got [${scores}]`);
      }
      // DAPO's soft overlong punishment, added to the task's score (ppo.overlong_cache).
      const overlong = cfg.overlong_cache != null
        ? gen.responses.map((r) =>
          softOverlongPunishment(r.length, opts.maxNewTokens, cfg.overlong_cache!)
        )
        : null;
      const shaped = overlong ? scores.map((s, r) => s + overlong[r]) : scores;
      opts.phases?.add("scoring", scoreAt);
      const n = rows * cols;
      const roll: Rollout = {
        rows,
        cols,
        rewards: new Float64Array(n),
        values: new Float64Array(n),
        actions: Int32Array.from(gen.tokens),
        logp: Float64Array.from(gen.logp),
        dones: new Uint8Array(n),
        mask: Uint8Array.from(mask),
        lastValues: new Float64Array(rows), // every response ends its episode: no bootstrap
        refLogp: new Float64Array(n),
        ...(exactKl ? { refKl: new Float64Array(n) } : {}),
        groupSize: k,
        ...(components ? { components } : {}),
        ...(cfg.mask_truncated_completions ? { lossMask: Uint8Array.from(mask) } : {}),
        exampleSize: cols,
        samples: rows,
        steps: 0,
        episodes: [],
      };
      let gap = 0;
      for (let i = 0; i < n; i++) {
        if (!mask[i]) continue; // padding keeps 0 everywhere
        if (pol) roll.values[i] = pol.value![i];
        roll.refLogp![i] = refLogp[i];
        if (polLogp) gap = Math.max(gap, Math.abs(polLogp[i] - gen.logp[i]));
        if (full) roll.refKl![i] = exactKlAt(full[0].all, full[1].all, i, V);
        roll.steps++;
      }
      for (let r = 0; r < rows; r++) {
        // A response cut at the token limit: out of the loss (mask_truncated_completions).
        if (roll.lossMask && !gen.ended[r]) roll.lossMask.fill(0, r * cols, (r + 1) * cols);
        const len = gen.responses[r].length, last = r * cols + len - 1;
        roll.rewards[last] = shaped[r];
        roll.dones[last] = 1;
        roll.episodes.push({ return: shaped[r], length: len });
      }
      const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / rows;
      roll.metrics = {
        score_mean: mean(scores),
        response_length: roll.steps / rows,
        eos_rate: mean(gen.ended),
        // Largest |log π| difference between the sampler's KV-cache decode and a full forward
        // with the same params: the two must agree for the first PPO ratio to be 1.
        ...(polLogp ? { logp_gap: gap } : {}),
        ...(overlong ? { overlong_penalty: mean(overlong) } : {}),
        ...(dynamic
          ? { dynamic_batches: dynamic.batches, informative_groups: dynamic.informative / asked }
          : {}),
        ...taskMetrics,
      };
      extras.set(roll, { seqs, ...(full && klInLoss ? { refAll: full[1].all } : {}) });
      return roll;
    },
    inputs(roll: Rollout, examples: number[]): Record<string, ort.Tensor> {
      const extra = extras.get(roll);
      if (!extra) throw new Error("LmProblem.inputs: not a rollout of this problem");
      const out = sequenceFeeds(extra.seqs, examples);
      if (klInLoss) {
        const T = roll.cols, ref = new Arr(examples.length * T);
        examples.forEach((r, j) => ref.set(roll.refLogp!.subarray(r * T, (r + 1) * T), j * T));
        out.ref_logp = tensor(dtype, [examples.length, T], ref);
        if (exactKl) {
          const all = new Arr(examples.length * T * V), src = extra.refAll!;
          examples.forEach((r, j) => all.set(src.subarray(r * T * V, (r + 1) * T * V), j * T * V));
          out.ref_logp_all = tensor(dtype, [examples.length, T, V], all);
        }
      }
      return out;
    },
    // Sampling state lives in trainPpo's rng; only the dataset cursor is ours (and, with the
    // reference sync, the optimizer steps it counts).
    state: () => (cfg.sync_ref_model ? { cursor, optimizer_steps: optimizerSteps } : { cursor }),
    load(s: unknown) {
      cursor = (s as { cursor: number }).cursor;
      const steps = (s as { optimizer_steps?: number }).optimizer_steps ?? 0;
      if (cfg.sync_ref_model && syncsDue(0, steps, cfg.ref_model_sync_steps!) > 0) {
        // The synced reference mixes past policies that no checkpoint holds.
        throw new UserError(
          `ppo.sync_ref_model: this run's reference was synced ${
            syncsDue(0, steps, cfg.ref_model_sync_steps!)
          } time(s) before its checkpoint, and the synced reference is not checkpointed, so ` +
            "the run cannot resume from it; fix: start the run again (delete its folder)",
        );
      }
      optimizerSteps = steps;
    },
    // TR-DPO: every ref_model_sync_steps optimizer steps, ref ← α·policy + (1 − α)·ref.
    ...(cfg.sync_ref_model
      ? {
        afterOptimize(steps: number) {
          const due = syncsDue(optimizerSteps, optimizerSteps + steps, cfg.ref_model_sync_steps!);
          optimizerSteps += steps;
          for (let i = 0; i < due; i++) {
            mixReference(reference, trainer.params(), cfg.ref_model_mixup_alpha!);
          }
          return Promise.resolve();
        },
      }
      : {}),
  };
  return problem;
}
