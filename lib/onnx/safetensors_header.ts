/**
 * Reading a safetensors header: parse and validate it as the reference reader does (offsets
 * tile the data section, sizes match shape and dtype, truncated files and Git LFS pointers
 * named as such), and turn one entry's bytes into a tensor.
 * @module
 */
import { InputError, isLfsPointer, lfsPointerError } from "../errors.ts";
import {
  copyToHost,
  defineEntry,
  DTYPES,
  FOREIGN_TAGS,
  hasOwn,
  isShape,
  LITTLE_ENDIAN_HOST,
  MAX_HEADER_SIZE,
  METADATA_KEY,
  type NamedTensor,
  numElements,
  swapInPlace,
  TAG_TO_DTYPE,
  type TensorDType,
} from "./safetensors_dtypes.ts";

/** One tensor's place in a safetensors file. */
export interface SafetensorsEntry {
  name: string;
  /** The file's dtype tag ("F32", "BF16", "I8", ...). */
  tag: string;
  /** Our dtype; undefined for a tag this module cannot hold (I8, U8, F8_*, ...). */
  dtype?: TensorDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** Every tensor, in data order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section (8 + header length). */
  dataStart: number;
  /** Bytes of the data section. */
  dataLength: number;
}

/**
 * Parse and validate the header of a safetensors file: `bytes` holds at least its first
 * 8 + N bytes, `fileLength` is the whole file's size. Checks what the reference reader checks
 * (offsets tile the data section exactly, sizes match shape and dtype), and reports a file
 * shorter than its header describes as "truncated file". Tensors of dtypes this module cannot
 * hold (I8, F8_E4M3, ...) are listed with `dtype` undefined.
 *
 * @example
 * ```ts
 * const { entries, dataStart } = parseSafetensorsHeader(bytes);
 * ```
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  fileLength = bytes.byteLength,
  source = "<bytes>",
): SafetensorsHeader {
  function fail(what: string): never {
    throw new InputError("safetensors", source, what, READ_FIX);
  }
  // "version " read as a header length is far past the limit: say what the file is.
  if (LFS_HEAD.test(head8(bytes)) || isLfsPointer(bytes.subarray(0, 64))) {
    throw lfsPointerError("safetensors", source);
  }
  if (fileLength < 8 || bytes.byteLength < 8) {
    fail(`truncated file: ${fileLength} bytes, need at least 8 for the header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    fail(`header length ${n64} exceeds the ${MAX_HEADER_SIZE} byte limit`);
  }
  const n = Number(n64);
  if (8 + n > fileLength) {
    fail(`truncated file: header length ${n} but only ${fileLength - 8} bytes follow`);
  }
  if (8 + n > bytes.byteLength) {
    throw new RangeError(`parseSafetensorsHeader: pass at least the first ${8 + n} bytes`);
  }
  const entries = parseHeaderJson(bytes.subarray(8, 8 + n), fail);
  const metadata = parseMetadata(entries, fail);
  const dataStart = 8 + n;
  const dataLength = fileLength - dataStart;
  const parsed: SafetensorsEntry[] = [];
  for (const name of Object.keys(entries)) {
    if (name !== METADATA_KEY) parsed.push(parseEntry(name, entries[name], fail));
  }
  checkRange(parsed, dataLength, fail);
  return { entries: checkTiling(parsed, dataLength, fail), metadata, dataStart, dataLength };
}

/** Throws an error naming the file, for what is wrong with it. */
export type Fail = (what: string) => never;

/** The fix for a file that cannot be read as safetensors. */
export const READ_FIX =
  "re-download or re-save the file (it is truncated, damaged or not a safetensors file)";
/** A Git LFS pointer's first 8 bytes, which a reader would take for the header length. */
const LFS_HEAD = /^version $/;
const head8 = (b: Uint8Array) => new TextDecoder().decode(b.subarray(0, 8));

function parseHeaderJson(raw: Uint8Array, fail: Fail): Record<string, unknown> {
  let headerText = "";
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    fail("header is not valid UTF-8");
  }
  if (!headerText.startsWith("{")) fail(`header JSON must start with "{"`);
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail("header JSON must be an object");
  }
  return header as Record<string, unknown>;
}

function parseMetadata(entries: Record<string, unknown>, fail: Fail): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (!hasOwn(entries, METADATA_KEY)) return metadata;
  const m = entries[METADATA_KEY];
  if (m === null || typeof m !== "object" || Array.isArray(m)) {
    fail(`"${METADATA_KEY}" must be an object of strings`);
  }
  for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
    if (typeof v !== "string") {
      fail(`"${METADATA_KEY}" key ${JSON.stringify(k)}: value must be a string`);
    }
    defineEntry(metadata, k, v as string);
  }
  return metadata;
}

