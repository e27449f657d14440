/**
 * What the trial benchmarks (bench/rl.ts, bench/scale_ppo.ts) share before their trial starts:
 * the eight prompts, written as a prompts.jsonl in the shape each trial reads, and a model
 * folder written once by a child process (so a 0.5B shape's weights never stay in the
 * benchmark's own heap) and reused while its marker file is there.
 * @module
 */

/** The prompts both trial benchmarks sample from. */
export const BENCH_PROMPTS = [
  "Explain why the sky is blue in two sentences.",
  "Write a haiku about autumn.",
  "What is the capital of Australia?",
  "Give three tips for learning a new language.",
  "Summarise the plot of Hamlet.",
  "How do vaccines work?",
  "Suggest a name for a black cat.",
  "Translate 'good morning' into French.",
];

/** Writes BENCH_PROMPTS to `path` as JSON lines, each prompt as `row` shapes it. */
export async function writeBenchPrompts(
  path: string,
  row: (prompt: string) => unknown,
): Promise<void> {
  await Deno.writeTextFile(
    path,
    BENCH_PROMPTS.map((p) => JSON.stringify(row(p))).join("\n") + "\n",
  );
}

/** How to write a model folder when it is missing. */
export interface FolderMaker {
  /** A file whose presence means the folder is complete. */
  marker: string;
  /** Created before the child runs. */
  dir: string;
  /** The script the child runs (`deno run -A script ...args`). */
  script: string;
  args: string[];
  /** OMP_NUM_THREADS of the child. */
  threads: number;
  /** For the error: "bench rl: writing the small model folder failed". */
  what: string;
}

/** Runs the maker's child unless its marker is there; throws when the child fails. */
export async function ensureModelFolder(m: FolderMaker): Promise<void> {
  try {
    await Deno.stat(m.marker);
    return;
  } catch { /* written below */ }
  await Deno.mkdir(m.dir, { recursive: true });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", m.script, ...m.args],
    env: { OMP_NUM_THREADS: String(m.threads) },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${m.what}: writing the model folder failed`);
}
