/**
 * Compare two results folders of the same experiment, trial by trial: did a code change keep
 * every result byte for byte?
 *
 *   deno run -A scripts/compare_sweeps.ts /tmp/before/kl results/kl [--files a,b,...]
 *
 * Trials are paired by their resolved config (config.json `task`, `config` and `inputs`, without
 * the code version, which changes the trial id with every edit of lib/ or cli/). A config key
 * that no trial of one side has (a key a newer schema added, with its default on the other
 * side) is left out of the pairing and named in the output, so a sweep from before a schema
 * grew a key still pairs with one after it. For each pair
 * the result files are compared byte for byte: `metrics.jsonl`, `summary.json`,
 * `episodes.jsonl`, `checkpoints/eval.json` and `checkpoints/final.safetensors` by default (a file
 * missing on both sides is skipped). `eval.json` records the content hashes of the SFT and
 * reward-model stages, and a stage hash includes the code version, so when eval.json differs only
 * in `hash` fields that is reported as such (and is not a difference).
 *
 * Prints one line per trial and a total; exit status 0 when every trial pairs up and every
 * compared file is identical, 1 otherwise, 2 on bad arguments.
 * @module
 */
import { parseArgs } from "node:util";
import { canonicalJson } from "../lib/json.ts";

/** The files compared by default (relative to a trial folder). */
export const COMPARED_FILES: readonly string[] = [
  "metrics.jsonl",
  "summary.json",
  "episodes.jsonl",
  "checkpoints/eval.json",
  "checkpoints/final.safetensors",
];

/** One trial folder: its id and its identity without the code version (the pairing key). */
interface TrialDir {
  id: string;
  dir: string;
  key: string;
  label: string;
}

/** What {@link compareSweeps} finds. */
export interface SweepComparison {
  /** Trials present on both sides. */
  paired: { key: string; label: string; a: string; b: string; differences: string[] }[];
  /** Trials of one side only (by label). */
  onlyA: string[];
  onlyB: string[];
  /** Config keys (dotted) that only one side's trials have, left out of the pairing. */
  keysOnlyA: string[];
  keysOnlyB: string[];
  /** The values (JSON) those keys take on their side. */
  valuesA: Record<string, Set<string>>;
  valuesB: Record<string, Set<string>>;
}

async function readTrials(expDir: string): Promise<TrialDir[]> {
  const out: TrialDir[] = [];
  for await (const e of Deno.readDir(expDir)) {
    if (!e.isDirectory || e.name.startsWith(".")) continue;
    const dir = `${expDir}/${e.name}`;
    let identity: { task: string; config: Record<string, unknown>; inputs?: unknown };
    try {
      identity = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    } catch {
      continue; // not a trial bundle
    }
    const { task, config, inputs } = identity;
    out.push({ id: e.name, dir, key: canonicalJson({ task, config, inputs }), label: "" });
  }
  return out;
}

/** Every dotted config key of a side's trials. */
function configKeys(trials: TrialDir[]): Set<string> {
  return new Set(trials.flatMap((t) => Object.keys(flatten(JSON.parse(t.key).config))));
}

/** Re-key trials without the given dotted config keys; sorted by key. */
function withoutKeys(trials: TrialDir[], drop: Set<string>): TrialDir[] {
  const out = trials.map((t) => {
    if (!drop.size) return t;
    const { task, config, inputs } = JSON.parse(t.key);
    return { ...t, key: canonicalJson({ task, config: dropPaths(config, drop), inputs }) };
  });
  return out.sort((x, y) => x.key < y.key ? -1 : x.key > y.key ? 1 : 0);
}

function dropPaths(o: unknown, drop: Set<string>, prefix = ""): unknown {
  if (o === null || typeof o !== "object" || Array.isArray(o)) return o;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (drop.has(path)) continue;
    const kept = dropPaths(v, drop, path);
    // A section whose every key was dropped (a whole new section) goes too.
    const emptied = kept !== null && typeof kept === "object" && !Array.isArray(kept) &&
      Object.keys(kept).length === 0 && Object.keys(v as object).length > 0;
    if (!emptied) out[k] = kept;
  }
  return out;
}

async function readTrialsSorted(expDir: string): Promise<TrialDir[]> {
  const out = await readTrials(expDir);
  return out.sort((x, y) => x.key < y.key ? -1 : x.key > y.key ? 1 : 0);
}

/** The config keys whose values differ between trials (what names a trial in the output). */
function labels(trials: TrialDir[]): void {
  const flat = trials.map((t) => flatten(JSON.parse(t.key).config));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].filter((k) =>
    new Set(flat.map((f) => JSON.stringify(f[k]))).size > 1
  ).sort();
  trials.forEach((t, i) => {
    t.label = keys.map((k) => `${k}=${JSON.stringify(flat[i][k])}`).join(" ") || t.id;
  });
}

function flatten(o: unknown, prefix = "", out: Record<string, unknown> = {}) {
  if (o !== null && typeof o === "object" && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = o;
  return out;
}

async function readOrNull(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A JSON value without its `hash` members (stage content hashes carry the code version). */
function withoutHashes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutHashes);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.entries(v).filter(([k]) => k !== "hash").map(([k, x]) => [k, withoutHashes(x)]),
  );
}

