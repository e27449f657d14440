/**
 * Reward functions placed directly in an experiment file (`rewards: [{ fn: exactMatch,
 * weight: 1 }]`) become module references (`{ module: "rewards/math.ts", name: "exactMatch",
 * weight: 1 }`) when the file is loaded: a sweep's trials run in other processes, which can
 * import a module but not receive a function, and the module's bytes are what planning hashes
 * into the trial id. The function must be exported by the experiment file itself or by a
 * module it imports (found by identity among their exports); anything else is an
 * {@link ExperimentError} naming it.
 *
 * @example
 * ```ts
 * // experiments/math.ts: import { exactMatch } from "../rewards/math.ts";
 * //   base: { rewards: [{ fn: exactMatch, weight: 1 }] }
 * await functionRewardsToModules("experiments/math.ts", exp);
 * // base.rewards: [{ module: "rewards/math.ts", name: "exactMatch", weight: 1 }]
 * ```
 * @module
 */
import { relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** Module specifiers a TypeScript/JavaScript file imports or re-exports (static forms). */
function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  const re = /\b(?:import|export)\b[^'";]*?\bfrom\s*["']([^"']+)["']|\bimport\s*["']([^"']+)["']/g;
  for (const m of source.matchAll(re)) out.push(m[1] ?? m[2]);
  return out;
}

type FnRef = Record<string, unknown> & { fn: (...a: unknown[]) => unknown };

/** Every `{ fn: function }` object under `root` (plain objects and arrays, each once). */
function findFnRefs(root: unknown, seen = new Set<unknown>(), out: FnRef[] = []): FnRef[] {
  if (typeof root !== "object" || root === null || seen.has(root)) return out;
  seen.add(root);
  if (!Array.isArray(root) && typeof (root as { fn?: unknown }).fn === "function") {
    out.push(root as FnRef);
  }
  for (const v of Array.isArray(root) ? root : Object.values(root)) findFnRefs(v, seen, out);
  return out;
}

/**
 * Replace each `{ fn, weight, name? }` in `exp.base` and `exp.sweep` (in place) with `{ module,
 * name, weight, as? }`: `module` the path (from the working directory) of the file among the
 * experiment file and its imports that exports `fn`, `name` its export name, `as` a `name`
 * given beside `fn` (the logged name). Returns the problems (a function no such module exports).
 */
export async function functionRewardsToModules(
  file: string,
  exp: { base?: unknown; sweep?: unknown },
): Promise<{ key: string; cause: string; fix: string }[]> {
  const refs = findFnRefs([exp.base, exp.sweep]);
  if (refs.length === 0) return [];
  const abs = resolve(Deno.cwd(), file);
  const candidates = [abs];
  for (const spec of importSpecifiers(await Deno.readTextFile(abs))) {
    if (spec.startsWith(".") || spec.startsWith("/")) {
      candidates.push(resolve(abs, "..", spec));
    }
  }
  const modules: { path: string; exports: Record<string, unknown> }[] = [];
  for (const path of candidates) {
    try {
      modules.push({ path, exports: await import(pathToFileURL(path).href) });
    } catch { /* not importable here: it cannot hold the function either */ }
  }
  const problems: { key: string; cause: string; fix: string }[] = [];
  for (const ref of refs) {
    const found = modules.flatMap((m) =>
      Object.entries(m.exports).filter(([, v]) => v === ref.fn).map(([name]) => ({
        path: m.path,
        name,
      }))
    ).find((x) => x.name !== "default");
    if (!found) {
      const label = ref.fn.name || "an anonymous function";
      problems.push({
        key: "rewards",
        cause: `reward function ${label} (given as fn) is not exported by ${file} or any ` +
          "module it imports, so the trials (other processes) cannot load it",
        fix:
          `export it from a module, e.g. rewards/mine.ts (export function ${
            ref.fn.name || "myReward"
          }(sample) { ... }), and import it here; or write { module: "rewards/mine.ts", ` +
          `name: "${ref.fn.name || "myReward"}", weight }`,
      });
      continue;
    }
    const rel = relative(Deno.cwd(), found.path);
    const as = typeof ref.name === "string" && ref.name !== found.name ? ref.name : undefined;
    delete (ref as Record<string, unknown>).fn;
    Object.assign(ref, {
      module: rel.startsWith("..") ? found.path : rel,
      name: found.name,
      ...(as ? { as } : {}),
    });
  }
  return problems;
}
