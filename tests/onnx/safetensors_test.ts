import assert from "node:assert/strict";
import {
  bfloat16ToFloat32,
  castFloatTensor,
  decodeSafetensors,
  encodeSafetensors,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  floatValues,
  loadSafetensors,
  type NamedTensor,
  openSafetensors as openAny,
  parseSafetensorsHeader,
  saveSafetensors,
  writeSafetensors,
} from "../../lib/onnx/safetensors.ts";
import { mapStats } from "../../lib/onnx/file_map.ts";

const enc = new TextEncoder();

/** Build a file from a raw header string (padded as given) and raw data bytes. */
function rawFile(
  header: string,
  data: number[] | Uint8Array = [],
  lenOverride?: number,
): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(lenOverride ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function headerOf(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + n));
}

function vals(data: NamedTensor["data"]): (number | bigint)[] {
  return Array.from(data as ArrayLike<number | bigint>);
}

function bytesOf(t: NamedTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** One tensor of every dtype, including special values, an empty tensor and scalars. */
function allDtypes(): Record<string, NamedTensor> {
  return {
    f32: {
      dtype: "float32",
      shape: [2, 3],
      data: new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 3.4028234663852886e38]),
    },
    f64: { dtype: "float64", shape: [3], data: new Float64Array([Math.PI, -1e-300, NaN]) },
    i64: {
      dtype: "int64",
      shape: [2, 1],
      data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
    },
    i32: { dtype: "int32", shape: [4], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -1]) },
    mask: { dtype: "bool", shape: [5], data: new Uint8Array([1, 0, 0, 1, 1]) },
    empty: { dtype: "float32", shape: [0, 7], data: new Float32Array(0) },
    scalar_f64: { dtype: "float64", shape: [], data: new Float64Array([2.5]) },
    scalar_bool: { dtype: "bool", shape: [], data: new Uint8Array([1]) },
    step: { dtype: "int64", shape: [], data: new BigInt64Array([42n]) },
  };
}

function assertThrowsWith(fn: () => unknown, ...parts: string[]): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected an Error to be thrown, got ${String(caught)}`);
  for (const p of parts) {
    assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} lacks ${p}`);
  }
  return caught;
}

Deno.test("golden: one F32 [1,2] tensor with header padding, byte for byte", () => {
  // {"bias":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}} is 59 bytes,
  // padded with 5 spaces to N = 64 so that 8 + N = 72 is a multiple of 8.
  const header = `{"bias":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}`;
  assert.equal(header.length, 59);
  const expected = new Uint8Array([
    64,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // N = 64, u64 little-endian
    ...enc.encode(header),
    0x20,
    0x20,
    0x20,
    0x20,
    0x20, // padding
    0x00,
    0x00,
    0xc0,
    0x3f, // 1.5f  = 0x3FC00000
    0x00,
    0x00,
    0x00,
    0xc0, // -2.0f = 0xC0000000
  ]);
  assert.equal(expected.length, 80);
  const got = encodeSafetensors({
    bias: { dtype: "float32", shape: [1, 2], data: new Float32Array([1.5, -2]) },
  });
  assert.deepEqual(Array.from(got), Array.from(expected));
  const back = decodeSafetensors(expected);
  assert.deepEqual(back.tensors.bias.shape, [1, 2]);
  assert.deepEqual(Array.from(back.tensors.bias.data as Float32Array), [1.5, -2]);
  assert.deepEqual(back.metadata, {});
});

Deno.test("golden: header already a multiple of 8 gets no padding; metadata + I32 scalar", () => {
  const h1 = `{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}`;
  assert.equal(h1.length, 56);
  const got1 = encodeSafetensors({
    a: { dtype: "float32", shape: [1, 2], data: new Float32Array([1.5, -2]) },
  });
  assert.deepEqual(
    Array.from(got1),
    [56, 0, 0, 0, 0, 0, 0, 0, ...enc.encode(h1), 0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0],
  );

  const h2 = `{"__metadata__":{"format":"pt"},"x":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}`;
  assert.equal(h2.length, 84); // padded with 4 spaces to 88
  const got2 = encodeSafetensors(
    { x: { dtype: "int32", shape: [], data: new Int32Array([-2]) } },
    { format: "pt" },
  );
  assert.deepEqual(
    Array.from(got2),
    [88, 0, 0, 0, 0, 0, 0, 0, ...enc.encode(h2), 0x20, 0x20, 0x20, 0x20, 0xfe, 0xff, 0xff, 0xff],
  );
  assert.deepEqual(decodeSafetensors(got2).metadata, { format: "pt" });
});

