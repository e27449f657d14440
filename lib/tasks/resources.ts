/**
 * What a trial's training costs, measured in its own process: wall time, peak resident memory
 * and the models it held. Written as `resources.json` into the trial folder when the config
 * asks (`measure_resources: true`), so a table can put methods side by side from their
 * bundles.
 *
 * These are measurements, not results: the same trial run twice gives other times and RSS, so
 * a bundle with resources.json has another bundle hash on every run (its metrics, summary,
 * evaluation and checkpoint stay byte-identical). That is why it is opt-in.
 *
 * Peak RSS: Linux's VmHWM, reset just before training by writing 5 to /proc/self/clear_refs
 * (so stages trained or loaded earlier in the process do not count beyond what they left
 * resident), together with the RSS sampled after every update; where the reset is not possible
 * only the samples count.
 *
 * @example
 * ```ts
 * const m = startMeasure();
 * await train(...); // call m.sample() now and then
 * const r = await m.stop({ online: true, models: { policy: 1e5, reference: 1e5 } });
 * ```
 * @module
 */

/** resources.json. */
export interface TrialResources {
  /** Online RL (samples from the policy) or offline (a fixed data set, DPO). */
  online: boolean;
  /** Parameters of each model held while training, by role. */
  models: Record<string, number>;
  /** How many models that is. */
  models_in_memory: number;
  /** Their parameters together. */
  parameters_in_memory: number;
  /** Wall time of the training loop in this process (seconds; evaluation and stages excluded). */
  train_seconds: number;
  /** Peak resident set size while training (bytes). */
  peak_rss_bytes: number;
  /** Resident set size when training started (bytes). */
  rss_before_bytes: number;
  /** How the peak was measured. */
  peak_rss_source: "VmHWM" | "sampled";
  /** The update training (re)started from in this process (0: from scratch). */
  started_at_update: number;
}

async function vmHwm(): Promise<number | null> {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(await Deno.readTextFile("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function resetHwm(): Promise<boolean> {
  try {
    await Deno.writeTextFile("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** A running measurement: call `sample()` after each update, `stop()` at the end. */
export interface Measure {
  sample(): void;
  started(update: number): void;
  stop(o: { online: boolean; models: Record<string, number> }): Promise<TrialResources>;
}

/** Start measuring (resets the peak-RSS mark where Linux allows). */
export async function startMeasure(): Promise<Measure> {
  const reset = await resetHwm();
  const before = Deno.memoryUsage().rss;
  const t0 = performance.now();
  let peak = before, startedAt = 0;
  return {
    sample() {
      peak = Math.max(peak, Deno.memoryUsage().rss);
    },
    started(update) {
      startedAt = update;
    },
    async stop(o) {
      const seconds = (performance.now() - t0) / 1e3;
      peak = Math.max(peak, Deno.memoryUsage().rss);
      const hwm = reset ? await vmHwm() : null;
      const values = Object.values(o.models);
      return {
        online: o.online,
        models: o.models,
        models_in_memory: values.length,
        parameters_in_memory: values.reduce((a, b) => a + b, 0),
        train_seconds: seconds,
        peak_rss_bytes: Math.max(peak, hwm ?? 0),
        rss_before_bytes: before,
        peak_rss_source: hwm !== null ? "VmHWM" : "sampled",
        started_at_update: startedAt,
      };
    },
  };
}

/** Write `<outDir>/resources.json` (by rename). */
export async function writeResources(outDir: string, r: TrialResources): Promise<void> {
  const tmp = `${outDir}/resources.json.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(r, null, 2) + "\n");
  await Deno.rename(tmp, `${outDir}/resources.json`);
}

/** Read a bundle's resources.json (null when the trial did not measure). */
export async function readResources(dir: string): Promise<TrialResources | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/resources.json`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
