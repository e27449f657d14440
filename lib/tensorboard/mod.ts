/**
 * TensorBoard event files: TFRecord framing with masked CRC32C (record.ts), the `Event`
 * protobuf (event.ts), and metrics rows as scalar summaries written while training or from
 * finished bundles (writer.ts). A bottom-layer utility: it imports nothing of Proxima.
 *
 * @example
 * ```ts
 * import { MetricsEventLog, readScalars, tensorboardDir } from "./mod.ts";
 * const log = new MetricsEventLog(tensorboardDir("results/train/cartpole-seed1"));
 * log.append({ update: 1, loss: 0.5 });
 * log.close();
 * console.log(await readScalars(log.dir)); // [{ tag: "loss", step: 1, value: 0.5, ... }]
 * ```
 * @module
 */
export * from "./record.ts";
export * from "./event.ts";
export * from "./writer.ts";
