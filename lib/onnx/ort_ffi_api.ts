/**
 * The ORT C API as Deno FFI sees it: the function table (indices and signatures of the
 * `OrtApi` entries used), loading `libonnxruntime` from the onnxruntime-node package, the
 * process-wide environment / CPU memory info / allocator, status checking, and the element
 * type tables. Separate from the session (ort_ffi_session.ts) and the tensor values
 * (ort_ffi_values.ts) because it is the one place that knows the C ABI: a new entry point is
 * one line in {@link FN} and one in {@link SIGS}, and nothing here knows about models.
 * @module
 */
import { UsageError } from "../errors.ts";
/** A C pointer as Deno's FFI passes it. */
export type Ptr = Deno.PointerValue;

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
  CreateRunOptions: 39,
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
  ReleaseRunOptions: 97,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  SessionEndProfiling: 110,
  AddSessionConfigEntry: 130,
  CreateAndRegisterAllocator: 144,
  AddInitializer: 150,
  // 152-154 are the CUDA, ROCm and OpenVINO providers' appenders (onnxruntime_c_api.h).
  ReleaseArenaCfg: 157,
  CreateArenaCfgV2: 164,
  AddRunConfigEntry: 165,
  CreatePrepackedWeightsContainer: 166,
  ReleasePrepackedWeightsContainer: 167,
  CreateSessionFromArrayWithPrepackedWeightsContainer: 169,
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
  CreateAndRegisterAllocator: { parameters: [P, P, P], result: P },
  AddInitializer: { parameters: [P, "buffer", P], result: P },
  CreateRunOptions: { parameters: ["buffer"], result: P },
  ReleaseRunOptions: { parameters: [P], result: "void" },
  AddRunConfigEntry: { parameters: [P, "buffer", "buffer"], result: P },
  ReleaseArenaCfg: { parameters: [P], result: "void" },
  CreateArenaCfgV2: { parameters: ["buffer", "buffer", U, "buffer"], result: P },
  CreatePrepackedWeightsContainer: { parameters: ["buffer"], result: P },
  ReleasePrepackedWeightsContainer: { parameters: [P], result: "void" },
  CreateSessionFromArrayWithPrepackedWeightsContainer: {
    parameters: [P, P, U, P, P, "buffer"],
    result: P,
    nonblocking: true,
  },
} as const satisfies Record<keyof typeof FN, Deno.ForeignFunction>;

/** The bound `OrtApi` functions, by name. */
export type Api = { [K in keyof typeof SIGS]: Deno.UnsafeFnPointer<(typeof SIGS)[K]>["call"] };

/** ONNX element types by ort.Tensor type name. */
export const ELEM: Record<string, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};
/** ort.Tensor type names by ONNX element type. */
export const ELEM_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(ELEM).map(([k, v]) => [v, k]),
);
/** Typed-array constructors by ort.Tensor type name. */
export const ARRAY: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
  float32: Float32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float64: Float64Array,
};

/** The loaded library: its bound API, environment, CPU memory info and default allocator. */
export interface Runtime {
  api: Api;
  env: Ptr;
  cpuInfo: Ptr;
  allocator: Ptr;
  version: string;
  /**
   * A CPU arena allocator is registered with the environment: sessions made with
   * `session.use_env_allocators` draw from this one arena (ort_ffi_session.ts), so the memory
   * one phase's session freed serves the next phase's instead of each session keeping its own
   * peak. False when $PROXIMA_ORT_SHARED_ARENA=0 or the registration failed.
   */
  sharedArena: boolean;
}

/**
 * The ORT library handle, environment and allocator, loaded once: process-wide on purpose (one
 * native library per process; it holds no model, no session and no trial's state).
 */
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

/** A NUL-terminated UTF-8 copy of `s`. */
export const cstr = (s: string) => new TextEncoder().encode(s + "\0");
/** An 8-byte out-parameter (a pointer or size written by ORT). */
export const out8 = () => new BigUint64Array(1);
/** The pointer an {@link out8} received. */
export const ptrOf = (b: BigUint64Array) => Deno.UnsafePointer.create(b[0]);