Deno.test("round trip encode -> decode -> encode is byte-exact for all dtypes", () => {
  const tensors = allDtypes();
  const meta = { format: "pt", note: "ünïcode ✓", empty: "" };
  const a = encodeSafetensors(tensors, meta);
  const n = Number(new DataView(a.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0, "data section starts 8-byte aligned");
  assert.match(headerOf(a), /^\{.*\} {0,7}$/s, "padding is at most 7 trailing spaces");
  const dec = decodeSafetensors(a);
  const b = encodeSafetensors(dec.tensors, dec.metadata);
  assert.deepEqual(Array.from(b), Array.from(a));
  assert.deepEqual(dec.metadata, meta);
  assert.deepEqual(Object.keys(dec.tensors).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const d = dec.tensors[name];
    assert.equal(d.dtype, t.dtype, name);
    assert.deepEqual(d.shape, t.shape, name);
    assert.equal(d.data.constructor, t.data.constructor, name);
    // Compare raw bytes so NaN and -0 are checked exactly.
    assert.deepEqual(Array.from(bytesOf(d)), Array.from(bytesOf(t)), name);
  }
  // And value-level checks for a few entries.
  assert.deepEqual(Array.from(dec.tensors.i64.data as BigInt64Array), [
    -(2n ** 63n),
    2n ** 63n - 1n,
  ]);
  assert.ok(Object.is((dec.tensors.f32.data as Float32Array)[1], -0));
  assert.ok(Number.isNaN((dec.tensors.f64.data as Float64Array)[2]));
  assert.deepEqual(dec.tensors.scalar_f64.shape, []);
  assert.equal((dec.tensors.scalar_f64.data as Float64Array)[0], 2.5);
  assert.equal(dec.tensors.empty.data.length, 0);
  assert.deepEqual(dec.tensors.empty.shape, [0, 7]);
});

Deno.test("no metadata -> no __metadata__ key; empty checkpoint is valid", () => {
  const bytes = encodeSafetensors(allDtypes());
  assert.ok(!headerOf(bytes).includes("__metadata__"));
  const withEmptyMeta = encodeSafetensors(allDtypes(), {});
  assert.deepEqual(Array.from(withEmptyMeta), Array.from(bytes));

  const none = encodeSafetensors({});
  assert.deepEqual(Array.from(none), [8, 0, 0, 0, 0, 0, 0, 0, ...enc.encode("{}      ")]);
  assert.deepEqual(decodeSafetensors(none), { tensors: {}, metadata: {} });
});

Deno.test("same tensors in different insertion order give identical bytes, laid out as the reference", () => {
  const t = allDtypes();
  const reversed = Object.fromEntries(Object.entries(t).reverse());
  const a = encodeSafetensors(t, { b: "2", a: "1" });
  const b = encodeSafetensors(reversed, { a: "1", b: "2" });
  assert.deepEqual(Array.from(b), Array.from(a));

  // Integer-like names would be reordered by plain JS objects; header must still be sorted.
  const odd = {
    b: t.i32,
    "10": t.mask,
    "2": t.f32,
    "__proto__x": t.step,
  } as Record<string, NamedTensor>;
  // Laid out as the reference writer does: descending dtype (I64, F32, I32, BOOL), then name;
  // the header lists the tensors in data order, so offsets increase along it.
  const h = JSON.stringify(headerOf(encodeSafetensors(odd)));
  const pos = ["__proto__x", "2", "b", "10"].map((k) => h.indexOf(`\\"${k}\\":{`));
  assert.ok(pos.every((p) => p > 0), `all keys present: ${pos}`);
  assert.deepEqual(pos.slice().sort((x, y) => x - y), pos, "keys in data order");
  const parsed = JSON.parse(headerOf(encodeSafetensors(odd)));
  assert.deepEqual(parsed["__proto__x"].data_offsets, [0, 8]);
  assert.deepEqual(parsed["2"].data_offsets, [8, 32]);
  assert.deepEqual(parsed.b.data_offsets, [32, 48]);
  assert.deepEqual(parsed["10"].data_offsets, [48, 53]);
});

Deno.test("decoded arrays are aligned copies even from an unaligned input view", () => {
  const file = encodeSafetensors(allDtypes());
  const backing = new Uint8Array(file.length + 3);
  backing.set(file, 3);
  const view = backing.subarray(3); // odd byteOffset
  const dec = decodeSafetensors(view);
  for (const [name, t] of Object.entries(dec.tensors)) {
    assert.equal(t.data.byteOffset, 0, name);
    assert.equal(t.data.buffer.byteLength, t.data.byteLength, name);
  }
  backing.fill(0xff);
  assert.equal((dec.tensors.f64.data as Float64Array)[0], Math.PI, "not a view of the input");
  assert.deepEqual(vals(dec.tensors.mask.data), [1, 0, 0, 1, 1]);
});

Deno.test("encoding a subarray view writes only the viewed elements", () => {
  const big = new Float32Array([9, 1, 2, 9]);
  const a = encodeSafetensors({ w: { dtype: "float32", shape: [2], data: big.subarray(1, 3) } });
  const b = encodeSafetensors({
    w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) },
  });
  assert.deepEqual(Array.from(a), Array.from(b));
});

