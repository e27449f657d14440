/**
 * PPO on a vectorised classic-control environment, as CleanRL's ppo.py does it: N envs
 * stepped in lockstep for T steps per update with same-step autoreset, a separate
 * actor and critic MLP, bootstrapping from V(s_T) at the end of the rollout.
 *
 * This file only collects rollouts and says how the actor-critic computes log π, entropy and V;
 * the train step is lib/ppo's {@link createPpoTrainer} and the update the shared
 * {@link trainPpo}.
 *
 * @example
 * ```ts
 * const cfg = parsePpoConfig({});
 * const problem = await createEnvProblem({ env: makeVecEnv("CartPole-v1", 4), steps: 128, cfg, seed: 1 });
 * await trainPpo(problem, { updates: 10, seed: 1, outDir: "results/cartpole", rng: problem.rng });
 * ```
 * @module
 */
import type * as ort from "onnxruntime-node";
import { Graph } from "../onnx/graph.ts";
import { compile, type Device, type Session, tensor } from "../onnx/session.ts";
import type { SessionCache } from "../onnx/session_cache.ts";
import {
  type ActorCriticConfig,
  actorCriticForward,
  actorCriticShapes,
  initActorCritic,
} from "../nn/actor_critic.ts";
import { Rng } from "../rng.ts";
import type { PpoConfig } from "../ppo/config.ts";
import { actionLogp, categoricalEntropy } from "../ppo/losses.ts";
import { createPpoTrainerFor } from "../ppo/micro_batches.ts";
import type { PpoProblem, Rollout } from "../ppo/trainer.ts";
import type { VecEnv } from "./env.ts";

export interface EnvProblemOptions {
  env: VecEnv;
  /** Steps per environment per rollout (CleanRL num_steps, 128). */
  steps: number;
  cfg: PpoConfig;
  /** Trial seed: params init, env resets (seed + i) and every later draw. */
  seed: number;
  /** Hidden widths of actor and critic (CleanRL: [64, 64]). */
  hidden?: number[];
  device?: Device;
  threads?: number;
  /** The session cache compiled sessions go to (a trial's own; absent: the process's). */
  sessions?: SessionCache;
}

export interface EnvProblem extends PpoProblem {
  /** The generator params were drawn from; pass it on to trainPpo so one stream serves all. */
  rng: Rng;
  model: ActorCriticConfig;
}

