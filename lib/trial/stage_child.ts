/**
 * The child process of an isolated stage (lib/trial/stage_process.ts): reads one
 * {@link StageChildRequest} from stdin, imports the stage record and runs the stage into its
 * output folder. Not for direct use.
 * @module
 */
import type { StageDef } from "./contract.ts";
import type { StageChildRequest } from "./stage_process.ts";

if (import.meta.main) {
  const text = await new Response(Deno.stdin.readable).text();
  const req = JSON.parse(text) as StageChildRequest;
  const mod = await import(req.module) as Record<string, Record<string, StageDef>>;
  const def = mod[req.record]?.[req.name];
  if (!def) throw new Error(`${req.module}: no stage "${req.name}" in ${req.record}`);
  await def.run(req.config, req.outDir, req.ctx);
}
