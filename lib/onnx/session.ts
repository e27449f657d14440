/**
 * ONNX Runtime sessions: compile a graph once (cached by the hash of its bytes and
 * options), pick the execution provider, pin the thread count, run.
 *
 * @example
 * ```ts
 * const s = await compile(graph, { device: "cpu", threads: 2 });
 * const out = await s.run({ x: tensor("float32", [2, 2], [1, 2, 3, 4]) });
 * ```
 * @module
 */
import * as ort from "onnxruntime-node";
import { createHash } from "node:crypto";
import { type DType, Graph } from "./graph.ts";
import { FfiSession, ffiStatus } from "./ort_ffi.ts";
import { UserError } from "../errors.ts";
import { processSessions, type SessionCache } from "./session_cache.ts";
import { traced, tracedAsync } from "../setup_trace.ts";
import { mappedSource } from "./file_map.ts";
import type { ExternalFile } from "./graph_proto.ts";

export type Device = "cpu" | "cuda";

export interface SessionOptions {
  /** Execution provider; "cuda" fails clearly when the CUDA provider is not installed. */
  device?: Device;
  /** Intra-op threads, pinned so results are reproducible (default 2). */
  threads?: number;
  /** ORT graph optimisation level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Let idle intra-op threads spin-wait (default false: they sleep; see compile()). */
  spinning?: boolean;
  /**
   * How sessions are run on the CPU: "ffi" (default where it loads) calls ORT's C API through
   * Deno's FFI (ort_ffi.ts: outputs written in place, no copies); "node" uses onnxruntime-node,
   * which copies every fetched output. Same library, same kernels: the same results either way.
   * Other devices always use onnxruntime-node. $PROXIMA_ORT_FFI=0 forces "node".
   */
  backend?: "ffi" | "node";
  /**
   * ORT's memory pattern (default false). With it ORT plans one block for all of a run's
   * intermediates after the first run, but its arena keeps the first run's memory as well: for
   * the GPT-2-small train step that was 0.9 GB more peak RSS (3.0 vs 2.2 GB), for the 0.5B
   * LoRA step ~6 GB more; and every new input shape (a growing KV cache) plans a new block.
   * Without it the arena reuses its free chunks. Allocation only: results are the same.
   */
  memPattern?: boolean;
  /** ORT's CPU memory arena (default true); without it intermediates come from malloc. */
  memArena?: boolean;
  /**
   * After each run, give the arena's wholly free regions back to the system (ORT's run option
   * `memory.enable_memory_arena_shrinkage`; default false; "ffi" backend): for a session run
   * rarely (the evaluation's scorer), so that a large allocation outside ORT after it (LoRA's
   * merged weights) does not come on top of the train step's retained intermediates. Not for
   * a session run every step: the next run faults the memory in again (the 43M lm train step
   * shrunk after each run took 50-53 s instead of 11-25 s per update, load 9). Allocation
   * only: results are the same.
   */
  shrinkArena?: boolean;
  /**
   * Write ORT's profile (Chrome trace JSON, one event per kernel) to a file with this prefix;
   * {@link Session.endProfiling} ends it and gives the path. "ffi" backend only.
   */
  profile?: string;
  /**
   * The cache compiled sessions are kept in: a trial's own (lib/trial/context.ts), disposed
   * when the trial ends; absent, the process-wide {@link processSessions}. Not part of any
   * session's identity.
   */
  sessions?: SessionCache;
}

/** Session options with every default filled (what a {@link Session} records). */
export type ResolvedSessionOptions = Required<Omit<SessionOptions, "sessions">>;

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
export type Tensor = ort.Tensor;

/** Raised when the requested device cannot be used. */
export class DeviceError extends UserError {
  override name = "DeviceError";
}

const ARRAY: Record<DType, new (n: number) => TypedArray> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  bool: Uint8Array,
};

/** Allocate (or wrap) a tensor. */
export function tensor(
  dtype: DType,
  shape: number[],
  data?: TypedArray | ArrayLike<number>,
): ort.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  let arr: TypedArray;
  if (data === undefined) arr = new ARRAY[dtype](n);
  else if (ArrayBuffer.isView(data) && data.constructor === ARRAY[dtype]) arr = data as TypedArray;
  else if (data.length !== n) {
    throw new Error(`tensor: ${data.length} values for shape [${shape}] (${n} expected)`);
  } else if (dtype === "int64") {
    arr = BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
  } else {
    arr = new ARRAY[dtype](n);
    (arr as Float64Array).set(data as ArrayLike<number>);
  }
  if (arr.length !== n) throw new Error(`tensor: ${arr.length} values for shape [${shape}]`);
  return new ort.Tensor(dtype === "bool" ? "bool" : dtype, arr, shape);
}

