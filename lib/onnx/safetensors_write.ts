/**
 * Writing safetensors: the header and layout of the reference writer (descending dtype, then
 * name; see safetensors.ts), whole files in memory ({@link encodeSafetensors}), streamed one
 * tensor at a time ({@link writeSafetensors}), and saved atomically ({@link saveSafetensors}).
 * @module
 */
import {
  compareKeys,
  type DTypeInfo,
  DTYPES,
  hasOwn,
  isShape,
  LITTLE_ENDIAN_HOST,
  METADATA_KEY,
  type NamedTensor,
  numElements,
  swapInPlace,
  type TensorDType,
} from "./safetensors_dtypes.ts";

/** A tensor's dtype and shape: what the header records. */
export interface TensorSpec {
  dtype: TensorDType;
  shape: number[];
}

/** What {@link safetensorsLayout} returns. */
export interface SafetensorsLayout {
  /** The first bytes of the file: u64 length, header JSON, space padding. */
  header: Uint8Array;
  /** Tensor names in data order. */
  order: string[];
  /** Byte length of the data section. */
  dataLength: number;
}

/**
 * The layout of a safetensors file for tensors of these dtypes and shapes: data order
 * (descending dtype, then name, as the reference writer) and the header bytes.
 *
 * @example
 * ```ts
 * const { header, order } = safetensorsLayout({ w: { dtype: "bfloat16", shape: [2, 3] } }, { format: "pt" });
 * ```
 */
export function safetensorsLayout(
  specs: Record<string, TensorSpec>,
  metadata?: Record<string, string>,
): SafetensorsLayout {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const metaKeys = Object.keys(metadata).sort(compareKeys);
    for (const k of metaKeys) {
      if (typeof metadata[k] !== "string") {
        throw new Error(
          `safetensors: encode: metadata "${k}": value must be a string, got ${typeof metadata[
            k
          ]}`,
        );
      }
    }
    if (metaKeys.length > 0) {
      const body = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
      parts.push(`${JSON.stringify(METADATA_KEY)}:{${body.join(",")}}`);
    }
  }
  const checked = Object.keys(specs).map((name) => checkSpec(name, specs[name]));
  checked.sort((a, b) => b.info.rank - a.info.rank || compareKeys(a.name, b.name));
  let offset = 0;
  for (const { name, spec, info } of checked) {
    const end = offset + numElements(spec.shape) * info.itemSize;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${info.tag}","shape":[${
        spec.shape.join(",")
      }],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const headerJson = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = headerJson.length + ((8 - (headerJson.length % 8)) % 8);
  const header = new Uint8Array(8 + headerLen);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerLen), true);
  header.set(headerJson, 8);
  header.fill(0x20, 8 + headerJson.length);
  return { header, order: checked.map((c) => c.name), dataLength: offset };
}

/** The little-endian bytes of a checked tensor (a view on little-endian hosts). */
function leBytes(t: NamedTensor): Uint8Array {
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const itemSize = DTYPES[t.dtype].itemSize;
  if (LITTLE_ENDIAN_HOST || itemSize === 1) return raw;
  const out = raw.slice();
  swapInPlace(out, itemSize);
  return out;
}

