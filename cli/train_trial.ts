/**
 * `deno task train` as a one-trial experiment: the config it was given is planned as the one
 * trial of an experiment (`planExperiment`: the resolved config, the input hashes, the trial
 * id) and run by `runTrialAt`, the code a sweep worker runs for each trial, so `--out` ends up
 * holding the same bundle as that sweep trial: config.json, metrics.jsonl, summary.json,
 * env.json, checkpoints/ (the final state, `checkpoints/hf/policy` for `--task lm`),
 * manifest.json. Stages come from the same cache (`<--results>/.stages`).
 *
 * The work folder is `<parent of --out>/.tmp-<name of --out>` (hidden, as a sweep's `.tmp-<id>`):
 * a sibling, so publishing is one rename on one filesystem and `--out` is either absent or a
 * complete bundle, never half-written; `--resume` continues from its checkpoints. Its
 * config.json is written when the run starts, and a `--resume` whose config differs from it
 * (or from a finished bundle's) is refused naming each key that differs: a run never mixes two
 * configs.
 * @module
 */
import {
  codeVersion,
  defineExperiment,
  exists,
  gitInfo,
  lockTry,
  planExperiment,
  planResolvedTrial,
  points,
  runTrialAt,
  TrialError,
  type TrialEvent,
  type TrialIdentity,
  type TrialKind,
  type TrialSummary,
} from "../lib/experiment/mod.ts";
import { ConfigError } from "../lib/ppo/config.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import type { ReportTo } from "../lib/tensorboard/mod.ts";
import { unlockRemove } from "../lib/lock.ts";
import { isResolved } from "../lib/trial/resolve.ts";

/** Where train's one trial works and publishes, for `--out DIR`. */
export function trainPlace(
  out: string,
): { parent: string; final: string; tmp: string; lock: string } {
  const final = out.replace(/\/+$/, "") || "/";
  const i = final.lastIndexOf("/");
  const parent = i < 0 ? "." : final.slice(0, i) || "/";
  const name = final.slice(i + 1);
  return { parent, final, tmp: `${parent}/.tmp-${name}`, lock: `${parent}/.lock-${name}` };
}

/** Dotted leaf paths of a JSON value (arrays are leaves) -> their JSON text. */
function leaves(v: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, JSON.stringify(v));
  return out;
}

/**
 * The keys in which two trial identities (config.json) differ, as `key: old → new`; config
 * keys by their own dotted name (`ppo.lr`), the rest (`code_version`, `inputs.policy`) as is.
 */
export function identityDiff(old: TrialIdentity, now: TrialIdentity): string[] {
  const name = (k: string) => k.startsWith("config.") ? k.slice("config.".length) : k;
  const a = leaves(old), b = leaves(now);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys.filter((k) => a.get(k) !== b.get(k)).map((k) =>
    `${name(k)}: ${a.get(k) ?? "(not set)"} → ${b.get(k) ?? "(not set)"}`
  );
}

async function readIdentity(path: string): Promise<TrialIdentity | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`train: ${path}: not readable JSON (${(e as Error).message})`, {
      fix: `give another --out, or delete ${path.replace(/\/config\.json$/, "")}`,
    });
  }
}

/** Options of {@link trainOneTrial}. */
export interface TrainTrialOptions {
  /**
   * The trial kind and its config: raw (resolved here, as an experiment's base), or resolved
   * by this process already (`resolveTrialConfig`), which is then used as it is.
   */
  kind: TrialKind;
  config: Record<string, unknown>;
  /** `--out`: the bundle goes exactly there. */
  out: string;
  /** `--out` as the user typed it (for messages). */
  outFlag: string;
  /** `--resume`: continue the interrupted run in the work folder. */
  resume: boolean;
  /** Results root: the stage cache is `<root>/.stages` (shared with sweeps). */
  root: string;
  threads: number;
  device: "cpu" | "cuda";
  reportTo: ReportTo;
  /** Each event of the trial (start, progress, stage, done). */
  onEvent(e: TrialEvent): void;
}

/** What the run left: how (trained, or the bundle was already there) and the summary. */
export interface TrainTrialResult {
  how: "ran" | "existing";
  summary: TrialSummary;
  bundleHash: string;
  id: string;
}

/**
 * Plan `config` as one trial and run it into `out` (see the module doc). Bad input (a folder
 * that is not this run's, a changed config on `--resume`) is a {@link UserError}, exit 2.
 */