/** The runtime, loaded on first use (null when unavailable: see {@link ffiStatus}). */
export function loadRuntime(): Runtime | null {
  if (runtime !== undefined) return runtime;
  arenaConfig(); // a bad $PROXIMA_ORT_ARENA_CFG is an error (each call), not a quiet fallback
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
    // One arena for every session of the process.
    const shared = Deno.env.get("PROXIMA_ORT_SHARED_ARENA") !== "0" &&
      registerArena(a, ptrOf(env), ptrOf(info));
    runtime = {
      api: a,
      env: ptrOf(env),
      cpuInfo: ptrOf(info),
      allocator: ptrOf(alloc),
      version,
      sharedArena: shared,
    };
  } catch (e) {
    unavailable = (e as Error).message;
    runtime = null;
  }
  return runtime;
}

/** The keys ORT's CreateArenaCfgV2 accepts (onnxruntime_c_api.h). */
const ARENA_KEYS = [
  "max_mem",
  "arena_extend_strategy",
  "initial_chunk_size_bytes",
  "max_dead_bytes_per_chunk",
  "initial_growth_chunk_size_bytes",
  "max_power_of_two_extend_bytes",
];

/**
 * The shared arena's configuration ($PROXIMA_ORT_ARENA_CFG="key=value,..." while measuring). A
 * bad entry is a usage error here: inside the runtime's loading it would only make the FFI
 * backend unavailable and the sessions fall back, quietly, to the slower onnxruntime-node path.
 */
export function arenaConfig(
  spec = Deno.env.get("PROXIMA_ORT_ARENA_CFG") ?? "",
): [string, number][] {
  return spec.split(",").filter((kv) => kv).map((kv) => {
    const [k, v, ...rest] = kv.split("=");
    const n = Number(v);
    if (
      !ARENA_KEYS.includes(k) || rest.length || v === undefined || !Number.isInteger(n) || n < 0
    ) {
      throw new UsageError(
        `PROXIMA_ORT_ARENA_CFG: "${kv}" is not key=value with a key ORT knows and a whole ` +
          `number >= 0`,
        { fix: `use key=value pairs separated by commas; keys: ${ARENA_KEYS.join(", ")}` },
      );
    }
    return [k, n];
  });
}

/**
 * The shared arena's settings unless $PROXIMA_ORT_ARENA_CFG names them: each extension the size
 * requested (ORT's default doubles them, up to 1 GB at a time, and a train step whose freed
 * chunks are split among the other sessions' then extends by a whole power of two: the 0.5B RL
 * bench's arena grew 0.80 GB in its second update that way, 0.07 GB with this, same times).
 */
export const ARENA_DEFAULTS: [string, number][] = [["arena_extend_strategy", 1]];

/** The shared arena's settings: {@link ARENA_DEFAULTS}, each overridden by the variable's. */
export function arenaEntries(spec?: string): [string, number][] {
  const given = arenaConfig(spec);
  return [...ARENA_DEFAULTS.filter(([k]) => !given.some(([g]) => g === k)), ...given];
}

/** Register the process's CPU arena with the environment; whether it worked. */
function registerArena(a: Api, env: Ptr, info: Ptr): boolean {
  const entries = arenaEntries();
  let cfg: Ptr = null;
  if (entries.length) {
    const keys = entries.map(([k]) => cstr(k));
    const o = out8();
    check(
      a,
      a.CreateArenaCfgV2(
        BigUint64Array.from(
          keys,
          (b) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b))),
        ),
        BigUint64Array.from(entries, ([, v]) => BigInt(v)),
        BigInt(entries.length),
        o,
      ) as Ptr,
      "CreateArenaCfgV2",
    );
    cfg = ptrOf(o);
  }
  try {
    return a.CreateAndRegisterAllocator(env, info, cfg) === null;
  } finally {
    if (cfg) a.ReleaseArenaCfg(cfg);
  }
}

/** Throw ORT's message when `status` is an error (and release it). */
export function check(api: Api, status: Ptr, what: string): void {
  if (status === null) return;
  const msg = Deno.UnsafePointerView.getCString(api.GetErrorMessage(status) as NonNullable<Ptr>);
  api.ReleaseStatus(status);
  throw new Error(`onnxruntime ${what}: ${msg}`);
}

/** Whether the FFI runtime can be used here; otherwise why not. */
export function ffiStatus(): { ok: true; version: string } | { ok: false; why: string } {
  const r = loadRuntime();
  return r ? { ok: true, version: r.version } : { ok: false, why: unavailable };
}

/** Why the runtime is unavailable ("" when it loaded or was not tried yet). */
export function unavailableReason(): string {
  return unavailable;
}

/** The runtime if it was loaded, without trying to load it (null otherwise). */
export function loadedRuntime(): Runtime | null {
  return runtime ?? null;
}
