/**
 * A tiny byte-level tokenizer the project generates itself (nothing is downloaded): token id
 * `b` is byte `b` of the UTF-8 text (ids 0..255), and id 256 is `<|endoftext|>`, GPT-2's
 * end-of-text token, used as EOS, BOS and padding. So V = 257 ({@link BYTE_VOCAB_SIZE}), and
 * any string round-trips through {@link byteEncode} / {@link byteDecode}.
 *
 * {@link makeByteTokenizer} writes the Hugging Face files for it (`tokenizer.json`,
 * `tokenizer_config.json`, `special_tokens_map.json`): a GPT-2-style BPE model with a
 * ByteLevel pre-tokenizer and decoder, the 256 byte symbols as vocabulary and no merges, so the
 * BPE step is the identity and HF `tokenizers`, Python `transformers` and transformers.js all
 * produce exactly the ids of {@link byteEncode}. Those libraries see bytes through GPT-2's
 * byte-to-unicode table ({@link bytesToUnicode}): byte 0x20 (space) is the symbol "Ġ", etc.
 *
 * The EOS token is a separate id rather than a reused byte so that every byte stays
 * encodable, and special-token text in the input is matched the way HF tokenizers match added
 * tokens: the literal string `<|endoftext|>` encodes to id 256 (pass `{ special: false }` to
 * {@link byteEncode} to encode it as bytes instead).
 *
 * @example
 * ```ts
 * const ids = byteEncode("héllo<|endoftext|>"); // [104, 195, 169, 108, 108, 111, 256]
 * byteDecode(ids); // "héllo<|endoftext|>"
 * byteDecode(ids, { skipSpecialTokens: true }); // "héllo"
 * const files = makeByteTokenizer({ modelMaxLength: 128 }); // { "tokenizer.json": {...}, ... }
 * ```
 * @module
 */

/** Id of `<|endoftext|>` (EOS, BOS and pad). */
export const BYTE_EOS_ID = 256;
/** The EOS token's text (GPT-2's). */
export const BYTE_EOS_TOKEN = "<|endoftext|>";
/** Vocabulary size: 256 bytes + EOS. */
export const BYTE_VOCAB_SIZE = 257;

/** Tokenizer files of a Hugging Face folder, by file name, as parsed JSON. */
export type TokenizerFiles = Record<string, Record<string, unknown>>;

/**
 * GPT-2's reversible byte -> printable-unicode table (`bytes_to_unicode` in OpenAI's
 * encoder.py): printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte
 * order. The ByteLevel pre-tokenizer applies it before the vocabulary lookup, so vocabulary
 * keys must be these symbols, not raw bytes.
 *
 * @example
 * ```ts
 * bytesToUnicode()[0x20]; // "Ġ"
 * ```
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  return out;
}

/** Options of {@link makeByteTokenizer}. */
export interface ByteTokenizerOptions {
  /** `model_max_length` in tokenizer_config.json (set it to the model's nPositions). */
  modelMaxLength?: number;
}

/**
 * The Hugging Face tokenizer files for the byte tokenizer. Pure data: write them with
 * `saveHfFolder` (lib/nn/hf.ts) or `JSON.stringify`. Deterministic: the same options give the
 * same objects, so a saved folder is byte-for-byte reproducible.
 *
 * `clean_up_tokenization_spaces` is false (its default in transformers.js is true, which would
 * rewrite " ," to "," and break the exact round trip), and `pad_token` is EOS, since
 * GPT-2 has no pad token and batched generation needs one.
 *
 * @example
 * ```ts
 * const files = makeByteTokenizer();
 * Object.keys(files); // ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
 * ```
 */
export function makeByteTokenizer(opts: ByteTokenizerOptions = {}): TokenizerFiles {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b));
  const eos = {
    id: BYTE_EOS_ID,
    content: BYTE_EOS_TOKEN,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
  // GPT-2's tokenizer.json settings, so libraries treat it as a GPT-2 tokenizer. No
  // `ignore_merges` key (default false; new in tokenizers 0.19), so older readers see only
  // fields they know.
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [eos],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", ...byteLevel },
    post_processor: { type: "ByteLevel", ...byteLevel, trim_offsets: false },
    decoder: { type: "ByteLevel", ...byteLevel },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [],
    },
  };
  const { id: _id, ...eosDecoder } = eos;
  const config = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: { [String(BYTE_EOS_ID)]: eosDecoder },
    bos_token: BYTE_EOS_TOKEN,
    clean_up_tokenization_spaces: false,
    eos_token: BYTE_EOS_TOKEN,
    errors: "replace",
    model_max_length: opts.modelMaxLength ?? 1024,
    pad_token: BYTE_EOS_TOKEN,
    tokenizer_class: "GPT2Tokenizer",
    unk_token: BYTE_EOS_TOKEN,
  };
  const specialMap = {
    bos_token: BYTE_EOS_TOKEN,
    eos_token: BYTE_EOS_TOKEN,
    pad_token: BYTE_EOS_TOKEN,
    unk_token: BYTE_EOS_TOKEN,
  };
  return {
    "tokenizer.json": tokenizer,
    "tokenizer_config.json": config,
    "special_tokens_map.json": specialMap,
  };
}

const utf8 = new TextEncoder();

/**
 * Text -> token ids: UTF-8 bytes, with each `<|endoftext|>` in the text as id 256 unless
 * `special` is false. Lone surrogates become U+FFFD (as TextEncoder, and HF, encode them).
 *
 * @example
 * ```ts
 * byteEncode("a b"); // [97, 32, 98]
 * byteEncode("<|endoftext|>", { special: false }).length; // 13
 * ```
 */
export function byteEncode(text: string, opts: { special?: boolean } = {}): number[] {
  const pieces = opts.special === false ? [text] : text.split(BYTE_EOS_TOKEN);
  const out: number[] = [];
  pieces.forEach((p, i) => {
    if (i > 0) out.push(BYTE_EOS_ID);
    for (const b of utf8.encode(p)) out.push(b);
  });
  return out;
}

/**
 * Token ids -> text. Runs of byte ids are UTF-8 decoded together (invalid sequences become
 * U+FFFD, as in HF's `errors="replace"`); id 256 becomes `<|endoftext|>`, or nothing with
 * `skipSpecialTokens`. Throws on ids outside 0..256.
 *
 * @example
 * ```ts
 * byteDecode([104, 105, 256], { skipSpecialTokens: true }); // "hi"
 * ```
 */
export function byteDecode(
  ids: ArrayLike<number | bigint>,
  opts: { skipSpecialTokens?: boolean } = {},
): string {
  // ignoreBOM: keep a leading U+FEFF (the default would strip it; HF keeps it).
  const dec = new TextDecoder("utf-8", { ignoreBOM: true });
  let text = "";
  let run: number[] = [];
  const flush = () => {
    if (run.length > 0) text += dec.decode(new Uint8Array(run));
    run = [];
  };
  for (let i = 0; i < ids.length; i++) {
    const id = Number(ids[i]);
    if (Number.isInteger(id) && id >= 0 && id < 256) run.push(id);
    else if (id === BYTE_EOS_ID) {
      flush();
      if (!opts.skipSpecialTokens) text += BYTE_EOS_TOKEN;
    } else throw new RangeError(`byteDecode: token id ${ids[i]} at ${i} is outside 0..256`);
  }
  flush();
  return text;
}
