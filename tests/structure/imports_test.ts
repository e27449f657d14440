/**
 * The layering rules of README's "Layers", checked on the sources: no import circle among the
 * modules of lib/ and cli/ (a circle makes module initialisation order matter and hides which
 * module a concept belongs to).
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