/**
 * Encode tensors to safetensors bytes: laid out by descending dtype then name, as the
 * reference writer does (see the module doc); `metadata` → `__metadata__`, keys sorted.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } });
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  for (const name of Object.keys(tensors)) checkTensor(name, tensors[name]);
  const { header, order, dataLength } = safetensorsLayout(tensors, metadata);
  const out = new Uint8Array(header.length + dataLength);
  out.set(header);
  let pos = header.length;
  for (const name of order) {
    const raw = leBytes(tensors[name]);
    out.set(raw, pos);
    pos += raw.length;
  }
  return out;
}

/** Something bytes can be written to, such as a `Deno.FsFile`. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  let n = 0;
  while (n < bytes.length) n += await sink.write(bytes.subarray(n));
}

/**
 * Stream a safetensors file to `sink`: the header from `specs`, then each tensor as
 * `produce(name)` returns it, one at a time, so a model converted on the fly (say float32 ->
 * bfloat16) never exists whole in memory. Bytes equal {@link encodeSafetensors}'s.
 *
 * @example
 * ```ts
 * await writeSafetensors(file, specs, (name) => castFloatTensor(tensors[name], "bfloat16"), { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  sink: ByteSink,
  specs: Record<string, TensorSpec>,
  produce: (name: string) => NamedTensor | Promise<NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, order } = safetensorsLayout(specs, metadata);
  await writeAll(sink, header);
  for (const name of order) {
    const t = await produce(name);
    checkTensor(name, t);
    const spec = specs[name];
    if (t.dtype !== spec.dtype || t.shape.join(",") !== spec.shape.join(",")) {
      throw new Error(
        `safetensors: encode: tensor ${JSON.stringify(name)}: produced ${t.dtype} [${t.shape}], ` +
          `the header says ${spec.dtype} [${spec.shape}]`,
      );
    }
    await writeAll(sink, leBytes(t));
  }
}

/** Validate a dtype and shape for encoding; throws naming the tensor. */
function checkSpec(
  name: string,
  spec: TensorSpec,
): { name: string; spec: TensorSpec; info: DTypeInfo } {
  const where = `safetensors: encode: tensor ${JSON.stringify(name)}`;
  if (name === METADATA_KEY) throw new Error(`${where}: name is reserved`);
  if (spec === null || typeof spec !== "object") throw new Error(`${where}: not a tensor object`);
  const info = hasOwn(DTYPES, spec.dtype) ? DTYPES[spec.dtype] : undefined;
  if (info === undefined) throw new Error(`${where}: unknown dtype ${JSON.stringify(spec.dtype)}`);
  if (!isShape(spec.shape)) {
    throw new Error(
      `${where}: shape must be non-negative integers, got ${JSON.stringify(spec.shape)}`,
    );
  }
  return { name, spec, info };
}

/** Validate one tensor for encoding (dtype, shape, data type and length); throws naming it. */
function checkTensor(name: string, t: NamedTensor): void {
  const where = `safetensors: encode: tensor ${JSON.stringify(name)}`;
  const { info } = checkSpec(name, t);
  if (!(t.data instanceof info.ctor)) {
    throw new Error(
      `${where}: dtype ${t.dtype} needs data of type ${info.ctor.name}, got ${
        t.data?.constructor?.name ?? typeof t.data
      }`,
    );
  }
  const n = numElements(t.shape);
  if (t.data.length !== n) {
    throw new Error(
      `${where}: shape [${t.shape}] has ${n} elements but data has ${t.data.length}`,
    );
  }
  if (t.dtype === "bool") {
    const bad = (t.data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) {
      throw new Error(`${where}: bool data must be 0 or 1, got ${t.data[bad]} at ${bad}`);
    }
  }
}

/**
 * Atomically write a safetensors file (temp file in the same dir, fsync, rename).
 *
 * @example
 * ```ts
 * await saveSafetensors("ckpt.safetensors", tensors, { step: "100" });
 * ```
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  // Streamed a tensor at a time from the tensors' own memory (the same bytes as
  // encodeSafetensors): no whole-file buffer (a trainer checkpoint of the 43M model with its
  // optimizer state was a 0.5 GB one), every tensor checked before the file is opened.
  for (const name of Object.keys(tensors)) checkTensor(name, tensors[name]);
  const specs = Object.fromEntries(
    Object.entries(tensors).map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape }]),
  );
  const layout = safetensorsLayout(specs, metadata);
  const rnd = crypto.getRandomValues(new Uint8Array(8));
  const hex = Array.from(rnd, (b) => b.toString(16).padStart(2, "0")).join("");
  const tmp = `${path}.tmp-${hex}`;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    await writeAll(file, layout.header);
    for (const name of layout.order) await writeAll(file, leBytes(tensors[name]));
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(tmp, path);
  } catch (err) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`safetensors: cannot save ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
