/**
 * `lm`: RLHF on the user's own model. The policy is a Hugging Face folder of any supported
 * family (GPT-2, Llama 3.x, SmolLM2, Mistral, Qwen2/2.5, Qwen3), with its own tokenizer and
 * chat template; the reward is a reward model (a Hub `*ForSequenceClassification`, one Proxima
 * saved, or one trained here from preference pairs as a cached stage) and/or named reward
 * functions; prompts come from a .txt, .jsonl or .parquet file. PPO is the shared core
 * (lib/ppo/lm_problem.ts), with the value model as TRL offers it (a head on the policy, a copy
 * of the policy, or the reward model's trunk and head) and optional LoRA.
 *
 * The trained policy is written into the bundle as a Hugging Face folder
 * (`checkpoints/hf/policy`, the source dtype, LoRA merged, the tokenizer files copied) and,
 * with LoRA, as a PEFT adapter (`checkpoints/hf/adapter`): ready for `deno task generate`,
 * transformers and peft.
 *
 * @example
 * ```ts
 * await LM_KIND.trial({
 *   policy: "models/qwen", reward_model: "models/qwen-rm", prompts: "data/prompts.jsonl",
 *   updates: 20, lora: { r: 16, alpha: 32 },
 * }, "results/lm/qwen");
 * ```
 * @module
 */
import type { SessionOptions } from "../../onnx/session.ts";
import { decoderShapes, loraDefaults, trunkShapes } from "../../nn/decoder.ts";
import type { HfTokenizer } from "../../nn/hf_tokenizer.ts";
import { saveModelFolder } from "../../nn/checkpoint.ts";
import { savePeftAdapter } from "../../nn/peft.ts";
import type { FloatArray } from "../../nn/sample.ts";
import type { LoraConfig } from "../../nn/lora.ts";
import { scoreSequences } from "../../ppo/reward_model.ts";
import { ConfigError } from "../../ppo/config.ts";
import { Rng } from "../../rng.ts";
import { folderHash } from "../inputs.ts";
import type { LmMemoryInput } from "../memory.ts";
import { isCriticFree } from "../../ppo/config.ts";
import { createLmProblem, type LmProblem } from "../../ppo/lm_problem.ts";
import { evalKl } from "../eval_kl.ts";
import { defineLmTask } from "../lm_task.ts";
import {
  computeRewards,
  makeRewardSamples,
  resolveRewards,
  type RewardComponent,
  rewardLmTask,
  type RewardSample,
  type UserReward,
} from "../rewards.ts";
import { loadUserRewards, rewardInputs, smokeSample, smokeTestRewards } from "../reward_modules.ts";
import { VERIFIABLE_REWARDS, verifiableRewards } from "../verifiable.ts";
import { readPromptSet } from "./data.ts";
import { type LmOfflineData, lmOfflineMethod, planLmOffline } from "./offline.ts";
import { createOfflineProblem, type OfflineLmProblem } from "../../ppo/offline/problem.ts";
import {
  type LmInputPlan,
  type LmInputs,
  type LmRewardModel,
  loadLmInputs,
  loadLmRewardModel,
  planLmInputs,
} from "./inputs.ts";
import type { PlanContext } from "../../trial/contract.ts";
import { memTrace } from "../../onnx/mem_trace.ts";
import {
  checkLmConfig,
  LM_OVERRIDES,
  LM_TASK,
  type LmRunConfig,
  type LmRunInput,
  LmRunSchema,
} from "./schema.ts";
import {
  LM_RM_STAGE,
  LM_STAGE_VERSION,
  LM_STAGES,
  lmRmStageConfig,
  lmStagesFor,
} from "./stages.ts";

/** What an evaluation of the `lm` task reports. */
export interface LmEval {
  /**
   * Mean total reward (Σ weight · component) of the evaluation samples; null when no reward is
   * configured (an offline method without a reward model).
   */
  reward: number | null;
  /** Mean reward-model score (null without a reward model). */
  rm_score: number | null;
  /** Mean KL(π‖π_ref) per response (exact over the vocabulary, summed over its tokens). */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Share of responses that ended with EOS or a stop token. */
  eos_rate: number;
  /** The first few samples, decoded. */
  examples: { prompt: string; response: string; reward: number | null }[];
}

