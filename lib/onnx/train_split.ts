/**
 * The "split" optimizer mode of the Trainer (trainer.ts): the step graph writes raw gradients
 * into one buffer, and a second, elementwise session ({@link buildOptimizerGraph}) applies
 * clipping and the optimizer to flat chunks of params, gradients and state, each written in
 * place. Here:
 * laying the params out in groups (a large tensor alone, the small ones packed and aligned),
 * compiling both sessions, running the optimizer chunk by chunk, and the live views.
 *
 * Separate from the Trainer (trainer.ts), which also runs the "graph" mode's ping-pong
 * buffers: this file is the memory layout of a large model's training (params, gradients and
 * state held once) and nothing else.
 * @module
 */
import type * as ort from "onnxruntime-node";
import { Graph } from "./graph.ts";
import { buildOptimizerGraph, optimIo } from "./optim.ts";
import { compile, type Session, type SessionOptions, tensor } from "./session.ts";
import { buildGradStep, io, type TrainStepSpec } from "./train_graph.ts";
import { traceLine } from "../setup_trace.ts";

type Arr = Float32Array | Float64Array;

/** Trainable values from which "auto" picks the split optimizer. */
export const SPLIT_MIN = 1 << 20;
/** Default elements per optimizer run: 4 MB of float32 per array, so a chunk's chain stays in cache. */
export const OPTIMIZER_CHUNK = 1 << 20;
/** Alignment of each tensor in the split mode's flat buffers (elements: 64 bytes of float32). */
const ALIGN = 16;

/**
 * A contiguous run of params (with its gradients and optimizer state): one large tensor, or
 * the small ones packed together, so the optimizer runs over few, large chunks.
 */
export interface Group {
  size: number;
  param: Arr;
  grad: Arr;
  state: Arr[];
  /**
   * Gradient accumulation (train_accumulate.ts): where the second and later micro-batches'
   * gradients are written before they are added into `grad` (same layout).
   */
  scratch?: Arr;
}

/** The split mode's buffers and optimizer session. */
export interface Split {
  groups: Group[];
  /** Per parameter: its group and offset. */
  where: Record<string, { group: Group; offset: number; size: number }>;
  /** Per parameter, the step graph's output name of its gradient. */
  gradOut: Record<string, string>;
  optimizer: Session;
  optOut: { param: string; state: string[] };
  chunk: number;
  views: Record<string, ort.Tensor>;
  gradFetches: Record<string, ort.Tensor>;
  /** Gradient accumulation: the gradient outputs over the groups' `scratch` buffers. */
  scratchFetches?: Record<string, ort.Tensor>;
}

/**
 * Compile the split mode's two sessions for `spec` (the gradient step and the optimizer) and
 * lay out its buffers: `init` copied in (or, with `adopt`, large float arrays of the spec's
 * dtype taken as the live params), gradients and state zero. With `accumulate` the step graph
 * is {@link buildGradStep}'s accumulating variant and every group gets a scratch gradient
 * buffer (train_accumulate.ts).
 */
