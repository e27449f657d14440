/**
 * Run checkpoints that a killed process can resume from, bit for bit.
 *
 * Layout under `<dir>/checkpoints/`: one folder per checkpoint (`update-000012/` holding
 * `state.safetensors` — params and optimizer state — and `run.json` — RNG state, KL
 * controller, environment state, counters, metrics offset) and a `LATEST` file naming the
 * newest. Each folder is written under a temporary name, fsynced and renamed; `LATEST` is
 * replaced by rename too. A kill at any moment leaves either the old or the new checkpoint
 * complete, never a half-written one.
 *
 * @example
 * ```ts
 * await saveRunCheckpoint("results/run", 12, trainer, { rng: rng.state() });
 * const ck = await loadRunCheckpoint("results/run", trainer); // null when none
 * ```
 * @module
 */
import type { Trainer } from "../onnx/train.ts";
import { writeFileSynced } from "../fs.ts";

const pad = (n: number) => String(n).padStart(6, "0");

/** Save params/optimizer state and `run` (JSON-serialisable) as checkpoint `update`. */
export async function saveRunCheckpoint(
  dir: string,
  update: number,
  trainer: Trainer,
  run: unknown,
  keep = 2,
): Promise<string> {
  const root = `${dir}/checkpoints`;
  await Deno.mkdir(root, { recursive: true });
  const name = `update-${pad(update)}`;
  const tmp = `${root}/${name}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await trainer.saveCheckpoint(`${tmp}/state.safetensors`);
  await writeFileSynced(`${tmp}/run.json`, JSON.stringify(run) + "\n");
  await Deno.remove(`${root}/${name}`, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, `${root}/${name}`);
  await writeFileSynced(`${root}/LATEST`, name + "\n");
  // Older checkpoints beyond `keep` (and stale temporaries of killed runs) go.
  const names: string[] = [];
  for await (const e of Deno.readDir(root)) names.push(e.name);
  const done = names.filter((n) => /^update-\d+$/.test(n)).sort();
  for (const old of done.slice(0, Math.max(0, done.length - keep))) {
    await Deno.remove(`${root}/${old}`, { recursive: true });
  }
  for (const t of names.filter((n) => n.includes(".tmp-") && !n.endsWith(`.tmp-${Deno.pid}`))) {
    await Deno.remove(`${root}/${t}`, { recursive: true }).catch(() => {});
  }
  return `${root}/${name}`;
}

/**
 * Load the newest checkpoint into `trainer` and return its update number and run state,
 * or null when the directory has none. Errors name the file.
 */
export async function loadRunCheckpoint<T = unknown>(
  dir: string,
  trainer: Trainer,
): Promise<{ update: number; run: T; path: string } | null> {
  const root = `${dir}/checkpoints`;
  let name: string;
  try {
    name = (await Deno.readTextFile(`${root}/LATEST`)).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const m = /^update-(\d+)$/.exec(name);
  if (!m) throw new Error(`${root}/LATEST: expected "update-NNNNNN", found "${name}"`);
  const path = `${root}/${name}`;
  await trainer.loadCheckpoint(`${path}/state.safetensors`);
  let run: T;
  try {
    run = JSON.parse(await Deno.readTextFile(`${path}/run.json`));
  } catch (e) {
    throw new Error(`${path}/run.json: ${(e as Error).message}`);
  }
  return { update: Number(m[1]), run, path };
}

/**
 * Whether a run checkpoints after update `done` (1-based) of `updates`: every `every` updates
 * but after the last (the final params are saved then anyway), and whenever a stop was
 * requested (preemption, a time limit), which then ends the run: `stop` is its reason. The
 * one rule of trainPpo (trainer.ts) and the offline loop (offline/loop.ts).
 *
 * @example
 * ```ts
 * checkpointDue(4, 10, 2, null); // { save: true, stop: null }
 * checkpointDue(10, 10, 2, "SIGTERM"); // { save: false, stop: null }: the run ends anyway
 * ```
 */
export function checkpointDue(
  done: number,
  updates: number,
  every: number | undefined,
  requested: string | null | undefined,
): { save: boolean; stop: string | null } {
  const stop = done < updates ? requested ?? null : null;
  const periodic = (every ?? 0) > 0 && done % every! === 0 && done < updates;
  return { save: periodic || stop !== null, stop };
}
