/**
 * `rlvr`: reinforcement learning with verifiable rewards, on two cores, no download. A tiny
 * byte-level GPT is SFT'd briefly on worked addition problems (corpus.ts: `"47+38="` ->
 * `"<think>7+8=15,4+3+1=8</think><answer>85</answer>"`), then trained critic-free — GRPO,
 * Dr. GRPO or RLOO (`ppo.advantage`), `samples_per_prompt` responses per problem — on the
 * verifiable rewards `exact_match` (the `<answer>` against the problem's answer, which reaches
 * the reward as `sample.row.answer`) and `format` (the task's R1-style pattern
 * {@link RLVR_FORMAT}), lib/tasks/verifiable.ts. Training problems are drawn from the trial's
 * generator; evaluation problems come from the held-out split (never trained on).
 *
 * Evaluation ({@link evaluateRlvrPolicy}, before and after RL, and every `eval.every` updates
 * into metrics.jsonl as `eval/<name>`): `eval.k` samples (temperature 1) for each of
 * `eval.problems` held-out problems — pass@1 (share of samples right), pass@k (share of
 * problems with at least one right), format rate, mean response length, and the mean lengths
 * of right and wrong responses (Dr. GRPO's finding is about the wrong ones).
 *
 * @example
 * ```ts
 * const r = await runRlvrTrial({ seed: 1, ppo: { advantage: "dr_grpo" } }, "results/rlvr/s1");
 * r.before.pass1; // the SFT policy's held-out accuracy
 * r.after.pass1;  // after RL
 * ```
 * @module
 */

import { BYTE_EOS_ID, byteEncode } from "../../nn/tokenizer.ts";
import { Rng } from "../../rng.ts";
import {
  byteDecoderConfig,
  decodeByteText,
  loadSftStage,
  sampleForEval,
  type SftStage,
} from "../byte_lm.ts";
import { createLmProblem, type LmProblem, type LmTask } from "../../ppo/lm_problem.ts";
import { defineLmTask } from "../lm_task.ts";
import { resolveRewards, type RewardComponent, rewardLmTask, type UserReward } from "../rewards.ts";
import { loadUserRewards, rewardInputs, smokeSample, smokeTestRewards } from "../reward_modules.ts";
import { exactMatch, verifiableRewards } from "../verifiable.ts";
import { drawRlvrProblems, RLVR_FORMAT, RLVR_TASK, rlvrPrompt } from "./corpus.ts";
import {
  checkRlvrConfig,
  RLVR_OVERRIDES,
  type RlvrRunConfig,
  type RlvrRunInput,
  RlvrRunSchema,
} from "./schema.ts";
import {
  RLVR_STAGE_VERSION,
  RLVR_STAGES,
  rlvrSftConfig,
  rlvrSftStage,
  rlvrStagesFor,
} from "./stages.ts";

/** What {@link evaluateRlvrPolicy} reports. */
export interface RlvrEval {
  /** Share of held-out samples whose answer is right (pass@1, k samples per problem). */
  pass1: number;
  /** Share of held-out problems with at least one right answer among their k samples. */
  passk: number;
  /** Share of samples in the task's format. */
  format_rate: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Mean length of the right responses (null: none). */
  length_correct: number | null;
  /** Mean length of the wrong responses (null: none). */
  length_incorrect: number | null;
  /** Mean KL(π‖π_ref) per response (k1). */
  kl: number;
  /** Share of responses that ended with EOS. */
  eos_rate: number;
  /** A few samples, decoded and judged. */
  examples: { prompt: string; response: string; answer: number; correct: boolean }[];
}

/** The held-out problems of an evaluation (the same for every trial with the same eval). */
const heldOut = (c: RlvrRunConfig) =>
  drawRlvrProblems(new Rng(c.eval.seed), c.eval.problems, c.max_operand, "held_out");

/**
 * `eval.k` samples for each held-out problem from the problem's current policy (plain
 * sampling from `new Rng(eval.seed)`: the same draws before and after RL), judged.
 */
