/**
 * What the dashboard shows, read from a results folder and kept current: the experiments,
 * their finished trials (bundles, loaded with lib/report's {@link loadTrialBundle}) and their
 * unfinished ones (`.tmp-<id>/`: config.json and the rows of metrics.jsonl so far, read
 * incrementally by {@link MetricsTail}). {@link ResultsWatcher.refresh} rescans and returns
 * what changed, so the server can push it to the page.
 *
 * Strictly read-only: it opens files for reading and never creates, locks or touches anything
 * under the results folder.
 *
 * @example
 * ```ts
 * const w = new ResultsWatcher("results");
 * await w.refresh();
 * for (const e of w.experiments()) console.log(e.name, e.trials.length);
 * ```
 * @module
 */
import {
  deriveSweptKeys,
  flattenConfig,
  loadTrialBundle,
  ReportError,
  type TrialBundle,
  trialMetric,
} from "../bundles.ts";
import { compareSweptValues, finiteOrNull } from "../aggregate.ts";
import { heldLockInodes, liveStatus, MetricsTail } from "./live.ts";
import { findTrialKind } from "../../experiment/mod.ts";

/** A trial's state: finished (a bundle), running (its worker holds its lock), or stopped. */
export type TrialStatus = "done" | "running" | "stopped";

/** A trial as the dashboard lists it (no rows). */
export interface TrialInfo {
  id: string;
  experiment: string;
  status: TrialStatus;
  task: string;
  seed: number | null;
  /** Values at the experiment's swept keys. */
  swept: Record<string, unknown>;
  /** manifest.json's bundle hash (null while unfinished). */
  bundleHash: string | null;
  /** Rows of metrics.jsonl so far. */
  rows: number;
  /** The last row's `update` (null before the first). */
  update: number | null;
  /** Updates planned (the task's planned work for this config), null when unknown. */
  updates: number | null;
  /** Per-trial value of each of the experiment's {@link ExperimentInfo.finalMetrics}. */
  final: Record<string, number | null>;
}

/** An experiment folder as the dashboard lists it. */
export interface ExperimentInfo {
  name: string;
  dir: string;
  sweptKeys: string[];
  tasks: string[];
  trials: TrialInfo[];
  /** metrics.jsonl columns some trial logs (numbers), in first-seen order. */
  columns: string[];
  /** The trials table's metric columns: summary.json metrics, then a few live columns. */
  finalMetrics: string[];
  /** Things to know (bundles that cannot be read, mixed code versions). */
  warnings: string[];
}

/** What changed in one {@link ResultsWatcher.refresh}. */
export type Change =
  | { type: "trials"; experiment: string }
  | {
    type: "rows";
    experiment: string;
    trial: string;
    from: number;
    reset: boolean;
    count: number;
  };

interface Live {
  tail: MetricsTail;
  identity: { task: string; config: Record<string, unknown>; code_version?: string };
  status: TrialStatus;
}

interface ExperimentState {
  name: string;
  dir: string;
  done: Map<string, { bundle: TrialBundle; mtime: number }>;
  live: Map<string, Live>;
  /** Bundles that cannot be read: the error, and manifest.json's mtime when it was seen. */
  broken: Map<string, { message: string; mtime: number }>;
  /** Every trial (finished and not), swept values filled, sorted; rebuilt on change. */
  trials: TrialBundle[];
  status: Map<string, TrialStatus>;
  sweptKeys: string[];
}

const TRIAL_DIR = /^[0-9a-f]{16}$/;
const WORK_DIR = /^\.tmp-([0-9a-f]{16})$/;

/** Columns of a live trial's rows that the trials table shows when no summary names them. */
const LIVE_COLUMNS = ["reward", "rm_score", "gold_score", "kl_ref", "episodic_return"];

/** The experiments under a results folder, rescanned on each {@link refresh}. */
export class ResultsWatcher {
  #exps = new Map<string, ExperimentState>();

