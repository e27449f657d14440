/**
 * `jsx`: React components from prompts. A tiny byte-level GPT is SFT'd (briefly, on purpose)
 * on generated (prompt, component) pairs, then PPO raises the share of its outputs that are
 * valid JSX components, with a reward computed by a real parser (acorn + acorn-jsx).
 *
 * The world (corpus.ts, {@link drawJsxSpec}): six templates over small word lists
 * ({@link JSX_WORDS}), each a prompt and a one-line component, written as an arrow function
 * (or, in `function_share` of the corpus, as a function declaration):
 *
 *     "A button labelled Save"          -> " const SaveButton = () => <button>Save</button>;"
 *     "A link to help"                  -> ' const HelpLink = () => <a href="/help">Help</a>;'
 *     "An input for email"              -> ' const EmailInput = () => <input placeholder="Email" />;'
 *     "A heading saying Hello"          -> " const HelloTitle = () => <h1>Hello</h1>;"
 *     "A list of tea, milk"             -> " const TeaList = () => <ul><li>tea</li><li>milk</li></ul>;"
 *     "A card titled News saying soon"  -> " const NewsCard = () => <div><h2>News</h2><p>soon</p></div>;"
 *     (function form: " function SaveButton() { return <button>Save</button>; }")
 *
 * PPO prompts: the five {@link JSX_PROMPTS} (one per template but the heading), each sampled
 * `samples_per_prompt` = 4 times per update (a batch of 20). Each has a reference — its arrow
 * form ({@link jsxReference}) — and so a reference length `ref_len`.
 *
 * The reward (rewards.ts, {@link jsxReward}), on the decoded response text (EOS dropped), len = its length
 * in characters (= bytes = tokens for this ASCII world):
 *
 *     reward = 1.0 + 0.5 · [parses as JSX] − 0.1 · |len − ref_len| / ref_len
 *
 * Definitions (both by acorn 8 with the acorn-jsx plugin, `ecmaVersion: "latest"`,
 * `sourceType: "module"`; never a regex):
 * - **parses as JSX** ({@link parsesAsJsx}): the text parses as a module AND its syntax tree
 *   holds at least one JSXElement or JSXFragment (so `""` or `"1;"`, which parse, do not earn
 *   the bonus: no JSX, no bonus);
 * - **valid JSX component** ({@link jsxComponentName}, {@link isJsxComponent}): the text parses
 *   as a module AND one of its top-level statements (optionally under `export` /
 *   `export default`) declares a component: a function declaration, or a `const`/`let`/`var`
 *   declarator initialised with an arrow function or function expression, whose name starts
 *   with an upper-case letter A–Z (React's rule for components) and whose body returns JSX —
 *   an arrow's expression body is a JSXElement/JSXFragment (parentheses allowed), or a
 *   statement directly in the function body is `return <JSXElement or JSXFragment>`.
 *
 * Evaluation ({@link evaluateJsxPolicy}): the same `eval.samples_per_prompt` × 5 samples before
 * and after PPO (one seed): **structure rate** = share of samples that are valid JSX
 * components, next to the parse rate, the mean reward, KL to the reference, length, and — when
 * `eval.execute` — the **exec rate**: share of samples that are valid components AND, run in
 * the sandbox (lib/tasks/sandbox.ts: a Deno Worker with no permissions and a time limit)
 * with a tiny JSX runtime, return an element. Generated code is never run anywhere else.
 *
 * Stages (stages.ts): `jsx-sft` (the SFT policy, one Hugging Face folder `<stage dir>/model`,
 * content-addressed by its config in the stage cache). The SFT budget is deliberately short
 * (300 steps of 16) so the starting policy is imperfect (structure rate ≈ 0.3–0.6) and PPO has
 * room to raise it.
 *
 * A reward function that throws or returns NaN/±∞ stops the trial with a RewardError naming
 * the task (`jsx`), the component and the sample; the trial's outputs are removed.
 *
 * @example
 * ```ts
 * const r = await runJsxTrial({ seed: 1 }, "results/jsx/s1"); // JSX_KIND.trial
 * r.before.structure_rate; // the SFT policy's, e.g. 0.4
 * r.after.structure_rate;  // after PPO, higher
 * ```
 * @module
 */
