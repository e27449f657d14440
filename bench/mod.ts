/**
 * `deno task bench [name] [--threads N] [--steps N]`: benchmarks that print ratios
 * against a reference measured in the same run. Names: engine, gpt (default: all).
 * @module
 */
import { parseArgs } from "node:util";
import { benchEngine } from "./engine.ts";
import { benchGpt } from "./gpt.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "50" },
    warmup: { type: "string", default: "5" },
    fuse: { type: "string", default: "10" },
  },
});

const benches: Record<string, () => Promise<void>> = {
  engine: () =>
    benchEngine({
      threads: Number(values.threads),
      steps: Number(values.steps),
      warmup: Number(values.warmup),
      fuse: Number(values.fuse),
    }),
  gpt: () =>
    benchGpt({
      threads: Number(values.threads),
      steps: Number(values.steps),
      warmup: Number(values.warmup),
    }),
};

const names = positionals.length ? positionals : Object.keys(benches);
for (const n of names) {
  if (!benches[n]) {
    console.error(`bench: unknown benchmark "${n}" (known: ${Object.keys(benches).join(", ")})`);
    Deno.exit(2);
  }
  await benches[n]();
}