Deno.test("encode rejects invalid tensors with the key in the message", () => {
  const f = new Float32Array([1, 2, 3]);
  assertThrowsWith(
    () => encodeSafetensors({ w: { dtype: "float32", shape: [2, 2], data: f } }),
    `"w"`,
    "4 elements",
  );
  assertThrowsWith(
    () => encodeSafetensors({ w: { dtype: "float64", shape: [3], data: f } }),
    `"w"`,
    "Float64Array",
  );
  assertThrowsWith(
    () => encodeSafetensors({ w: { dtype: "float32", shape: [1.5], data: f } }),
    `"w"`,
    "shape",
  );
  assertThrowsWith(
    () => encodeSafetensors({ __metadata__: { dtype: "float32", shape: [3], data: f } }),
    "__metadata__",
    "reserved",
  );
  assertThrowsWith(
    () => encodeSafetensors({ m: { dtype: "bool", shape: [2], data: new Uint8Array([0, 2]) } }),
    `"m"`,
    "0 or 1",
  );
  assertThrowsWith(
    () => encodeSafetensors({}, { k: 1 as unknown as string }),
    `"k"`,
    "string",
  );
});

// ---- corrupt inputs -------------------------------------------------------

const SRC = "/ckpt/model.safetensors";
const F32_2 = [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]; // [1, 2] as F32 LE

Deno.test("corrupt: a well-formed hand-built file decodes (control for the cases below)", () => {
  const ok = rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, F32_2);
  assert.deepEqual(vals(decodeSafetensors(ok, SRC).tensors.w.data), [1, 2]);
});

Deno.test("corrupt: truncated files", () => {
  const good = encodeSafetensors({
    w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) },
  });
  assertThrowsWith(() => decodeSafetensors(good.subarray(0, 5), SRC), SRC, "truncated");
  // header cut short
  assertThrowsWith(() => decodeSafetensors(good.subarray(0, 20), SRC), SRC, "truncated");
  // data cut short: the tensor's offsets run past the end
  assertThrowsWith(
    () => decodeSafetensors(good.subarray(0, good.length - 1), SRC),
    SRC,
    `"w"`,
    "out of range",
  );
  // absurd header length
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
  assertThrowsWith(() => decodeSafetensors(huge, SRC), SRC, "header length");
  // default source label
  assertThrowsWith(() => decodeSafetensors(new Uint8Array(3)), "<bytes>", "truncated");
});

