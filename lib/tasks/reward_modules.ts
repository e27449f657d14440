/**
 * The user's own reward functions, by module: a config's `rewards` list may name an export of
 * a TypeScript/JavaScript module (`{ module: "rewards/math.ts", name: "exact", weight: 1 }`,
 * the path from the working directory), which every process that runs the trial imports
 * itself (a sweep's workers get paths, never functions). The module's bytes are an input of
 * the trial (`rewardInputs`: planning hashes them into the trial id, so an edited reward is a
 * new trial).
 *
 * Before any model loads, {@link loadUserRewards} imports each module, checks that the export
 * exists (did-you-mean among the module's exports and the task's built-ins) and is a function
 * (or `{ batch }`), and {@link smokeTestRewards} runs every per-sample function once on a
 * smoke sample (the first prompt row and a short dummy response): a missing module, an unknown
 * name or a function that throws is a {@link ConfigError} naming `rewards.<i>`.
 *
 * @example
 * ```ts
 * // rewards/math.ts: export const exact = (s) => (s.text.trim() === String(s.row.answer) ? 1 : 0);
 * const user = await loadUserRewards("lm", [{ module: "rewards/math.ts", name: "exact", weight: 1 }], ["rm"]);
 * // { exact: [Function exact] }
 * ```
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../ppo/config.ts";
import { inputError } from "./inputs.ts";
import { didYouMean } from "../suggest.ts";
import type { RewardComponent, RewardRef, RewardSample, UserReward } from "./rewards.ts";

/** The name a reference is logged under (`reward/<name>`): `as`, else `name`. */
export const rewardLogName = (r: Pick<RewardRef, "name" | "as">): string => r.as ?? r.name;

/**
 * The files a config's reward list reads (`{ key: "rewards.<i>.module", path }`): the trial's
 * inputs, hashed into its id by planning.
 */
export function rewardInputs(refs: readonly RewardRef[]): { key: string; path: string }[] {
  return refs.flatMap((r, i) => r.module ? [{ key: `rewards.${i}.module`, path: r.module }] : []);
}

/** Whether a module export can be a reward: a function, or `{ batch: function }`. */
const isReward = (v: unknown): v is UserReward =>
  typeof v === "function" ||
  (typeof v === "object" && v !== null &&
    (typeof (v as { batch?: unknown }).batch === "function" ||
      typeof (v as { fn?: unknown }).fn === "function"));

/**
 * Modules imported in this process, by absolute path (one import per module). Process-wide
 * on purpose: it mirrors the runtime's own module cache, which is process-wide anyway (a
 * second `import()` of a path returns the same module object).
 */
const imported = new Map<string, Promise<Record<string, unknown>>>();

/** Import a reward module by path (from the working directory); errors name `key`. */
async function importRewardModule(
  task: string,
  key: string,
  path: string,
): Promise<Record<string, unknown>> {
  const abs = isAbsolute(path) ? path : resolve(Deno.cwd(), path);
  const st = await Deno.stat(abs).catch(() => null);
  if (!st?.isFile) {
    throw inputError(
      task,
      key,
      path,
      st ? "is not a file" : "no such file",
      `give the path of a .ts or .js module that exports the reward (relative paths start at ${Deno.cwd()})`,
    );
  }
  if (!imported.has(abs)) {
    const p = import(pathToFileURL(abs).href) as Promise<Record<string, unknown>>;
    p.catch(() => imported.delete(abs));
    imported.set(abs, p);
  }
  try {
    return await imported.get(abs)!;
  } catch (e) {
    const msg = String((e as Error)?.message ?? e).split("\n").slice(0, 4).join(" ");
    throw inputError(task, key, path, `cannot be imported: ${msg}`, "fix the module's error");
  }
}

/**
 * The user reward functions a reward list names by module, keyed by their logged names; each
 * module imported once per process. Throws a ConfigError naming `rewards.<i>` for a missing or
 * broken module, a name the module does not export (did-you-mean among its exports and
 * `builtins`) and an export that is not a function.
 */
export async function loadUserRewards(
  task: string,
  refs: readonly RewardRef[],
  builtins: readonly string[],
): Promise<Record<string, UserReward>> {
  const out: Record<string, UserReward> = {};
  for (const [i, r] of refs.entries()) {
    if (!r.module) continue;
    const key = `rewards.${i}`;
    const mod = await importRewardModule(task, `${key}.module`, r.module);
    const v = mod[r.name];
    if (v === undefined) {
      const exports = Object.keys(mod).filter((k) => isReward(mod[k]));
      const m = didYouMean(r.name, [...exports, ...builtins]);
      const isBuiltin = m !== null && builtins.includes(m) && !exports.includes(m);
      throw inputError(
        task,
        `${key}.name`,
        r.module,
        `exports no reward "${r.name}"` + (m ? ` (did you mean "${m}"?)` : "") +
          `; its reward functions: ${exports.join(", ") || "none"}; built-ins: ` +
          builtins.join(", "),
        m
          ? isBuiltin
            ? `"${m}" is a built-in: write { name: "${m}", weight } without module`
            : `write name "${m}"`
          : `export a function named "${r.name}" from ${r.module}`,
      );
    }
    if (!isReward(v)) {
      throw inputError(
        task,
        `${key}.name`,
        r.module,
        `"${r.name}" is ${v === null ? "null" : `a ${typeof v}`}, not a function`,
        `export a function (sample) => number as "${r.name}"`,
      );
    }
    out[rewardLogName(r)] = v;
  }
  return out;
}

/**
 * A smoke sample for {@link smokeTestRewards}: the first prompt row (its text and its other
 * columns) and a short dummy response.
 */
export function smokeSample(promptText: string, row: Record<string, unknown>): RewardSample {
  return {
    index: 0,
    prompt: [],
    response: [],
    promptText,
    text: "42",
    ended: true,
    row,
  };
}

/**
 * Run each per-sample component whose name is in `names` once on `sample`; a throw or a
 * non-finite value is a ConfigError naming `rewards.<i>` (its index in `refs`), raised before
 * any model loads. Batched components (a reward model) are left for the rollout.
 */
export async function smokeTestRewards(
  task: string,
  refs: readonly RewardRef[],
  components: readonly RewardComponent[],
  sample: RewardSample,
): Promise<void> {
  for (const c of components) {
    if (!c.fn) continue;
    const i = refs.findIndex((r) => rewardLogName(r) === c.name);
    const where = i < 0 ? `reward "${c.name}"` : `rewards.${i}`;
    const label = i >= 0 && refs[i].module ? `${refs[i].module}:${refs[i].name}` : c.name;
    let v: unknown;
    try {
      v = await c.fn(sample);
    } catch (e) {
      throw Object.assign(
        new ConfigError(
          `${task} config: ${where}: reward ${label} throws on a smoke sample (the first ` +
            `prompt row, response ${JSON.stringify(sample.text)}): ${
              e instanceof Error ? e.message : String(e)
            }\n  fix: make it return a number for every response (0 for a wrong one)`,
        ),
        {
          key: where,
          cause: `reward ${label} throws on a smoke sample: ${
            e instanceof Error ? e.message : String(e)
          }`,
          fix: "make it return a number for every response (0 for a wrong one)",
        },
      );
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      const got = typeof v === "number" ? String(v) : `a ${typeof v}`;
      throw Object.assign(
        new ConfigError(
          `${task} config: ${where}: reward ${label} returned ${got} on a smoke sample\n` +
            `  fix: return a finite number`,
        ),
        { key: where, cause: `reward ${label} returned ${got}`, fix: "return a finite number" },
      );
    }
  }
}