/** A trial's PPO problem and what evaluation and export need. */
export interface LmTaskSetup {
  /** The online PPO problem, or (algorithm "dpo" / "kto") the offline one. */
  problem: LmProblem | OfflineLmProblem;
  inputs: LmInputs;
  rewardModel: LmRewardModel | null;
  rewards: RewardComponent[];
  lora?: LoraConfig;
  record: { reward_model: { hash: string; source: string } | null };
}

/**
 * Text of token ids with special tokens dropped. Ids past the tokenizer's vocabulary (a model's
 * embedding is often padded: Qwen's 151936 rows hold 151669 tokens) have no text and are
 * skipped, as transformers' decode does; the policy may still sample them.
 */
export function textOf(tok: HfTokenizer, ids: readonly number[]): string {
  return tok.decode(ids.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true });
}

/** The reward model's scores of samples: on the policy's ids, or on re-encoded text. */
function rmComponent(
  rm: LmRewardModel,
  policyTok: HfTokenizer,
  input: "tokens" | "text",
  session?: SessionOptions,
): UserReward {
  const model = rm.model;
  const pad = model.readAtPadId ?? rm.tokenizer?.padId ?? policyTok.padId;
  return {
    batch: async (samples: readonly RewardSample[]) => {
      const seqs = samples.map((s) =>
        input === "tokens"
          ? [...s.prompt, ...s.response]
          : rm.tokenizer!.encode(textOf(policyTok, [...s.prompt, ...s.response]))
      );
      return await scoreSequences(model, seqs, { padTokenId: pad, session });
    },
  };
}

/** Not the built-in reward-model reward (what an offline method without one evaluates). */
const isNotRm = (r: { name: string; module?: string }) => r.name !== "rm" || Boolean(r.module);

/** The built-in rewards' names (what a did-you-mean offers besides a module's exports). */
const LM_BUILTIN_REWARDS = ["rm", "length", "missing_eos", ...VERIFIABLE_REWARDS];

/**
 * The trial's reward components: the config's list (built-ins, the verifiable rewards, the
 * user's modules imported here: a sweep's worker loads them itself), "missing_eos" added when
 * penalised.
 */
async function lmRewards(
  c: LmRunConfig,
  eosIds: readonly number[],
  rm: UserReward | null,
  user: Record<string, UserReward> = {},
): Promise<RewardComponent[]> {
  const eos = new Set(eosIds);
  const builtins: Record<string, UserReward> = {
    length: (s) => s.response.length,
    missing_eos: (s) => (eos.has(s.response.at(-1)!) ? 0 : -1),
    ...verifiableRewards(c.rewards),
  };
  if (rm) builtins.rm = rm;
  const refs = [...c.rewards];
  if (c.missing_eos_penalty !== null && !refs.some((r) => r.name === "missing_eos")) {
    refs.push({ name: "missing_eos", weight: c.missing_eos_penalty });
  }
  const modules = await loadUserRewards(LM_TASK, c.rewards, LM_BUILTIN_REWARDS);
  return resolveRewards(LM_TASK, refs, builtins, { user: { ...user, ...modules } });
}

/**
 * The rewards checked before any model loads: every module imported and every name resolved
 * (did-you-mean), then each per-sample function run on the first prompt row with a dummy
 * response. The reward model (a batch) is left for the rollout.
 */
async function preflightLm(c: LmRunConfig, user?: Record<string, UserReward>): Promise<void> {
  const noRm: UserReward = { batch: (ss) => ss.map(() => 0) };
  const components = await lmRewards(c, [], noRm, user);
  const rows = await readPromptSet(LM_TASK, "prompts", c.prompts);
  const first = rows[0];
  const text = "text" in first ? first.text : first.messages.at(-1)!.content;
  await smokeTestRewards(LM_TASK, c.rewards, components, smokeSample(text, first.row ?? {}));
}