Deno.test("corrupt: bad JSON and non-object header", () => {
  assertThrowsWith(
    () => decodeSafetensors(rawFile(`{"w":{"dtype":"F32",`, F32_2), SRC),
    SRC,
    "not valid JSON",
  );
  assertThrowsWith(() => decodeSafetensors(rawFile(`[1,2]`), SRC), SRC, "{");
  assertThrowsWith(
    () => decodeSafetensors(rawFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`), SRC),
    SRC,
    "JSON",
  );
  const badUtf8 = rawFile(`{"w":1}`);
  badUtf8[10] = 0xff;
  assertThrowsWith(() => decodeSafetensors(badUtf8, SRC), SRC, "UTF-8");
  assertThrowsWith(
    () => decodeSafetensors(rawFile(`{"__metadata__":{"k":3}}`), SRC),
    SRC,
    "__metadata__",
    `"k"`,
  );
  assertThrowsWith(
    () => decodeSafetensors(rawFile(`{"w":[1]}`), SRC),
    SRC,
    `"w"`,
    "object",
  );
});

Deno.test("corrupt: unknown dtype names the key and the dtype", () => {
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,8]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "unknown dtype",
    "Q4",
  );
  // A dtype of the format that this module cannot hold: the header parses, decoding fails.
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "unsupported dtype I8",
  );
});

Deno.test("corrupt: offsets out of range, negative, reversed", () => {
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "out of range",
  );
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "data_offsets",
  );
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "before begin",
  );
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "data_offsets",
  );
});

Deno.test("corrupt: shape/offset size mismatch", () => {
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "12 bytes",
  );
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "16 bytes",
  );
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}`, F32_2),
        SRC,
      ),
    SRC,
    `"w"`,
    "shape",
  );
});

Deno.test("corrupt: non-contiguous, overlapping or trailing data", () => {
  const data = [...F32_2, ...F32_2];
  // gap: second tensor starts at 12 instead of 8 (and data has 4 spare bytes)
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(
          `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
            `"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}`,
          data,
        ),
        SRC,
      ),
    SRC,
    `"b"`,
    "not contiguous",
  );
  // overlap
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(
          `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
            `"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
          data,
        ),
        SRC,
      ),
    SRC,
    `"b"`,
    "overlaps",
  );
  // trailing bytes not covered by any tensor
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, data),
        SRC,
      ),
    SRC,
    "16 bytes",
    "cover only 8",
  );
  // Out-of-header-order layout is fine as long as it tiles the data section.
  const swapped = decodeSafetensors(
    rawFile(
      `{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},` +
        `"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
      F32_2,
    ),
    SRC,
  );
  assert.deepEqual(vals(swapped.tensors.a.data), [2]);
  assert.deepEqual(vals(swapped.tensors.b.data), [1]);
});

Deno.test("corrupt: bool bytes other than 0/1 are rejected", () => {
  assertThrowsWith(
    () =>
      decodeSafetensors(
        rawFile(`{"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}`, [1, 7]),
        SRC,
      ),
    SRC,
    `"m"`,
    "bool",
  );
});

// ---- file IO --------------------------------------------------------------

