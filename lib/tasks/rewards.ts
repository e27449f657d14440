/**
 * Reward functions for language-model tasks: named components, each with a weight, combined
 * into one scalar per response (`Σ weight · component`), every component logged on its own.
 *
 * A component is either per sample (`fn(sample)`, e.g. a rule over the decoded text) or
 * batched (`batch(samples)`, e.g. a reward model run as one graph call). Weight 0 makes a
 * component a monitor: computed and logged, not optimised (how a task reports its hidden gold
 * score next to the reward model's).
 *
 * Failure is loud: a component that throws, returns a non-number, NaN or ±∞, or the wrong
 * number of values raises {@link RewardError}, which names the task, the component and the
 * sample (its index in the batch and its decoded prompt and response). The check runs inside
 * the rollout, before the trainer writes anything for that update.
 *
 * @example
 * ```ts
 * const rewards: RewardComponent[] = [
 *   { name: "helpful", weight: 0.5, fn: (s) => (s.text.includes("because") ? 1 : 0) },
 *   { name: "harmless", weight: 0.3, fn: (s) => (s.text.includes("idiot") ? -1 : 0) },
 *   { name: "honest", weight: 0.2, batch: async (ss) => await judge(ss.map((s) => s.text)) },
 * ];
 * const task = rewardLmTask({ name: "chat", prompts, rewards, decode: byteDecode });
 * ```
 * @module
 */
import { z } from "zod";
import type { LmScores, LmTask } from "../ppo/lm_problem.ts";
import type { Rng } from "../rng.ts";
import { ConfigError } from "../ppo/config.ts";
import { didYouMean } from "../suggest.ts";

/** One response as the reward functions see it. */
export interface RewardSample {
  /** Row in the rollout batch (0-based). */
  index: number;
  /** Prompt token ids. */
  prompt: number[];
  /** Response token ids (up to and including EOS when the response ended). */
  response: number[];
  /** The decoded prompt. */
  promptText: string;
  /** The decoded response (special tokens such as EOS dropped). */
  text: string;
  /** Whether the response ended with EOS (false: cut at the token limit). */
  ended: boolean;
  /**
   * The dataset row the prompt came from: every column but `prompt` / `messages` (e.g.
   * `row.answer`, `row.tests`); `{}` when the prompts have no other columns.
   */
  row: Readonly<Record<string, unknown>>;
}

/** A per-sample reward: one number for one response. */
export type RewardFn = (sample: RewardSample) => number | Promise<number>;
/** A batched reward: one number per sample, in order. */
export type BatchRewardFn = (
  samples: readonly RewardSample[],
) => ArrayLike<number> | Promise<ArrayLike<number>>;

/** One named term of the reward. Give exactly one of `fn` and `batch`. */
export interface RewardComponent {
  /** Logged as `reward/<name>` (letters, digits, `_`, `-`, `.`). */
  name: string;
  /** Weight in the sum (0 = a monitor: logged, not optimised). */
  weight: number;
  fn?: RewardFn;
  batch?: BatchRewardFn;
}

/** A reward function failed: names the task, the component and the sample. */
export class RewardError extends Error {
  constructor(
    message: string,
    /** The task's name. */
    readonly task: string,
    /** The component that failed. */
    readonly component: string,
    /** The failing sample's row, when known. */
    readonly index?: number,
    /** The failing sample's decoded response, when known. */
    readonly text?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RewardError";
  }
}

const NAME = /^[A-Za-z0-9_.-]+$/;

/** Validate components (unique names, finite weights, one of fn/batch); throws naming the task. */
export function checkRewardComponents(task: string, components: readonly RewardComponent[]): void {
  if (components.length === 0) throw new ConfigError(`task "${task}": no reward components`);
  const seen = new Set<string>();
  for (const c of components) {
    if (typeof c.name !== "string" || !NAME.test(c.name)) {
      throw new ConfigError(
        `task "${task}": reward name ${JSON.stringify(c.name)} must be letters, digits, _ - .`,
      );
    }
    if (seen.has(c.name)) throw new ConfigError(`task "${task}": reward "${c.name}" given twice`);
    seen.add(c.name);
    if (typeof c.weight !== "number" || !Number.isFinite(c.weight)) {
      throw new ConfigError(
        `task "${task}": reward "${c.name}" has weight ${c.weight}; need a number`,
      );
    }
    if ((typeof c.fn === "function") === (typeof c.batch === "function")) {
      throw new ConfigError(`task "${task}": reward "${c.name}" needs exactly one of fn and batch`);
    }
  }
}

