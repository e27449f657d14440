/**
 * Sweep combinators. A sweep is a lazy list of points; a point assigns values to dotted config
 * keys (`"ppo.kl.beta"`, `"seed"`, `"total_steps"`). Combinators nest freely:
 *
 * - `grid({ a: [1, 2], b: [3, 4] })` — the cartesian product (4 points, first key outermost);
 *   `grid(s1, s2, {...})` — the product of sweeps.
 * - `zip({ a: [1, 2], b: [3, 4] })` — element-wise (2 points); `zip(s1, s2)` pairs sweeps of
 *   equal length.
 * - `random({ n, seed, ...space })` — n points drawn from one seeded {@link Rng}: an array is
 *   a uniform choice, {@link uniform} / {@link logUniform} / {@link intUniform} are ranges, a
 *   number or string is a constant. Same seed, same list. (`seed` here seeds the draw; to
 *   sweep the trial seed too: `grid(random({ n: 8, seed: 1, ... }), { seed: [1, 2, 3] })`.)
 * - `concat(s1, s2)` — one list after the other; `points([{...}, ...])` — explicit points.
 *
 * Problems (empty lists, unequal zip lengths, a key given twice) are reported by
 * {@link expandSweep} as {@link SweepError}s naming the key and the fix; the planner adds the
 * experiment file.
 *
 * @example
 * ```ts
 * const s = grid(random({ n: 4, seed: 7, "ppo.lr": logUniform(1e-4, 1e-2) }), { seed: [1, 2] });
 * expandSweep(s).length; // 8
 * ```
 * @module
 */
import { Rng } from "../rng.ts";
import { UserError } from "../errors.ts";

/** Dotted config key -> value. */
export type Point = Record<string, unknown>;

const SWEEP = Symbol.for("proxima.sweep");
const DIST = Symbol.for("proxima.dist");

/** A lazy list of points (build it with the combinators). */
export interface Sweep {
  readonly [SWEEP]: true;
  readonly op: "grid" | "zip" | "random" | "concat" | "points";
  /** The points, in order (throws {@link SweepError}). */
  expand(): Point[];
}

/** A random-search range. */
export interface Dist {
  readonly [DIST]: "uniform" | "log-uniform" | "int-uniform";
  readonly lo: number;
  readonly hi: number;
}

/** An object of key -> value list (grid/zip), or a nested sweep. */
export type SweepPart = Sweep | Record<string, readonly unknown[]>;

/** A malformed sweep: names the key (when there is one) and the fix. */
export class SweepError extends UserError {
  constructor(message: string, readonly key: string | null, override readonly fix: string) {
    super(message);
    this.name = "SweepError";
  }
}

export function isSweep(x: unknown): x is Sweep {
  return typeof x === "object" && x !== null && (x as Sweep)[SWEEP] === true;
}

function isDist(x: unknown): x is Dist {
  return typeof x === "object" && x !== null && DIST in x;
}

function sweep(op: Sweep["op"], expand: () => Point[]): Sweep {
  return Object.freeze({ [SWEEP]: true as const, op, expand });
}