Deno.test("save/load round trips through a temp dir and leaves no .tmp- file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const path = `${dir}/model.safetensors`;
    const tensors = allDtypes();
    await saveSafetensors(path, tensors, { step: "7" });
    const onDisk = await Deno.readFile(path);
    assert.deepEqual(Array.from(onDisk), Array.from(encodeSafetensors(tensors, { step: "7" })));

    const loaded = await loadSafetensors(path);
    assert.deepEqual(loaded.metadata, { step: "7" });
    assert.deepEqual(
      Array.from(encodeSafetensors(loaded.tensors, loaded.metadata)),
      Array.from(onDisk),
    );

    // Overwrite with different content.
    await saveSafetensors(path, { x: { dtype: "int32", shape: [1], data: new Int32Array([5]) } });
    const reloaded = await loadSafetensors(path);
    assert.deepEqual(Object.keys(reloaded.tensors), ["x"]);
    assert.deepEqual(vals(reloaded.tensors.x.data), [5]);

    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["model.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("failed save leaves the existing file intact and no .tmp- file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const path = `${dir}/ckpt.safetensors`;
    await saveSafetensors(path, allDtypes());
    const before = await Deno.readFile(path);
    // Encoding error (bad length) -> nothing written.
    await assert.rejects(
      saveSafetensors(path, { w: { dtype: "float32", shape: [9], data: new Float32Array(2) } }),
      /"w"/,
    );
    // Rename error: target path is a non-empty directory -> tmp must be cleaned up.
    const blocked = `${dir}/blocked`;
    await Deno.mkdir(`${blocked}/inner`, { recursive: true });
    await assert.rejects(saveSafetensors(blocked, allDtypes()), (e: Error) => {
      assert.ok(e.message.includes(blocked), e.message);
      return true;
    });
    // Missing directory -> error names the path.
    const missing = `${dir}/nope/x.safetensors`;
    await assert.rejects(saveSafetensors(missing, allDtypes()), (e: Error) => {
      assert.ok(e.message.includes(missing), e.message);
      return true;
    });

    assert.deepEqual(Array.from(await Deno.readFile(path)), Array.from(before));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["blocked", "ckpt.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: missing file and corrupt file errors name the path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    const missing = `${dir}/absent.safetensors`;
    await assert.rejects(loadSafetensors(missing), (e: Error) => {
      assert.ok(e.message.includes("not found"), e.message);
      assert.ok(e.message.includes(missing), e.message);
      return true;
    });
    const bad = `${dir}/bad.safetensors`;
    await Deno.writeFile(
      bad,
      rawFile(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}`, F32_2),
    );
    await assert.rejects(loadSafetensors(bad), (e: Error) => {
      assert.ok(e.message.includes(bad), e.message);
      assert.ok(e.message.includes(`"w"`), e.message);
      assert.ok(e.message.includes("Q4"), e.message);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- float16 / bfloat16 ----------------------------------------------------

/** float32 values from bit patterns. */
function f32(...bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

Deno.test("golden: BF16 and F16 tensors, byte for byte, and the reference layout", () => {
  const got = encodeSafetensors({
    h: { dtype: "float16", shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }, // 1, -2
    b: { dtype: "bfloat16", shape: [2], data: new Uint16Array([0x3f80, 0xc040]) }, // 1, -3
  });
  // BF16 sorts before F16 in the reference Dtype order (descending), whatever the names.
  const header = `{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},` +
    `"h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}`;
  assert.equal(header.length, 108); // + 4 spaces = 112
  assert.deepEqual(Array.from(got), [
    112,
    ...new Array(7).fill(0),
    ...enc.encode(header),
    0x20,
    0x20,
    0x20,
    0x20,
    0x80,
    0x3f,
    0x40,
    0xc0,
    0x00,
    0x3c,
    0x00,
    0xc0,
  ]);
  const back = decodeSafetensors(got);
  assert.equal(back.tensors.b.dtype, "bfloat16");
  assert.equal(back.tensors.h.dtype, "float16");
  assert.ok(back.tensors.h.data instanceof Uint16Array);
  assert.deepEqual(Array.from(floatValues(back.tensors.b, "float32")), [1, -3]);
  assert.deepEqual(Array.from(floatValues(back.tensors.h, "float64")), [1, -2]);
});

Deno.test("mixed dtypes: every tensor starts at a multiple of its item size", () => {
  const t: Record<string, NamedTensor> = {
    ...allDtypes(),
    a_bf16: { dtype: "bfloat16", shape: [3], data: new Uint16Array([1, 2, 3]) },
    z_f16: { dtype: "float16", shape: [1], data: new Uint16Array([7]) },
  };
  const bytes = encodeSafetensors(t);
  const h = parseSafetensorsHeader(bytes);
  assert.equal(h.dataStart % 8, 0);
  const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, BOOL: 1 };
  for (const e of h.entries) assert.equal(e.begin % size[e.tag], 0, e.name);
  // The reference order: I64, F64, F32, I32, BF16, F16, BOOL, then by name.
  assert.deepEqual(h.entries.map((e) => e.name), [
    "i64",
    "step",
    "f64",
    "scalar_f64",
    "empty",
    "f32",
    "i32",
    "a_bf16",
    "z_f16",
    "mask",
    "scalar_bool",
  ]);
  const back = decodeSafetensors(bytes);
  assert.deepEqual(Array.from(encodeSafetensors(back.tensors)), Array.from(bytes));
});

Deno.test("float32ToBfloat16: round to nearest even, hand-computed bit patterns", () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80], // 1
    [0x3f808000, 0x3f80], // 1 + 2^-8: tie, 0x3f80 is even -> down
    [0x3f818000, 0x3f82], // 1 + 3·2^-8: tie, 0x3f81 is odd -> up
    [0x3f808001, 0x3f81], // just above the tie -> up
    [0x3f807fff, 0x3f80], // just below the tie -> down
    [0xbf818000, 0xbf82], // negative: same magnitude rule
    [0x7f7fffff, 0x7f80], // float32 max rounds up to +inf, as torch
    [0x7f7f7fff, 0x7f7f], // stays at bfloat16 max
    [0x00000000, 0x0000],
    [0x80000000, 0x8000], // -0 keeps its sign
    [0x7f800000, 0x7f80], // +inf
    [0xff800000, 0xff80], // -inf
    [0x00000001, 0x0000], // smallest subnormal -> +0
    [0x00008000, 0x0000], // tie at zero: even
    [0x00018000, 0x0002], // tie, odd -> up
    [0x7fc00000, 0x7fc0], // quiet NaN
    [0xffc00000, 0xffc0], // negative NaN keeps its sign
    [0x7f800001, 0x7fc0], // NaN whose payload is in the low half: stays NaN (quiet bit set)
    [0x7fa00000, 0x7fa0], // signalling NaN with a high payload: kept
  ];
  const out = float32ToBfloat16(f32(...cases.map((c) => c[0])));
  cases.forEach(([u, want], i) =>
    assert.equal(out[i], want, `0x${u.toString(16)} -> 0x${out[i].toString(16)}`)
  );
  // float64 input rounds to float32 first (torch's double -> bfloat16 goes through float):
  // 1 + 2^-8 + 2^-30 becomes the tie 1 + 2^-8 in float32, then rounds to even (down).
  assert.deepEqual(Array.from(float32ToBfloat16(new Float64Array([1 + 2 ** -8 + 2 ** -30]))), [
    0x3f80,
  ]);
  assert.deepEqual(Array.from(float32ToBfloat16(new Float64Array([1 + 2 ** -8 + 2 ** -20]))), [
    0x3f81,
  ]);
});

