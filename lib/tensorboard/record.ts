/**
 * TFRecord framing, the container of TensorBoard event files: each record is
 *
 *   uint64 length (little endian) | uint32 masked CRC32C of those 8 bytes | data |
 *   uint32 masked CRC32C of data
 *
 * The CRC32C (Castagnoli) comes from the `crc-32` package; TensorFlow "masks" it (rotate right
 * by 15, add 0xa282ead8) so that a CRC of data holding CRCs does not degenerate.
 *
 * @example
 * ```ts
 * const bytes = frameRecord(new TextEncoder().encode("hello"));
 * readRecords(bytes); // [Uint8Array "hello"]
 * ```
 * @module
 */
import CRC32C from "crc-32/crc32c.js";

/** TensorFlow's masked CRC32C of `data` (an unsigned 32-bit number). */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = CRC32C.buf(data) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One record: length, its masked CRC, the data, the data's masked CRC. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * The records of a TFRecord file's bytes. A record whose CRC does not match throws, naming
 * the record and byte offset; a truncated last record (a writer still appending) is dropped.
 */
export function readRecords(bytes: Uint8Array, name = "event file"): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let off = 0; off + 12 <= bytes.length;) {
    const len = Number(view.getBigUint64(off, true));
    if (view.getUint32(off + 8, true) !== maskedCrc32c(bytes.subarray(off, off + 8))) {
      throw new Error(`${name}: record ${out.length} at byte ${off}: length CRC mismatch`);
    }
    if (off + 12 + len + 4 > bytes.length) break; // being written
    const data = bytes.subarray(off + 12, off + 12 + len);
    if (view.getUint32(off + 12 + len, true) !== maskedCrc32c(data)) {
      throw new Error(`${name}: record ${out.length} at byte ${off}: data CRC mismatch`);
    }
    out.push(data);
    off += 12 + len + 4;
  }
  return out;
}