/** Where two files first differ, in words (line number for text files). */
function firstDifference(file: string, a: Uint8Array, b: Uint8Array): string {
  if (/\.(jsonl?|txt)$/.test(file)) {
    const la = new TextDecoder().decode(a).split("\n"),
      lb = new TextDecoder().decode(b).split("\n");
    for (let i = 0; i < Math.max(la.length, lb.length); i++) {
      if (la[i] !== lb[i]) {
        const cut = (s: string | undefined) =>
          s === undefined ? "(none)" : s.length > 160 ? `${s.slice(0, 160)}…` : s;
        return `line ${i + 1}:\n      a: ${cut(la[i])}\n      b: ${cut(lb[i])}`;
      }
    }
  }
  let i = 0;
  while (i < Math.min(a.length, b.length) && a[i] === b[i]) i++;
  return `${a.length} vs ${b.length} bytes, first difference at byte ${i}`;
}

/** Compare the trials of two experiment folders (see the module doc). */
export async function compareSweeps(
  a: string,
  b: string,
  files: readonly string[] = COMPARED_FILES,
): Promise<SweepComparison> {
  const ra = await readTrialsSorted(a), rb = await readTrialsSorted(b);
  const [ka, kb] = [configKeys(ra), configKeys(rb)];
  const both = ra.length > 0 && rb.length > 0;
  const keysOnlyA = both ? [...ka].filter((k) => !kb.has(k)).sort() : [];
  const keysOnlyB = both ? [...kb].filter((k) => !ka.has(k)).sort() : [];
  const drop = new Set([...keysOnlyA, ...keysOnlyB]);
  const ta = withoutKeys(ra, drop), tb = withoutKeys(rb, drop);
  labels([...ta, ...tb]);
  const byKey = new Map(tb.map((t) => [t.key, t]));
  if (byKey.size !== tb.length || new Set(ta.map((t) => t.key)).size !== ta.length) {
    throw new Error(
      `trials no longer differ once the keys only one side has are left out ` +
        `(${[...drop].join(", ")}): compare the sweeps with those keys fixed`,
    );
  }
  const valuesOf = (trials: TrialDir[], keys: string[]) =>
    Object.fromEntries(keys.map((k) => [
      k,
      new Set(trials.map((t) => JSON.stringify(flatten(JSON.parse(t.key).config)[k]))),
    ]));
  const out: SweepComparison = {
    paired: [],
    onlyA: [],
    onlyB: [],
    keysOnlyA,
    keysOnlyB,
    valuesA: valuesOf(ra, keysOnlyA),
    valuesB: valuesOf(rb, keysOnlyB),
  };
  for (const x of ta) {
    const y = byKey.get(x.key);
    if (!y) {
      out.onlyA.push(x.label);
      continue;
    }
    byKey.delete(x.key);
    const differences: string[] = [];
    for (const f of files) {
      const [fa, fb] = [await readOrNull(`${x.dir}/${f}`), await readOrNull(`${y.dir}/${f}`)];
      if (fa === null && fb === null) continue;
      if (fa === null || fb === null) {
        differences.push(`${f}: only in ${fa === null ? "b" : "a"}`);
        continue;
      }
      if (sameBytes(fa, fb)) continue;
      if (f.endsWith("eval.json")) {
        const [ja, jb] = [fa, fb].map((t) => JSON.parse(new TextDecoder().decode(t)));
        if (canonicalJson(withoutHashes(ja)) === canonicalJson(withoutHashes(jb))) {
          continue; // only the stage hashes (code version) differ
        }
      }
      differences.push(`${f}: ${firstDifference(f, fa, fb)}`);
    }
    out.paired.push({ key: x.key, label: x.label, a: x.id, b: y.id, differences });
  }
  out.onlyB = [...byKey.values()].map((t) => t.label);
  return out;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { files: { type: "string" }, help: { type: "boolean" } },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 2) {
    console.log(
      "Usage: deno run -A scripts/compare_sweeps.ts <results/exp A> <results/exp B> " +
        `[--files ${COMPARED_FILES.join(",")}]`,
    );
    Deno.exit(values.help ? 0 : 2);
  }
  const files = values.files ? values.files.split(",") : COMPARED_FILES;
  const r = await compareSweeps(positionals[0], positionals[1], files);
  for (const p of r.paired) {
    console.log(
      `${p.differences.length ? "DIFFERS" : "same   "} ${p.label}  (${p.a} vs ${p.b})` +
        p.differences.map((d) => `\n    ${d}`).join(""),
    );
  }
  const sides = [["a", r.keysOnlyA, r.valuesA], ["b", r.keysOnlyB, r.valuesB]] as const;
  for (const [side, keys, values] of sides) {
    if (!keys.length) continue;
    const shown = keys.map((k) => `${k} = ${[...values[k]].join(" | ")}`);
    console.log(`config keys only in ${side} (left out of the pairing): ${shown.join(", ")}`);
  }
  for (const l of r.onlyA) console.log(`only in a: ${l}`);
  for (const l of r.onlyB) console.log(`only in b: ${l}`);
  const bad = r.paired.filter((p) => p.differences.length).length;
  console.log(
    `${r.paired.length} trials compared (${files.join(", ")}): ${r.paired.length - bad} ` +
      `identical, ${bad} differ; ${r.onlyA.length} only in a, ${r.onlyB.length} only in b`,
  );
  Deno.exit(bad || r.onlyA.length || r.onlyB.length ? 1 : 0);
}