Deno.test("bfloat16 and float16: every bit pattern decodes exactly and re-encodes to itself", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bf = bfloat16ToFloat32(all);
  const bits = new Uint32Array(bf.buffer);
  for (let i = 0; i < 65536; i++) assert.equal(bits[i], i * 65536, `bf16 0x${i.toString(16)}`);
  assert.deepEqual(float32ToBfloat16(bf), all);

  const h = float16ToFloat32(all);
  const ref = new Float16Array(all.buffer); // the platform's binary16 decoding
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(ref[i])) assert.ok(Number.isNaN(h[i]), `f16 0x${i.toString(16)}`);
    else assert.ok(Object.is(h[i], ref[i]), `f16 0x${i.toString(16)}: ${h[i]} vs ${ref[i]}`);
  }
  assert.deepEqual(float32ToFloat16(h), all, "NaN payloads and signs survive");
  // Widening into a Float64Array gives the same values.
  const wide = float16ToFloat32(all, new Float64Array(65536));
  for (let i = 0; i < 65536; i++) assert.ok(Object.is(wide[i], h[i]) || Number.isNaN(h[i]));
  const wideBf = bfloat16ToFloat32(all, new Float64Array(65536));
  for (let i = 0; i < 65536; i++) assert.ok(Object.is(wideBf[i], bf[i]) || Number.isNaN(bf[i]));
});

Deno.test("float32ToFloat16: hand-computed patterns and agreement with Math.f16round", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66], // 1.6·2^-4: mantissa round(0.6·1024 = 614.4) = 614
    [65504, 0x7bff], // max
    [65519, 0x7bff], // below the tie to inf
    [65520, 0x7c00], // the tie between max and 2^16 rounds to even: inf
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal steps: even (2)
    [2 ** -14 - 2 ** -25, 0x0400], // tie at the top of the subnormals carries into the normals
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [NaN, 0x7e00],
  ];
  const out = float32ToFloat16(new Float32Array(cases.map((c) => c[0])));
  cases.forEach(([x, want], i) => assert.equal(out[i], want, `${x} -> 0x${out[i].toString(16)}`));

  // Random float32 bit patterns over the whole range, against the platform's binary16 rounding.
  let s = 12345;
  const rnd = new Uint32Array(200_000).map(() => (s = (Math.imul(s, 1103515245) + 12345) >>> 0));
  for (let i = 0; i < rnd.length; i += 2) rnd[i] = (rnd[i] & 0x87ffffff) | 0x30000000; // f16 range
  const x = new Float32Array(rnd.buffer);
  const back = float16ToFloat32(float32ToFloat16(x));
  for (let i = 0; i < x.length; i++) {
    const want = Math.f16round(x[i]);
    assert.ok(
      Object.is(back[i], want) || (Number.isNaN(want) && Number.isNaN(back[i])),
      `${x[i]}: ${back[i]} vs ${want}`,
    );
  }
});

