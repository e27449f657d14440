/**
 * sha256 of strings, files and folders: what every content address in Proxima is made of
 * (trial ids, stage hashes, file and bundle hashes, input folders).
 *
 * @example
 * ```ts
 * sha256Hex("abc").slice(0, 8); // "ba7816bf"
 * shortHash(canonicalJson({ stage: "sft", config })); // 16 hex digits: a folder name
 * ```
 * @module
 */
import { createHash } from "node:crypto";

/** Hex sha256 of bytes or of a string's UTF-8. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Short content hash used for trial and stage folder names (16 hex digits of sha256). */
export function shortHash(canonical: string): string {
  return sha256Hex(canonical).slice(0, 16);
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

/**
 * sha256 over a file's bytes, or over a folder's files (relative path, size and bytes of each,
 * in sorted order; names starting with "." skipped). Synchronous (planning is), read 1 MiB at a
 * time, so hashing a model folder holds none of its weights.
 */
export function contentHash(path: string): string {
  const h = createHash("sha256");
  const chunk = new Uint8Array(1 << 20);
  const visit = (p: string, rel: string) => {
    const st = Deno.statSync(p);
    if (st.isDirectory) {
      const names = [...Deno.readDirSync(p)].map((e) => e.name).filter((n) => !n.startsWith("."))
        .sort();
      for (const n of names) visit(`${p}/${n}`, rel ? `${rel}/${n}` : n);
    } else {
      // Streamed a chunk at a time: a model folder's weights are gigabytes, and planning (a
      // sweep's parent, which runs no trial) must not hold them to hash them.
      h.update(`${rel}\0${st.size}\0`);
      using f = Deno.openSync(p, { read: true });
      for (let n; (n = f.readSync(chunk)) !== null;) h.update(chunk.subarray(0, n));
    }
  };
  visit(path, "");
  return h.digest("hex");
}
