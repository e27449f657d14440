/**
 * `deno task generate --model DIR [--prompt TEXT | --prompts FILE] [--chat] ...`: sample from
 * any supported Hugging Face folder (GPT-2, Llama, Mistral, Qwen2, Qwen3, SmolLM2) with its
 * own tokenizer, through the same KV-cache decoder PPO rolls out with. Greedy when the
 * temperature is 0 (the default unless generation_config.json asks for sampling).
 * @module
 */
import type { ChatMessage, HfTokenizer } from "../lib/nn/hf_tokenizer.ts";
import { Rng } from "../lib/rng.ts";
import { UsageError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";
import { numberFlag as parseNumber, type NumberRange, parseFlags } from "./flags.ts";

const HELP = `deno task generate --model DIR [--prompt TEXT | --prompts FILE] [options]

Samples continuations from a Hugging Face model folder (config.json, model.safetensors or
shards, tokenizer.json). Every prompt of the run is one left-padded batch.

  --model DIR            the model folder (required)
  --prompt TEXT          one prompt (repeatable)
  --prompts FILE         .txt (one prompt per non-empty line) or .jsonl ({"prompt": "..."} or
                         {"messages": [{"role": ..., "content": ...}]} per line)
  --chat                 wrap each plain prompt as a user turn and render the folder's chat
                         template with the assistant header (instruct models)
  --max-new-tokens N     tokens to sample per prompt (default 64)
  --temperature T        0 = greedy (default: generation_config.json's, greedy unless it sets
                         do_sample)
  --top-p P              nucleus sampling (default 1 or generation_config.json's)
  --top-k K              top-k sampling (default 0 = off, or generation_config.json's)
  --seed S               sampling seed (default 0)
  --json                 one JSON line per prompt: prompt, prompt_ids, ids, text
  --device cpu|cuda      execution provider (default cpu)
  --threads N            ORT intra-op threads (default 2)
`;

const OPTIONS = {
  model: { type: "string" },
  prompt: { type: "string", multiple: true },
  prompts: { type: "string" },
  chat: { type: "boolean" },
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  seed: { type: "string" },
  json: { type: "boolean" },
  device: { type: "string" },
  threads: { type: "string" },
  help: { type: "boolean" },
} as const;

/** A prompt as the user gave it: text, or a conversation. */
type PromptInput = { text: string } | { messages: ChatMessage[] };

/** The longest response any supported model can hold (checked again against the model). */
const MAX_NEW_TOKENS = 1_000_000;

/** Number flag `--name` with its range check (the error names the flag and the range). */
function numberFlag(
  values: Record<string, unknown>,
  name: string,
  range: NumberRange,
): number | undefined {
  return parseNumber("generate", name, values[name] as string | undefined, range);
}

/** The prompts of a .txt or .jsonl file, with errors naming the file, the line and the fix. */
export async function readPromptsFile(path: string): Promise<PromptInput[]> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    const why = e instanceof TypeError ? "is not UTF-8 text" : (e as Error).message;
    throw new UsageError(`generate: --prompts ${path}: ${why}. Fix: pass a UTF-8 .txt or .jsonl`);
  }
  const lines = text.split(/\r?\n/);
  const out: PromptInput[] = [];
  if (path.endsWith(".jsonl")) {
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      const where = `generate: --prompts ${path}:${i + 1}`;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (e) {
        throw new UsageError(`${where}: not JSON (${(e as Error).message})`);
      }
      const r = row as { prompt?: unknown; messages?: unknown };
      if (typeof r?.prompt === "string") out.push({ text: r.prompt });
      else if (
        Array.isArray(r?.messages) && r.messages.length > 0 &&
        r.messages.every((m) => typeof m?.role === "string" && typeof m?.content === "string")
      ) out.push({ messages: r.messages as ChatMessage[] });
      else {
        throw new UsageError(
          `${where}: needs "prompt" (a string) or "messages" (a list of {role, content}). ` +
            `Fix: e.g. {"prompt": "Hello"}`,
        );
      }
    });
  } else {
    for (const line of lines) if (line.trim() !== "") out.push({ text: line });
  }
  if (out.length === 0) {
    throw new UsageError(`generate: --prompts ${path}: no prompts. Fix: add one per line`);
  }
  return out;
}

/** Token ids of a prompt: plain text (with the tokenizer's added tokens) or a chat render. */
function encodePrompt(tok: HfTokenizer, p: PromptInput, chat: boolean): number[] {
  const messages = "messages" in p ? p.messages : chat ? [{ role: "user", content: p.text }] : [];
  if (messages.length === 0) return tok.encode((p as { text: string }).text);
  if (!tok.hasChatTemplate) {
    throw new UsageError(
      `generate: ${tok.source} has no chat template (tokenizer_config.json "chat_template"). ` +
        `Fix: drop --chat / use plain "prompt" lines, or use an instruct model's folder`,
    );
  }
  return tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true });
}

