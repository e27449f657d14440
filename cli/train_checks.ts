/**
 * `deno task train`'s checks before any work: the run flags (`--out` creatable and writable,
 * `--threads`, `--device`) and the config keys a task cannot do without, named by the flag a
 * user types (`--model`, not `policy`).
 * @module
 */
import type { z } from "zod";
import { UsageError } from "../lib/errors.ts";
import { numberFlag } from "./flags.ts";
import { checkOutputDir } from "./preflight.ts";

/** Check `--threads`, `--device` and the output folder `outDir` (`--out`) before training. */
export async function checkRunFlags(
  run: Record<string, string | boolean>,
  outDir: string,
): Promise<void> {
  if (run.threads !== undefined) {
    numberFlag("train", "threads", String(run.threads), { integer: true, min: 1 });
  }
  if (run.device !== undefined && run.device !== "cpu" && run.device !== "cuda") {
    throw new UsageError(`train: --device ${JSON.stringify(run.device)}: expected cpu or cuda`);
  }
  if (run.out === true) throw new UsageError("train: --out needs a folder, e.g. --out results/x");
  // Named as typed: --out, --output_dir or --output-dir.
  const typed = Deno.args.find((a) => /^--(out|output[-_]dir)(=|$)/.test(a))?.replace(/=.*/, "");
  await checkOutputDir("train", typed ?? "--out (default)", outDir);
}

/**
 * Config keys of `schema` that have no default and were not given: refused naming the flag
 * (its alias, e.g. `--model` for `policy`, else `--key`), what it is, and an example.
 */
export function checkRequiredFlags(
  task: string,
  schema: z.ZodObject,
  config: Record<string, unknown>,
  aliases: Record<string, { key: string | string[] }>,
): void {
  const missing: string[] = [];
  for (const [key, s] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    if (config[key] !== undefined || s.safeParse(undefined).success) continue;
    const alias = Object.entries(aliases).find(([, a]) => [a.key].flat().includes(key))?.[0];
    const flag = `--${alias ?? key.replaceAll("_", "-")}`;
    missing.push(`  ${flag}: ${s.description ?? key} (config key ${key})`);
  }
  if (missing.length === 0) return;
  throw new UsageError(
    `train --task ${task}: ${missing.length === 1 ? "a required flag is" : "required flags are"} ` +
      `missing:\n${missing.join("\n")}`,
    {
      fix: task === "lm"
        ? "e.g. deno task train --task lm --model models/tiny-qwen3 --reward-model " +
          "models/tiny-qwen3-rm --prompts models/prompts.jsonl (`deno run -A " +
          "scripts/tiny_models.ts` writes these tiny folders)"
        : `see deno task train --task ${task} --help`,
    },
  );
}