/** Compile the PPO train step and the rollout policy for `opts.env`. */
export async function createEnvProblem(opts: EnvProblemOptions): Promise<EnvProblem> {
  const { env, steps: T, cfg } = opts;
  const N = env.num, obsSize = env.spec.obsSize, A = env.spec.numActions;
  const model: ActorCriticConfig = {
    obsSize,
    numActions: A,
    hidden: opts.hidden ?? [64, 64],
  };
  const rng = new Rng(opts.seed);
  const fullKl = cfg.loss === "kl-penalty" && cfg.penalty.estimator === "full";
  const trainer = await createPpoTrainerFor({
    cfg,
    dtype: "float32",
    params: actorCriticShapes(model),
    init: initActorCritic(model, rng, "float32"),
    inputs: {
      obs: { dtype: "float32", shape: ["B", obsSize] },
      actions: { dtype: "int64", shape: ["B"] },
    },
    positions: ["B"],
    numActions: A,
    policy: (g, p, b) => {
      const { logits, value } = actorCriticForward(g, model, p, b.obs);
      const logpAll = g.logSoftmax(logits, -1);
      return {
        logp: actionLogp(g, logpAll, b.actions),
        entropy: categoricalEntropy(g, logpAll),
        value,
        logpAll,
      };
    },
    device: opts.device,
    threads: opts.threads,
    sessions: opts.sessions,
  });
  const sessionOpts = { device: opts.device, threads: opts.threads, sessions: opts.sessions };

  // Rollout policy: obs -> log π(·|s), V(s), sharing the trainer's live parameter buffers.
  const g = new Graph("policy");
  const params = Object.fromEntries(
    Object.entries(actorCriticShapes(model)).map(([n, s]) => [n, g.input(n, "float32", s.shape)]),
  );
  const { logits, value } = actorCriticForward(
    g,
    model,
    params,
    g.input("obs", "float32", [N, obsSize]),
  );
  g.output(g.logSoftmax(logits, -1), "logp_all");
  g.output(value, "value");
  const policy: Session = await compile(g, sessionOpts);

  // Persistent rollout state: current observations (the envs carry on across updates), in one
  // buffer that the policy's input tensor wraps, so a step allocates no inputs.
  const obs = Float32Array.from(env.reset(opts.seed));
  const obsFeed = tensor("float32", [N, obsSize], obs);
  // Params are constant during a rollout: fetched once per rollout, not per step.
  const act = async (params: Record<string, ort.Tensor>) => {
    const out = await policy.run({ ...params, obs: obsFeed });
    return { logpAll: out.logp_all.data as Float32Array, value: out.value.data as Float32Array };
  };

  // Buffers, row-major [env, step]; observations [env, step, obsSize].
  const obsBuf = new Float32Array(N * T * obsSize);
  const logpAllBuf = new Float32Array(N * T * A);

  const problem: EnvProblem = {
    cfg,
    trainer,
    rng,
    model,
    async rollout(rng: Rng): Promise<Rollout> {
      const n = N * T;
      const roll: Rollout = {
        rows: N,
        cols: T,
        rewards: new Float64Array(n),
        values: new Float64Array(n),
        logp: new Float64Array(n),
        dones: new Uint8Array(n),
        actions: new Int32Array(n),
        lastValues: new Float64Array(N),
        exampleSize: 1,
        samples: n,
        steps: n,
        episodes: [],
      };
      const actions = new Int32Array(N);
      const params = trainer.paramTensors();
      for (let t = 0; t < T; t++) {
        const { logpAll, value } = await act(params);
        for (let e = 0; e < N; e++) {
          const i = e * T + t;
          obsBuf.set(obs.subarray(e * obsSize, (e + 1) * obsSize), i * obsSize);
          logpAllBuf.set(logpAll.subarray(e * A, (e + 1) * A), i * A);
          // Sample a ~ π(·|s) by inverting the CDF with one uniform draw.
          const u = rng.uniform();
          let a = 0, cdf = Math.exp(logpAll[e * A]);
          while (a < A - 1 && u >= cdf) cdf += Math.exp(logpAll[e * A + ++a]);
          actions[e] = a;
          roll.actions[i] = a;
          roll.logp[i] = logpAll[e * A + a];
          roll.values[i] = value[e];
        }
        const r = env.step(actions);
        for (let e = 0; e < N; e++) {
          const i = e * T + t;
          roll.rewards[i] = r.rewards[e];
          // CleanRL treats truncation like termination (no bootstrap from the final obs).
          roll.dones[i] = r.terminated[e] | r.truncated[e];
        }
        for (const ep of r.episodes) {
          roll.episodes.push({
            return: ep.return,
            length: ep.length,
            env: ep.env,
            step: (t + 1) * N,
          });
        }
        obs.set(r.obs);
      }
      // Bootstrap V(s_T) for rows whose last step did not end an episode.
      const { value } = await act(params);
      for (let e = 0; e < N; e++) roll.lastValues[e] = value[e];
      return roll;
    },
    inputs(roll: Rollout, examples: number[]): Record<string, ort.Tensor> {
      const B = examples.length;
      const o = new Float32Array(B * obsSize), a = new BigInt64Array(B);
      const la = fullKl ? new Float32Array(B * A) : undefined;
      examples.forEach((i, j) => {
        o.set(obsBuf.subarray(i * obsSize, (i + 1) * obsSize), j * obsSize);
        a[j] = BigInt(roll.actions[i]);
        la?.set(logpAllBuf.subarray(i * A, (i + 1) * A), j * A);
      });
      return {
        obs: tensor("float32", [B, obsSize], o),
        actions: tensor("int64", [B], a),
        ...(la ? { old_logp_all: tensor("float32", [B, A], la) } : {}),
      };
    },
    state: () => ({ env: env.state(), obs: Array.from(obs) }),
    load(s: unknown) {
      const st = s as { env: unknown; obs: number[] };
      env.load(st.env);
      obs.set(st.obs);
    },
  };
  return problem;
}
