/**
 * The FFI session: compile a model through ORT's C API (options, external initializers,
 * nonblocking creation), run it with outputs written in place into the caller's tensors
 * (tiny tensors through per-input/output slots), profile and release it. Separate from the
 * C API table (ort_ffi_api.ts) and the tensor values (ort_ffi_values.ts): this file is the
 * session's life cycle, the one public class of the binding (re-exported by ort_ffi.ts).
 * @module
 */
import type * as ort from "onnxruntime-node";
import {
  check,
  cstr,
  loadRuntime,
  out8,
  type Ptr,
  ptrOf,
  type Runtime,
  unavailableReason,
} from "./ort_ffi_api.ts";
import { constantValue, copyOut, STAGE_BELOW, tensorValueOf } from "./ort_ffi_values.ts";
import { memTrace, memTracePeak } from "./mem_trace.ts";

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
  /**
   * Initializers whose external data the model names in a file of `folder` holding the same
   * bytes (graph_proto.ts `ExternalFile`: a mapped weight file, file_map.ts). They are given to
   * ORT as shared initializers only, not as external initializers too: ORT then never reads the
   * file, and builds its graph without a copy of them (AddExternalInitializers copies each
   * into the graph for the length of the session's creation: measured on the 0.5B sampler,
   * 1.9 GB copied and freed, 9 s of 10 without pre-packing).
   */
  fileBacked?: { folder: string; names: ReadonlySet<string> };
  /** More session config entries (ORT's `AddSessionConfigEntry` keys), by key. */
  config?: Record<string, string>;
  /** A name for the memory trace (mem_trace.ts; the graph's name and hash). */
  label?: string;
  /** Shrink the CPU arena after each run (session.ts `shrinkArena`). */
  shrinkArena?: boolean;
}

const LEVEL = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

