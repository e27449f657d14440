/**
 * `deno task train --env cartpole --seed 1 --total-steps 500000 [--ppo.clip 0.1 ...]`
 *
 * Every config key is a flag: top-level keys as `--total-steps` / `--total_steps`, PPO keys
 * as `--ppo.clip` or just `--clip`, nested ones as `--ppo.kl.beta` / `--kl.beta`. Values
 * are parsed as JSON where they can be (numbers, true/false, null, [64,64]).
 *
 * A run is a one-trial experiment (cli/train_trial.ts): `--out` receives the same bundle a
 * sweep trial with this config gets (config.json, metrics.jsonl, summary.json, env.json,
 * checkpoints/, manifest.json), published whole when training ends; until then the run works
 * in `<parent>/.tmp-<name>`, which `--resume` continues (refused when the config differs).
 * @module
 */
import { parseArgs } from "node:util";
import type { z } from "zod";
import cliProgress from "cli-progress";
import { ConfigError, describePpoConfig } from "../lib/ppo/config.ts";
import {
  ENV_OVERRIDES,
  type EnvRunConfig,
  EnvRunSchema,
  parseEnvRunConfig,
} from "../lib/envs/run.ts";
import { parseTrialConfig } from "../lib/trial/resolve.ts";
import { describeOverrides } from "../lib/trial/overrides.ts";
import { REPORT_TO_HELP, reportToFlag } from "./report_to.ts";
import { envSpec, resolveEnvId } from "../lib/envs/registry.ts";
import { fmtField, logLine, trainDisplay } from "./train_progress.ts";
import type { TrainTrialOptions } from "./train_trial.ts";
import { didYouMean, findTrialKind, TASKS } from "../lib/experiment/mod.ts";
import { exitWithError } from "./boundary.ts";
import { joinNegativeValues } from "./flags.ts";
import { checkRequiredFlags, checkRunFlags } from "./train_checks.ts";
import {
  isLmTrialKind,
  type LmSetup,
  type LmTrialConfig,
  type LmTrialKind,
} from "../lib/tasks/lm_task.ts";

/**
 * The trial runner (cli/train_trial.ts and the runner code under it), loaded when a run starts:
 * `--help` and every flag or config error answer without it.
 */
async function trainer() {
  return (await import("./train_trial.ts")).trainOneTrial;
}

const HELP = `Usage: deno task train --env cartpole [flags]

Run flags:
  --out DIR          the run's bundle (default results/train/<env>-seed<seed>): config.json,
                     metrics.jsonl, summary.json, env.json, checkpoints/, manifest.json, as a
                     sweep trial's; written whole at the end (until then <parent>/.tmp-<name>)
  --resume           continue an interrupted run of --out from its last checkpoint (refused
                     when a config key differs from the run's)
  --results DIR      results root: stages are cached in DIR/.stages (default results)
  --device cpu|cuda  execution provider (default cpu)
  --threads N        ORT intra-op threads (default 2)
  --quiet            no progress bar
  ${REPORT_TO_HELP}
Config flags (key=default  meaning):
${
  Object.entries(EnvRunSchema.shape).filter(([k]) => k !== "ppo").map(([k, s]) => {
    const d = k === "env" ? "" : `=${JSON.stringify(s.parse(undefined))}`;
    return `  --${k.replaceAll("_", "-")}${d}  ${s.description ?? ""}`;
  }).join("\n")
}
${describePpoConfig().map((l) => "  --" + l).join("\n")}

Defaults that differ from the base ones above for CartPole-v1 and Acrobot-v1 (already shown
above; their override record, lib/envs/run.ts ENV_OVERRIDES):
${describeOverrides(ENV_OVERRIDES).join("\n")}
`;

function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/**
 * Familiar flag names of the LM tasks (the names TRL's PPO scripts use) -> config keys. Every
 * config key also works under its own name (`--ppo.kl.beta`, `--kl.beta`, `--batch`).
 * `--adaptive-kl` is a switch: it sets `ppo.kl.control` to "adaptive" (Ziegler et al.'s
 * controller, target `--kl-target`, horizon `--kl.horizon`).
 */
export const LM_FLAG_ALIASES: Record<
  string,
  { key: string | string[]; value?: unknown; help: string }
