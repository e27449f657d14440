/**
 * The `sentiment` world: review openings (the prompts), a fixed lexicon, the hidden gold reward
 * on the decoded text, the generated SFT corpus and the preference pairs the reward model is
 * trained on (from the corpus generator, with typos, or sampled from a policy). See
 * lib/tasks/sentiment/task.ts for the task and how over-optimisation shows.
 *
 * @example
 * ```ts
 * goldSentiment(" dull but lovely."); // 0
 * makeSentimentCorpus({ seed: 1, size: 2 }); // [{ prompt: "The song is", response: " odd but fun." }, ...]
 * ```
 * @module
 */
import { Rng } from "../../rng.ts";
import type { SessionOptions } from "../../onnx/session.ts";
import type { DecoderConfig } from "../../nn/decoder.ts";
import { type FloatArray, generate } from "../../nn/sample.ts";
import type { TextPair } from "../../nn/corpus.ts";
import { BYTE_EOS_ID, byteEncode } from "../../nn/tokenizer.ts";
import type { PreferencePair } from "../../ppo/reward_model.ts";
import { decodeByteText } from "../byte_lm.ts";

/** The task's name (in errors and registries). */
export const SENTIMENT_TASK = "sentiment";

/** Review openings: the prompts. */
export const SENTIMENT_OPENINGS: readonly string[] = [
  "The movie was",
  "The film is",
  "This book was",
  "The show felt",
  "The food was",
  "The song is",
  "My trip was",
  "The game was",
];

/** The lexicon: gold counts `positive` and `negative`; the rest are neutral filler. */
export const SENTIMENT_LEXICON = {
  positive: ["good", "great", "fun", "lovely", "superb", "sweet", "clever", "joyful"],
  negative: ["bad", "dull", "awful", "boring", "weak", "poor", "messy", "bland"],
  neutral: ["long", "short", "loud", "quiet", "slow", "new", "odd", "simple"],
  nouns: ["plot", "music", "cast", "ending", "pace", "story"],
  adverbs: ["very", "quite", "rather", "fairly"],
} as const;

const POSITIVE = new Set<string>(SENTIMENT_LEXICON.positive);
const NEGATIVE = new Set<string>(SENTIMENT_LEXICON.negative);
const ADJECTIVES: readonly string[] = [
  ...SENTIMENT_LEXICON.positive,
  ...SENTIMENT_LEXICON.negative,
  ...SENTIMENT_LEXICON.neutral,
];

/**
 * The hidden gold reward of a response text: (#distinct positive − #distinct negative words)
 * / #words, words = runs of letters (lower-cased); 0 for text without words. In [−1, 1].
 *
 * @example
 * ```ts
 * goldSentiment(" great."); // 1
 * goldSentiment(" dull but lovely."); // 0
 * goldSentiment(" great great great."); // 1/3: a repeated word counts once
 * ```
 */
export function goldSentiment(text: string): number {
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  if (words.length === 0) return 0;
  const pos = new Set(words.filter((w) => POSITIVE.has(w))).size;
  const neg = new Set(words.filter((w) => NEGATIVE.has(w))).size;
  return (pos - neg) / words.length;
}

/**
 * One review continuation from the templates (leading space, final period):
 * `" {a}."`, `" {adv} {a}."`, `" {a} and {a}."`, `" {a} but {a}."`, `" {a}, {a} {noun}."`,
 * adjectives uniform over all 24 (two adjectives in one review differ).
 */
export function drawReview(rng: Rng): string {
  const pick = (xs: readonly string[]) => xs[rng.int(xs.length)];
  const a = pick(ADJECTIVES);
  let b = pick(ADJECTIVES);
  while (b === a) b = pick(ADJECTIVES);
  switch (rng.int(5)) {
    case 0:
      return ` ${a}.`;
    case 1:
      return ` ${pick(SENTIMENT_LEXICON.adverbs)} ${a}.`;
    case 2:
      return ` ${a} and ${b}.`;
    case 3:
      return ` ${a} but ${b}.`;
    default:
      return ` ${a}, ${b} ${pick(SENTIMENT_LEXICON.nouns)}.`;
  }
}

/**
 * The SFT corpus: `size` (opening, review) pairs drawn with replacement, deterministic in
 * `seed` (the "shipped" corpus is this generator).
 *
 * @example
 * ```ts
 * makeSentimentCorpus({ seed: 1, size: 2 }); // [{ prompt: "The song is", response: " odd but fun." }, ...]
 * ```
 */
export function makeSentimentCorpus(opts: { seed: number; size: number }): TextPair[] {
  const rng = new Rng(opts.seed);
  return Array.from({ length: opts.size }, () => ({
    prompt: SENTIMENT_OPENINGS[rng.int(SENTIMENT_OPENINGS.length)],
    response: drawReview(rng),
  }));
}

/** A preference pair as text, with both gold scores. */
export interface TextPreference {
  prompt: string;
  chosen: string;
  rejected: string;
  goldChosen: number;
  goldRejected: number;
  /** True when label noise swapped chosen and rejected (the gold prefers `rejected`). */
  flipped: boolean;
}

