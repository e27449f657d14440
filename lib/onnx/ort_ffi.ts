/**
 * ONNX Runtime's C API through Deno's FFI: the same `libonnxruntime` that onnxruntime-node
 * ships and loads (same version, same kernels, so the same bits), without the Node binding's
 * copies.
 *
 * Why: onnxruntime-node 1.30 copies EVERY fetched output into a fresh JS ArrayBuffer, even one
 * given as a preallocated output (measured: a run with a preallocated 16M-float output returns a
 * different buffer, writes to it do not reach the caller's tensor, and RSS grows by the output's
 * size per run until GC). For a 124M-parameter train step that is 1.5 GB of copies and garbage
 * per step. Here an output given by the caller is written in place and returned as the same
 * tensor object, and an output may even be the same memory as an input (an in-place update),
 * which the optimizer sessions use (see optim_session.ts for when that is safe).
 *
 * Runs are synchronous FFI calls, like onnxruntime-node's (which ran on the JS thread too): a
 * nonblocking call (ORT on another thread, JS awaiting) cost ~60 µs more per run (measured:
 * 80 vs 18 µs for a one-node graph), which a decode step or an optimizer chunk pays every
 * time. Session creation, which can take seconds, is nonblocking.
 *
 * CPU only; sessions on other devices use onnxruntime-node (session.ts chooses).
 * @module
 */
import * as ort from "onnxruntime-node";

type Ptr = Deno.PointerValue;

/** OrtApi function-table indices (the struct is append-only, so these hold for every version). */
const FN = {
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSessionFromArray: 8,
  Run: 9,
  CreateSessionOptions: 10,
  SetSessionExecutionMode: 13,
  EnableProfiling: 14,
  DisableMemPattern: 17,
  DisableCpuMemArena: 19,
  SetSessionLogSeverityLevel: 22,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SetInterOpNumThreads: 25,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69,
  AllocatorFree: 76,
  GetAllocatorWithDefaultOptions: 78,
  ReleaseStatus: 93,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  SessionEndProfiling: 110,
  AddSessionConfigEntry: 130,
  AddExternalInitializers: 210,
} as const;

const P = "pointer" as const, U = "usize" as const, I = "i32" as const;

const SIGS = {
  GetErrorMessage: { parameters: [P], result: P },
  CreateEnv: { parameters: [I, "buffer", "buffer"], result: P },
  CreateSessionFromArray: {
    parameters: [P, P, U, P, "buffer"],
    result: P,
    nonblocking: true,
  },
  Run: {
    parameters: [P, P, "buffer", "buffer", U, "buffer", U, "buffer"],
    result: P,
  },
  CreateSessionOptions: { parameters: ["buffer"], result: P },
  SetSessionExecutionMode: { parameters: [P, I], result: P },
  EnableProfiling: { parameters: [P, "buffer"], result: P },
  DisableMemPattern: { parameters: [P], result: P },
  DisableCpuMemArena: { parameters: [P], result: P },
  SetSessionLogSeverityLevel: { parameters: [P, I], result: P },
  SetSessionGraphOptimizationLevel: { parameters: [P, I], result: P },
  SetIntraOpNumThreads: { parameters: [P, I], result: P },
  SetInterOpNumThreads: { parameters: [P, I], result: P },
  SessionGetInputCount: { parameters: [P, "buffer"], result: P },
  SessionGetOutputCount: { parameters: [P, "buffer"], result: P },
  SessionGetInputName: { parameters: [P, U, P, "buffer"], result: P },
  SessionGetOutputName: { parameters: [P, U, P, "buffer"], result: P },
  CreateTensorWithDataAsOrtValue: {
    parameters: [P, P, U, "buffer", U, I, "buffer"],
    result: P,
  },
  GetTensorMutableData: { parameters: [P, "buffer"], result: P },
  GetTensorElementType: { parameters: [P, "buffer"], result: P },
  GetDimensionsCount: { parameters: [P, "buffer"], result: P },
  GetDimensions: { parameters: [P, "buffer", U], result: P },
  GetTensorTypeAndShape: { parameters: [P, "buffer"], result: P },
  CreateCpuMemoryInfo: { parameters: [I, I, "buffer"], result: P },
  AllocatorFree: { parameters: [P, P], result: P },
  GetAllocatorWithDefaultOptions: { parameters: ["buffer"], result: P },
  ReleaseStatus: { parameters: [P], result: "void" },
  ReleaseSession: { parameters: [P], result: "void" },
  ReleaseValue: { parameters: [P], result: "void" },
  ReleaseTensorTypeAndShapeInfo: { parameters: [P], result: "void" },
  ReleaseSessionOptions: { parameters: [P], result: "void" },
  SessionEndProfiling: { parameters: [P, P, "buffer"], result: P },
  AddSessionConfigEntry: { parameters: [P, "buffer", "buffer"], result: P },
  AddExternalInitializers: { parameters: [P, "buffer", "buffer", U], result: P },
} as const satisfies Record<keyof typeof FN, Deno.ForeignFunction>;

