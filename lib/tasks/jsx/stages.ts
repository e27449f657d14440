/**
 * The `jsx` stage: `jsx-sft`, the SFT policy, one Hugging Face folder `<stage dir>/model`,
 * content-addressed by its config in the stage cache (lib/trial/stage_cache.ts). The SFT
 * budget is deliberately short (300 steps of 16) so the starting policy is imperfect
 * (structure rate ≈ 0.3–0.6) and PPO has room to raise it.
 *
 * @example
 * ```ts
 * const sft = await trainJsxSft({ sft: { seed: 2 } }, { cacheDir: "results/.stages" });
 * ```
 * @module
 */
import type { StageDef, StageRequest } from "../../trial/contract.ts";
import { isolatable } from "../../trial/stage_process.ts";
import { localStageCache, type LocalStageOptions } from "../../trial/stage_cache.ts";
import { byteSftStage, loadSftStage, type SftStage } from "../byte_lm.ts";
import { JSX_TASK, makeJsxCorpus } from "./corpus.ts";
import { type JsxRunConfig, type JsxRunInput, JsxSftStageSchema } from "./schema.ts";

/**
 * Bump when the corpus or the SFT code changes what the stage produces (part of its hash
 * outside the runner, which uses the code version).
 */
export const JSX_STAGE_VERSION = 1;

/** The SFT stage: a tiny GPT briefly trained on the generated corpus, saved to `<outDir>/model`. */
export const jsxSftStage = byteSftStage({
  name: "jsx-sft",
  description: "jsx: SFT of the starting policy on generated (prompt, component) pairs",
  schema: JsxSftStageSchema,
  version: JSX_STAGE_VERSION,
  corpus: (c, seed, size) => makeJsxCorpus({ seed, size, functionShare: c.sft.function_share }),
});

/**
 * The task's stages by name (for the stage cache); in a child process while a trial measures
 * its resources (lib/trial/stage_process.ts).
 */
export const JSX_STAGES: Record<string, StageDef> = {
  [jsxSftStage.name]: isolatable(jsxSftStage, import.meta.url, "JSX_STAGES"),
};

/** Options of {@link trainJsxSft}: where the stage comes from, and progress lines. */
export interface JsxStageOptions extends LocalStageOptions {
  log?: (line: string) => void;
}

/** The starting policy: the `jsx-sft` stage's folder (trained once per config), loaded. */
export async function trainJsxSft(
  input: Partial<Pick<JsxRunInput, "model" | "sft">> = {},
  opts: JsxStageOptions = {},
): Promise<SftStage> {
  const c = JsxSftStageSchema.parse({ model: input.model, sft: input.sft });
  const stage = localStageCache(
    { name: JSX_TASK, stages: JSX_STAGES, stageVersion: JSX_STAGE_VERSION },
    opts,
  );
  return await loadSftStage(stage, jsxSftStage.name, c, { log: opts.log, label: "jsx sft" });
}

/** The stages a `jsx` trial asks for ({@link trainJsxSft}'s): its SFT policy. */
export function jsxStagesFor(c: JsxRunConfig): StageRequest[] {
  return [{
    name: jsxSftStage.name,
    config: JsxSftStageSchema.parse({ model: c.model, sft: c.sft }),
  }];
}