/** Tokens of a text preference: the responses end with EOS, as the policy's do. */
export function encodePreference(p: TextPreference): PreferencePair {
  return {
    prompt: byteEncode(p.prompt),
    chosen: [...byteEncode(p.chosen), BYTE_EOS_ID],
    rejected: [...byteEncode(p.rejected), BYTE_EOS_ID],
  };
}

/** Order two responses by gold (higher = chosen) and apply label noise; null on a tie. */
function labelPair(
  prompt: string,
  a: string,
  b: string,
  labelNoise: number,
  rng: Rng,
): TextPreference | null {
  const ga = goldSentiment(a), gb = goldSentiment(b);
  if (ga === gb) return null;
  const [c, r, gc, gr] = ga > gb ? [a, b, ga, gb] : [b, a, gb, ga];
  const flipped = labelNoise > 0 && rng.uniform() < labelNoise;
  return flipped
    ? { prompt, chosen: r, rejected: c, goldChosen: gr, goldRejected: gc, flipped }
    : { prompt, chosen: c, rejected: r, goldChosen: gc, goldRejected: gr, flipped };
}

const LEXICON_WORDS = new Set<string>(Object.values(SENTIMENT_LEXICON).flat());

/**
 * The text with one typo in one word of ≥ 3 letters (a letter deleted, doubled or replaced),
 * chosen so the word leaves the lexicon: `" great."` -> `" graet."`-like misspellings, which
 * gold scores as neutral words. Text without such a word is returned unchanged.
 */
export function addTypo(text: string, rng: Rng): string {
  const words = [...text.matchAll(/[a-z]{3,}/g)];
  if (words.length === 0) return text;
  const m = words[rng.int(words.length)], w = m[0];
  for (let tries = 0; tries < 20; tries++) {
    const i = rng.int(w.length), kind = rng.int(3);
    const letter = String.fromCharCode(97 + rng.int(26));
    const typo = kind === 0
      ? w.slice(0, i) + w.slice(i + 1)
      : kind === 1
      ? w.slice(0, i + 1) + w[i] + w.slice(i + 1)
      : w.slice(0, i) + letter + w.slice(i + 1);
    if (typo !== w && !LEXICON_WORDS.has(typo)) {
      return text.slice(0, m.index) + typo + text.slice(m.index! + w.length);
    }
  }
  return text;
}

/**
 * Preference pairs from the corpus generator: per pair, an opening and two reviews with
 * different gold scores; the higher is chosen, then flipped with probability `labelNoise`.
 * Each review gets one typo ({@link addTypo}) with probability `typoRate` first, so the reward
 * model sees misspelled (neutral) words too. Deterministic in `seed`.
 */
export function makeSentimentPairs(
  opts: { seed: number; count: number; labelNoise?: number; typoRate?: number },
): TextPreference[] {
  const rng = new Rng(opts.seed);
  const typo = opts.typoRate ?? 0;
  const review = () => {
    const r = drawReview(rng);
    return typo > 0 && rng.uniform() < typo ? addTypo(r, rng) : r;
  };
  const out: TextPreference[] = [];
  while (out.length < opts.count) {
    const prompt = SENTIMENT_OPENINGS[rng.int(SENTIMENT_OPENINGS.length)];
    const p = labelPair(prompt, review(), review(), opts.labelNoise ?? 0, rng);
    if (p) out.push(p);
  }
  return out;
}

/**
 * Preference pairs sampled from a policy: two responses per opening (plain sampling), labelled
 * by gold as {@link makeSentimentPairs}; ties (including identical responses) are dropped.
 */
export async function samplePolicyPairs(
  policy: { cfg: DecoderConfig; params: Record<string, FloatArray> },
  opts: {
    seed: number;
    count: number;
    labelNoise?: number;
    maxNewTokens: number;
    session?: SessionOptions;
  },
): Promise<TextPreference[]> {
  const rng = new Rng(opts.seed);
  const out: TextPreference[] = [];
  const chunk = 64; // pairs per generate call
  for (let round = 0; out.length < opts.count; round++) {
    if (round > 50 + opts.count) {
      throw new Error(
        `samplePolicyPairs: the policy gave only ${out.length} untied pairs of ${opts.count}`,
      );
    }
    const prompts = Array.from(
      { length: chunk },
      (_, k) => SENTIMENT_OPENINGS[(round * chunk + k) % SENTIMENT_OPENINGS.length],
    );
    const gen = await generate(policy, prompts.flatMap((p) => [byteEncode(p), byteEncode(p)]), {
      maxNewTokens: opts.maxNewTokens,
      eosTokenId: BYTE_EOS_ID,
      padTokenId: BYTE_EOS_ID,
      rng,
      session: opts.session,
    });
    for (let k = 0; k < chunk && out.length < opts.count; k++) {
      if (!gen.ended[2 * k] || !gen.ended[2 * k + 1]) continue; // keep whole reviews only
      const [a, b] = [0, 1].map((j) => decodeByteText(gen.responses[2 * k + j]));
      const p = labelPair(prompts[k], a, b, opts.labelNoise ?? 0, rng);
      if (p) out.push(p);
    }
  }
  return out;
}
