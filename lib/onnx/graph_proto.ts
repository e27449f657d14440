/**
 * ONNX protobuf objects of a graph builder's parts (plain JS objects for onnx-proto): constant
 * tensors, attributes, typed value infos, initializers whose data a session supplies, and
 * the ModelProto bytes. The `Graph` class (graph.ts) assembles them in `toGraphProto`.
 * @module
 */
import protoPkg from "onnx-proto";
import {
  type ConstTensor,
  DTYPE_CODE,
  GraphError,
  OPSET,
  type ShapedValue,
} from "./graph_shapes.ts";

// deno-lint-ignore no-explicit-any
const onnx = (protoPkg as any).onnx;

/**
 * A node attribute as serialised (graph.ts's `AttrValue`; a sub-graph is read only through
 * its proto).
 */
export type ProtoAttr =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: ConstTensor }
  | { kind: "graph"; value: { toGraphProto(): unknown } };

/** The ValueInfoProto of a value: name, element type, static or symbolic dims. */
export function valueInfo(v: ShapedValue): unknown {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: DTYPE_CODE[v.dtype],
        shape: {
          dim: v.shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/** Where an external initializer's bytes lie in a file of the session's external-data folder. */
export interface ExternalFile {
  /** The file's name, relative to the folder. */
  location: string;
  /** Byte offset of the tensor in the file. */
  offset: number;
  /** Its bytes. */
  length: number;
}

/**
 * Inputs that are external initializers: their names (a session supplies their memory at
 * creation), or a map of name → the file that holds their bytes (undefined: none).
 */
export type ExternalInputs = ReadonlySet<string> | ReadonlyMap<string, ExternalFile | undefined>;

/**
 * Inputs named in `external` as initializers whose data is external (static shapes only): a
 * session supplies their memory at creation; those with an {@link ExternalFile} name the file
 * that holds the same bytes, so ORT needs no copy of them to build its graph (ort_ffi_session.ts).
 * Throws for a name that is not an input.
 */
export function externalInitializers(
  inputs: readonly ShapedValue[],
  external?: ExternalInputs,
): unknown[] {
  const externalInit = inputs.filter((v) => external?.has(v.name)).map((v) => {
    if (!v.shape.every((d) => typeof d === "number")) {
      throw new GraphError(`external initializer ${v}: its shape must be static`);
    }
    return {
      name: v.name,
      dims: v.shape,
      dataType: DTYPE_CODE[v.dtype],
      dataLocation: 1, // EXTERNAL: the data comes with the session, not the model
      externalData: externalData(external instanceof Map ? external.get(v.name) : undefined),
    };
  });
  if (external && externalInit.length !== external.size) {
    const missing = [...external].filter((n) => !inputs.some((v) => v.name === n));
    throw new GraphError(`external initializers [${missing}] are not inputs of the graph`);
  }
  return externalInit;
}

/** A TensorProto's external_data entries: the file and the span, or the session's memory. */
function externalData(file: ExternalFile | undefined): { key: string; value: string }[] {
  if (!file) return [{ key: "location", value: "proxima-session-memory" }];
  return [
    { key: "location", value: file.location },
    { key: "offset", value: String(file.offset) },
    { key: "length", value: String(file.length) },
  ];
}

/** The TensorProto of a constant (raw little-endian data). */
export function tensorProto(name: string, t: ConstTensor): unknown {
  const n = t.data.length;
  let raw: Uint8Array;
  switch (t.dtype) {
    case "float32":
      raw = new Uint8Array(Float32Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "float64":
      raw = new Uint8Array(Float64Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "int64":
      raw = new Uint8Array(BigInt64Array.from(t.data as ArrayLike<bigint>).buffer);
      break;
    case "int32":
      raw = new Uint8Array(Int32Array.from(t.data as ArrayLike<number>).buffer);
      break;
    case "bool":
      raw = Uint8Array.from({ length: n }, (_, i) => ((t.data as ArrayLike<unknown>)[i] ? 1 : 0));
      break;
  }
  return { name, dims: t.shape, dataType: DTYPE_CODE[t.dtype], rawData: raw };
}

/** The AttributeProto of a node attribute. */
export function attrProto(name: string, a: ProtoAttr): unknown {
  switch (a.kind) {
    case "int":
      return { name, type: 2, i: a.value };
    case "float":
      return { name, type: 1, f: a.value };
    case "ints":
      return { name, type: 7, ints: a.value };
    case "string":
      return { name, type: 3, s: new TextEncoder().encode(a.value) };
    case "tensor":
      return { name, type: 4, t: tensorProto(name, a.value) };
    case "graph":
      return { name, type: 5, g: a.value.toGraphProto() };
  }
}

/** ONNX ModelProto bytes (IR 10, opset {@link OPSET}) around a GraphProto object. */
export function modelBytes(graph: unknown): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: "proxima",
    opsetImport: [{ domain: "", version: OPSET }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** A node as serialised (graph.ts's `Node`). */
export interface ProtoNode {
  readonly op: string;
  readonly inputs: readonly (ShapedValue | undefined)[];
  readonly outputs: readonly ShapedValue[];
  readonly attrs: Readonly<Record<string, ProtoAttr>>;
}

/** A graph as serialised (graph.ts's `Graph`). */
export interface ProtoGraph<N extends ProtoNode> {
  readonly name: string;
  readonly prefix: string;
  readonly nodes: readonly N[];
  readonly inputs: readonly ShapedValue[];
  readonly outputs: readonly ShapedValue[];
  readonly initializers: ReadonlyMap<string, { value: ShapedValue; tensor: ConstTensor }>;
}

/**
 * The GraphProto object of `g` (see graph.ts's `toGraphProto`). `expand` lowers a node: it
 * returns the GraphProto of a scratch graph computing it and the name of its result (aliased
 * to the node's output by an Identity), or undefined to emit the node as is.
 */
export function graphProto<N extends ProtoNode>(
  g: ProtoGraph<N>,
  external: ExternalInputs | undefined,
  expand: (n: N) => { result: string; proto: unknown } | undefined,
): unknown {
  // deno-lint-ignore no-explicit-any
  const nodes: any[] = [], extraInit: unknown[] = [];
  g.nodes.forEach((n, i) => {
    const lowered = expand(n);
    if (!lowered) {
      nodes.push({
        opType: n.op,
        name: `${g.prefix}${n.op}_${i}`,
        input: n.inputs.map((v) => v?.name ?? ""),
        output: n.outputs.map((v) => v.name),
        attribute: Object.entries(n.attrs).map(([name, a]) => attrProto(name, a)),
      });
      return;
    }
    // deno-lint-ignore no-explicit-any
    const sub = lowered.proto as any;
    nodes.push(...sub.node, {
      opType: "Identity",
      name: `${n.op}_${i}`,
      input: [lowered.result],
      output: [n.outputs[0].name],
    });
    extraInit.push(...sub.initializer);
  });
  const externalInit = externalInitializers(g.inputs, external);
  return {
    name: g.name,
    node: nodes,
    input: g.inputs.filter((v) => !external?.has(v.name)).map(valueInfo),
    output: g.outputs.map(valueInfo),
    initializer: [...g.initializers.values()].map(({ value, tensor }) =>
      tensorProto(value.name, tensor)
    ).concat(extraInit, externalInit),
  };
}
