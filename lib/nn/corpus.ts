/**
 * A tiny supervised corpus the project generates itself (nothing shipped, nothing
 * downloaded): short prompt → response pairs from a handful of templates over a fixed
 * vocabulary of words, drawn with a seeded {@link Rng}. One seed gives the same corpus,
 * byte for byte, on every machine.
 *
 * The templates mix what a small byte-level GPT can learn from examples:
 * - copying a word from the prompt (`"ann has a red fox. color?"` → `" red."`),
 * - a fixed lookup table (`"what does the cow say?"` → `" the cow says moo."`),
 * - reordering (`"swap red fox:"` → `" fox red"`),
 * - a successor table (`"after three:"` → `" four"`).
 *
 * {@link makeCorpus} splits the distinct pairs into train and held-out by prompt, so no
 * held-out prompt appears in train: held-out loss measures generalisation to new
 * combinations of known words, not memorisation. {@link encodePairs} turns pairs into token
 * ids with the byte tokenizer, the response ending in EOS.
 *
 * @example
 * ```ts
 * const { train, heldOut } = makeCorpus({ seed: 1 });
 * train[0]; // { prompt: "what does the owl say?", response: " the owl says hoo." }
 * const examples = encodePairs(train); // [{ prompt: number[], response: number[] }, ...]
 * ```
 * @module
 */
import { Rng } from "../rng.ts";
import { BYTE_EOS_ID, byteEncode } from "./tokenizer.ts";

/** One supervised example as text. */
export interface TextPair {
  /** What the model is given. */
  prompt: string;
  /** What it should answer (scored by SFT). */
  response: string;
}

/** A corpus split into train and held-out pairs (no prompt is in both). */
export interface Corpus {
  train: TextPair[];
  heldOut: TextPair[];
}

/** The corpus's words. */
export const CORPUS_WORDS = {
  names: ["ann", "bob", "eve", "max", "sam", "zoe", "tom", "ida"],
  colors: ["red", "blue", "green", "pink", "gray", "gold", "tan", "black"],
  animals: {
    cow: "moo",
    dog: "woof",
    cat: "meow",
    duck: "quack",
    owl: "hoo",
    pig: "oink",
  } as Record<string, string>,
  numbers: ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
};

/** Options of {@link makeCorpus}. */
export interface CorpusOptions {
  /** Seed of the one generator every draw comes from (default 1). */
  seed?: number;
  /** Pairs drawn before de-duplication (default 4000). */
  draws?: number;
  /** Share of the distinct prompts held out (default 0.2). */
  heldOutFraction?: number;
}

/**
 * One pair from a template chosen uniformly at random, and whether its template combines
 * words freely (those can be held out; the lookup tables must be seen in training).
 */
function drawPair(rng: Rng): TextPair & { free: boolean } {
  const { names, colors, animals, numbers } = CORPUS_WORDS;
  const animalNames = Object.keys(animals);
  const pick = <T>(xs: readonly T[]) => xs[rng.int(xs.length)];
  switch (rng.int(5)) {
    case 0: {
      const a = pick(animalNames);
      return {
        prompt: `what does the ${a} say?`,
        response: ` the ${a} says ${animals[a]}.`,
        free: false,
      };
    }
    case 1: {
      const [n, c, a] = [pick(names), pick(colors), pick(animalNames)];
      return { prompt: `${n} has a ${c} ${a}. color?`, response: ` ${c}.`, free: true };
    }
    case 2: {
      const [n, c, a] = [pick(names), pick(colors), pick(animalNames)];
      return { prompt: `${n} has a ${c} ${a}. who?`, response: ` ${n}.`, free: true };
    }
    case 3: {
      const [c, a] = [pick(colors), pick(animalNames)];
      return { prompt: `swap ${c} ${a}:`, response: ` ${a} ${c}`, free: true };
    }
    default: {
      const i = rng.int(numbers.length - 1);
      return { prompt: `after ${numbers[i]}:`, response: ` ${numbers[i + 1]}`, free: false };
    }
  }
}

/**
 * Draw `draws` pairs, keep the distinct ones (first occurrence order), shuffle them, and hold
 * out `heldOutFraction` of the distinct prompts of the free-combination templates (copy,
 * who, swap). The lookup templates (animal sounds, successor) stay in train only: their
 * answers cannot be inferred from other examples. Every prompt has exactly one response.
 * Deterministic in `seed`.
 *
 * @example
 * ```ts
 * const c = makeCorpus({ seed: 1 });
 * c.train.length + c.heldOut.length; // the distinct pairs among 4000 draws
 * ```
 */
export function makeCorpus(opts: CorpusOptions = {}): Corpus {
  const draws = opts.draws ?? 4000, frac = opts.heldOutFraction ?? 0.2;
  if (!Number.isInteger(draws) || draws < 1) {
    throw new RangeError(`makeCorpus: draws must be a positive integer, got ${draws}`);
  }
  if (!(frac >= 0 && frac < 1)) {
    throw new RangeError(`makeCorpus: heldOutFraction must be in [0, 1), got ${frac}`);
  }
  const rng = new Rng(opts.seed ?? 1);
  const byPrompt = new Map<string, TextPair & { free: boolean }>();
  for (let i = 0; i < draws; i++) {
    const p = drawPair(rng);
    if (!byPrompt.has(p.prompt)) byPrompt.set(p.prompt, p);
  }
  const distinct = [...byPrompt.values()];
  const order = rng.permutation(distinct.length).map((i) => distinct[i]);
  const nHeld = Math.round(frac * order.filter((p) => p.free).length);
  const train: TextPair[] = [], heldOut: TextPair[] = [];
  for (const { prompt, response, free } of order) {
    (free && heldOut.length < nHeld ? heldOut : train).push({ prompt, response });
  }
  return { train, heldOut };
}

/** A tokenized example: prompt ids and response ids (the response is what SFT scores). */
export interface TokenPair {
  prompt: number[];
  response: number[];
}

/**
 * Byte-tokenize pairs; each response gets EOS appended (unless `eos` is false) so the model
 * learns where an answer stops.
 *
 * @example
 * ```ts
 * encodePairs([{ prompt: "after one:", response: " two" }])[0].response; // [32, 116, 119, 111, 256]
 * ```
 */
export function encodePairs(pairs: readonly TextPair[], opts: { eos?: boolean } = {}): TokenPair[] {
  return pairs.map((p) => ({
    prompt: byteEncode(p.prompt),
    response: [...byteEncode(p.response), ...(opts.eos === false ? [] : [BYTE_EOS_ID])],
  }));
}