  /** `root`: a results root (experiments in its sub-folders) or one experiment folder. */
  constructor(readonly root: string) {}

  /** Check that the root is a readable folder; throws a ReportError naming it and the fix. */
  async check(): Promise<void> {
    const st = await Deno.stat(this.root).catch(() => null);
    if (!st) {
      throw new ReportError(
        `${this.root}: no such folder — pass a results folder (default results/), e.g. ` +
          `\`deno task dashboard results\`, or run a sweep first`,
      );
    }
    if (!st.isDirectory) {
      throw new ReportError(`${this.root}: not a folder — pass a results folder, e.g. results/`);
    }
  }

  /** Rescan the folders and tail every unfinished trial's metrics; returns what changed. */
  async refresh(): Promise<Change[]> {
    const changes: Change[] = [];
    const dirs = await this.#experimentDirs();
    for (const name of [...this.#exps.keys()]) {
      if (!dirs.has(name)) {
        this.#exps.delete(name);
        changes.push({ type: "trials", experiment: name });
      }
    }
    const held = await heldLockInodes();
    for (const [name, dir] of dirs) {
      let e = this.#exps.get(name);
      if (!e) {
        e = {
          name,
          dir,
          done: new Map(),
          live: new Map(),
          broken: new Map(),
          trials: [],
          status: new Map(),
          sweptKeys: [],
        };
        this.#exps.set(name, e);
      }
      changes.push(...await this.#refreshExperiment(e, held));
    }
    return changes;
  }

  /** The experiments, by name. */
  experiments(): ExperimentInfo[] {
    return [...this.#exps.values()].sort((a, b) => a.name < b.name ? -1 : 1).map((e) =>
      this.#info(e)
    );
  }

  /** One experiment's listing, or null when there is none of that name. */
  experiment(name: string): ExperimentInfo | null {
    const e = this.#exps.get(name);
    return e ? this.#info(e) : null;
  }

  /**
   * The trials of an experiment with their rows (finished and live), swept values filled, in
   * listing order, and the experiment's swept keys; null for an unknown experiment.
   */
  trials(name: string): { trials: TrialBundle[]; sweptKeys: string[] } | null {
    const e = this.#exps.get(name);
    return e ? { trials: e.trials, sweptKeys: e.sweptKeys } : null;
  }

  /** A trial's status and folder (its bundle, or its work folder while unfinished). */
  trialDir(name: string, id: string): { dir: string; status: TrialStatus } | null {
    const e = this.#exps.get(name);
    if (!e) return null;
    if (e.done.has(id)) return { dir: `${e.dir}/${id}`, status: "done" };
    const l = e.live.get(id);
    return l ? { dir: `${e.dir}/.tmp-${id}`, status: l.status } : null;
  }

  /** Every finished trial bundle, by experiment name (for the paper tables). */
  bundlesByExperiment(): Map<string, TrialBundle[]> {
    const out = new Map<string, TrialBundle[]>();
    for (const e of this.#exps.values()) {
      out.set(e.name, e.trials.filter((t) => e.status.get(t.id) === "done"));
    }
    return out;
  }

  // Experiment folders: the root itself when it holds trials, else its sub-folders that do.
  async #experimentDirs(): Promise<Map<string, string>> {
    const root = this.root.replace(/\/+$/, "") || "/";
    const out = new Map<string, string>();
    if (await holdsTrials(root)) {
      out.set(root.split("/").at(-1) || root, root);
      return out;
    }
    const subs: string[] = [];
    for await (const d of Deno.readDir(root)) {
      if (d.isDirectory && !d.name.startsWith(".")) subs.push(d.name);
    }
    for (const s of subs.sort()) {
      if (await holdsTrials(`${root}/${s}`)) out.set(s, `${root}/${s}`);
    }
    return out;
  }

  async #refreshExperiment(e: ExperimentState, held: Set<number> | null): Promise<Change[]> {
    const changes: Change[] = [];
    let listChanged = false;
    const doneIds = new Set<string>(), liveIds = new Set<string>();
    for (const d of await listDir(e.dir)) {
      if (!d.isDirectory) continue;
      const m = WORK_DIR.exec(d.name);
      if (m) liveIds.add(m[1]);
      else if (TRIAL_DIR.test(d.name)) doneIds.add(d.name);
    }
    // Finished bundles: loaded once (again only if manifest.json changes).
    for (const id of doneIds) {
      const dir = `${e.dir}/${id}`;
      const st = await Deno.stat(`${dir}/manifest.json`).catch(() => null);
      if (!st) continue; // not a bundle (yet)
      const mtime = st.mtime?.getTime() ?? 0;
      if (e.done.get(id)?.mtime === mtime || e.broken.get(id)?.mtime === mtime) continue;
      try {
        e.done.set(id, { bundle: await loadTrialBundle(dir, e.name), mtime });
        e.broken.delete(id);
      } catch (err) {
        if (!(err instanceof ReportError)) throw err;
        e.broken.set(id, { message: err.message, mtime });
        e.done.delete(id);
      }
      listChanged = true;
    }
    for (const id of [...e.broken.keys()]) {
      if (!doneIds.has(id)) {
        e.broken.delete(id);
        listChanged = true;
      }
    }
    for (const id of [...e.done.keys()]) {
      if (!doneIds.has(id)) {
        e.done.delete(id);
        listChanged = true;
      }
    }
    // Unfinished trials: tail metrics.jsonl; a finished one has left its work folder.
    for (const id of [...e.live.keys()]) {
      if (!liveIds.has(id) || e.done.has(id)) {
        e.live.delete(id);
        listChanged = true;
      }
    }
    for (const id of liveIds) {
      if (e.done.has(id)) continue;
      const work = `${e.dir}/.tmp-${id}`;
      let l = e.live.get(id);
      if (!l) {
        const identity = await readIdentity(`${work}/config.json`);
        if (!identity) continue; // the worker has not written its config yet
        l = { tail: new MetricsTail(`${work}/metrics.jsonl`), identity, status: "running" };
        e.live.set(id, l);
        listChanged = true;
      }
      const status = await liveStatus(e.dir, id, held);
      if (status !== l.status) {
        l.status = status;
        listChanged = true;
      }
      const got = await l.tail.poll().catch(() => null);
      if (got) {
        changes.push({
          type: "rows",
          experiment: e.name,
          trial: id,
          from: got.from,
          reset: got.reset,
          count: l.tail.rows.length,
        });
      }
    }
    if (listChanged || changes.length) this.#rebuild(e);
    if (listChanged) changes.unshift({ type: "trials", experiment: e.name });
    return changes;
  }