Deno.test("castFloatTensor and floatValues convert between the float dtypes", () => {
  const t: NamedTensor = {
    dtype: "float64",
    shape: [3],
    data: new Float64Array([1, 1 + 2 ** -7, 3e38]),
  };
  const b = castFloatTensor(t, "bfloat16");
  assert.deepEqual(b.shape, [3]);
  assert.deepEqual(Array.from(b.data as Uint16Array), [0x3f80, 0x3f81, 0x7f62]);
  const h = castFloatTensor(t, "float16");
  assert.deepEqual(Array.from(h.data as Uint16Array), [0x3c00, 0x3c08, 0x7c00]);
  assert.deepEqual(Array.from(floatValues(h, "float32")), [1, 1 + 2 ** -7, Infinity]);
  assert.equal(castFloatTensor(t, "float64"), t, "same dtype: the tensor itself");
  const f = castFloatTensor(b, "float32");
  assert.deepEqual(Array.from(f.data as Float32Array), [1, 1 + 2 ** -7, 3.00405527047391e38]);
  assert.throws(
    () => castFloatTensor({ dtype: "int32", shape: [1], data: new Int32Array(1) }, "float32"),
    /int32 is not a floating-point type/,
  );
  assert.throws(() => float32ToBfloat16(new Float32Array(2), new Uint16Array(3)), /out has 3/);
});