/** Sample the evaluation prompts in turn from `new Rng(seed)`; rewards, KL, length. */
async function evaluateLm(
  s: LmTaskSetup,
  c: LmRunConfig,
  session?: SessionOptions,
): Promise<LmEval> {
  const { problem, inputs } = s, tok = inputs.policy.tokenizer;
  const prompts = Array.from(
    { length: c.eval.samples },
    (_, i) => inputs.evalPrompts[i % inputs.evalPrompts.length],
  );
  const gen = await problem.sample(prompts, {
    maxNewTokens: c.max_new_tokens,
    temperature: c.temperature,
    topP: c.top_p,
    topK: c.top_k,
    eosTokenId: inputs.eosIds,
    padTokenId: tok.padId,
    rng: new Rng(c.eval.seed),
  });
  let len = 0;
  for (let i = 0; i < gen.rows * gen.cols; i++) len += gen.mask[i];
  const decode = (ids: number[]) => textOf(tok, ids);
  const rows = prompts.map((_, i) => inputs.evalRows[i % inputs.evalRows.length]);
  const samples = makeRewardSamples(gen.prompts, gen.responses, decode, inputs.eosIds[0], rows);
  const values = s.rewards.length ? await computeRewards(LM_TASK, s.rewards, samples) : null;
  const n = gen.rows, mean = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0) / n;
  return {
    reward: values ? mean(values.total) : null,
    rm_score: values?.parts.rm ? mean(values.parts.rm) : null,
    kl: await evalKl(problem, gen, session),
    response_length: len / n,
    eos_rate: mean(gen.ended),
    examples: samples.slice(0, 4).map((x, i) => ({
      prompt: x.promptText,
      response: x.text,
      reward: values ? values.total[i] : null,
    })),
  };
}

/**
 * The current policy as a Hugging Face folder at `modelDir` (the source dtype, LoRA merged,
 * the tokenizer files copied) and, with LoRA, its PEFT adapter at `adapterDir`.
 */
async function savePolicy(
  setup: LmTaskSetup,
  c: LmRunConfig,
  modelDir: string,
  adapterDir: string,
): Promise<void> {
  const { problem, inputs, lora } = setup, policy = inputs.policy;
  const current = problem.policyParams();
  // The policy's own weights (the trainer also holds the value head or value trunk).
  const params = Object.fromEntries(
    Object.keys(decoderShapes(policy.cfg)).map((n) => {
      const p = current[n];
      return [n, ArrayBuffer.isView(p) ? p : (p.data as Float32Array)];
    }),
  );
  const src = policy.folder.sourceDtype;
  try {
    await saveModelFolder(modelDir, policy.cfg, params, {
      dtype: src === "float64" ? "float32" : src,
      config: policy.folder.config,
      generation: policy.folder.generation?.raw,
      tokenizerFiles: policy.tokenizerFiles,
    });
  } finally {
    problem.releasePolicyParams?.(current);
  }
  if (lora) {
    await savePeftAdapter(
      adapterDir,
      lora,
      problem.trainer.params() as Record<string, FloatArray>,
      { baseModel: c.policy },
    );
  }
}

/** What the inputs {@link planLmInputs} reads depend on. */
const inputsKey = (c: LmRunConfig) =>
  "lm-inputs:" + JSON.stringify([
    c.policy,
    c.reward_model,
    c.reward_input,
    c.prompts,
    c.eval.prompts,
    c.chat_template,
    c.max_new_tokens,
    c.stop,
    c.algorithm,
    c.preferences,
    c.examples,
  ]);

/** The plan of a config's inputs with its offline data (null for "ppo"). */
type LmPlan = LmInputPlan & { offline: LmOfflineData | null };

/**
 * The inputs of a config without the weights, read once per planning pass or trial (`ctx`:
 * the plan's or the trial's memo, never module state: a sweep's parent plans every trial and
 * must not keep what it read).
 */
function lmPlan(c: LmRunConfig, ctx: PlanContext): Promise<LmPlan> {
  const key = inputsKey(c);
  if (!ctx.memo.has(key)) {
    ctx.memo.set(
      key,
      planLmInputs(c).then(async (p) => ({
        ...p,
        offline: await planLmOffline(c, p.policy, p.eosIds),
      })),
    );
  }
  return ctx.memo.get(key)! as Promise<LmPlan>;
}