import type { SessionOptions } from "../../onnx/session.ts";
import { BYTE_EOS_ID, byteEncode } from "../../nn/tokenizer.ts";
import { byteDecoderConfig, sampleForEval, saveBytePolicy, type SftStage } from "../byte_lm.ts";
import { createLmProblem, type LmProblem } from "../../ppo/lm_problem.ts";
import { runStagesInChildProcess } from "../../trial/stage_process.ts";
import { defineLmTask } from "../lm_task.ts";
import { runComponentInSandbox } from "../sandbox.ts";
import { loadUserRewards, rewardInputs } from "../reward_modules.ts";
import { JSX_PROMPTS, JSX_TASK } from "./corpus.ts";
import {
  checkJsxConfig,
  JSX_OVERRIDES,
  type JsxRunConfig,
  type JsxRunInput,
  JsxRunSchema,
} from "./schema.ts";
import { JSX_STAGE_VERSION, JSX_STAGES, jsxStagesFor, trainJsxSft } from "./stages.ts";
import {
  jsxBatchPrompts,
  jsxComponentName,
  jsxRefLength,
  jsxReward,
  jsxRewards,
  jsxTask,
  parsesAsJsx,
} from "./rewards.ts";

/** What {@link evaluateJsxPolicy} reports. */
export interface JsxEval {
  /** Share of samples that are valid JSX components. */
  structure_rate: number;
  /** Share of samples that parse as JSX. */
  parse_rate: number;
  /** Share of samples that are valid components and return an element in the sandbox (null: not run). */
  exec_rate: number | null;
  /** Mean task reward ({@link jsxReward}). */
  reward: number;
  /** Mean KL(π‖π_ref) per response (exact over the vocabulary, summed over its tokens). */
  kl: number;
  /** Mean response length (tokens, EOS included). */
  response_length: number;
  /** Share of responses that ended with EOS. */
  eos_rate: number;
  /** Structure rate per prompt. */
  per_prompt: { prompt: string; structure_rate: number }[];
  /** The first sample of each prompt, decoded and judged. */
  examples: { prompt: string; response: string; component: string | null; reward: number }[];
}

/**
 * Sample `samplesPerPrompt` responses to each of {@link JSX_PROMPTS} (plain sampling from
 * `new Rng(seed)`) from the problem's current policy and judge them — the same prompts and
 * seed before and after PPO. With `execute`, each distinct valid component runs once in the
 * sandbox (no permissions, `timeoutMs`).
 */
export async function evaluateJsxPolicy(
  problem: LmProblem,
  opts: {
    samplesPerPrompt: number;
    seed: number;
    maxNewTokens: number;
    execute?: boolean;
    timeoutMs?: number;
    session?: SessionOptions;
  },
): Promise<JsxEval> {
  const n = opts.samplesPerPrompt * JSX_PROMPTS.length;
  const promptTexts = jsxBatchPrompts(n, opts.samplesPerPrompt);
  const prompts = promptTexts.map((p) => byteEncode(p));
  const { texts, kl, responseLength, eosRate } = await sampleForEval(problem, prompts, opts);
  const names = texts.map(jsxComponentName);
  const rewards = texts.map((t, i) => jsxReward(t, jsxRefLength(promptTexts[i])));
  let exec: number | null = null;
  if (opts.execute) {
    const runs = new Map<string, boolean>();
    for (const [i, name] of names.entries()) {
      if (name === null || runs.has(texts[i])) continue;
      const r = await runComponentInSandbox(texts[i], name, { timeoutMs: opts.timeoutMs });
      runs.set(texts[i], r.ok);
    }
    exec = texts.filter((t, i) => names[i] !== null && runs.get(t)).length / n;
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    structure_rate: names.filter((x) => x !== null).length / n,
    parse_rate: texts.filter(parsesAsJsx).length / n,
    exec_rate: exec,
    reward: mean(rewards),
    kl,
    response_length: responseLength,
    eos_rate: eosRate,
    per_prompt: JSX_PROMPTS.map((prompt, p) => {
      const rows = names.slice(p * opts.samplesPerPrompt, (p + 1) * opts.samplesPerPrompt);
      return { prompt, structure_rate: rows.filter((x) => x !== null).length / rows.length };
    }),
    examples: JSX_PROMPTS.map((prompt, p) => {
      const i = p * opts.samplesPerPrompt;
      return { prompt, response: texts[i], component: names[i], reward: rewards[i] };
    }),
  };
}

/** What a `jsx` trial records besides its evaluations (eval.json). */
export interface JsxRecord {
  sft: { hash: string; held_out_nll: number };
}

/** A trial's PPO problem with the SFT stage behind it. */
export interface JsxSetup {
  problem: LmProblem;
  sft: SftStage;
  record: JsxRecord;
}

/** Columns this task adds to trainPpo's metrics.jsonl rows. */
export const JSX_METRIC_COLUMNS: readonly string[] = [
  "score_mean",
  "response_length",
  "eos_rate",
  "logp_gap",
  "parse_rate",
  "structure_rate",
  "reward/total",
  "reward/jsx",
  "reward/parse",
  "reward/structure",
];