type Api = { [K in keyof typeof SIGS]: Deno.UnsafeFnPointer<(typeof SIGS)[K]>["call"] };

/** ONNX element types by ort.Tensor type name. */
const ELEM: Record<string, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};
const ELEM_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(ELEM).map(([k, v]) => [v, k]),
);
const ARRAY: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
  float32: Float32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float64: Float64Array,
};

interface Runtime {
  api: Api;
  env: Ptr;
  cpuInfo: Ptr;
  allocator: Ptr;
  version: string;
}

let runtime: Runtime | null | undefined;
let unavailable = "";

/** libonnxruntime inside the onnxruntime-node package (the binding's own copy). */
function libraryPath(): string | undefined {
  const os = Deno.build.os, arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  const file = os === "linux"
    ? "libonnxruntime.so.1"
    : os === "darwin"
    ? "libonnxruntime.1.dylib"
    : os === "windows"
    ? "onnxruntime.dll"
    : undefined;
  if (!file) return undefined;
  try {
    const index = new URL(import.meta.resolve("onnxruntime-node"));
    const dir = new URL(`../bin/napi-v6/${os === "windows" ? "win32" : os}/${arch}/`, index);
    const path = decodeURIComponent(new URL(file, dir).pathname);
    Deno.statSync(path);
    return path;
  } catch {
    return undefined;
  }
}

const cstr = (s: string) => new TextEncoder().encode(s + "\0");
const out8 = () => new BigUint64Array(1);
const ptrOf = (b: BigUint64Array) => Deno.UnsafePointer.create(b[0]);

function load(): Runtime | null {
  if (runtime !== undefined) return runtime;
  runtime = null;
  if (Deno.env.get("PROXIMA_ORT_FFI") === "0") {
    unavailable = "disabled by PROXIMA_ORT_FFI=0";
    return null;
  }
  const path = libraryPath();
  if (!path) {
    unavailable = "libonnxruntime not found in the onnxruntime-node package";
    return null;
  }
  try {
    const lib = Deno.dlopen(path, { OrtGetApiBase: { parameters: [], result: P } });
    const base = new Deno.UnsafePointerView(lib.symbols.OrtGetApiBase()!);
    const getApi = new Deno.UnsafeFnPointer(base.getPointer(0)!, {
      parameters: ["u32"],
      result: P,
    });
    const getVersion = new Deno.UnsafeFnPointer(base.getPointer(8)!, { parameters: [], result: P });
    const version = Deno.UnsafePointerView.getCString(getVersion.call()!);
    const table = getApi.call(13); // the API version whose table holds every entry used here
    if (!table) throw new Error(`OrtGetApiBase()->GetApi(13) returned null (ORT ${version})`);
    const view = new Deno.UnsafePointerView(table);
    const api = {} as Record<string, unknown>;
    for (const [name, index] of Object.entries(FN)) {
      const fn = new Deno.UnsafeFnPointer(
        view.getPointer(index * 8)!,
        SIGS[name as keyof typeof SIGS] as Deno.ForeignFunction,
      );
      api[name] = fn.call.bind(fn);
    }
    const a = api as Api;
    const env = out8();
    check(a, a.CreateEnv(3, cstr("proxima"), env) as Ptr, "CreateEnv");
    const info = out8();
    check(a, a.CreateCpuMemoryInfo(1, 0, info) as Ptr, "CreateCpuMemoryInfo");
    const alloc = out8();
    check(
      a,
      a.GetAllocatorWithDefaultOptions(alloc) as Ptr,
      "GetAllocatorWithDefaultOptions",
    );
    runtime = { api: a, env: ptrOf(env), cpuInfo: ptrOf(info), allocator: ptrOf(alloc), version };
  } catch (e) {
    unavailable = (e as Error).message;
    runtime = null;
  }
  return runtime;
}