export async function evaluateRlvrPolicy(problem: LmProblem, c: RlvrRunConfig): Promise<RlvrEval> {
  const problems = heldOut(c), k = c.eval.k;
  const prompts = problems.flatMap((p) =>
    Array.from({ length: k }, () => byteEncode(rlvrPrompt(p)))
  );
  const { gen, texts, kl, responseLength, eosRate } = await sampleForEval(problem, prompts, {
    maxNewTokens: c.max_new_tokens,
    seed: c.eval.seed,
  });
  const format = new RegExp(RLVR_FORMAT);
  const right = texts.map((t, i) => exactMatch(t, problems[Math.floor(i / k)].answer) === 1);
  const lens = gen.responses.map((r) => r.length);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    pass1: right.filter(Boolean).length / right.length,
    passk: problems.filter((_, p) => right.slice(p * k, (p + 1) * k).some(Boolean)).length /
      problems.length,
    format_rate: texts.filter((t) => format.test(t)).length / texts.length,
    response_length: responseLength,
    length_correct: mean(lens.filter((_, i) => right[i])),
    length_incorrect: mean(lens.filter((_, i) => !right[i])),
    kl,
    eos_rate: eosRate,
    examples: problems.slice(0, 4).map((p, j) => ({
      prompt: rlvrPrompt(p),
      response: texts[j * k],
      answer: p.answer,
      correct: right[j * k],
    })),
  };
}

/** Built-in reward names (besides the user's modules). */
const BUILTINS = ["exact_match", "format", "length"];

/** The reward components of a config: built-ins (format with the task's pattern) and modules. */
async function rlvrRewards(
  c: RlvrRunConfig,
  user: Record<string, UserReward> = {},
): Promise<RewardComponent[]> {
  const v = verifiableRewards(c.rewards, { pattern: RLVR_FORMAT });
  const builtins: Record<string, UserReward> = {
    exact_match: v.exact_match,
    format: v.format,
    length: (s) => s.response.length,
  };
  const modules = await loadUserRewards(RLVR_TASK, c.rewards, BUILTINS);
  return resolveRewards(RLVR_TASK, c.rewards, builtins, {
    user: { ...user, ...modules },
    monitors: ["exact_match", "format"],
  });
}

/**
 * The RL task: `n` training problems from the trial's generator, each with its row
 * (`{ answer }`); with `eval.every`, every that many updates the held-out evaluation of the
 * policy that sampled the rollout goes into its metrics row as `eval/<name>`.
 */
function rlvrTask(
  c: RlvrRunConfig,
  rewards: readonly RewardComponent[],
  policy: () => LmProblem | undefined,
): LmTask {
  let update = 0;
  const base = rewardLmTask({
    name: RLVR_TASK,
    prompts: (n, index, rng) => {
      update = Math.floor(index / n);
      return drawRlvrProblems(rng, n, c.max_operand, "train").map((p) => ({
        ids: byteEncode(rlvrPrompt(p)),
        row: { answer: p.answer },
      }));
    },
    rewards,
    decode: decodeByteText,
    eosTokenId: BYTE_EOS_ID,
    aliases: { accuracy: "exact_match", format_rate: "format" },
  });
  return {
    prompts: base.prompts,
    async score(prompts, responses) {
      const s = await base.score(prompts, responses);
      const p = policy();
      if (c.eval.every > 0 && p && update % c.eval.every === 0 && !Array.isArray(s)) {
        const e = await evaluateRlvrPolicy(p, c);
        s.metrics = {
          ...s.metrics,
          "eval/pass1": e.pass1,
          "eval/passk": e.passk,
          "eval/format_rate": e.format_rate,
          "eval/response_length": e.response_length,
          "eval/length_incorrect": e.length_incorrect ?? NaN,
        };
      }
      return s;
    },
  };
}

/** What an `rlvr` trial records besides its evaluations. */
export interface RlvrSetup {
  problem: LmProblem;
  sft: SftStage;
  record: { sft: { hash: string; held_out_nll: number } };
}

/** The named metrics of a finished trial. */
export const RLVR_NAMED_METRICS: Readonly<Record<string, string>> = {
  pass1: "held-out accuracy (pass@1, sampled) after RL",
  pass1_before: "the same for the SFT policy (the baseline)",
  passk: "held-out pass@k (eval.k samples per problem) after RL",
  passk_before: "the same for the SFT policy",
  format_rate: "share of held-out samples in the task's format after RL",
  format_rate_before: "the same for the SFT policy",
  response_length: "mean held-out response length after RL (tokens)",
  response_length_before: "the same for the SFT policy",
  length_incorrect: "mean length of the wrong held-out responses after RL (tokens)",
  length_incorrect_before: "the same for the SFT policy",
  kl: "KL(π‖π_ref) per held-out response after RL (nats)",
  sft_nll: "held-out NLL of the SFT policy (nats/token)",
};