  // Rebuild the trial list: bundles and live trials, swept keys derived across all of them.
  #rebuild(e: ExperimentState): void {
    const trials: TrialBundle[] = [];
    e.status.clear();
    for (const [id, { bundle }] of e.done) {
      trials.push(bundle);
      e.status.set(id, "done");
    }
    for (const [id, l] of e.live) {
      trials.push(liveBundle(e, id, l));
      e.status.set(id, l.status);
    }
    e.sweptKeys = deriveSweptKeys(trials.map((t) => t.flat));
    for (const t of trials) t.swept = Object.fromEntries(e.sweptKeys.map((k) => [k, t.flat[k]]));
    trials.sort((a, b) => {
      for (const k of e.sweptKeys) {
        const c = compareSweptValues(a.swept[k], b.swept[k]);
        if (c !== 0) return c;
      }
      return (a.seed ?? 0) - (b.seed ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    e.trials = trials;
  }

  #info(e: ExperimentState): ExperimentInfo {
    const columns: string[] = [];
    for (const t of e.trials) for (const c of t.columns) if (!columns.includes(c)) columns.push(c);
    const finalMetrics: string[] = [];
    for (const t of e.trials) {
      for (const [k, v] of Object.entries(t.summary.metrics ?? {})) {
        if (finiteOrNull(v) !== null && !finalMetrics.includes(k)) finalMetrics.push(k);
      }
    }
    for (const c of LIVE_COLUMNS) {
      if (columns.includes(c) && !finalMetrics.includes(c) && finalMetrics.length < 8) {
        finalMetrics.push(c);
      }
    }
    const warnings = [...e.broken.values()].map((b) => b.message);
    const versions = new Set(e.trials.map((t) => t.codeVersion).filter(Boolean));
    if (versions.size > 1) {
      warnings.push(`${e.dir}: trials of ${versions.size} code versions are mixed`);
    }
    return {
      name: e.name,
      dir: e.dir,
      sweptKeys: e.sweptKeys,
      tasks: [...new Set(e.trials.map((t) => t.task))].sort(),
      columns,
      finalMetrics,
      warnings,
      trials: e.trials.map((t) => {
        const last = t.rows.at(-1);
        const updates = plannedUpdates(t);
        return {
          id: t.id,
          experiment: e.name,
          status: e.status.get(t.id) ?? "done",
          task: t.task,
          seed: t.seed,
          swept: t.swept,
          bundleHash: t.bundleHash || null,
          rows: t.rows.length,
          update: finiteOrNull(last?.update),
          updates,
          final: Object.fromEntries(finalMetrics.map((m) => [m, trialMetric(t, m)])),
        };
      }),
    };
  }
}

/** The updates a trial's task plans for its config (null for a task this code lacks). */
function plannedUpdates(t: TrialBundle): number | null {
  try {
    const w = findTrialKind(t.task)?.work(t.config as never);
    return w && w.unit === "updates" ? finiteOrNull(w.total) : null;
  } catch {
    return null; // a config this code no longer reads
  }
}

/** A folder's entries (none when it went or cannot be read). */
async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const d of Deno.readDir(dir)) out.push(d);
  } catch { /* removed meanwhile */ }
  return out;
}