/** Throw ORT's message when `status` is an error (and release it). */
function check(api: Api, status: Ptr, what: string): void {
  if (status === null) return;
  const msg = Deno.UnsafePointerView.getCString(api.GetErrorMessage(status) as NonNullable<Ptr>);
  api.ReleaseStatus(status);
  throw new Error(`onnxruntime ${what}: ${msg}`);
}

/** Whether the FFI runtime can be used here; otherwise why not. */
export function ffiStatus(): { ok: true; version: string } | { ok: false; why: string } {
  const r = load();
  return r ? { ok: true, version: r.version } : { ok: false, why: unavailable };
}

/** Session options the FFI session understands (a subset of session.ts's). */
export interface FfiSessionOptions {
  threads: number;
  optimization: "disabled" | "basic" | "extended" | "all";
  spinning: boolean;
  /** Write an ORT profile (JSON) with this file prefix; see {@link FfiSession.endProfiling}. */
  profile?: string;
  /** Use ORT's CPU memory arena (default true, as ORT). */
  memArena?: boolean;
  /** ORT's memory-pattern planning (default true, as ORT). */
  memPattern?: boolean;
  /**
   * Tensors that the model declares as external-data initializers, by name (ORT's
   * AddExternalInitializers): ORT reads them from the tensors' own memory, which must stay
   * unchanged for the session's life (the session holds the tensors). Being constants, ORT may
   * fold them and pre-pack matmul weights into its kernels' layout (a copy of each).
   */
  initializers?: Record<string, ort.Tensor>;
  /** More session config entries (ORT's `AddSessionConfigEntry` keys), by key. */
  config?: Record<string, string>;
}

const LEVEL = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

/** OrtValues over tensors' own memory, by tensor object (see FfiSession.value). */
const valueCache = new WeakMap<
  ort.Tensor,
  { value: bigint; address: bigint; bytes: number; dims: number[] }
>();
/** Releases a cached OrtValue once its tensor is garbage (the value does not own the memory). */
const releaseValues = new FinalizationRegistry<bigint>((v) => {
  if (runtime) runtime.api.ReleaseValue(Deno.UnsafePointer.create(v));
});

/** Smallest byte length passed as the tensor's own memory; smaller data is staged (copied). */
const STAGE_BELOW = 64;

/** An OrtValue (not owning it) over `bytes` at `address`, of element type `elem`. */
function tensorValue(
  rt: Runtime,
  address: bigint,
  bytes: number,
  dims: BigInt64Array,
  elem: number,
  what: string,
): bigint {
  check(
    rt.api,
    rt.api.CreateTensorWithDataAsOrtValue(
      rt.cpuInfo,
      Deno.UnsafePointer.create(address),
      BigInt(bytes),
      dims,
      BigInt(dims.length),
      elem,
      valueOut,
    ) as Ptr,
    `CreateTensorWithDataAsOrtValue (${what})`,
  );
  return valueOut[0];
}
const valueOut = new BigUint64Array(1);

