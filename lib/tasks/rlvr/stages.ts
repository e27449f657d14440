/**
 * The `rlvr` stage: `rlvr-sft`, the starting policy SFT'd on worked solutions (one Hugging
 * Face folder `<stage dir>/model`, content-addressed by its config in the stage cache). Short
 * on purpose (600 steps of 16): the policy knows the format and is often right, not always
 * (held-out pass@1 ≈ 0.36, pass@4 ≈ 0.7; 1500 steps reach 0.9, 150 steps 0), so RL on the
 * verifiable reward has room to improve it.
 * @module
 */
import type { StageDef, StageRequest } from "../../trial/contract.ts";
import { isolatable } from "../../trial/stage_process.ts";
import { byteSftStage } from "../byte_lm.ts";
import { makeRlvrCorpus } from "./corpus.ts";
import { type RlvrRunConfig, RlvrSftStageSchema } from "./schema.ts";

/** Bump when the corpus or the SFT code changes what the stage produces. */
export const RLVR_STAGE_VERSION = 1;

/** The SFT stage: a tiny byte-level GPT on worked addition problems. */
export const rlvrSftStage = byteSftStage({
  name: "rlvr-sft",
  description: "rlvr: SFT of the starting policy on worked addition problems",
  schema: RlvrSftStageSchema,
  version: RLVR_STAGE_VERSION,
  corpus: (c, seed, size) => makeRlvrCorpus({ seed, size, max: c.max_operand }),
});

/** The task's stages by name. */
export const RLVR_STAGES: Record<string, StageDef> = {
  [rlvrSftStage.name]: isolatable(rlvrSftStage, import.meta.url, "RLVR_STAGES"),
};

/** The SFT stage's config for a trial config. */
export function rlvrSftConfig(
  c: RlvrRunConfig,
): { model: unknown; sft: unknown; max_operand: number } {
  return { model: c.model, sft: c.sft, max_operand: c.max_operand };
}

/** The stages an `rlvr` trial asks for: its SFT policy. */
export function rlvrStagesFor(c: RlvrRunConfig): StageRequest[] {
  return [{ name: rlvrSftStage.name, config: rlvrSftConfig(c) }];
}