/** The trial's peak-memory estimate's input (the model and value trunk from the inputs). */
export function lmMemoryInput(c: LmRunConfig, inputs: LmInputPlan): LmMemoryInput {
  const model = inputs.policy.cfg;
  const lora = c.lora.r > 0
    ? {
      r: c.lora.r,
      alpha: c.lora.alpha,
      ...loraDefaults(model),
      ...(c.lora.targets ? { targets: c.lora.targets } : {}),
    }
    : undefined;
  const valueCfg = c.value_model === "from_policy"
    ? model
    : c.value_model === "from_reward_model"
    ? inputs.rewardModel?.model.cfg
    : undefined;
  const longest = Math.max(...inputs.prompts.map((p) => p.length));
  return {
    model,
    batch: c.batch,
    minibatches: c.ppo.minibatches,
    microBatches: c.ppo.micro_batches,
    seqLen: longest + c.max_new_tokens,
    lora,
    criticFree: c.algorithm !== "ppo" || isCriticFree(c.ppo),
    exactKl: c.ppo.kl.estimator === "full",
    responseLen: c.max_new_tokens, // the head runs at the response only (logitsAtResponse)
    ppo: c.ppo,
    ...(valueCfg ? { valueModel: valueCfg } : {}),
    valueParams: valueCfg
      ? Object.values(trunkShapes(valueCfg)).reduce(
        (a, { shape }) => a + shape.reduce((x, y) => x * y, 1),
        0,
      )
      : 0,
  };
}