const show = (v: unknown) => {
  if (typeof v === "number") return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

function listOf(op: string, key: string, values: unknown): readonly unknown[] {
  if (!Array.isArray(values)) {
    throw new SweepError(
      `${op}: "${key}" must be a list of values, got ${show(values)}`,
      key,
      `write "${key}": [${show(values)}]`,
    );
  }
  if (values.length === 0) {
    throw new SweepError(
      `${op}: "${key}" has no values (empty list), so the sweep has no trials`,
      key,
      `give "${key}" at least one value, or remove it`,
    );
  }
  return values;
}

function partPoints(op: "grid" | "zip", part: SweepPart): Point[] {
  if (isSweep(part)) return part.expand();
  if (typeof part !== "object" || part === null || Array.isArray(part)) {
    throw new SweepError(
      `${op}: expected an object of key -> list of values, or a sweep, got ${show(part)}`,
      null,
      `write ${op}({ "ppo.clip": [0.1, 0.2] })`,
    );
  }
  const entries = Object.entries(part);
  if (entries.length === 0) {
    throw new SweepError(
      `${op}({}) has no keys, so the sweep has no trials`,
      null,
      `give at least one key, e.g. ${op}({ seed: [1, 2, 3] })`,
    );
  }
  const lists = entries.map(([k, v]) => [k, listOf(op, k, v)] as const);
  if (op === "grid") {
    return lists.reduce<Point[]>(
      (acc, [k, vs]) => acc.flatMap((p) => vs.map((v) => ({ ...p, [k]: v }))),
      [{}],
    );
  }
  const n = lists[0][1].length;
  const bad = lists.find(([, vs]) => vs.length !== n);
  if (bad) {
    throw new SweepError(
      `zip: "${lists[0][0]}" has ${n} values but "${bad[0]}" has ${bad[1].length}`,
      bad[0],
      "give every zipped key the same number of values (or use grid for all combinations)",
    );
  }
  return Array.from(
    { length: n },
    (_, i) => Object.fromEntries(lists.map(([k, vs]) => [k, vs[i]])),
  );
}

function keysOf(points: Point[]): Set<string> {
  const s = new Set<string>();
  for (const p of points) for (const k of Object.keys(p)) s.add(k);
  return s;
}

/** Refuse a key (or a key and one inside it, "ppo.kl" and "ppo.kl.beta") set by two parts. */
function checkDisjoint(op: string, parts: Point[][]): void {
  const seen = new Map<string, number>();
  parts.forEach((pts, i) => {
    for (const k of keysOf(pts)) {
      for (const [o, j] of seen) {
        if (o === k || o.startsWith(k + ".") || k.startsWith(o + ".")) {
          throw new SweepError(
            `${op}: "${k}" is set by part ${i + 1} and ${o === k ? "again" : `"${o}"`} by part ${
              j + 1
            }; a key can be swept in one place only`,
            k,
            `sweep "${k}" in one part (list all its values there)`,
          );
        }
      }
    }
    for (const k of keysOf(pts)) seen.set(k, i);
  });
}

function needParts(op: string, parts: unknown[]): void {
  if (parts.length === 0) {
    throw new SweepError(
      `${op}() has nothing to sweep, so the sweep has no trials`,
      null,
      `give it keys, e.g. ${op}({ seed: [1, 2, 3] })`,
    );
  }
}

/** Cartesian product of the parts (objects of key -> values, or sweeps). */
export function grid(...parts: SweepPart[]): Sweep {
  return sweep("grid", () => {
    needParts("grid", parts);
    const expanded = parts.map((p) => partPoints("grid", p));
    checkDisjoint("grid", expanded);
    return expanded.reduce<Point[]>(
      (acc, pts) => acc.flatMap((a) => pts.map((p) => ({ ...a, ...p }))),
      [{}],
    );
  });
}

/** Element-wise combination of parts of equal length. */
export function zip(...parts: SweepPart[]): Sweep {
  return sweep("zip", () => {
    needParts("zip", parts);
    const expanded = parts.map((p) => partPoints("zip", p));
    checkDisjoint("zip", expanded);
    const n = expanded[0].length;
    const bad = expanded.findIndex((pts) => pts.length !== n);
    if (bad >= 0) {
      throw new SweepError(
        `zip: part 1 has ${n} points but part ${bad + 1} has ${expanded[bad].length}`,
        null,
        "zip parts must have the same length (use grid for all combinations)",
      );
    }
    return Array.from({ length: n }, (_, i) => Object.assign({}, ...expanded.map((p) => p[i])));
  });
}

/** The points of each sweep, one list after another. */
export function concat(...sweeps: Sweep[]): Sweep {
  return sweep("concat", () => {
    needParts("concat", sweeps);
    return sweeps.flatMap((s, i) => {
      if (!isSweep(s)) {
        throw new SweepError(
          `concat: part ${i + 1} is not a sweep (${show(s)})`,
          null,
          "pass sweeps: concat(grid({...}), zip({...}))",
        );
      }
      return s.expand();
    });
  });
}

/** Explicit points: `points([{ "ppo.clip": 0.1, seed: 1 }, { "ppo.clip": 0.3, seed: 2 }])`. */
export function points(list: readonly Point[]): Sweep {
  return sweep("points", () => {
    if (!Array.isArray(list) || list.length === 0) {
      throw new SweepError(
        "points([]) has no points, so the sweep has no trials",
        null,
        "give at least one point, e.g. points([{ seed: 1 }])",
      );
    }
    return list.map((p, i) => {
      if (typeof p !== "object" || p === null || Array.isArray(p)) {
        throw new SweepError(
          `points: entry ${i + 1} is not an object of key -> value (${show(p)})`,
          null,
          'write points([{ "ppo.clip": 0.1 }])',
        );
      }
      return { ...p };
    });
  });
}

function dist(kind: Dist[typeof DIST], lo: number, hi: number): Dist {
  return Object.freeze({ [DIST]: kind, lo, hi });
}

/** Uniform float in [lo, hi). */
export const uniform = (lo: number, hi: number): Dist => dist("uniform", lo, hi);
/** Log-uniform float in [lo, hi) (lo > 0): for learning rates and coefficients. */
export const logUniform = (lo: number, hi: number): Dist => dist("log-uniform", lo, hi);
/** Uniform integer in [lo, hi] (both included). */
export const intUniform = (lo: number, hi: number): Dist => dist("int-uniform", lo, hi);

/** Options of {@link random}: `n`, `seed`, and key -> list | range | constant. */
export type RandomSpace = { n: number; seed: number } & Record<string, unknown>;

/**
 * `n` points drawn from one generator seeded with `seed` (keys drawn in sorted order, so the
 * list depends only on n, seed and the space).
 */
export function random(opts: RandomSpace): Sweep {
  return sweep("random", () => {
    const { n, seed, ...space } = opts ?? ({} as RandomSpace);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new SweepError(
        `random: n must be a positive integer (got ${show(n)})`,
        "n",
        "set n to the number of trials to draw, e.g. random({ n: 8, seed: 1, ... })",
      );
    }
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new SweepError(
        `random: seed must be a non-negative integer (got ${show(seed)})`,
        "seed",
        "set seed, e.g. random({ n: 8, seed: 1, ... }); the same seed gives the same trials",
      );
    }
    const keys = Object.keys(space).sort();
    if (keys.length === 0) {
      throw new SweepError(
        "random: no keys to draw, so every trial would be the same",
        null,
        'add keys, e.g. random({ n: 8, seed: 1, "ppo.lr": logUniform(1e-4, 1e-2) })',
      );
    }
    for (const k of keys) {
      const v = space[k];
      if (Array.isArray(v)) listOf("random", k, v);
      else if (isDist(v)) {
        const { lo, hi } = v;
        const kind = v[DIST];
        const ok = Number.isFinite(lo) && Number.isFinite(hi) && lo < hi &&
          (kind !== "log-uniform" || lo > 0) &&
          (kind !== "int-uniform" || (Number.isSafeInteger(lo) && Number.isSafeInteger(hi)));
        if (!ok && !(kind === "int-uniform" && lo === hi && Number.isSafeInteger(lo))) {
          throw new SweepError(
            `random: "${k}": ${kind}(${show(lo)}, ${show(hi)}) is not a valid range`,
            k,
            kind === "log-uniform"
              ? "use 0 < lo < hi, both finite"
              : kind === "int-uniform"
              ? "use integers lo ≤ hi"
              : "use finite lo < hi",
          );
        }
      } else if (typeof v === "object" && v !== null) {
        throw new SweepError(
          `random: "${k}": ${show(v)} is neither a list, a range nor a constant`,
          k,
          `use a list ([a, b]) or uniform/logUniform/intUniform(lo, hi) for "${k}"`,
        );
      }
    }
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => {
      const p: Point = {};
      for (const k of keys) {
        const v = space[k];
        if (Array.isArray(v)) p[k] = v[rng.int(v.length)];
        else if (isDist(v)) {
          const u = rng.uniform();
          const kind = v[DIST];
          p[k] = kind === "uniform"
            ? v.lo + (v.hi - v.lo) * u
            : kind === "log-uniform"
            ? Math.exp(Math.log(v.lo) + (Math.log(v.hi) - Math.log(v.lo)) * u)
            : v.lo + rng.int(v.hi - v.lo + 1);
        } else p[k] = v;
      }
      return p;
    });
  });
}

/** The points of a sweep (throws {@link SweepError} for a malformed one). */
export function expandSweep(s: Sweep): Point[] {
  if (!isSweep(s)) {
    throw new SweepError(
      `sweep must be built with grid/zip/random/concat/points, got ${show(s)}`,
      null,
      "write sweep: grid({ seed: [1, 2, 3] })",
    );
  }
  const pts = s.expand();
  if (pts.length === 0) {
    throw new SweepError("the sweep has no trials", null, "give it at least one point");
  }
  return pts;
}