for (const map of [false, true]) {
  Deno.test(`openSafetensors${map ? " (mapped)" : ""} reads tensors one at a time; errors name the file and tensor`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
    const openSafetensors = (p: string) => openAny(p, { map });
    try {
      const path = `${dir}/m.safetensors`;
      const tensors = allDtypes();
      tensors.half = { dtype: "bfloat16", shape: [2], data: new Uint16Array([0x3f80, 0x4000]) };
      await saveSafetensors(path, tensors, { format: "pt" });
      const f = await openSafetensors(path);
      assert.equal(f.mapped, map);
      try {
        assert.deepEqual(f.header.metadata, { format: "pt" });
        assert.equal(f.entry("half")?.tag, "BF16");
        for (const [name, t] of Object.entries(tensors)) {
          const got = await f.read(name);
          assert.equal(got.dtype, t.dtype, name);
          assert.deepEqual(got.shape, t.shape, name);
          assert.deepEqual(Array.from(bytesOf(got)), Array.from(bytesOf(t)), name);
        }
        await assert.rejects(() => f.read("nope"), /m.safetensors: no tensor "nope"/);
      } finally {
        f.close();
      }

      // A quantised tensor: the file opens, only reading that tensor fails.
      const q = `${dir}/q.safetensors`;
      await Deno.writeFile(
        q,
        rawFile(
          `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},` +
            `"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[4,8]}}`,
          F32_2,
        ),
      );
      const g = await openSafetensors(q);
      try {
        assert.deepEqual(vals((await g.read("a")).data), [1]);
        assert.equal(g.entry("q")?.dtype, undefined);
        await assert.rejects(
          () => g.read("q"),
          /q.safetensors: tensor "q": unsupported dtype F8_E4M3/,
        );
      } finally {
        g.close();
      }

      // Truncated: the data section is shorter than the header says.
      const bytes = await Deno.readFile(path);
      const cut = `${dir}/cut.safetensors`;
      await Deno.writeFile(cut, bytes.subarray(0, bytes.length - 3));
      await assert.rejects(
        () => openSafetensors(cut),
        /cut.safetensors: truncated file: tensor ".*": data_offsets .* out of range: data section has \d+ bytes, the header's tensors need \d+/,
      );
      await Deno.writeFile(cut, bytes.subarray(0, 30));
      await assert.rejects(() => openSafetensors(cut), /cut.safetensors: truncated file: header/);
      await Deno.writeFile(cut, bytes.subarray(0, 5));
      await assert.rejects(() => openSafetensors(cut), /cut.safetensors: truncated file: 5 bytes/);
      await assert.rejects(() => openSafetensors(`${dir}/absent`), /file not found: .*absent/);
      await Deno.writeFile(cut, new Uint8Array(0));
      await assert.rejects(() => openSafetensors(cut), /cut.safetensors: truncated file: 0 bytes/);
      // A Git LFS pointer says so, mapped or read.
      await Deno.writeFile(
        cut,
        enc.encode("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"),
      );
      await assert.rejects(() => openSafetensors(cut), /Git LFS pointer/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("openSafetensors map: aligned tensors are views of one mapping, odd offsets copied, writes stay in memory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    // A BF16 tensor of 3 values first: the F32 tensor after it starts at data byte 6, not a
    // multiple of 4, so it cannot be a Float32Array view; the header is padded so that the
    // data section starts at a multiple of 8.
    let header = `{"h":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},` +
      `"w":{"dtype":"F32","shape":[2],"data_offsets":[6,14]},` +
      `"z":{"dtype":"BF16","shape":[1],"data_offsets":[14,16]}}`;
    header = header.padEnd(Math.ceil((8 + header.length) / 8) * 8 - 8, " ");
    const data = [0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, ...F32_2, 0x80, 0xbf];
    const path = `${dir}/odd.safetensors`;
    const file = rawFile(header, data);
    await Deno.writeFile(path, file);
    const before = mapStats.mapped;
    const f = await openAny(path, { map: true });
    assert.equal(f.mapped, true);
    assert.equal(mapStats.mapped, before + 1);
    const h = await f.read("h"), w = await f.read("w"), z = await f.read("z");
    f.close(); // the views outlive the file handle
    assert.deepEqual(vals(h.data), [0x3f80, 0x4000, 0x4040]);
    assert.deepEqual(vals(w.data), [1, 2]);
    assert.deepEqual(vals(z.data), [0xbf80]);
    // h and z are views of the one mapping (the whole file), w a fresh aligned copy.
    assert.equal(h.data.buffer, z.data.buffer);
    assert.equal(h.data.buffer.byteLength, file.length);
    assert.equal(h.data.byteOffset, 8 + header.length);
    assert.equal(z.data.byteOffset, 8 + header.length + 14);
    assert.notEqual(w.data.buffer, h.data.buffer);
    assert.equal(w.data.byteOffset, 0);
    // Copy on write: the file keeps its bytes, a later mapping sees the file's.
    (h.data as Uint16Array)[0] = 7;
    assert.deepEqual(await Deno.readFile(path), file);
    const g = await openAny(path, { map: true });
    assert.deepEqual(vals((await g.read("h")).data), [0x3f80, 0x4000, 0x4040]);
    assert.equal((h.data as Uint16Array)[0], 7);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors streams encodeSafetensors' bytes, one produced tensor at a time", async () => {
  const tensors = allDtypes();
  tensors.half = { dtype: "float16", shape: [2], data: new Uint16Array([0x3c00, 0x4000]) };
  const specs = Object.fromEntries(
    Object.entries(tensors).map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape }]),
  );
  const chunks: Uint8Array[] = [];
  const sink = {
    write: (p: Uint8Array) => {
      const n = Math.min(p.length, 7); // a sink that takes a few bytes per call
      chunks.push(p.slice(0, n));
      return Promise.resolve(n);
    },
  };
  const produced: string[] = [];
  await writeSafetensors(sink, specs, (name) => {
    produced.push(name);
    return tensors[name];
  }, { format: "pt" });
  const got = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  chunks.reduce((at, c) => (got.set(c, at), at + c.length), 0);
  assert.deepEqual(got, encodeSafetensors(tensors, { format: "pt" }));
  assert.deepEqual(produced, parseSafetensorsHeader(got).entries.map((e) => e.name));
  await assert.rejects(
    () => writeSafetensors(sink, { w: { dtype: "float32", shape: [2] } }, () => tensors.f64),
    /tensor "w": produced float64 \[3\], the header says float32 \[2\]/,
  );
});