> = {
  // A list: the first key the task has (sentiment: policy_path, lm: policy).
  "model": { key: ["policy_path", "policy"], help: "policy folder (a Hugging Face folder)" },
  "model-name": { key: ["policy_path", "policy"], help: "the same as --model (TRL's name)" },
  "reward-model": {
    key: ["reward_model_path", "reward_model"],
    help: "reward-model folder",
  },
  "reward-model-path": {
    key: ["reward_model_path", "reward_model"],
    help: "the same as --reward-model (TRL's name)",
  },
  "prompts": { key: ["prompts_path", "prompts"], help: "prompts file" },
  "prompts-file": { key: ["prompts_path", "prompts"], help: "the same as --prompts" },
  "learning-rate": { key: "ppo.lr", help: "AdamW learning rate (the same as --lr)" },
  "batch-size": { key: "batch", help: "prompts (responses) per PPO update" },
  "ppo-epochs": { key: "ppo.epochs", help: "PPO epochs over each batch" },
  "num-epochs": { key: "ppo.epochs", help: "the same as --ppo-epochs" },
  "kl-coef": { key: "ppo.kl.beta", help: "β of the KL penalty to the reference" },
  "adaptive-kl": {
    key: "ppo.kl.control",
    value: "adaptive",
    help: "adapt β toward --kl-target (switch)",
  },
  "kl-target": { key: "ppo.kl.target", help: "KL target of the adaptive controller" },
  "target-kl": { key: "ppo.target_kl", help: "stop an update's epochs early above this KL" },
};

/** Run flags under other scripts' names (TRL's `--output_dir`). */
const RUN_FLAG_ALIASES: Record<string, string> = { "output-dir": "out" };

/**
 * Flags -> nested config object. A flag that names no config key, alias or run flag is refused
 * with a did-you-mean; a wrong value is left for zod to name.
 */
export function flagsToConfig(
  args: string[],
  schema: z.ZodObject = EnvRunSchema,
  aliases: Record<string, { key: string | string[]; value?: unknown }> = {},
  opts: { strict?: boolean } = {},
): {
  config: Record<string, unknown>;
  run: Record<string, string | boolean>;
} {
  // `--lr -1` is the value -1 (then refused by its range check), not a flag "-1".
  const { tokens } = parseArgs({
    args: joinNegativeValues(args),
    strict: false,
    tokens: true,
    allowPositionals: true,
  });
  const config: Record<string, unknown> = {};
  const run: Record<string, string | boolean> = {};
  const runFlags = new Set([
    "out",
    "resume",
    "device",
    "threads",
    "quiet",
    "help",
    "task",
    "results",
  ]);
  runFlags.add("report-to"); // --report_to none|tensorboard (cli/report_to.ts)
  const ppo = schema.shape.ppo as unknown as { unwrap(): z.ZodObject };
  const ppoKeys = new Set(Object.keys(ppo.unwrap().shape));
  const top = new Set(Object.keys(schema.shape));
  // An alias's key: the first of its candidates this schema has.
  const keyOf = (a: { key: string | string[] }) =>
    (Array.isArray(a.key) ? a.key : [a.key]).find((k) => top.has(k.split(".")[0])) ??
      (Array.isArray(a.key) ? a.key[0] : a.key);
  const known = [
    ...runFlags,
    ...Object.keys(RUN_FLAG_ALIASES),
    ...Object.keys(aliases),
    ...top,
    ...ppoKeys,
  ].map((k) => k.replaceAll("_", "-"));
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind === "positional") throw new ConfigError(`train: unexpected argument "${t.value}"`);
    if (t.kind !== "option") continue;
    // --output_dir and --output-dir are one flag (scripts spell them either way).
    const name = RUN_FLAG_ALIASES[t.name.replaceAll("_", "-")] ??
      (t.name.includes(".") ? t.name : t.name.replaceAll("_", "-"));
    const root = name.split(".")[0];
    if (opts.strict !== false && !known.includes(root.replaceAll("_", "-"))) {
      const m = didYouMean(root, known);
      throw new ConfigError(
        `train flags: unknown flag --${t.name}` + (m ? ` (did you mean --${m}?)` : "") +
          `\n  fix: ${m ? `write --${m}` : "see deno task train --task <task> --help"}`,
      );
    }
    let value: string | boolean | undefined = t.value;
    const alias = aliases[name];
    const next = tokens[i + 1];
    if (value === undefined && next?.kind === "positional" && alias?.value === undefined) {
      value = next.value, i++;
    }
    if (runFlags.has(name)) {
      run[name] = value ?? true;
      continue;
    }
    if (alias?.value !== undefined) {
      if (value !== undefined) {
        throw new ConfigError(`train flags: --${t.name} is a switch and takes no value`);
      }
      value = JSON.stringify(alias.value);
    }
    let path = (alias ? keyOf(alias) : name).replaceAll("-", "_").split(".");
    if (!top.has(path[0]) && (ppoKeys.has(path[0]))) path = ["ppo", ...path];
    let o = config;
    for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[path.at(-1)!] = value === undefined ? true : parseValue(value as string);
  }
  return { config, run };
}