const quote = (s: string, max = 80) => JSON.stringify(s.length > max ? s.slice(0, max) + "…" : s);
const describe = (s: RewardSample) =>
  `sample ${s.index} (prompt ${quote(s.promptText)}, response ${quote(s.text)})`;

/** What {@link computeRewards} returns. */
export interface RewardValues {
  /** Σ weight · component per sample. */
  total: Float64Array;
  /** Each component's values per sample. */
  parts: Record<string, Float64Array>;
}

/**
 * Evaluate every component on every sample and combine them. Throws {@link RewardError} (task,
 * component, sample index and decoded text) when a component throws or gives a non-finite
 * value; nothing is returned in that case.
 */
export async function computeRewards(
  task: string,
  components: readonly RewardComponent[],
  samples: readonly RewardSample[],
): Promise<RewardValues> {
  checkRewardComponents(task, components);
  const n = samples.length;
  const total = new Float64Array(n);
  const parts: Record<string, Float64Array> = {};
  for (const c of components) {
    const vals = new Float64Array(n);
    const bad = (i: number, v: unknown): never => {
      const what = typeof v === "number" ? String(v) : `a ${typeof v} (${String(v)})`;
      throw new RewardError(
        `task "${task}": reward "${c.name}" returned ${what} for ${describe(samples[i])}; ` +
          `reward functions must return finite numbers`,
        task,
        c.name,
        i,
        samples[i].text,
      );
    };
    if (c.fn) {
      for (const s of samples) {
        let v: unknown;
        try {
          v = await c.fn(s);
        } catch (e) {
          throw new RewardError(
            `task "${task}": reward "${c.name}" threw on ${describe(s)}: ${
              e instanceof Error ? e.message : String(e)
            }`,
            task,
            c.name,
            s.index,
            s.text,
            { cause: e },
          );
        }
        if (typeof v !== "number" || !Number.isFinite(v)) bad(s.index, v);
        vals[s.index] = v as number;
      }
    } else {
      let out: ArrayLike<number>;
      try {
        out = await c.batch!(samples);
      } catch (e) {
        const first = n ? `; first: ${describe(samples[0])}` : "";
        throw new RewardError(
          `task "${task}": reward "${c.name}" threw on a batch of ${n} samples${first}: ${
            e instanceof Error ? e.message : String(e)
          }`,
          task,
          c.name,
          undefined,
          undefined,
          { cause: e },
        );
      }
      if (!out || out.length !== n) {
        throw new RewardError(
          `task "${task}": reward "${c.name}" returned ${out?.length} values for ${n} samples`,
          task,
          c.name,
        );
      }
      for (let i = 0; i < n; i++) {
        const v = out[i];
        if (typeof v !== "number" || !Number.isFinite(v)) bad(i, v);
        vals[i] = v;
      }
    }
    parts[c.name] = vals;
    if (c.weight !== 0) { for (let i = 0; i < n; i++) total[i] += c.weight * vals[i]; }
  }
  return { total, parts };
}

/** Per-update means: `reward/<name>` for each component, plus `reward/total`. */
export function rewardMetrics(values: RewardValues): Record<string, number> {
  const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / Math.max(1, a.length);
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(values.parts)) out[`reward/${name}`] = mean(v);
  out["reward/total"] = mean(values.total);
  return out;
}