export async function createSplit(
  spec: TrainStepSpec,
  init: Record<string, Arr>,
  sessionOpts: SessionOptions,
  optimizerChunk: number,
  adopt: boolean,
  accumulate = false,
): Promise<{ session: Session; split: Split }> {
  const { graph, grads } = buildGradStep(spec, accumulate);
  const clip = spec.clipGradNorm !== false;
  const opt = buildOptimizerGraph(
    new Graph(`${spec.optimizer.name}_step`),
    spec.optimizer,
    spec.dtype,
    clip,
  );
  const names = Object.keys(spec.params);
  const Buf = spec.dtype === "float32" ? Float32Array : Float64Array;
  const chunk = Math.max(ALIGN, Math.floor(optimizerChunk / ALIGN) * ALIGN);
  const sizeOf = (n: string) => spec.params[n].shape.reduce((a, b) => a * b, 1);
  for (const n of names) {
    if (init[n].length !== sizeOf(n)) {
      throw new Error(`Trainer: "${n}" has ${init[n].length} values, expected ${sizeOf(n)}`);
    }
  }
  // ORT builds the two sessions on its own threads (the FFI's CreateSession is nonblocking)
  // while this thread lays out and zero-fills the buffers below: for the 43M model the fill
  // (gradients and two Adam states, page faults) took as long as the step's session, 1-3 s
  // each on 2 loaded cores. The macrotask turn lets each compile reach its CreateSession first.
  const compiled = Promise.all([compile(graph, sessionOpts), compile(opt.graph, sessionOpts)]);
  compiled.catch(() => {}); // awaited below; a failure surfaces there
  await new Promise((r) => setTimeout(r, 0));
  // Tensors of at least a quarter chunk get a group of their own; the rest share one.
  const big = (n: string) => sizeOf(n) >= chunk / 4;
  // Zero-filled, so their pages are touched now rather than during the first steps.
  const zeros = (n: number) => new Buf(n).fill(0);
  const groups: Group[] = [];
  const where: Split["where"] = {};
  let packSize = 0;
  const packed: string[] = [];
  for (const n of names) {
    if (!big(n)) {
      packed.push(n);
      packSize += Math.ceil(sizeOf(n) / ALIGN) * ALIGN;
      continue;
    }
    const own = adopt && init[n] instanceof Buf;
    const param = own ? init[n] : Buf.from(init[n]);
    const group: Group = {
      size: sizeOf(n),
      param,
      grad: zeros(sizeOf(n)),
      state: spec.optimizer.slots.map(() => zeros(sizeOf(n))),
    };
    groups.push(group);
    where[n] = { group, offset: 0, size: sizeOf(n) };
  }
  if (packed.length) {
    const pack: Group = {
      size: packSize,
      param: zeros(packSize),
      grad: zeros(packSize),
      state: spec.optimizer.slots.map(() => zeros(packSize)),
    };
    groups.push(pack);
    let at = 0;
    for (const n of packed) {
      pack.param.set(init[n], at);
      where[n] = { group: pack, offset: at, size: sizeOf(n) };
      at += Math.ceil(sizeOf(n) / ALIGN) * ALIGN;
    }
  }
  if (accumulate) { for (const g of groups) g.scratch = zeros(g.size); }
  traceLine("split: buffers laid out");
  const [session, optimizer] = await compiled;
  traceLine("split: sessions ready");
  const views: Record<string, ort.Tensor> = {}, gradFetches: Record<string, ort.Tensor> = {};
  const gradOut: Record<string, string> = {};
  const scratchFetches: Record<string, ort.Tensor> | undefined = accumulate ? {} : undefined;
  names.forEach((n, i) => {
    const { group, offset, size } = where[n];
    const at = (
      b: Arr,
    ) => (offset === 0 && size === b.length ? b : b.subarray(offset, offset + size));
    views[n] = tensor(spec.dtype, spec.params[n].shape, at(group.param));
    gradOut[n] = grads[i];
    gradFetches[grads[i]] = tensor(spec.dtype, spec.params[n].shape, at(group.grad));
    if (scratchFetches) {
      scratchFetches[grads[i]] = tensor(spec.dtype, spec.params[n].shape, at(group.scratch!));
    }
  });
  return {
    session,
    split: {
      groups,
      where,
      gradOut,
      optimizer,
      optOut: opt.outputs,
      chunk,
      views,
      gradFetches,
      ...(scratchFetches ? { scratchFetches } : {}),
    },
  };
}

/** Split mode: clip + optimizer over the flat buffers, chunk by chunk, in place. */
export async function optimizeSplit(
  spec: TrainStepSpec,
  sp: Split,
  hp: Record<string, ort.Tensor>,
  step: ort.Tensor,
  coef: ort.Tensor | undefined,
): Promise<void> {
  const { dtype, optimizer } = spec;
  const common: Record<string, ort.Tensor> = { ...hp, [optimIo.step]: step };
  if (coef) common[optimIo.coef] = coef;
  for (const g of sp.groups) {
    for (let a = 0; a < g.size; a += sp.chunk) {
      const b = Math.min(a + sp.chunk, g.size);
      const view = (buf: Arr) => tensor(dtype, [b - a], buf.subarray(a, b));
      const p = view(g.param);
      const state = g.state.map(view);
      const feeds: Record<string, ort.Tensor> = {
        ...common,
        [optimIo.param]: p,
        [optimIo.grad]: view(g.grad),
      };
      const fetches: Record<string, ort.Tensor> = { [sp.optOut.param]: p };
      optimizer.slots.forEach((s, i) => {
        feeds[optimIo.state(s)] = state[i];
        fetches[sp.optOut.state[i]] = state[i];
      });
      await sp.optimizer.run(feeds, fetches);
    }
  }
}

/** The split mode's live params and optimizer state by state-dict key (views). */
export function splitLive(spec: TrainStepSpec, sp: Split): Record<string, Arr> {
  const out: Record<string, Arr> = {};
  for (const n of Object.keys(spec.params)) {
    const { group, offset, size } = sp.where[n];
    const at = (b: Arr) => b.subarray(offset, offset + size);
    out[io.param(n)] = at(group.param);
    spec.optimizer.slots.forEach((s, i) => (out[io.state(s, n)] = at(group.state[i])));
  }
  return out;
}