if (import.meta.main) {
  try {
    // First pass: only --task (the task's own flags are checked against its schema below).
    const { run: pre } = flagsToConfig(Deno.args, EnvRunSchema, {}, { strict: false });
    if (pre.task !== undefined) {
      await trainTask(String(pre.task));
      Deno.exit(0);
    }
    const { config, run } = flagsToConfig(Deno.args);
    if (run.help) {
      console.log(HELP);
      Deno.exit(0);
    }
    // The env is the trial kind (CartPole-v1, Acrobot-v1); the rest is its config, resolved
    // (parsed, checked) once here. Without a valid --env, the whole run config names the error.
    const { env: envFlag, ...rawConfig } = config;
    let id: ReturnType<typeof resolveEnvId>;
    try {
      id = resolveEnvId(String(envFlag));
    } catch {
      parseEnvRunConfig(config, "train flags"); // throws naming --env (or another key)
      throw new ConfigError(`train flags: env: ${JSON.stringify(envFlag)} is not an env`);
    }
    const kind = findTrialKind(id)!;
    const cfg = parseTrialConfig(kind, rawConfig, "train flags") as Omit<EnvRunConfig, "env">;
    const env = String(envFlag); // as typed (the default --out and the last line name it so)
    const outDir = String(run.out ?? `results/train/${env.toLowerCase()}-seed${cfg.seed}`);
    await checkRunFlags(run, outDir); // before the first update: --out, --threads, --device
    const trialConfig = cfg;
    // Not a terminal: a log line per update instead of the bar (train_progress.ts).
    const tty = Deno.stdout.isTerminal() && Deno.stderr.isTerminal();
    const bar = run.quiet || !tty ? null : new cliProgress.SingleBar({
      format: "{bar} {value}/{total} updates | step {step} | {sps} steps/s | " +
        "return {ret} | ETA {eta_formatted}",
      hideCursor: true,
      etaBuffer: 20,
    }, cliProgress.Presets.shades_classic);
    const t0 = performance.now();
    let startStep = 0, lastReturn: number | null = null;
    const r = await (await trainer())({
      ...runOptions(run, outDir),
      kind,
      config: trialConfig,
      onEvent: (e) => {
        if (e.type === "start") {
          startStep = e.done * cfg.envs * cfg.steps;
          if (e.done > 0) console.log(`resuming ${outDir} at update ${e.done}/${e.total}`);
          bar?.start(e.total, e.done, { step: startStep, sps: 0, ret: "-" });
        } else if (e.type === "progress" && e.row) {
          const row = e.row, u = e.done;
          if (row.episodic_return !== null) lastReturn = Number(row.episodic_return);
          const sps = Math.round(
            (Number(row.step) - startStep) / ((performance.now() - t0) / 1e3),
          );
          bar?.update(u, { step: row.step, sps, ret: lastReturn?.toFixed(1) ?? "-" });
          if (!run.quiet && !tty) {
            console.log(logLine({ update: u, step: row.step, "steps/s": sps, return: lastReturn }));
          }
        }
      },
    });
    bar?.stop();
    const secs = (performance.now() - t0) / 1e3;
    const m = r.summary.metrics, threshold = envSpec(id).rewardThreshold;
    const recent = typeof m.return === "number" ? m.return.toFixed(2) : "n/a";
    console.log(
      `${env} seed ${cfg.seed}: ${m.updates} updates, ${m.steps} steps, ` +
        `mean return of the last 100 episodes ${recent}` +
        (threshold === undefined
          ? ""
          : `, solved (≥ ${threshold}) at step ${m.solved_at ?? "never"}`) +
        `, wall time ${secs.toFixed(1)} s -> ${outDir}` +
        (r.how === "existing" ? " (already finished: the bundle was there)" : ""),
    );
  } catch (e) {
    exitWithError("train", e); // one message and exit 2 for bad input; a bug keeps its stack
  }
}