/** The `lm` task (built by `defineLmTask`). */
export const LM_KIND = defineLmTask<LmRunConfig, LmTaskSetup, LmEval, LmRunInput>({
  name: LM_TASK,
  description: "RLHF on your own Hugging Face model, reward model and prompts",
  schema: LmRunSchema,
  overrides: LM_OVERRIDES,
  check: checkLmConfig,
  inputs: (c) =>
    ([
      ["policy", c.policy],
      ["reward_model", c.reward_model],
      ["reward_model_data", c.reward_model_data],
      ["prompts", c.prompts],
      ["eval.prompts", c.eval.prompts],
      ["preferences", c.preferences],
      ["examples", c.examples],
    ] as const).flatMap(([key, path]): { key: string; path: string }[] =>
      path === null ? [] : [{ key, path }]
    ).concat(rewardInputs(c.rewards)), // the user's reward modules: hashed into the trial id
  preflight: (c, ctx) => preflightLm(c, ctx.rewards),
  async validate(c, ctx) {
    await lmPlan(c, ctx); // every input but the weights read and checked (ConfigErrors name keys)
    return [];
  },
  // defineLmTask refuses a trial that cannot fit, at planning and at the trial's start: from
  // config.json and the safetensors headers (the weights load in `problem`).
  memory: async (c, ctx) => lmMemoryInput(c, await lmPlan(c, ctx)),
  memoryKeys: { batch: "batch", minibatches: "ppo.minibatches", seqLen: "max_new_tokens" },
  stages: LM_STAGES,
  stagesFor: lmStagesFor,
  stageVersion: LM_STAGE_VERSION,
  samples: (c) => c.batch,
  async problem(c, ctx) {
    // Every input checked before any stage runs (the memory check at the trial's start read
    // all but the weights, kept in the trial's memo); the weights load here.
    const plan = await lmPlan(c, ctx);
    const inputs = await loadLmInputs(c, plan);
    memTrace("lm: folders loaded");
    let rm = inputs.rewardModel, record: LmTaskSetup["record"]["reward_model"] = null;
    if (rm) record = { hash: folderHash(rm.dir), source: "reward_model" };
    else if (c.reward_model_data !== null) {
      const st = await ctx.stage(LM_RM_STAGE, lmRmStageConfig(c));
      ctx.log?.(`${LM_RM_STAGE}: ${st.cached ? "reused" : "trained"} ${st.hash}`);
      rm = await loadLmRewardModel("reward_model_data", `${st.dir}/model`);
      record = { hash: st.hash, source: "reward_model_data" };
    }
    if (c.value_model === "from_reward_model" && c.reward_input === "text") {
      throw new ConfigError(
        `${LM_TASK} config: value_model "from_reward_model" reads the policy's token ids, but ` +
          `reward_input is "text" (the reward model has another tokenizer)\n  fix: use ` +
          `value_model "shared" or "from_policy"`,
      );
    }
    // An offline method without a reward model evaluates without the "rm" reward.
    const rewards = await lmRewards(
      rm || c.algorithm === "ppo" ? c : { ...c, rewards: c.rewards.filter(isNotRm) },
      inputs.eosIds,
      rm ? rmComponent(rm, inputs.policy.tokenizer, c.reward_input, ctx.session) : null,
      ctx.rewards,
    );
    if (plan.offline) {
      const problem = await createOfflineProblem({
        model: inputs.policy.cfg,
        init: inputs.policy.params,
        method: lmOfflineMethod(c, plan.offline),
        seed: c.seed,
        device: ctx.session?.device,
        threads: ctx.session?.threads,
        sessions: ctx.session?.sessions,
      });
      return { problem, inputs, rewardModel: rm, rewards, record: { reward_model: record } };
    }
    const tok = inputs.policy.tokenizer, prompts = inputs.prompts;
    const lora: LoraConfig | undefined = c.lora.r > 0
      ? {
        r: c.lora.r,
        alpha: c.lora.alpha,
        ...loraDefaults(inputs.policy.cfg),
        ...(c.lora.targets ? { targets: c.lora.targets } : {}),
      }
      : undefined;
    const rmParams = rm?.model.params as Record<string, FloatArray> | undefined;
    const problem = await createLmProblem({
      model: inputs.policy.cfg,
      task: rewardLmTask({
        name: LM_TASK,
        prompts: (n, index) =>
          Array.from({ length: n }, (_, k) => {
            const j = (index + k) % prompts.length;
            return { ids: prompts[j], row: inputs.promptRows[j] };
          }),
        rewards,
        decode: (ids) => textOf(tok, ids),
        eosTokenId: inputs.eosIds[0],
        aliases: rm ? { rm_score: "rm" } : {},
      }),
      cfg: c.ppo,
      seed: c.seed,
      batch: c.batch,
      samplesPerPrompt: c.samples_per_prompt,
      maxNewTokens: c.max_new_tokens,
      eosTokenId: inputs.eosIds,
      padTokenId: tok.padId,
      sampling: { temperature: c.temperature, topP: c.top_p, topK: c.top_k },
      init: inputs.policy.params,
      adoptInit: true, // the loaded weights are only read from here on
      // A Hub vocabulary (150K rows) makes the [B, S, V] logits of the prompt positions the
      // largest tensors of a pass: the head runs at the response's columns only.
      logitsAtResponse: true,
      valueModel: c.value_model === "shared"
        ? "shared"
        : c.value_model === "from_policy"
        ? "separate"
        : {
          cfg: rm!.model.cfg,
          init: rmParams!,
          // TRL's value model is the reward model itself: its score head starts the value head.
          head: {
            "v_head.weight": rmParams!["r_head.weight"],
            "v_head.bias": rmParams!["r_head.bias"],
          },
        },
      lora,
      device: ctx.session?.device,
      threads: ctx.session?.threads,
      sessions: ctx.session?.sessions,
      phases: ctx.phases,
    });
    return { problem, inputs, rewardModel: rm, rewards, lora, record: { reward_model: record } };
  },
  evaluate: (setup, c, ctx) => evaluateLm(setup, c, ctx.session),
  async finish(setup, c, outDir) {
    await Deno.mkdir(`${outDir}/hf`, { recursive: true });
    await savePolicy(setup, c, `${outDir}/hf/policy`, `${outDir}/hf/adapter`);
  },
  // save_steps' checkpoint-N/: the model folder itself, the PEFT adapter in adapter/.
  savePretrained: (setup, c, dir) => savePolicy(setup, c, dir, `${dir}/adapter`),
  finalFiles: ["hf"],
  summary: (e) => ({
    reward: e.after.reward,
    reward_before: e.before.reward,
    rm_score: e.after.rm_score,
    rm_score_before: e.before.rm_score,
    kl: e.after.kl,
    response_length: e.after.response_length,
    eos_rate: e.after.eos_rate,
  }),
  progress: { reward: "reward/total", kl: "kl_ref" },
  metrics: {
    named: {
      reward: "mean total reward of the evaluation samples after PPO",
      reward_before: "mean total reward of the starting policy",
      rm_score: "mean reward-model score after PPO",
      rm_score_before: "mean reward-model score of the starting policy",
      kl: "KL(π‖π_ref) per response after PPO (nats)",
      response_length: "mean response length after PPO (tokens)",
      eos_rate: "share of responses that ended with EOS after PPO",
    },
    columns: [
      "score_mean",
      "response_length",
      "eos_rate",
      "logp_gap",
      "reward/total",
      "reward/rm",
      "reward/length",
      "reward/missing_eos",
      "rm_score",
    ],
  },
});

/** The kind's parse, trial and summary functions under the task's names. */
export const { parse: parseLmConfig, trial: runLmTrial, summarize: summarizeLmTrial } = LM_KIND;