/** Whether a folder directly holds a trial bundle or a trial's work folder. */
async function holdsTrials(dir: string): Promise<boolean> {
  try {
    for await (const d of Deno.readDir(dir)) {
      if (!d.isDirectory) continue;
      if (WORK_DIR.test(d.name)) return true;
      if (
        TRIAL_DIR.test(d.name) && await Deno.stat(`${dir}/${d.name}/manifest.json`).catch(() => 0)
      ) {
        return true;
      }
    }
  } catch { /* unreadable: not an experiment folder */ }
  return false;
}

async function readIdentity(path: string): Promise<Live["identity"] | null> {
  try {
    const j = JSON.parse(await Deno.readTextFile(path));
    if (typeof j?.task === "string" && j.config && typeof j.config === "object") return j;
  } catch { /* missing or being written */ }
  return null;
}

// A live trial in the shape of a bundle (no summary yet, no hash), so lib/report's charts and
// metrics read it like any other.
function liveBundle(e: ExperimentState, id: string, l: Live): TrialBundle {
  const flat = flattenConfig(l.identity.config);
  const columns: string[] = [];
  for (const r of l.tail.rows) {
    for (const [k, v] of Object.entries(r)) {
      if (!columns.includes(k) && finiteOrNull(v) !== null) columns.push(k);
    }
  }
  return {
    dir: `${e.dir}/.tmp-${id}`,
    id,
    experiment: e.name,
    task: l.identity.task,
    codeVersion: l.identity.code_version ?? "",
    config: l.identity.config,
    flat,
    seed: finiteOrNull(flat.seed),
    summary: { metrics: {} },
    rows: l.tail.rows,
    columns,
    bundleHash: "",
    swept: {},
    env: null,
  };
}