/** The run flags as {@link trainOneTrial} takes them (all but the kind, config and events). */
function runOptions(
  run: Record<string, string | boolean>,
  outDir: string,
): Omit<TrainTrialOptions, "kind" | "config" | "onEvent"> {
  return {
    out: outDir,
    // Named as typed: --out, --output_dir or --output-dir.
    outFlag: Deno.args.find((a) => /^--(out|output[-_]dir)(=|$)/.test(a))?.replace(/=.*/, "") ??
      "--out",
    resume: Boolean(run.resume),
    root: typeof run.results === "string" ? run.results.replace(/\/+$/, "") || "/" : "results",
    // The ORT session default (2) when not given; recorded in env.json.
    threads: run.threads ? Number(run.threads) : 2,
    device: run.device === "cuda" ? "cuda" : "cpu",
    reportTo: reportToFlag(run["report-to"], "train"),
  };
}

/**
 * `--reward_fn rewards/math.ts:exact[:weight]` (repeatable; also `--reward-fn`, `=value`): the
 * user's reward functions as `rewards` entries `{ module, name, weight }` (weight 1 when not
 * given), and the other arguments.
 */
export function rewardFnFlags(argv: readonly string[]): {
  args: string[];
  rewards: { module: string; name: string; weight: number }[];
} {
  const args: string[] = [], rewards: { module: string; name: string; weight: number }[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = argv[i].match(/^--reward[-_]fn(?:=(.*))?$/);
    if (!m) {
      args.push(argv[i]);
      continue;
    }
    const spec = m[1] ?? argv[++i];
    const parts = spec?.split(":") ?? [];
    const weight = parts.length >= 3 ? Number(parts.at(-1)) : 1;
    const [module, name] = parts.length >= 3 ? [parts.slice(0, -2).join(":"), parts.at(-2)!] : [
      parts[0],
      parts[1],
    ];
    if (!module || !name || !Number.isFinite(weight)) {
      throw new ConfigError(
        `train flags: --reward_fn ${spec === undefined ? "(no value)" : JSON.stringify(spec)}: ` +
          `expected MODULE:NAME or MODULE:NAME:WEIGHT\n  fix: e.g. --reward_fn ` +
          `rewards/math.ts:exact or --reward_fn rewards/math.ts:exact:0.5`,
      );
    }
    rewards.push({ module, name, weight });
  }
  return { args, rewards };
}

/** The LM task `--task` names (from the task list every command uses), or a usage error. */
function lmTrainTask(task: string): LmTrialKind<LmTrialConfig, LmSetup, unknown> {
  const kind = findTrialKind(task);
  if (kind && isLmTrialKind(kind)) return kind;
  const known = TASKS.filter(isLmTrialKind).map((k) => k.name);
  throw new ConfigError(`train flags: --task: unknown task "${task}" (known: ${known.join(", ")})`);
}

/**
 * `deno task train --task sentiment|jsx [--updates 20 --batch-size 32 --kl-coef 0.1 ...]`: an
 * RLHF task end to end (cached SFT (and reward-model) stages, then PPO), with every key of the
 * task's config schema as a flag plus {@link LM_FLAG_ALIASES}; prints the scores before and
 * after PPO.
 */