/** A compiled model run through the C API. */
export class FfiSession {
  private inNames: Uint8Array[];
  private outNames: Uint8Array[];
  private inNamePtr: bigint[];
  private outNamePtr: bigint[];
  private inIndex: Map<string, number>;
  private outIndex: Map<string, number>;
  private released = false;
  /** The memory trace's name for this session. */
  private label = "session";
  /** The pre-packed weights container of a session with constants (null: none). */
  private container: Ptr = null;
  /** Run options (arena shrinkage) passed to every run; null: ORT's defaults. */
  private runOptions: Ptr = null;
  private dimScratch = { dims: new BigInt64Array(16) };
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
    const rt = loadRuntime();
    if (!rt) {
      throw new Error(`FfiSession: the ORT C API is not available: ${unavailableReason()}`);
    }
    const { api } = rt;
    const so = out8();
    check(api, api.CreateSessionOptions(so) as Ptr, "CreateSessionOptions");
    const options = ptrOf(so);
    const constants: bigint[] = []; // OrtValues of opts.initializers, released with the session
    const kept: ArrayBufferView[] = []; // their memory
    let created = false;
    let container: Ptr = null; // pre-packed weights, released with the session
    let handle: Ptr = null; // the session, released here if a step after its creation fails
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
      const config = { ...opts.config };
      if (opts.fileBacked?.names.size) {
        // Where the model's external-data locations are (a model from bytes has no folder).
        config["session.model_external_initializers_file_folder_path"] = opts.fileBacked.folder;
      }
      for (const [k, v] of Object.entries(config)) {
        check(api, api.AddSessionConfigEntry(options, cstr(k), cstr(v)) as Ptr, `config ${k}`);
      }
      if (opts.memArena === false) {
        check(api, api.DisableCpuMemArena(options) as Ptr, "DisableCpuMemArena");
      } else if (rt.sharedArena) {
        // The environment's one arena (ort_ffi_api.ts) instead of a session-owned one.
        check(
          api,
          api.AddSessionConfigEntry(options, cstr("session.use_env_allocators"), cstr("1")) as Ptr,
          "AddSessionConfigEntry",
        );
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
        const inMemory = held.flatMap(([n], i) => opts.fileBacked?.names.has(n) ? [] : [i]);
        if (inMemory.length) {
          const namePtrs = BigUint64Array.from(
            inMemory,
            (i) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(names[i]))),
          );
          check(
            api,
            api.AddExternalInitializers(
              options,
              namePtrs,
              BigUint64Array.from(inMemory, (i) => constants[i]),
              BigInt(inMemory.length),
            ) as Ptr,
            "AddExternalInitializers",
          );
        }
        // The same values as shared initializers too: ORT then uses our memory as the tensors
        // of the session state. With the external initializers alone, ORT 1.30 copies each one
        // into its own buffer (measured: +286 MB for a 256 MB weight read by a Gather; the
        // 0.5B sampler's 1.9 GB of weights were copied at creation, then packed).
        held.forEach((_, i) => {
          check(
            api,
            api.AddInitializer(options, names[i], Deno.UnsafePointer.create(constants[i])) as Ptr,
            "AddInitializer",
          );
        });
      }
      const model = new Uint8Array(bytes); // an own copy: stays put while ORT reads it
      const out = out8();
      // A session with constants gets its own pre-packed weights container: ORT then packs
      // them with a plain allocator (not the shared arena, whose regions would keep the packs'
      // pages after the session is gone), freed with the session.
      if (held.length && Deno.env.get("PROXIMA_ORT_PREPACK_CONTAINER") !== "0") {
        const c = out8();
        check(
          api,
          api.CreatePrepackedWeightsContainer(c) as Ptr,
          "CreatePrepackedWeightsContainer",
        );
        container = ptrOf(c);
      }
      const status = await (container
        ? api.CreateSessionFromArrayWithPrepackedWeightsContainer(
          rt.env,
          Deno.UnsafePointer.of(model),
          BigInt(model.byteLength),
          options,
          container,
          out,
        )
        : api.CreateSessionFromArray(
          rt.env,
          Deno.UnsafePointer.of(model),
          BigInt(model.byteLength),
          options,
          out,
        )) as Ptr;
      check(api, status, "CreateSessionFromArray");
      const live = handle = ptrOf(out)!;
      const names = (count: 30 | 31, name: 36 | 37) => {
        const n = new BigUint64Array(1);
        const countFn = count === 30 ? api.SessionGetInputCount : api.SessionGetOutputCount;
        check(api, countFn(live, n) as Ptr, "SessionGet*Count");
        const nameFn = name === 36 ? api.SessionGetInputName : api.SessionGetOutputName;
        return Array.from({ length: Number(n[0]) }, (_, i) => {
          const p = out8();
          check(api, nameFn(live, BigInt(i), rt.allocator, p) as Ptr, "name");
          const s = Deno.UnsafePointerView.getCString(ptrOf(p)!);
          check(api, api.AllocatorFree(rt.allocator, ptrOf(p)) as Ptr, "AllocatorFree");
          return s;
        });
      };
      const session = new FfiSession(rt, live, names(30, 36), names(31, 37));
      session.constants = { values: constants, memory: kept };
      session.container = container;
      // $PROXIMA_ORT_ARENA_SHRINK=0 turns the shrinking off (to compare; allocation only).
      const shrink = opts.shrinkArena && opts.memArena !== false &&
        Deno.env.get("PROXIMA_ORT_ARENA_SHRINK") !== "0";
      if (shrink) {
        const ro = out8();
        check(api, api.CreateRunOptions(ro) as Ptr, "CreateRunOptions");
        session.runOptions = ptrOf(ro);
        check(
          api,
          api.AddRunConfigEntry(
            session.runOptions,
            cstr("memory.enable_memory_arena_shrinkage"),
            cstr("cpu:0"),
          ) as Ptr,
          "AddRunConfigEntry",
        );
      }
      session.label = opts.label ?? "session";
      const constBytes = kept.reduce((a, m) => a + m.byteLength, 0);
      memTrace(
        `session ${session.label} created (${held.length} initializers, ${
          (constBytes / 2 ** 20).toFixed(0)
        } MB)`,
      );
      created = true;
      return session;
    } finally {
      api.ReleaseSessionOptions(options);
      if (!created) {
        // The session first: it reads the constants and the container until released.
        if (handle) api.ReleaseSession(handle);
        for (const v of constants) api.ReleaseValue(Deno.UnsafePointer.create(v));
        if (container) api.ReleasePrepackedWeightsContainer(container);
      }
    }
  }

  /** An OrtValue over `data` with `t`'s dims (see {@link tensorValueOf}). */
  private value(t: ort.Tensor, data: ArrayBufferView, name: string, cache: boolean): bigint {
    return tensorValueOf(this.rt, t, data, name, cache, this.dimScratch);
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
        this.runOptions,
        inNames,
        inVals,
        BigInt(inputs.length),
        outNamePtrs,
        BigInt(outputs.length),
        outVals,
      ) as Ptr;
      check(api, status, "Run");
      memTracePeak(this.label);
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
            result[n] = copyOut(this.rt, v);
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
    if (this.container) this.rt.api.ReleasePrepackedWeightsContainer(this.container);
    this.container = null;
    if (this.runOptions) this.rt.api.ReleaseRunOptions(this.runOptions);
    this.runOptions = null;
  }
}