/** Options of {@link rewardLmTask}. */
export interface RewardLmTaskOptions {
  /** The task's name (in every error). */
  name: string;
  /**
   * Prompts, as {@link LmTask.prompts}; a prompt may come with its dataset row
   * (`{ ids, row }`), which the reward functions then see as `sample.row`.
   */
  prompts: (n: number, index: number, rng: Rng) => (number[] | PromptWithRow)[];
  /** The reward: Σ weight · component. */
  rewards: readonly RewardComponent[];
  /** Token ids -> text (special tokens dropped), for the reward functions and error messages. */
  decode: (ids: number[]) => string;
  /** The end-of-sequence id (marks `ended`; dropped from `text` by `decode`). */
  eosTokenId?: number;
  /**
   * Per-update metrics that repeat a component's mean under a name of the task's own, metric
   * -> component (e.g. `{ gold_score: "gold" }`); NaN when the component is absent.
   */
  aliases?: Record<string, string>;
  /** More per-update metrics from the computed values. */
  metrics?: (values: RewardValues, samples: readonly RewardSample[]) => Record<string, number>;
}

/**
 * An {@link LmTask} whose score is a weighted sum of reward components; each component's mean
 * (and `reward/total`) goes into the update's metrics row.
 */
export function rewardLmTask(opts: RewardLmTaskOptions): LmTask {
  checkRewardComponents(opts.name, opts.rewards);
  // The rows of the prompts handed out last: the rollout scores exactly those prompts next
  // (each repeated samples_per_prompt times in consecutive rows), so sample i's row is
  // rows[⌊i · rows / samples⌋]; the prompt ids are compared to be sure.
  let handed: PromptWithRow[] = [];
  return {
    prompts(n, index, rng) {
      handed = opts.prompts(n, index, rng).map((p) => Array.isArray(p) ? { ids: p, row: {} } : p);
      return handed.map((p) => p.ids);
    },
    async score(prompts: number[][], responses: number[][]): Promise<LmScores> {
      const rows = rowsOfBatch(opts.name, handed, prompts);
      const samples = makeRewardSamples(prompts, responses, opts.decode, opts.eosTokenId, rows);
      const values = await computeRewards(opts.name, opts.rewards, samples);
      const mean = (a?: Float64Array) =>
        a ? a.reduce((s, x) => s + x, 0) / Math.max(1, a.length) : NaN;
      const aliases = Object.entries(opts.aliases ?? {}).map((
        [m, c],
      ) => [m, mean(values.parts[c])]);
      // Weighted components (weight 0 = a monitor: not part of the reward).
      const used = opts.rewards.filter((c) => c.weight !== 0);
      return {
        scores: Array.from(values.total),
        components: {
          values: used.map((c) => values.parts[c.name]),
          weights: used.map((c) => c.weight),
        },
        metrics: {
          ...rewardMetrics(values),
          ...Object.fromEntries(aliases),
          ...opts.metrics?.(values, samples),
        },
      };
    },
  };
}

/** A prompt with the dataset row it came from (the columns besides prompt / messages). */
export interface PromptWithRow {
  ids: number[];
  row: Readonly<Record<string, unknown>>;
}

const sameIds = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The dataset row of each of a batch's prompts, from the prompts handed out for it (each
 * repeated batch / handed times in consecutive rows); `{}` for every sample when none were.
 */
function rowsOfBatch(
  task: string,
  handed: readonly PromptWithRow[],
  prompts: readonly number[][],
): Readonly<Record<string, unknown>>[] {
  if (handed.length === 0 || prompts.length % handed.length !== 0) {
    return prompts.map(() => ({}));
  }
  const k = prompts.length / handed.length;
  return prompts.map((p, i) => {
    const h = handed[Math.floor(i / k)];
    if (!sameIds(h.ids, p)) {
      throw new Error(`task "${task}": sample ${i}'s prompt is not the one handed out for it`);
    }
    return h.row;
  });
}

/** The {@link RewardSample}s of a batch of prompts and responses (and their dataset rows). */
export function makeRewardSamples(
  prompts: readonly number[][],
  responses: readonly number[][],
  decode: (ids: number[]) => string,
  eosTokenId?: number,
  rows?: readonly Readonly<Record<string, unknown>>[],
): RewardSample[] {
  if (prompts.length !== responses.length) {
    throw new Error(`${prompts.length} prompts for ${responses.length} responses`);
  }
  return responses.map((response, index) => ({
    index,
    prompt: prompts[index],
    response,
    promptText: decode(prompts[index]),
    text: decode(response),
    ended: eosTokenId !== undefined && response.at(-1) === eosTokenId,
    row: rows?.[index] ?? {},
  }));
}