/**
 * An OrtValue over a constant tensor's memory, and the memory (to keep alive with the session).
 * Tiny typed arrays may live on V8's heap, where they can move: those are copied into an
 * ArrayBuffer of their own (always off-heap).
 */
function constantValue(rt: Runtime, name: string, t: ort.Tensor): [bigint, ArrayBufferView] {
  let data = t.data as ArrayBufferView;
  const elem = ELEM[t.type];
  if (!ArrayBuffer.isView(data) || elem === undefined) {
    throw new Error(`FfiSession: initializer "${name}": tensor type ${t.type}`);
  }
  if (data.byteLength < STAGE_BELOW) {
    const copy = new Uint8Array(new ArrayBuffer(Math.max(data.byteLength, 8)));
    copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    data = copy.subarray(0, data.byteLength);
  }
  const dims = BigInt64Array.from(t.dims, BigInt);
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data as BufferSource)));
  const value = tensorValue(rt, address, data.byteLength, dims, elem, `initializer "${name}"`);
  return [value, data];
}

/** A compiled model run through the C API. */
export class FfiSession {
  private inNames: Uint8Array[];
  private outNames: Uint8Array[];
  private inNamePtr: bigint[];
  private outNamePtr: bigint[];
  private inIndex: Map<string, number>;
  private outIndex: Map<string, number>;
  private released = false;
  private dimScratch = new BigInt64Array(16);
  /**
   * Per input (index i) and output (index -1 - i): a fixed 64-byte buffer and an OrtValue over
   * it for tiny tensors (scalars, short vectors), refilled each run instead of recreated.
   */
  private slots = new Map<number, { buf: Uint8Array; value: bigint; key: string }>();
  /** External initializers' OrtValues and the tensors whose memory they are (kept alive). */
  private constants: { values: bigint[]; memory: ArrayBufferView[] } = { values: [], memory: [] };

