/**
 * The stage cache: outputs of expensive stages that many trials share (SFT, reward model)
 * are content-addressed by the stage's own config and computed once, under
 * `results/.stages/<stage>/<hash>/` where hash = sha256 of canonical
 * `{ stage, config, code_version }` (16 hex digits). Any trial of any sweep that asks for the
 * same stage config gets the same folder back; a stage folder is a bundle (config.json,
 * outputs, manifest.json), written in `.tmp-<hash>` and renamed whole, and verified before
 * it is reused. Concurrent trials that need the same stage wait on a lock for the first one.
 *
 * @example
 * ```ts
 * const sft: StageDef<{ steps: number }> = {
 *   name: "sft",
 *   schema: z.object({ steps: z.number().int().positive() }).strict(),
 *   async run(cfg, outDir) { await Deno.writeTextFile(`${outDir}/model.txt`, "...") },
 * };
 * const { dir, cached } = await ensureStage(sft, { steps: 100 }, { root: "results", codeVersion });
 * ```
 * @module
 */
import type { z } from "zod";
import { ConfigError, formatIssues } from "../ppo/config.ts";
import { exists, publishDir, verifyBundle, writeFileSynced, writeManifest } from "./bundle.ts";
import { canonicalJson, stableJson } from "./hash.ts";
import { shortHash } from "./code_version.ts";
import { lockWait } from "./lock.ts";

/** A cacheable stage. run() writes its outputs into outDir (which holds only config.json). */
export interface StageDef<C = unknown> {
  name: string;
  description?: string;
  schema: z.ZodType<C>;
  run(config: C, outDir: string, ctx: StageContext): Promise<void>;
}

export interface StageContext {
  threads: number;
  device: "cpu" | "cuda";
}

export interface StageResult {
  name: string;
  hash: string;
  dir: string;
  /** true when the folder already existed (nothing was computed). */
  cached: boolean;
}

export interface StageCacheOptions {
  /** The results root (stages live in `<root>/.stages/`). */
  root: string;
  codeVersion: string;
  threads?: number;
  device?: "cpu" | "cuda";
}

/** The hash a stage config gets (what its folder is named). */
export function stageId(name: string, config: unknown, codeVersion: string): string {
  return shortHash(canonicalJson({ stage: name, config, code_version: codeVersion }));
}

/** The stage's output folder for `input`, computing it if no verified copy exists. */
export async function ensureStage<C>(
  stage: StageDef<C>,
  input: unknown,
  opts: StageCacheOptions,
): Promise<StageResult> {
  const parsed = stage.schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(formatIssues(parsed.error.issues, input, `stage ${stage.name}`));
  }
  const config = parsed.data;
  const identity = { stage: stage.name, config, code_version: opts.codeVersion };
  const hash = shortHash(canonicalJson(identity));
  const base = `${opts.root}/.stages/${stage.name}`;
  const dir = `${base}/${hash}`, tmp = `${base}/.tmp-${hash}`;
  await Deno.mkdir(base, { recursive: true });
  using _lock = await lockWait(`${base}/.lock-${hash}`);
  if (await exists(dir)) {
    const v = await verifyBundle(dir);
    if (!v.ok) {
      throw new Error(
        `stage ${stage.name} ${dir} fails verification (${
          v.problems.map((p) => `${p.file}: ${p.problem}`).join("; ")
        }); delete ${dir} to compute it again`,
      );
    }
    return { name: stage.name, hash, dir, cached: true };
  }
  // A stage is not resumable: a half-done temporary from a killed run starts over.
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await writeFileSynced(`${tmp}/config.json`, stableJson(identity));
  await stage.run(config, tmp, { threads: opts.threads ?? 1, device: opts.device ?? "cpu" });
  await writeManifest(tmp);
  await publishDir(tmp, dir);
  return { name: stage.name, hash, dir, cached: false };
}
