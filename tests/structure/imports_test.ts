/**
 * The layering rules of README's "Layers", checked on the sources: no import circle among the
 * modules of lib/ and cli/ (a circle makes module initialisation order matter and hides which
 * module a concept belongs to), and no module of lib/ or cli/ over {@link MAX_LINES} lines
 * (one topic per file) but those still waiting for their split.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");

/** Every .ts file under `dir`, relative to the repository root. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(ROOT, dir))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Relative imports of a module (static `import ... from` and `export ... from`), resolved. */
export function relativeImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
    out.push(relative(ROOT, resolve(ROOT, dirname(file), m[1])));
  }
  return out;
}

/** The import circles of a graph: each as the list of its modules, smallest first. */
export function importCircles(graph: Map<string, string[]>): string[][] {
  // Tarjan's strongly connected components; a component of 2+ modules (or a self-import) is a circle.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), circles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index), low.set(v, index++), stack.push(v), on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) visit(w), low.set(v, Math.min(low.get(v)!, low.get(w)!));
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) !== idx.get(v)) return;
    const comp: string[] = [];
    let w: string;
    do (w = stack.pop()!, on.delete(w), comp.push(w)); while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(comp.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return circles;
}

Deno.test("importCircles finds a circle and only that", () => {
  const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]], ["e", ["e"]]]);
  assertEquals(importCircles(g), [["a", "b", "c"], ["e"]]);
  assertEquals(importCircles(new Map([["a", ["b"]], ["b", []]])), []);
});

Deno.test("lib/ and cli/ have no import circle", () => {
  const graph = new Map<string, string[]>();
  for (const f of [...sources("lib"), ...sources("cli")]) {
    graph.set(f, relativeImports(f, Deno.readTextFileSync(join(ROOT, f))));
  }
  assertEquals(importCircles(graph), []);
});

/** Most lines a module of lib/ or cli/ may have (DESIGN.md: small modules, one topic per file). */
const MAX_LINES = 600;

/**
 * Modules still over {@link MAX_LINES} lines, each waiting for its split along its concerns
 * (issue 23, Build item 7). This list may only shrink: a new file over the limit fails the
 * test below, and so does an entry here that has come under it (remove it then).
 */
const WAITING_FOR_SPLIT: readonly string[] = [];

/** Lines of a text as an editor numbers them (a last line without a newline counts too). */
export function lineCount(text: string): number {
  if (text === "") return 0;
  const n = text.split("\n").length;
  return text.endsWith("\n") ? n - 1 : n;
}

Deno.test("lineCount counts lines, a last one without a newline too", () => {
  assertEquals([lineCount(""), lineCount("a"), lineCount("a\n"), lineCount("a\nb")], [0, 1, 1, 2]);
});

Deno.test(`no module of lib/ or cli/ is over ${MAX_LINES} lines but the allow-listed ones`, () => {
  const over = [...sources("lib"), ...sources("cli")].sort()
    .map((f) => ({ f, n: lineCount(Deno.readTextFileSync(join(ROOT, f))) }))
    .filter(({ n }) => n > MAX_LINES);
  const unlisted = over.filter(({ f }) => !WAITING_FOR_SPLIT.includes(f))
    .map(({ f, n }) => `${f} (${n} lines: split it along its concerns)`);
  const stale = WAITING_FOR_SPLIT.filter((f) => !over.some((o) => o.f === f))
    .map((f) => `${f} (no longer over ${MAX_LINES} lines: remove it from WAITING_FOR_SPLIT)`);
  assertEquals([...unlisted, ...stale], []);
});
