/**
 * The `sentiment` rewards and PPO task: reward = Σ weight · component over named components —
 * the reward model (`rm`, batched), the hidden gold score (`gold`), `length`, `eos`, or the
 * user's own — with `rm` and `gold` always computed and logged per update (`rm_score`,
 * `gold_score`, `reward/<name>`); prompts are the openings in turn.
 *
 * @example
 * ```ts
 * const rewards = sentimentRewards([{ name: "rm", weight: 1 }], rm, { maxNewTokens: 32 });
 * const task = sentimentTask(rewards); // an LmTask for createLmProblem
 * ```
 * @module
 */
import type { SessionOptions } from "../../onnx/session.ts";
import type { DecoderConfig } from "../../nn/decoder.ts";
import type { FloatArray } from "../../nn/sample.ts";
import { BYTE_EOS_ID, byteEncode } from "../../nn/tokenizer.ts";
import { scoreSequences } from "../../ppo/reward_model.ts";
import { decodeByteText } from "../byte_lm.ts";
import type { LmTask } from "../../ppo/lm_problem.ts";
import {
  type BatchRewardFn,
  resolveRewards,
  type RewardComponent,
  type RewardFn,
  rewardLmTask,
  type UserReward,
} from "../rewards.ts";
import { goldSentiment, SENTIMENT_OPENINGS, SENTIMENT_TASK } from "./world.ts";

/** A reward model as a batched reward component's function (prompt ++ response, one call). */
export function rewardModelReward(
  rm: { cfg: DecoderConfig; params: Record<string, FloatArray> },
  session?: SessionOptions,
): BatchRewardFn {
  return async (samples) =>
    await scoreSequences(rm, samples.map((s) => [...s.prompt, ...s.response]), { session });
}

/**
 * Built-in reward functions by name: `gold` (the hidden gold score; for ablations and
 * monitoring), `length` (response tokens / max_new_tokens, a length bonus or — with a negative
 * weight — penalty), `eos` (1 when the response ended with EOS, 0 when it was cut).
 * `rm` (the reward model) needs the model, so it is built by {@link sentimentRewards}.
 */
export function builtinSentimentRewards(maxNewTokens: number): Record<string, RewardFn> {
  return {
    gold: (s) => goldSentiment(s.text),
    length: (s) => s.response.length / maxNewTokens,
    eos: (s) => (s.ended ? 1 : 0),
  };
}

/**
 * The reward components of a config's `rewards` list: `rm` (the reward model), the built-ins
 * and `userRewards`; `rm` and `gold` are added with weight 0 when absent, so both are always
 * logged. Throws (before anything runs) on an unknown name, listing the known ones.
 */
export function sentimentRewards(
  refs: readonly { name: string; weight: number }[],
  rm: { cfg: DecoderConfig; params: Record<string, FloatArray> },
  opts: {
    maxNewTokens: number;
    userRewards?: Record<string, UserReward>;
    session?: SessionOptions;
  },
): RewardComponent[] {
  const builtins: Record<string, UserReward> = {
    rm: { batch: rewardModelReward(rm, opts.session) },
    ...builtinSentimentRewards(opts.maxNewTokens),
  };
  return resolveRewards(SENTIMENT_TASK, refs, builtins, {
    user: opts.userRewards,
    monitors: ["rm", "gold"],
  });
}

/** The prompts: the openings in turn, from the problem's cursor. */
export function sentimentPrompts(
  n: number,
  index: number,
  openings: readonly string[] = SENTIMENT_OPENINGS,
): number[][] {
  return Array.from(
    { length: n },
    (_, k) => byteEncode(openings[(index + k) % openings.length]),
  );
}

/**
 * The `sentiment` LmTask: openings in turn as prompts, reward = Σ weight · component; metrics
 * `rm_score`, `gold_score` and `reward/<name>` per component.
 */
export function sentimentTask(
  rewards: readonly RewardComponent[],
  prompts: readonly string[] = SENTIMENT_OPENINGS,
): LmTask {
  return rewardLmTask({
    name: SENTIMENT_TASK,
    prompts: (n, index) => sentimentPrompts(n, index, prompts),
    rewards,
    decode: decodeByteText,
    eosTokenId: BYTE_EOS_ID,
    aliases: { rm_score: "rm", gold_score: "gold" },
  });
}