async function main(): Promise<number> {
  // --max_new_tokens and --max-new-tokens are the same flag (HF scripts use underscores).
  const parsed = parseFlags("generate", Deno.args, OPTIONS, { underscores: true });
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (!v.model) throw new UsageError(`generate: --model DIR is required\n\n${HELP}`);
  if (v.prompt && v.prompts) {
    throw new UsageError("generate: give --prompt or --prompts, not both");
  }
  const maxNew = numberFlag(v, "max-new-tokens", { integer: true, min: 1, max: MAX_NEW_TOKENS }) ??
    64;
  const seed = numberFlag(v, "seed", { integer: true }) ?? 0;
  const threads = numberFlag(v, "threads", { integer: true, min: 1 });
  // Every flag is checked before the model loads: the sampling ones now, their defaults later.
  const temperatureFlag = numberFlag(v, "temperature", { min: 0 });
  const topPFlag = numberFlag(v, "top-p", { min: 0, minInclusive: false, max: 1 });
  const topKFlag = numberFlag(v, "top-k", { integer: true, min: 0 });
  if (v.device !== undefined && v.device !== "cpu" && v.device !== "cuda") {
    throw new UsageError(`generate: --device ${v.device}: expected cpu or cuda`);
  }

  // The prompts file before the model: reading it is cheap, loading the model is not.
  const inputs: PromptInput[] = v.prompts
    ? await readPromptsFile(v.prompts)
    : (v.prompt ?? [""]).map((text) => ({ text }));
  // The model code (and ORT, transformers.js) only now: every flag above answers without it.
  const [{ loadModelFolder }, { contextLength }, { loadHfTokenizer }, { generate }] = await Promise
    .all([
      import("../lib/nn/checkpoint.ts"),
      import("../lib/nn/decoder.ts"),
      import("../lib/nn/hf_tokenizer.ts"),
      import("../lib/nn/sample.ts"),
    ]);
  const model = await loadModelFolder(v.model, { dtype: "float32" });
  const tok = await loadHfTokenizer(v.model);
  if (tok.vocabSize > model.cfg.vocabSize) {
    throw new UsageError(
      `generate: ${v.model}: the tokenizer knows ${tok.vocabSize} tokens but the model's ` +
        `vocab_size is ${model.cfg.vocabSize}. Fix: use the tokenizer that belongs to the model`,
    );
  }
  const gen: Partial<NonNullable<typeof model.generation>> = model.generation ?? {};
  const sampling = gen.doSample === true;
  const temperature = temperatureFlag ?? (sampling ? gen.temperature ?? 1 : 0);
  const topP = topPFlag ?? (sampling ? gen.topP ?? 1 : 1);
  const topK = topKFlag ?? (sampling ? gen.topK ?? 0 : 0);

  const prompts = inputs.map((p) => encodePrompt(tok, p, v.chat ?? false));
  prompts.forEach((p, i) => {
    if (p.length === 0) {
      throw new UsageError(
        `generate: prompt ${i + 1} encodes to no tokens (this tokenizer adds no BOS). ` +
          `Fix: give a non-empty --prompt`,
      );
    }
  });
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest + maxNew > contextLength(model.cfg)) {
    throw new UsageError(
      `generate: --max-new-tokens ${maxNew}: the longest prompt (${longest} tokens) plus ` +
        `${maxNew} new tokens exceeds ${v.model}'s context length ${contextLength(model.cfg)}`,
      { fix: `give --max-new-tokens ${Math.max(1, contextLength(model.cfg) - longest)} or less` },
    );
  }
  const eos = [...new Set([...tok.eosIds, ...(gen.eosTokenIds ?? [])])];
  const out = await generate({ cfg: model.cfg, params: model.params }, prompts, {
    maxNewTokens: maxNew,
    temperature,
    topP,
    topK,
    eosTokenId: eos,
    padTokenId: tok.padId,
    rng: new Rng(seed),
    session: { device: v.device as "cpu" | "cuda" | undefined, threads },
  });
  out.responses.forEach((ids, i) => {
    // Ids past the tokenizer's vocabulary (padded embedding rows) have no text: skipped.
    const text = tok.decode(ids.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true });
    const p = inputs[i];
    if (v.json) {
      console.log(JSON.stringify({
        prompt: "text" in p ? p.text : p.messages,
        prompt_ids: prompts[i],
        ids,
        text,
      }));
    } else {
      if (inputs.length > 1) console.log(`--- prompt ${i + 1}`);
      console.log(("text" in p ? p.text : "") + text);
    }
  });
  return 0;
}

if (import.meta.main) await runCommand(main);