/** One header entry, checked on its own (dtype, shape, offsets, size). */
function parseEntry(name: string, value: unknown, fail: Fail): SafetensorsEntry {
  const bad = (what: string): never => fail(`tensor ${JSON.stringify(name)}: ${what}`);
  const e = value as Record<string, unknown>;
  if (e === null || typeof e !== "object" || Array.isArray(e)) bad("entry must be an object");
  const tag = e.dtype;
  const known = typeof tag === "string" && hasOwn(TAG_TO_DTYPE, tag);
  if (!known && !(typeof tag === "string" && hasOwn(FOREIGN_TAGS, tag))) {
    bad(
      `unknown dtype ${JSON.stringify(tag)} (supported: ${Object.keys(TAG_TO_DTYPE).join(", ")})`,
    );
  }
  const dtype = known ? TAG_TO_DTYPE[tag as string] : undefined;
  const itemSize = dtype ? DTYPES[dtype].itemSize : FOREIGN_TAGS[tag as string];
  if (!isShape(e.shape)) {
    bad(`shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
  }
  const shape = (e.shape as number[]).slice();
  const offs = e.data_offsets;
  if (
    !Array.isArray(offs) || offs.length !== 2 ||
    !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    bad(`data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
  }
  const [begin, end] = offs as number[];
  if (end < begin) bad(`data_offsets [${begin}, ${end}]: end is before begin`);
  const expected = numElements(shape) * itemSize;
  if (end - begin !== expected) {
    bad(
      `shape [${shape}] with dtype ${tag} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${
        end - begin
      }`,
    );
  }
  const out: SafetensorsEntry = { name, tag: tag as string, shape, begin, end };
  if (dtype) out.dtype = dtype;
  return out;
}

/** Offsets past the data section: a truncated file when the entries add up to more. */
function checkRange(parsed: SafetensorsEntry[], dataLength: number, fail: Fail): void {
  const past = parsed.find((e) => e.end > dataLength);
  if (!past) return;
  let need = 0, sum = 0;
  for (const e of parsed) {
    need = Math.max(need, e.end);
    sum += e.end - e.begin;
  }
  const truncated = sum === need;
  fail(
    `${truncated ? "truncated file: " : ""}tensor ${JSON.stringify(past.name)}: ` +
      `data_offsets [${past.begin}, ${past.end}] out of range: data section has ${dataLength} ` +
      `bytes` + (truncated ? `, the header's tensors need ${need}` : ""),
  );
}

/** Sorted by offset, entries must tile [0, dataLength) exactly; returns them in that order. */
function checkTiling(
  parsed: SafetensorsEntry[],
  dataLength: number,
  fail: Fail,
): SafetensorsEntry[] {
  const byOffset = parsed.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of byOffset) {
    if (e.begin !== cursor) {
      fail(
        `tensor ${
          JSON.stringify(e.name)
        }: data_offsets [${e.begin}, ${e.end}] not contiguous: expected begin ${cursor}` +
          (e.begin < cursor ? " (overlaps previous tensor)" : " (gap before tensor)"),
      );
    }
    cursor = e.end;
  }
  if (cursor !== dataLength) {
    fail(`data section has ${dataLength} bytes but tensors cover only ${cursor}`);
  }
  return byOffset;
}

/** The message for a tensor of a dtype this module cannot hold. */
export function unsupportedDtype(e: SafetensorsEntry): string {
  return `tensor ${JSON.stringify(e.name)}: unsupported dtype ${e.tag} (supported: ${
    Object.keys(TAG_TO_DTYPE).join(", ")
  })`;
}

/** A tensor from its little-endian bytes (copied into a fresh aligned buffer). */
export function tensorFromBytes(
  e: SafetensorsEntry & { dtype: TensorDType },
  raw: Uint8Array,
  fresh: boolean,
  fail: Fail,
): NamedTensor {
  const info = DTYPES[e.dtype];
  let host: Uint8Array<ArrayBuffer>;
  if (fresh && raw.byteOffset === 0 && raw.buffer.byteLength === raw.byteLength) {
    host = raw as Uint8Array<ArrayBuffer>;
    if (!LITTLE_ENDIAN_HOST && info.itemSize > 1) swapInPlace(host, info.itemSize);
  } else {
    host = copyToHost(raw, info.itemSize);
  }
  if (e.dtype === "bool") {
    const badAt = host.findIndex((v) => v > 1);
    if (badAt >= 0) {
      fail(`tensor ${JSON.stringify(e.name)}: bool value ${host[badAt]} at index ${badAt}`);
    }
  }
  const data = e.dtype === "bool" ? host : new info.ctor(host.buffer);
  return { dtype: e.dtype, shape: e.shape.slice(), data };
}