/** The named metrics of a finished trial (summary.json `metrics`). */
export const JSX_NAMED_METRICS: Readonly<Record<string, string>> = {
  structure_rate: "share of evaluation samples that are valid JSX components, after PPO",
  structure_rate_before: "the same for the SFT policy (the baseline)",
  parse_rate: "share of evaluation samples that parse as JSX, after PPO",
  parse_rate_before: "the same for the SFT policy",
  exec_rate:
    "share of evaluation samples whose component returns an element in the sandbox, after PPO",
  exec_rate_before: "the same for the SFT policy",
  reward: "mean task reward of the evaluation samples after PPO",
  reward_before: "mean task reward of the SFT policy",
  kl: "KL(π‖π_ref) per response of the evaluation samples after PPO (nats)",
  response_length: "mean response length after PPO (tokens)",
  sft_nll: "held-out NLL of the SFT policy (nats/token)",
};

/** The `jsx` task: its trial function (`JSX_KIND.trial`) and trial kind. */
export const JSX_KIND = defineLmTask<JsxRunConfig, JsxSetup, JsxEval, JsxRunInput>({
  name: JSX_TASK,
  description: "RLHF-style PPO on React components: reward from a real JSX parser; structure rate",
  schema: JsxRunSchema,
  overrides: JSX_OVERRIDES,
  check: checkJsxConfig,
  inputs: (c) => rewardInputs(c.rewards), // the user's reward modules: hashed into the trial id
  stages: JSX_STAGES,
  stagesFor: jsxStagesFor,
  stageVersion: JSX_STAGE_VERSION,
  samples: (c) => c.samples_per_prompt * JSX_PROMPTS.length,
  // Peak memory: samples_per_prompt × 5 responses of at most n_positions tokens (no LoRA, the
  // value head shares the policy's trunk).
  memory: (c) => ({
    model: byteDecoderConfig(c.model),
    batch: c.samples_per_prompt * JSX_PROMPTS.length,
    minibatches: c.ppo.minibatches,
    microBatches: c.ppo.micro_batches,
    seqLen: c.model.n_positions,
  }),
  memoryKeys: {
    batch: "samples_per_prompt",
    minibatches: "ppo.minibatches",
    seqLen: "model.n_positions",
  },
  async problem(c, ctx) {
    // A trial that measures its own memory builds missing stages in a child process.
    runStagesInChildProcess(c.measure_resources);
    const rewards = jsxRewards(c.rewards, { // unknown names fail before any stage
      ...ctx.rewards,
      ...await loadUserRewards(JSX_TASK, c.rewards, ["jsx", "parse", "structure", "length"]),
    });
    const sft = await trainJsxSft(c, ctx);
    const problem = await createLmProblem({
      model: sft.cfg,
      // One of each prompt per group; createLmProblem samples each samples_per_prompt times.
      task: jsxTask(rewards, 1),
      cfg: c.ppo,
      seed: c.seed,
      batch: c.samples_per_prompt * JSX_PROMPTS.length,
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
  evaluate: (setup, c, ctx) =>
    evaluateJsxPolicy(setup.problem, {
      samplesPerPrompt: c.eval.samples_per_prompt,
      seed: c.eval.seed,
      maxNewTokens: c.max_new_tokens,
      execute: c.eval.execute,
      timeoutMs: c.eval.timeout_ms,
      session: ctx.session,
    }),
  // save_steps' checkpoint-N/: the policy with the byte tokenizer.
  savePretrained: (setup, _c, dir) => saveBytePolicy(dir, setup.problem),
  summary: (e) => ({
    structure_rate: e.after.structure_rate,
    structure_rate_before: e.before.structure_rate,
    parse_rate: e.after.parse_rate,
    parse_rate_before: e.before.parse_rate,
    exec_rate: e.after.exec_rate,
    exec_rate_before: e.before.exec_rate,
    reward: e.after.reward,
    reward_before: e.before.reward,
    kl: e.after.kl,
    response_length: e.after.response_length,
    sft_nll: e.sft.held_out_nll,
  }),
  progress: { structure: "structure_rate", parse: "parse_rate", kl: "kl_ref" },
  metrics: { named: JSX_NAMED_METRICS, columns: [...JSX_METRIC_COLUMNS, "reward/length"] },
});

/** The kind's parse, trial and summary functions (see `defineLmTask`) under the task's names. */
export const {
  parse: parseJsxConfig,
  trial: runJsxTrial,
  summarize: summarizeJsxTrial,
} = JSX_KIND;
