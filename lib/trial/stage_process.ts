/**
 * Stages in a child process, when a trial asks: a trial that measures its own training
 * (`measure_resources`) must not carry the memory a stage's training left behind (ORT sessions,
 * arenas, heap) into its peak RSS, so while {@link runStagesInChildProcess} is on, a stage
 * wrapped by {@link isolatable} computes its folder in a fresh `deno` process (the same code,
 * the same config and session options: the same bytes) and the trial only loads the result.
 * Off (the default), stages run in the trial's process as always.
 *
 * @example
 * ```ts
 * export const MY_STAGES = { sft: isolatable(sftStage, import.meta.url, "MY_STAGES") };
 * runStagesInChildProcess(config.measure_resources);
 * ```
 * @module
 */
import type { StageDef } from "./contract.ts";
import { fileURLToPath } from "node:url";
import { childEnv } from "../child_env.ts";

let inChild = false;

/** Run isolatable stages in a child process from now on (per process: a trial's worker). */
export function runStagesInChildProcess(on: boolean): void {
  inChild = on;
}

/** What the child process gets on stdin. */
export interface StageChildRequest {
  /** Module (URL) exporting the stage record. */
  module: string;
  /** The record's export name, and the stage's name in it. */
  record: string;
  name: string;
  config: unknown;
  outDir: string;
  ctx: { threads?: number; device?: "cpu" | "cuda" };
}

const ROOT = new URL("../../", import.meta.url);

/**
 * `def`, run in a child process while {@link runStagesInChildProcess} is on. The child imports
 * `module` and runs `record[def.name]` (the same wrapped def: off in the child, it runs there).
 */
export function isolatable<C>(def: StageDef<C>, module: string, record: string): StageDef<C> {
  return {
    ...def,
    async run(config, outDir, ctx) {
      if (!inChild) return await def.run(config, outDir, ctx);
      const req: StageChildRequest = {
        module,
        record,
        name: def.name,
        config,
        outDir,
        ctx: { threads: ctx.threads, device: ctx.device },
      };
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          "--config",
          fileURLToPath(new URL("deno.json", ROOT)),
          fileURLToPath(new URL("lib/trial/stage_child.ts", ROOT)),
        ],
        env: childEnv(), // huge pages for the stage's big allocations (lib/child_env.ts)
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
      await w.close();
      const out = await child.output();
      if (!out.success) {
        const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-12).join("\n");
        throw new Error(`stage ${def.name} failed in its child process:\n${err}`);
      }
    },
  };
}