async function trainTask(task: string): Promise<void> {
  const t = lmTrainTask(task);
  const { args, rewards } = rewardFnFlags(Deno.args);
  const { config, run } = flagsToConfig(
    args,
    t.schema,
    Object.fromEntries(
      Object.entries(LM_FLAG_ALIASES).filter(([, a]) =>
        [a.key].flat().some((k) => k.split(".")[0] in t.schema.shape)
      ),
    ),
  );
  if (run.help) {
    const aliases = Object.entries(LM_FLAG_ALIASES)
      .filter(([, a]) => [a.key].flat().some((k) => k.split(".")[0] in t.schema.shape));
    const w = Math.max(...aliases.map(([k]) => k.length)) + 4;
    console.log(
      `Usage: deno task train --task ${task} [--out DIR] [--resume] [--results DIR] [--quiet] ` +
        "[--seed N] " +
        "[--report_to none|tensorboard] " +
        "[--KEY VALUE ...]\n\nFlags:\n" +
        (`rewards` in t.schema.shape
          ? "  --reward_fn M:NAME[:W]  your reward function NAME exported by module M, weight W " +
            "(default 1; repeatable)\n"
          : "") +
        aliases.map(([k, a]) =>
          `  --${k.padEnd(w - 2)}${a.help} (${
            [a.key].flat().find((x) => x.split(".")[0] in t.schema.shape)
          }${a.value === undefined ? "" : ` = ${JSON.stringify(a.value)}`})`
        ).join("\n") +
        "\n\nEvery config key is a flag too: " + Object.keys(t.schema.shape).join(", ") +
        " (ppo.* as --ppo.clip or --clip, e.g. --lr 1e-4 --kl.horizon 10000)" +
        `\n\nDefaults ${task} sets differently from the base ones (its override record; every ` +
        "other key has its schema's one default):\n" +
        describeOverrides(t.overrides ?? {}).join("\n"),
    );
    return;
  }
  if (rewards.length) {
    if (!("rewards" in t.schema.shape)) {
      throw new ConfigError(`train flags: --reward_fn: task ${task} has no rewards list`);
    }
    // --reward_fn replaces the task's default reward, or adds to a --rewards list.
    config.rewards = [...((config.rewards as unknown[] | undefined) ?? []), ...rewards];
  }
  checkRequiredFlags(task, t.schema, config, LM_FLAG_ALIASES);
  const cfg = t.parse(config);
  const outDir = String(run.out ?? `results/train/${task}-seed${cfg.seed}`);
  await checkRunFlags(run, outDir); // before any model loads: --out, --threads, --device
  // The task's inputs (model folders, prompts) are read and checked before --out is touched.
  const problems = (await t.validate?.(cfg)) ?? [];
  if (problems.length) {
    throw new ConfigError(
      `train --task ${task}: ` +
        problems.map((p) => `${p.key}: ${p.cause}\n  fix: ${p.fix}`).join("\n"),
    );
  }
  const display = trainDisplay(t.progress, {
    quiet: Boolean(run.quiet),
    loggingSteps: cfg.logging_steps,
  });
  const t0 = performance.now();
  // Tokens/s counts the sampled response tokens of PPO updates since (re)start.
  let tokens = 0, tPpo = 0;
  const r = await (await trainer())({
    ...runOptions(run, outDir),
    kind: t,
    config: cfg as unknown as Record<string, unknown>,
    onEvent: (e) => {
      if (e.type === "start") {
        tPpo = performance.now();
        display.start(e.total, e.done);
      } else if (e.type === "progress" && e.row) {
        const row = e.row;
        tokens += Number(row.response_length ?? 0) * Number(row.episodes ?? t.work(cfg).steps);
        display.update(e.done, row, Math.round(tokens / ((performance.now() - tPpo) / 1e3)));
      }
    },
  });
  display.stop();
  const fmt = fmtField;
  // The scores before and after PPO: every named metric that has a `<name>_before`.
  const m = r.summary.metrics;
  const scores = Object.keys(m).filter((k) => `${k}_before` in m);
  console.log(
    `${task} seed ${cfg.seed}: ` +
      scores.map((k) => `${k} ${fmt(m[`${k}_before`])} -> ${fmt(m[k])}`).join(", ") +
      `, KL ${fmt(m.kl)}, wall time ${((performance.now() - t0) / 1e3).toFixed(1)} s -> ${outDir}` +
      (r.how === "existing" ? " (already finished: the bundle was there)" : ""),
  );
}
