/**
 * The `jsx` acceptance check on three seeds: for seeds 1, 2, 3 (each with its own SFT policy,
 * `sft.seed` = seed, trained into a fresh temporary stage cache), run a whole trial — SFT,
 * then PPO — and print the structure rate of the SFT policy and after PPO side by side, with
 * the parse and sandbox-execution rates, KL and wall time. Exits 1 unless PPO raised the
 * structure rate on every seed. (tests/tasks/jsx_test.ts runs seed 1 only: three seeds take
 * about 1.5–2.5 minutes on 2 cores.) `experiments/jsx.ts` runs the same trials as a sweep.
 *
 *   deno run -A scripts/jsx_seeds.ts [--seeds 1,2,3] [--threads 2]
 */
import { runJsxTrial } from "../lib/tasks/jsx/mod.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] !== undefined ? Deno.args[i + 1] : fallback;
};
const seeds = flag("seeds", "1,2,3").split(",").map(Number);
const threads = Number(flag("threads", "2"));
if (seeds.some((s) => !Number.isSafeInteger(s)) || !(threads >= 1)) {
  console.error("usage: deno run -A scripts/jsx_seeds.ts [--seeds 1,2,3] [--threads 2]");
  Deno.exit(2);
}
const tmp = await Deno.makeTempDir({ prefix: "proxima-jsx-seeds-" });
const rows: string[][] = [];
let failed = 0;
const fmt = (x: number | null) => (x === null ? "-" : x.toFixed(2));
try {
  for (const seed of seeds) {
    const t0 = performance.now();
    const r = await runJsxTrial({ seed, sft: { seed } }, `${tmp}/s${seed}`, {
      cacheDir: `${tmp}/stages`,
      session: { threads },
    });
    const secs = (performance.now() - t0) / 1e3;
    const up = r.after.structure_rate > r.before.structure_rate;
    if (!up) failed++;
    rows.push([
      String(seed),
      fmt(r.before.structure_rate),
      fmt(r.after.structure_rate),
      (r.after.structure_rate - r.before.structure_rate >= 0 ? "+" : "") +
      fmt(r.after.structure_rate - r.before.structure_rate),
      `${fmt(r.before.parse_rate)} -> ${fmt(r.after.parse_rate)}`,
      `${fmt(r.before.exec_rate)} -> ${fmt(r.after.exec_rate)}`,
      fmt(r.after.kl),
      `${secs.toFixed(1)} s`,
      up ? "raised" : "NOT RAISED",
    ]);
    console.log(`seed ${seed} done in ${secs.toFixed(1)} s`);
  }
} finally {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
const head = ["seed", "SFT structure", "PPO structure", "Δ", "parse", "exec", "KL", "wall", ""];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i])).join("  ").trimEnd();
console.log(
  [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n"),
);
if (failed) {
  console.error(`PPO did not raise the structure rate on ${failed} of ${seeds.length} seeds`);
  Deno.exit(1);
}