/**
 * One weighted reward term of a task config's `rewards` list: a built-in by `name`, or the
 * user's own function, `name` exported by `module` (a path from the working directory; its
 * bytes are hashed into the trial id). `options` configure a built-in (e.g. `format`'s
 * `pattern`); `as` renames the logged column (`reward/<as>`).
 */
export const RewardRefSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.$-]+$/).describe(
    "reward component name: a built-in, or the export of `module`",
  ),
  weight: z.number().describe("its weight in the sum (0 = logged only)"),
  module: z.string().min(1).optional().describe(
    "a .ts/.js module (path from the working directory) that exports `name`: your own reward",
  ),
  as: z.string().regex(NAME).optional().describe("logged as reward/<as> (default: name)"),
  options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional()
    .describe("a built-in's options (format: pattern; code_tests: timeout_ms)"),
}).strict();

/** One parsed entry of a config's `rewards` list. */
export type RewardRef = z.infer<typeof RewardRefSchema>;

/** A user reward: a per-sample function, or `{ fn }` / `{ batch }`. */
export type UserReward = RewardFn | { fn: RewardFn } | { batch: BatchRewardFn };

/**
 * The reward components of a config's `rewards` list: each name is one of the user's rewards
 * or else one of the task's built-ins (per-sample functions, or `{ fn }` / `{ batch }`); each of `monitors` that the list lacks is added with
 * weight 0, so it is always logged. Throws (before anything runs) on an unknown name, listing
 * the known ones.
 *
 * @example
 * ```ts
 * resolveRewards("jsx", [{ name: "jsx", weight: 1 }], { jsx: reward, parse: parses }, {
 *   monitors: ["parse"],
 * }); // [{ name: "jsx", weight: 1, fn: reward }, { name: "parse", weight: 0, fn: parses }]
 * ```
 */
export function resolveRewards(
  task: string,
  refs: readonly { name: string; weight: number; module?: string; as?: string }[],
  builtins: Record<string, UserReward>,
  opts: { user?: Record<string, UserReward>; monitors?: readonly string[] } = {},
): RewardComponent[] {
  const user = opts.user ?? {};
  const resolve = (
    r: { name: string; weight: number; module?: string; as?: string },
    i: number,
  ): RewardComponent => {
    const name = r.as ?? r.name, weight = r.weight;
    // A module's export is loaded under its logged name; a bare name is the user's or a built-in.
    const u = r.module ? user[name] : user[r.name] ?? builtins[r.name];
    if (u) return typeof u === "function" ? { name, weight, fn: u } : { name, weight, ...u };
    const known = [...new Set([...Object.keys(builtins), ...Object.keys(user)])];
    const m = didYouMean(r.name, known);
    const key = i < 0 ? "rewards" : `rewards.${i}.name`;
    const cause = r.module
      ? `reward ${r.module}:${r.name} was not loaded`
      : `unknown reward "${r.name}"${m ? ` (did you mean "${m}"?)` : ""}; known: ${
        known.join(", ")
      }`;
    const fix = m && !r.module
      ? `write "${m}", or give your own function: { module: "rewards/mine.ts", name: ` +
        `"${r.name}", weight } (deno task train: --reward_fn rewards/mine.ts:${r.name})`
      : `use a built-in, or your own function: { module: "rewards/mine.ts", name: ` +
        `"${r.name}", weight } (deno task train: --reward_fn rewards/mine.ts:${r.name})`;
    throw Object.assign(new ConfigError(`${task} config: ${key}: ${cause}\n  fix: ${fix}`), {
      key,
      cause,
      fix,
    });
  };
  const out = refs.map((r, i) => resolve(r, i));
  for (const name of opts.monitors ?? []) {
    if (!refs.some((r) => (r.as ?? r.name) === name)) out.push(resolve({ name, weight: 0 }, -1));
  }
  return out;
}