const KNOWN: Device[] = ["cpu", "cuda"];
const problems = new Map<Device, Promise<string | undefined>>();

/**
 * Why `device` cannot run here, or undefined when it can. onnxruntime-node lists
 * "cuda" even when its provider libraries are not installed, so this probes a
 * one-node session on the device (once per process).
 */
function deviceProblem(device: Device): Promise<string | undefined> {
  if (device === "cpu") return Promise.resolve(undefined);
  let p = problems.get(device);
  if (!p) {
    p = (async () => {
      if (!ort.listSupportedBackends().some((b) => b.name === device)) {
        return "this onnxruntime-node build does not include it";
      }
      const g = new Graph("probe");
      g.output(g.identity(g.input("x", "float32", [1])), "y");
      try {
        await ort.InferenceSession.create(g.toModelBytes(), {
          executionProviders: [device],
          logSeverityLevel: 4,
        });
        return undefined;
      } catch (e) {
        // deno-lint-ignore no-control-regex
        return String((e as Error).message ?? e).replace(/\x1b\[[0-9;]*m/g, "").split("\n")[0];
      }
    })();
    problems.set(device, p);
  }
  return p;
}

/** Execution providers that actually work on this machine (probed once). */
export async function availableDevices(): Promise<Device[]> {
  const ok = await Promise.all(KNOWN.map(async (d) => (await deviceProblem(d)) === undefined));
  return KNOWN.filter((_, i) => ok[i]);
}

async function checkDevice(device: Device): Promise<void> {
  const problem = KNOWN.includes(device) ? await deviceProblem(device) : "unknown device";
  if (problem === undefined) return;
  throw new DeviceError(
    `--device ${device}: the ${device.toUpperCase()} execution provider cannot be used: ${problem} ` +
      `(available: ${
        (await availableDevices()).join(", ")
      }). onnxruntime-node from npm ships CPU ` +
      `binaries only; for CUDA install its CUDA 12 provider libraries on a CUDA machine ` +
      `(ONNXRUNTIME_NODE_INSTALL_CUDA=v12 at npm install), or use --device cpu.`,
  );
}

/** What a compiled graph runs on: onnxruntime-node's session or the FFI one. */
interface Backend {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(
    feeds: Record<string, ort.Tensor>,
    fetches?: Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>>;
}

/** A compiled graph. */
export class Session {
  constructor(
    private readonly inner: Backend,
    readonly hash: string,
    readonly options: ResolvedSessionOptions,
    /** Feeds added to every run (see {@link compileWithConstants} on the "node" backend). */
    private readonly constantFeeds?: Record<string, ort.Tensor>,
    /** Made by {@link compileWithConstants} for one caller (not shared through the cache). */
    private readonly owned = false,
  ) {}
  /** What a result bundle records about the engine that produced it (env.json). */
  info(): {
    onnxruntime: string;
    device: Device;
    threads: number;
    optimization: string;
    graphHash: string;
  } {
    return {
      onnxruntime: ort.env.versions.node ?? "unknown",
      device: this.options.device,
      threads: this.options.threads,
      optimization: this.options.optimization,
      graphHash: this.hash,
    };
  }
  /** "ffi" or "node" (see {@link SessionOptions.backend}). */
  get backend(): "ffi" | "node" {
    return this.inner instanceof FfiSession ? "ffi" : "node";
  }
  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }
  /** End ORT profiling (see {@link SessionOptions.profile}); the profile file's path. */
  endProfiling(): string {
    if (!(this.inner instanceof FfiSession)) throw new Error("endProfiling: ffi backend only");
    return this.inner.endProfiling();
  }
  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }
  /**
   * Free a session made by {@link compileWithConstants} (its packed weights and arena); the
   * shared sessions of {@link compile} live as long as their {@link SessionCache}, and this
   * leaves them be.
   */
  release(): void {
    if (this.owned && this.inner instanceof FfiSession) this.inner.release();
  }
  /**
   * Free the session whatever its owner: what its {@link SessionCache} does when the trial
   * that owns it ends. A run after this throws.
   */
  async dispose(): Promise<void> {
    if (this.inner instanceof FfiSession) this.inner.release();
    else if (!this.owned) await (this.inner as unknown as ort.InferenceSession).release();
  }
  /**
   * Run; `fetches` may give preallocated output tensors that ORT writes into. With the "ffi"
   * backend they are written in place and returned as the same objects; "node" returns copies
   * (and writes the given tensors too).
   */
  run(
    feeds: Record<string, ort.Tensor>,
    fetches?: Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>> {
    if (this.constantFeeds) feeds = { ...this.constantFeeds, ...feeds };
    if (this.inner instanceof FfiSession) return this.inner.run(feeds, fetches);
    const s = this.inner as unknown as ort.InferenceSession;
    return fetches
      ? s.run(feeds, fetches as unknown as ort.InferenceSession.FetchesType)
      : s.run(feeds);
  }
}

/**
 * Compiled sessions live in a {@link SessionCache} by graph hash and options: the trial's own
 * (`opts.sessions`), released when the trial ends, or the process-wide one for code outside a
 * trial. A cached session is a pure function of its key (the serialised graph and the options;
 * parameters are graph inputs fed at each run, so it holds no weights — a session with weights
 * compiled in, `compileWithConstants`, is never cached) and is never mutated, so sharing it
 * within its cache cannot change a result.
 */
const cacheOf = (opts: SessionOptions): SessionCache => opts.sessions ?? processSessions;

/** The memory trace's name of a session: its graph's name and hash prefix. */
const labelOf = (graph: Graph | Uint8Array, hash: string) =>
  `${graph instanceof Uint8Array ? "model" : graph.name}:${hash.slice(0, 8)}`;

/** sha256 of the serialised model: the graph's identity. */
export function graphHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * With `PROXIMA_SESSION_LOG=<file>` set, every compile appends one JSON line (graph hash,
 * device, threads) to the file: how a test checks that a command's `--threads` reaches every
 * session it builds, in this process and in the workers it spawns.
 */
function logSession(hash: string, o: ResolvedSessionOptions): void {
  const path = Deno.env.get("PROXIMA_SESSION_LOG");
  if (!path) return;
  const line = JSON.stringify({ graph: hash.slice(0, 16), device: o.device, threads: o.threads });
  Deno.writeTextFileSync(path, line + "\n", { append: true });
}

/** Compile a graph (or model bytes); identical graphs + options share one session. */
export async function compile(
  graph: Graph | Uint8Array,
  opts: SessionOptions = {},
): Promise<Session> {
  const options: ResolvedSessionOptions = {
    device: opts.device ?? "cpu",
    threads: opts.threads ?? 2,
    optimization: opts.optimization ?? "all",
    spinning: opts.spinning ?? false,
    backend: opts.device === "cuda" ? "node" : opts.backend ?? (ffiStatus().ok ? "ffi" : "node"),
    memPattern: opts.memPattern ?? false,
    memArena: opts.memArena ?? true,
    shrinkArena: opts.shrinkArena ?? false,
    profile: opts.profile ?? "",
  };

  await checkDevice(options.device);
  const what = graph instanceof Uint8Array
    ? "bytes"
    : `${graph.name} (${graph.nodes.length} nodes)`;
  const bytes = graph instanceof Uint8Array
    ? graph
    : traced(`serialise ${what}`, () => graph.toModelBytes());
  const hash = traced(`hash ${what}, ${bytes.byteLength} B`, () => graphHash(bytes));
  logSession(hash, options);
  const key = `${hash}|${options.device}|${options.threads}|${options.optimization}|` +
    `${options.spinning}|${options.backend}|${options.memPattern}|${options.memArena}|` +
    `${options.shrinkArena}|${options.profile}`;
  const make = (): Promise<Session> =>
    options.backend === "ffi"
      ? tracedAsync(
        `session ${what}`,
        () => FfiSession.create(bytes, { ...options, label: labelOf(graph, hash) }),
      ).then((inner) => new Session(inner, hash, options))
      : ort.InferenceSession.create(bytes, {
        executionProviders: [options.device],
        intraOpNumThreads: options.threads,
        interOpNumThreads: 1,
        executionMode: "sequential",
        graphOptimizationLevel: options.optimization,
        enableMemPattern: options.memPattern,
        enableCpuMemArena: options.memArena,
        logSeverityLevel: 3,
        // Idle intra-op threads sleep instead of spin-waiting (as torch under
        // OMP_WAIT_POLICY=PASSIVE). On a shared 2-core machine spinning threads fight every other
        // process: measured on the GPT bench under load, 1.9-2.1x torch's step time with
        // spinning vs 0.66-0.94x without; on an idle machine it made no measurable difference.
        extra: { session: { intra_op: { allow_spinning: options.spinning ? "1" : "0" } } },
      }).then((inner) => new Session(inner, hash, options));
  return await cacheOf(opts).memo(`session|${key}`, make, (s) => s.dispose());
}

/**
 * Compile `graph` with some of its inputs fixed to `constants` (by input name; static shapes):
 * on the "ffi" backend they become initializers over the tensors' own memory (no copy into the
 * model), so ORT folds what depends on them alone and pre-packs matmul weights into its
 * kernels' layout once, instead of repacking them at every run as it does for an input. For a
 * decoder that is every weight matrix, re-read at each generated token: see sample.ts.
 *
 * The session is the caller's: not cached, and the constants' memory must stay unchanged
 * until {@link Session.release}. On the "node" backend (or another device) the constants stay
 * inputs of a shared session and are fed at every run: the same results, without the packing.
 *
 * @example
 * ```ts
 * const s = await compileWithConstants(g, { w: tensor("float32", [4, 4], w) });
 * await s.run({ x }); // w is not fed
 * s.release();
 * ```
 */
export async function compileWithConstants(
  graph: Graph,
  constants: Record<string, ort.Tensor>,
  opts: SessionOptions = {},
  /** ORT session config entries for the "ffi" session (e.g. optimizers to leave out). */
  config: Record<string, string> = {},
): Promise<Session> {
  const backend = opts.device === "cuda"
    ? "node"
    : opts.backend ?? (ffiStatus().ok ? "ffi" : "node");
  if (backend === "node") {
    const shared = await compile(graph, { ...opts, backend });
    return new Session(shared["inner"], shared.hash, shared.options, constants);
  }
  const options: ResolvedSessionOptions = {
    device: "cpu",
    threads: opts.threads ?? 2,
    optimization: opts.optimization ?? "all",
    spinning: opts.spinning ?? false,
    backend,
    memPattern: opts.memPattern ?? false,
    memArena: opts.memArena ?? true,
    shrinkArena: opts.shrinkArena ?? false,
    profile: opts.profile ?? "",
  };
  const what = `${graph.name} (${graph.nodes.length} nodes, constants)`;
  const { external, fileBacked } = constantFiles(constants);
  const bytes = traced(`serialise ${what}`, () => graph.toModelBytes(external));
  const hash = traced(`hash ${what}, ${bytes.byteLength} B`, () => graphHash(bytes));
  logSession(hash, options);
  const inner = await tracedAsync(
    `session ${what}`,
    () =>
      FfiSession.create(bytes, {
        ...options,
        initializers: constants,
        ...(fileBacked ? { fileBacked } : {}),
        config,
        label: labelOf(graph, hash),
      }),
  );
  return new Session(inner, hash, options, undefined, true);
}

/**
 * Which constants are views of a mapped file (file_map.ts: the lm policy's weights), in one
 * folder (the first such constant's): the model then names each one's file and span as its
 * external data, and the session takes it as a shared initializer only (no copy while ORT
 * builds the graph; ort_ffi_session.ts `fileBacked`). Every other constant stays memory the
 * session supplies. Files of other folders are not named (ORT takes one folder).
 */
function constantFiles(constants: Record<string, ort.Tensor>): {
  external: Map<string, ExternalFile | undefined>;
  fileBacked?: { folder: string; names: Set<string> };
} {
  const external = new Map<string, ExternalFile | undefined>();
  let folder: string | undefined;
  const names = new Set<string>();
  for (const [n, t] of Object.entries(constants)) {
    const data = t.data as ArrayBufferView;
    const src = ArrayBuffer.isView(data) ? mappedSource(data) : undefined;
    const cut = src ? src.path.lastIndexOf("/") : -1;
    if (src && cut > 0 && (folder ??= src.path.slice(0, cut)) === src.path.slice(0, cut)) {
      const location = src.path.slice(cut + 1);
      external.set(n, { location, offset: src.offset, length: data.byteLength });
      names.add(n);
    } else external.set(n, undefined);
  }
  return { external, ...(folder !== undefined ? { fileBacked: { folder, names } } : {}) };
}
