/**
 * Canonical JSON and sha256: the two things every identity in the experiment layer is made
 * of (trial ids, stage hashes, file and bundle hashes).
 *
 * Canonical JSON is `JSON.stringify` with object keys sorted at every level and `undefined`
 * members dropped, so two configs that differ only in key order or in how they were written
 * (`1e-4` vs `0.0001`) hash the same. Non-finite numbers are refused: they have no JSON form.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }); // '{"a":[2,{"c":4,"d":3}],"b":1}'
 * sha256Hex("abc").slice(0, 8); // "ba7816bf"
 * ```
 * @module
 */
import { createHash } from "node:crypto";

export { canonicalJson, stableJson } from "../json.ts";

/** Hex sha256 of bytes or of a string's UTF-8. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Hex sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  using f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: h.digest("hex"), bytes };
}