export async function trainOneTrial(o: TrainTrialOptions): Promise<TrainTrialResult> {
  const at = { file: "train flags", codeVersion: await codeVersion() };
  // A config train resolved already (its one parse and check) is not resolved again.
  const { id, identity } = isResolved(o.config)
    ? planResolvedTrial(o.kind, o.config, at)
    : planExperiment(
      defineExperiment({ name: "train", task: o.kind.name, base: o.config, sweep: points([{}]) }),
      at,
    ).trials[0];
  const place = trainPlace(o.out);
  await Deno.mkdir(place.parent, { recursive: true });
  // One train per --out at a time (the kernel drops the lock with the process, even on
  // SIGKILL; the file is removed on the way out).
  const lock = await lockTry(place.lock);
  if (!lock) {
    throw new UsageError(`train: ${o.outFlag} ${o.out}: another train is writing it`, {
      fix: "wait for it to finish, or give another --out",
    });
  }
  try {
    return await runLocked(o, place, id, identity);
  } finally {
    await unlockRemove(place.lock, lock);
  }
}

async function runLocked(
  o: TrainTrialOptions,
  place: ReturnType<typeof trainPlace>,
  id: string,
  identity: TrialIdentity,
): Promise<TrainTrialResult> {
  const changed = (where: string, old: TrialIdentity) => {
    const diff = identityDiff(old, identity);
    if (!diff.length) return;
    // Only the code changed (not a flag): another fix.
    const codeOnly = diff.every((d) => d.startsWith("code_version: "));
    const keep = where.startsWith("the finished") ? "keep that bundle" : "continue it";
    throw new ConfigError(
      `train: ${o.outFlag} ${o.out}: ${where} was run with another ` +
        `${codeOnly ? "version of the code" : "config"}; ` +
        `${diff.length === 1 ? "this key differs" : "these keys differ"} ` +
        `(recorded → given):\n${diff.map((d) => `  ${d}`).join("\n")}\n` +
        (codeOnly
          ? `  fix: restore the code it ran with to ${keep}, or give another --out`
          : `  fix: rerun without the changed flags to ${keep}, or give another --out for ` +
            `the new config`),
    );
  };
  if (await exists(place.final)) {
    const old = await readIdentity(`${place.final}/config.json`);
    if (!old || !(await exists(`${place.final}/manifest.json`))) {
      if ([...Deno.readDirSync(place.final)].length > 0) {
        throw new UsageError(
          `train: ${o.outFlag} ${o.out}: exists and is not a trial bundle (no config.json and ` +
            `manifest.json; a folder written by an older \`deno task train\`?)`,
          { fix: `give another --out, or delete ${o.out}` },
        );
      }
      await Deno.remove(place.final); // empty: the bundle's rename needs the name free
    } else changed("the finished bundle there", old);
  } else if (await exists(place.tmp)) {
    if (!o.resume) {
      throw new UsageError(
        `train: ${o.outFlag} ${o.out}: an interrupted run of it is in ${place.tmp}`,
        {
          fix: `add --resume to continue it from its last checkpoint, or delete ${place.tmp} ` +
            `to start again`,
        },
      );
    }
    const old = await readIdentity(`${place.tmp}/config.json`);
    if (old) changed(`the interrupted run in ${place.tmp}`, old);
  }
  let done: Extract<TrialEvent, { type: "done" }> | null = null;
  try {
    await runTrialAt(
      {
        id,
        identity,
        expDir: place.parent,
        root: o.root,
        threads: o.threads,
        device: o.device,
        git: await gitInfo(),
        ...(o.reportTo !== "none" ? { report_to: o.reportTo } : {}),
      },
      { final: place.final, tmp: place.tmp, lock: null, reuse: false, rows: true },
      (e) => {
        if (e.type === "done") done = e;
        o.onEvent(e);
      },
    );
  } catch (e) {
    // A bad config found while running (a memory refusal) is bad input, as before the run.
    if (e instanceof TrialError && e.cause instanceof UserError) throw e.cause;
    throw e;
  }
  const d = done as Extract<TrialEvent, { type: "done" }> | null;
  if (!d) throw new TrialError(`train: the trial ended without publishing ${o.out}`);
  return {
    how: d.how === "ran" ? "ran" : "existing",
    summary: d.summary,
    bundleHash: d.bundle_hash,
    id,
  };
}
