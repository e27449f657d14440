/**
 * Canonical JSON and sha256: the two things every identity in the experiment layer is made
 * of (trial ids, stage hashes, file and bundle hashes). Both live below every layer
 * (`lib/json.ts`, `lib/hash.ts`); re-exported here.
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
export { canonicalJson, stableJson } from "../json.ts";
export { contentHash, sha256File, sha256Hex, shortHash } from "../hash.ts";