  private constructor(
    private readonly rt: Runtime,
    private handle: NonNullable<Ptr>,
    readonly inputNames: string[],
    readonly outputNames: string[],
  ) {
    this.inNames = inputNames.map(cstr);
    this.outNames = outputNames.map(cstr);
    const addr = (b: Uint8Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
    this.inNamePtr = this.inNames.map(addr);
    this.outNamePtr = this.outNames.map(addr);
    this.inIndex = new Map(inputNames.map((n, i) => [n, i]));
    this.outIndex = new Map(outputNames.map((n, i) => [n, i]));
  }

  /** Compile `bytes` (an ONNX model) off the JS thread. */
  static async create(bytes: Uint8Array, opts: FfiSessionOptions): Promise<FfiSession> {
    const rt = load();
    if (!rt) throw new Error(`FfiSession: the ORT C API is not available: ${unavailable}`);
    const { api } = rt;
    const so = out8();
    check(api, api.CreateSessionOptions(so) as Ptr, "CreateSessionOptions");
    const options = ptrOf(so);
    const constants: bigint[] = []; // OrtValues of opts.initializers, released with the session
    const kept: ArrayBufferView[] = []; // their memory
    let created = false;
    try {
      check(api, api.SetIntraOpNumThreads(options, opts.threads) as Ptr, "SetIntraOpNumThreads");
      check(api, api.SetInterOpNumThreads(options, 1) as Ptr, "SetInterOpNumThreads");
      check(api, api.SetSessionExecutionMode(options, 0) as Ptr, "SetSessionExecutionMode");
      check(
        api,
        api.SetSessionGraphOptimizationLevel(options, LEVEL[opts.optimization]) as Ptr,
        "SetSessionGraphOptimizationLevel",
      );
      check(api, api.SetSessionLogSeverityLevel(options, 3) as Ptr, "SetSessionLogSeverityLevel");
      check(
        api,
        api.AddSessionConfigEntry(
          options,
          cstr("session.intra_op.allow_spinning"),
          cstr(opts.spinning ? "1" : "0"),
        ) as Ptr,
        "AddSessionConfigEntry",
      );
      for (const [k, v] of Object.entries(opts.config ?? {})) {
        check(api, api.AddSessionConfigEntry(options, cstr(k), cstr(v)) as Ptr, `config ${k}`);
      }
      if (opts.memArena === false) {
        check(api, api.DisableCpuMemArena(options) as Ptr, "DisableCpuMemArena");
      }
      if (opts.memPattern === false) {
        check(api, api.DisableMemPattern(options) as Ptr, "DisableMemPattern");
      }
      if (opts.profile) {
        check(api, api.EnableProfiling(options, cstr(opts.profile)) as Ptr, "EnableProfiling");
      }
      const held = Object.entries(opts.initializers ?? {});
      if (held.length) {
        for (const [n, t] of held) {
          const [value, memory] = constantValue(rt, n, t);
          constants.push(value);
          kept.push(memory);
        }
        const names = held.map(([n]) => cstr(n));
        const namePtrs = BigUint64Array.from(
          names,
          (b) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b))),
        );
        check(
          api,
          api.AddExternalInitializers(
            options,
            namePtrs,
            BigUint64Array.from(constants),
            BigInt(held.length),
          ) as Ptr,
          "AddExternalInitializers",
        );
      }
      const model = new Uint8Array(bytes); // an own copy: stays put while ORT reads it
      const out = out8();
      const status = await api.CreateSessionFromArray(
        rt.env,
        Deno.UnsafePointer.of(model),
        BigInt(model.byteLength),
        options,
        out,
      ) as Ptr;
      check(api, status, "CreateSessionFromArray");
      const handle = ptrOf(out)!;
      const names = (count: 30 | 31, name: 36 | 37) => {
        const n = new BigUint64Array(1);
        const countFn = count === 30 ? api.SessionGetInputCount : api.SessionGetOutputCount;
        check(api, countFn(handle, n) as Ptr, "SessionGet*Count");
        const nameFn = name === 36 ? api.SessionGetInputName : api.SessionGetOutputName;
        return Array.from({ length: Number(n[0]) }, (_, i) => {
          const p = out8();
          check(api, nameFn(handle, BigInt(i), rt.allocator, p) as Ptr, "name");
          const s = Deno.UnsafePointerView.getCString(ptrOf(p)!);
          check(api, api.AllocatorFree(rt.allocator, ptrOf(p)) as Ptr, "AllocatorFree");
          return s;
        });
      };
      const session = new FfiSession(rt, handle, names(30, 36), names(31, 37));
      session.constants = { values: constants, memory: kept };
      created = true;
      return session;
    } finally {
      api.ReleaseSessionOptions(options);
      if (!created) { for (const v of constants) api.ReleaseValue(Deno.UnsafePointer.create(v)); }
    }
  }

  /**
   * An OrtValue over `data` (the tensor's memory or its staged copy) with `t`'s dims. Values
   * over a tensor's own memory are cached on the tensor object and reused while its memory
   * and dims are unchanged (a trainer's params, a decoder's weights: fed every run).
   */
  private value(t: ort.Tensor, data: ArrayBufferView, name: string, cache: boolean): bigint {
    const { api } = this.rt;
    const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data as BufferSource)));
    if (cache) {
      const hit = valueCache.get(t);
      if (hit && hit.address === address && hit.bytes === data.byteLength) {
        const d = t.dims;
        if (d.length === hit.dims.length && d.every((x, i) => x === hit.dims[i])) return hit.value;
      }
    }
    const elem = ELEM[t.type];
    if (elem === undefined) throw new Error(`FfiSession: "${name}": tensor type ${t.type}`);
    const rank = t.dims.length;
    if (rank > this.dimScratch.length) this.dimScratch = new BigInt64Array(rank);
    for (let i = 0; i < rank; i++) this.dimScratch[i] = BigInt(t.dims[i]);
    const dims = this.dimScratch.subarray(0, rank);
    const value = tensorValue(this.rt, address, data.byteLength, dims, elem, `"${name}"`);
    if (cache) {
      const old = valueCache.get(t);
      if (old) {
        releaseValues.unregister(old);
        api.ReleaseValue(Deno.UnsafePointer.create(old.value));
      }
      const entry = { value, address, bytes: data.byteLength, dims: [...t.dims] };
      valueCache.set(t, entry);
      releaseValues.register(t, value, entry);
    }
    return value;
  }

  /**
   * Run: `feeds` by input name; `fetches` by output name, a tensor that ORT writes into (and
   * that is returned as is) or null (ORT allocates; the result is copied out). Without
   * `fetches`, every output is fetched.
   */
  run(
    feeds: Record<string, ort.Tensor>,
    fetches?: Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>> {
    try {
      return Promise.resolve(this.runSync(feeds, fetches));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@link run}, returning when ORT is done (it blocks the JS thread either way). */
  runSync(
    feeds: Record<string, ort.Tensor>,
    fetches?: Record<string, ort.Tensor | null>,
  ): Record<string, ort.Tensor> {
    if (this.released) throw new Error("FfiSession: released");
    const { api } = this.rt;
    const want = fetches ?? Object.fromEntries(this.outputNames.map((n) => [n, null]));
    const inputs: [number, ort.Tensor][] = [];
    for (const n in feeds) {
      const i = this.inIndex.get(n);
      if (i !== undefined) inputs.push([i, feeds[n]]); // feeds the model lacks are ignored
    }
    const outNames = Object.keys(want);
    const outputs = outNames.map((n) => {
      const i = this.outIndex.get(n);
      if (i === undefined) throw new Error(`FfiSession: the model has no output "${n}"`);
      return [i, want[n]] as const;
    });
    // Tiny typed arrays may live on V8's heap, where they can move: ORT reads copies of them,
    // in per-input/output slots that keep their OrtValue from run to run.
    const slot = (id: number, t: ort.Tensor, name: string, copyIn: boolean): bigint => {
      const d = t.data as ArrayBufferView;
      if (!ArrayBuffer.isView(d)) throw new Error(`FfiSession: "${name}": data is not typed`);
      const key = `${t.type}|${t.dims.join(",")}|${d.byteLength}`;
      let sl = this.slots.get(id);
      if (!sl || sl.key !== key) {
        if (sl) api.ReleaseValue(Deno.UnsafePointer.create(sl.value));
        const buf = new Uint8Array(new ArrayBuffer(STAGE_BELOW));
        sl = { buf, value: this.value(t, buf.subarray(0, d.byteLength), name, false), key };
        this.slots.set(id, sl);
      }
      if (copyIn) sl.buf.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      return sl.value;
    };
    const fresh: bigint[] = []; // values made for this run only
    const inVals = new BigUint64Array(inputs.length), inNames = new BigUint64Array(inputs.length);
    const outVals = new BigUint64Array(outputs.length);
    const outNamePtrs = new BigUint64Array(outputs.length);
    const staged: [ort.Tensor, Uint8Array][] = [];
    const tiny = (t: ort.Tensor) => (t.data as ArrayBufferView).byteLength < STAGE_BELOW;
    try {
      inputs.forEach(([i, t], k) => {
        inVals[k] = tiny(t)
          ? slot(i, t, this.inputNames[i], true)
          : this.value(t, t.data as ArrayBufferView, this.inputNames[i], true);
        inNames[k] = this.inNamePtr[i];
      });
      outputs.forEach(([i, t], k) => {
        outNamePtrs[k] = this.outNamePtr[i];
        if (!t) return;
        if (tiny(t)) {
          outVals[k] = slot(-1 - i, t, this.outputNames[i], false);
          staged.push([t, this.slots.get(-1 - i)!.buf]);
          return;
        }
        // Outputs get their own OrtValue every run (never the cached one an input of the same
        // tensor may use: an in-place update passes one tensor as both).
        const v = this.value(t, t.data as ArrayBufferView, this.outputNames[i], false);
        fresh.push(v);
        outVals[k] = v;
      });
      const status = api.Run(
        this.handle,
        null,
        inNames,
        inVals,
        BigInt(inputs.length),
        outNamePtrs,
        BigInt(outputs.length),
        outVals,
      ) as Ptr;
      check(api, status, "Run");
      for (const [t, buf] of staged) {
        const d = t.data as ArrayBufferView;
        new Uint8Array(d.buffer, d.byteOffset, d.byteLength).set(buf.subarray(0, d.byteLength));
      }
      const result: Record<string, ort.Tensor> = {};
      outputs.forEach(([, t], k) => {
        const n = outNames[k];
        if (t) result[n] = t;
        else {
          const v = Deno.UnsafePointer.create(outVals[k])!;
          try {
            result[n] = this.copyOut(v);
          } finally {
            api.ReleaseValue(v);
          }
          outVals[k] = 0n;
        }
      });
      return result;
    } finally {
      for (const v of fresh) api.ReleaseValue(Deno.UnsafePointer.create(v));
      outputs.forEach(([, t], k) => {
        // ORT-allocated outputs left over after an error
        if (!t && outVals[k] !== 0n) api.ReleaseValue(Deno.UnsafePointer.create(outVals[k]));
      });
    }
  }

  /** A JS tensor with a copy of an ORT-allocated output. */
  private copyOut(v: NonNullable<Ptr>): ort.Tensor {
    const { api } = this.rt;
    const info = out8();
    check(api, api.GetTensorTypeAndShape(v, info) as Ptr, "shape");
    const ip = ptrOf(info);
    try {
      const elem = new Int32Array(1);
      check(api, api.GetTensorElementType(ip, elem) as Ptr, "type");
      const count = new BigUint64Array(1);
      check(api, api.GetDimensionsCount(ip, count) as Ptr, "rank");
      const dims = new BigInt64Array(Math.max(Number(count[0]), 1));
      check(api, api.GetDimensions(ip, dims, count[0]) as Ptr, "dims");
      const shape = Array.from(dims.subarray(0, Number(count[0])), Number);
      const type = ELEM_NAME[elem[0]];
      if (!type) throw new Error(`FfiSession: output element type ${elem[0]} is not supported`);
      const n = shape.reduce((a, b) => a * b, 1);
      const Arr = ARRAY[type];
      const bytes = n * (Arr as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      const buf = new ArrayBuffer(bytes);
      if (bytes > 0) {
        const p = out8();
        check(api, api.GetTensorMutableData(v, p) as Ptr, "data");
        new Deno.UnsafePointerView(ptrOf(p)!).copyInto(new Uint8Array(buf));
      }
      return new ort.Tensor(type as "float32", new Arr(buf) as Float32Array, shape);
    } finally {
      api.ReleaseTensorTypeAndShapeInfo(ip);
    }
  }

  /** Stop profiling; returns the profile file's path. */
  endProfiling(): string {
    const { api } = this.rt;
    const p = out8();
    check(
      api,
      api.SessionEndProfiling(this.handle, this.rt.allocator, p) as Ptr,
      "SessionEndProfiling",
    );
    const s = Deno.UnsafePointerView.getCString(ptrOf(p)!);
    check(api, api.AllocatorFree(this.rt.allocator, ptrOf(p)) as Ptr, "AllocatorFree");
    return s;
  }

  /** Free the session (its thread pool and arena). */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const sl of this.slots.values()) {
      this.rt.api.ReleaseValue(Deno.UnsafePointer.create(sl.value));
    }
    this.rt.api.ReleaseSession(this.handle);
    for (const v of this.constants.values) this.rt.api.ReleaseValue(Deno.UnsafePointer.create(v));
    this.constants = { values: [], memory: [] };
  }
}