/** The `rlvr` task: its trial function (`RLVR_KIND.trial`) and trial kind. */
export const RLVR_KIND = defineLmTask<RlvrRunConfig, RlvrSetup, RlvrEval, RlvrRunInput>({
  name: RLVR_TASK,
  description: "RL with verifiable rewards: GRPO / Dr. GRPO / RLOO on seeded addition problems",
  schema: RlvrRunSchema,
  overrides: RLVR_OVERRIDES,
  check: checkRlvrConfig,
  inputs: (c) => rewardInputs(c.rewards), // the user's reward modules: hashed into the trial id
  stages: RLVR_STAGES,
  stagesFor: rlvrStagesFor,
  stageVersion: RLVR_STAGE_VERSION,
  samples: (c) => c.prompts_per_update * c.samples_per_prompt,
  memory: (c) => ({
    model: byteDecoderConfig(c.model),
    batch: c.prompts_per_update * c.samples_per_prompt,
    minibatches: c.ppo.minibatches,
    microBatches: c.ppo.micro_batches,
    seqLen: c.model.n_positions,
    criticFree: c.ppo.advantage !== "gae",
  }),
  memoryKeys: {
    batch: "prompts_per_update",
    minibatches: "ppo.minibatches",
    seqLen: "model.n_positions",
  },
  async preflight(c, ctx) {
    const p = drawRlvrProblems(new Rng(c.seed), 1, c.max_operand, "train")[0];
    await smokeTestRewards(
      RLVR_TASK,
      c.rewards,
      await rlvrRewards(c, ctx.rewards),
      smokeSample(rlvrPrompt(p), { answer: p.answer }),
    );
  },
  async problem(c, ctx) {
    const rewards = await rlvrRewards(c, ctx.rewards);
    const sft = await loadSftStage(ctx.stage, rlvrSftStage.name, rlvrSftConfig(c), {
      log: ctx.log,
      label: "rlvr sft",
    });
    // The task evaluates the problem's policy (eval.every), so it reads it once it exists.
    const built: { problem?: LmProblem } = {};
    const problem = built.problem = await createLmProblem({
      model: sft.cfg,
      task: rlvrTask(c, rewards, () => built.problem),
      cfg: c.ppo,
      seed: c.seed,
      batch: c.prompts_per_update * c.samples_per_prompt,
      samplesPerPrompt: c.samples_per_prompt,
      maxNewTokens: c.max_new_tokens,
      eosTokenId: BYTE_EOS_ID,
      padTokenId: BYTE_EOS_ID,
      init: sft.params,
      device: ctx.session?.device,
      threads: ctx.session?.threads,
      sessions: ctx.session?.sessions,
    });
    return { problem, sft, record: { sft: { hash: sft.hash, held_out_nll: sft.heldOutNll } } };
  },
  evaluate: (setup, c) => evaluateRlvrPolicy(setup.problem, c),
  summary: (e) => ({
    pass1: e.after.pass1,
    pass1_before: e.before.pass1,
    passk: e.after.passk,
    passk_before: e.before.passk,
    format_rate: e.after.format_rate,
    format_rate_before: e.before.format_rate,
    response_length: e.after.response_length,
    response_length_before: e.before.response_length,
    length_incorrect: e.after.length_incorrect,
    length_incorrect_before: e.before.length_incorrect,
    kl: e.after.kl,
    sft_nll: e.sft.held_out_nll,
  }),
  progress: { acc: "accuracy", format: "format_rate", len: "response_length" },
  metrics: {
    named: RLVR_NAMED_METRICS,
    columns: [
      "score_mean",
      "response_length",
      "eos_rate",
      "logp_gap",
      "accuracy",
      "format_rate",
      "reward/total",
      "reward/exact_match",
      "reward/format",
      "eval/pass1",
      "eval/passk",
      "eval/format_rate",
      "eval/response_length",
      "eval/length_incorrect",
    ],
  },
});

/** The kind's parse, trial and summary functions under the task's names. */
export const {
  parse: parseRlvrConfig,
  trial: runRlvrTrial,
  summarize: summarizeRlvrTrial,
} = RLVR_KIND;
