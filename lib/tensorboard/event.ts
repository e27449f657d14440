/**
 * TensorBoard's `Event` protobuf (tensorflow/core/util/event.proto), the part Proxima writes:
 * the file-version event that opens every event file, a `SessionLog` START (a run (re)starts
 * at this step: TensorBoard's reader drops the points of earlier files from this step on, as
 * after a resume) and scalar summaries (`Summary.Value{tag, simple_value}`). Encoded and decoded by protobufjs from a small JSON
 * descriptor with the same field numbers as the .proto files; fields this descriptor does not
 * name are skipped when decoding.
 *
 * @example
 * ```ts
 * const bytes = encodeEvent({ wallTime: 1.5, step: 3, scalars: [{ tag: "loss", value: 0.25 }] });
 * decodeEvent(bytes); // { wallTime: 1.5, step: 3, scalars: [{ tag: "loss", value: 0.25 }] }
 * ```
 * @module
 */
import protobuf from "protobufjs/light.js";

/** What every event file starts with (TensorFlow's `brain.Event:2`). */
export const FILE_VERSION = "brain.Event:2";

/** One scalar of a summary (`simple_value` is a float32). */
export interface TbScalar {
  tag: string;
  value: number;
}

/** An event: the file version, a session start, or scalar summaries at a step. */
export interface TbEvent {
  /** Seconds since the epoch. */
  wallTime: number;
  step: number;
  fileVersion?: string;
  /** A `SessionLog` with status START. */
  sessionStart?: true;
  scalars?: TbScalar[];
}

/** SessionLog.SessionStatus.START */
const SESSION_START = 1;

// Field numbers from tensorflow/core/util/event.proto and framework/summary.proto.
const root = protobuf.Root.fromJSON({
  nested: {
    tensorboard: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ["file_version", "summary", "session_log"] } },
          fields: {
            wall_time: { type: "double", id: 1 },
            step: { type: "int64", id: 2 },
            file_version: { type: "string", id: 3 },
            summary: { type: "Summary", id: 5 },
            session_log: { type: "SessionLog", id: 7 }, // 6 is the deprecated log_message
          },
        },
        SessionLog: {
          fields: {
            status: { type: "int32", id: 1 }, // enum SessionStatus: 1 = START
            checkpoint_path: { type: "string", id: 2 },
            msg: { type: "string", id: 3 },
          },
        },
        Summary: {
          fields: { value: { rule: "repeated", type: "Value", id: 1 } },
          nested: {
            Value: {
              oneofs: { value: { oneof: ["simple_value"] } },
              fields: {
                tag: { type: "string", id: 1 },
                simple_value: { type: "float", id: 2 },
              },
            },
          },
        },
      },
    },
  },
});
const Event = root.lookupType("tensorboard.Event");

/** The protobuf bytes of one event. */
export function encodeEvent(e: TbEvent): Uint8Array {
  const msg: Record<string, unknown> = { wall_time: e.wallTime, step: e.step };
  const values = (e.scalars ?? []).map((s) => ({ tag: s.tag, simple_value: s.value }));
  if (e.fileVersion !== undefined) msg.file_version = e.fileVersion;
  else if (e.sessionStart) msg.session_log = { status: SESSION_START };
  else msg.summary = { value: values };
  return Event.encode(Event.fromObject(msg)).finish();
}

/** One event back from its protobuf bytes (summary values other than simple_value are left out). */
export function decodeEvent(bytes: Uint8Array): TbEvent {
  const m = Event.toObject(Event.decode(bytes), { longs: Number, defaults: true }) as {
    wall_time: number;
    step: number;
    file_version?: string;
    session_log?: { status: number };
    summary?: { value?: { tag: string; simple_value?: number }[] };
  };
  const e: TbEvent = { wallTime: m.wall_time, step: m.step };
  if (m.file_version) e.fileVersion = m.file_version;
  if (m.session_log?.status === SESSION_START) e.sessionStart = true;
  if (m.summary) {
    e.scalars = (m.summary.value ?? []).filter((v) => v.simple_value !== undefined)
      .map((v) => ({ tag: v.tag, value: v.simple_value! }));
  }
  return e;
}
