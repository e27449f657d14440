/**
 * Canonical JSON: sorted keys at every level, so equal values give equal bytes (hashes of
 * configs, stage keys, bundle files).
 * @module
 */

/** Sorted-key JSON of a plain value (objects, arrays, strings, finite numbers, booleans, null). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, ""));
}

/** Pretty (2-space) sorted-key JSON with a trailing newline: how JSON files in bundles look. */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, ""), null, 2) + "\n";
}

function sortKeys(v: unknown, path: string): unknown {
  if (typeof v === "number" && !Number.isFinite(v)) {
    throw new Error(`canonical JSON: ${path || "value"} is ${v}, which JSON cannot hold`);
  }
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x, i) => sortKeys(x, `${path}[${i}]`));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = sortKeys(x, path ? `${path}.${k}` : k);
  }
  return out;
}
