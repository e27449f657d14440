"""A PyTorch reference for `deno task reproduce cleanrl-classic-control`.

The same algorithm and hyperparameters as CleanRL's ppo.py (the version that produced its
classic-control benchmark, tag pr-424), on the real Gymnasium environments, so a number
measured with Proxima can be set beside one measured on the same machine with torch, not only
beside the published table. It is not used by the tests or by CI (they need neither torch nor
Gymnasium); it is the check to run when Proxima's PPO and the published numbers disagree.

Set-up (Debian's python3-torch; Gymnasium from a local or public index, without its numpy so
Debian's numpy, which torch was built against, stays in use):

    /usr/bin/python3 -m pip install --no-deps --target /tmp/gymref \
        gymnasium==1.3.0 farama-notifications cloudpickle
    PYTHONPATH=/tmp/gymref OMP_NUM_THREADS=1 /usr/bin/python3 scripts/reference/cleanrl_ppo.py \
        --env Acrobot-v1 --seed 1 --out /tmp/ref-acrobot-1.json

It writes every finished episode (global step, env index, return, length) and prints the
benchmark's metric: the mean return of the last 100 episodes (openrlbenchmark's
`metric_last_n_average_window`).

Details that decide the numbers, as in CleanRL ppo.py:
- 4 envs stepped in lockstep, autoreset in the same step (Gymnasium < 1.0 behaviour; 1.x
  needs AutoresetMode.SAME_STEP), env i seeded with seed + i;
- truncation is treated like termination (no bootstrap from the final observation);
- separate 64-64 tanh actor and critic, orthogonal init (gain √2; 0.01 actor head; 1 critic
  head), zero biases; Adam eps 1e-5, lr 2.5e-4 annealed linearly to 0 over the iterations;
- GAE(0.99, 0.95); 4 epochs × 4 minibatches; advantages normalised per minibatch (torch std,
  n − 1); clipped surrogate ε 0.2; clipped value loss (0.5 · max); entropy 0.01; vf 0.5;
  global grad norm 0.5.
"""

import argparse
import json
import random
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical


def layer(n_in, n_out, gain):
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class ActorCritic(nn.Module):
    def __init__(self, obs_size, actions):
        super().__init__()
        g = np.sqrt(2)
        self.critic = nn.Sequential(
            layer(obs_size, 64, g), nn.Tanh(), layer(64, 64, g), nn.Tanh(), layer(64, 1, 1.0)
        )
        self.actor = nn.Sequential(
            layer(obs_size, 64, g), nn.Tanh(), layer(64, 64, g), nn.Tanh(), layer(64, actions, 0.01)
        )

    def value(self, x):
        return self.critic(x).squeeze(-1)

    def act(self, x, action=None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-steps", type=int, default=500_000)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    envs_n, steps_n, minibatches, epochs = 4, 128, 4, 4
    lr0, gamma, lam, clip, ent_coef, vf_coef, max_norm = 2.5e-4, 0.99, 0.95, 0.2, 0.01, 0.5, 0.5
    batch = envs_n * steps_n
    mb = batch // minibatches
    iterations = a.total_steps // batch

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.backends.cudnn.deterministic = True

    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(a.env)) for _ in range(envs_n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_size = envs.single_observation_space.shape[0]
    agent = ActorCritic(obs_size, envs.single_action_space.n)
    opt = torch.optim.Adam(agent.parameters(), lr=lr0, eps=1e-5)

    obs_buf = torch.zeros((steps_n, envs_n, obs_size))
    act_buf = torch.zeros((steps_n, envs_n))
    logp_buf = torch.zeros((steps_n, envs_n))
    rew_buf = torch.zeros((steps_n, envs_n))
    done_buf = torch.zeros((steps_n, envs_n))
    val_buf = torch.zeros((steps_n, envs_n))

    episodes = []
    step = 0
    start = time.time()
    obs, _ = envs.reset(seed=a.seed)
    obs = torch.tensor(obs)
    done = torch.zeros(envs_n)
    for it in range(1, iterations + 1):
        for g in opt.param_groups:
            g["lr"] = (1.0 - (it - 1.0) / iterations) * lr0
        for t in range(steps_n):
            step += envs_n
            obs_buf[t] = obs
            done_buf[t] = done
            with torch.no_grad():
                action, logp, _, value = agent.act(obs)
            val_buf[t] = value
            act_buf[t] = action
            logp_buf[t] = logp
            obs_np, reward, term, trunc, info = envs.step(action.numpy())
            rew_buf[t] = torch.tensor(reward, dtype=torch.float32)
            obs = torch.tensor(obs_np)
            done = torch.tensor(np.logical_or(term, trunc), dtype=torch.float32)
            # Same-step autoreset puts the finished episodes' statistics under final_info.
            final = info.get("final_info", {})
            if "episode" in final:
                ep = final["episode"]
                for e in np.nonzero(final["_episode"])[0]:
                    episodes.append([step, int(e), float(ep["r"][e]), int(ep["l"][e])])

        # GAE, with truncation treated like termination.
        with torch.no_grad():
            next_value = agent.value(obs)
            adv = torch.zeros_like(rew_buf)
            last = 0
            for t in reversed(range(steps_n)):
                if t == steps_n - 1:
                    nonterminal, next_v = 1.0 - done, next_value
                else:
                    nonterminal, next_v = 1.0 - done_buf[t + 1], val_buf[t + 1]
                delta = rew_buf[t] + gamma * next_v * nonterminal - val_buf[t]
                adv[t] = last = delta + gamma * lam * nonterminal * last
            ret = adv + val_buf

        b_obs = obs_buf.reshape(-1, obs_size)
        b_act, b_logp = act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret, b_val = adv.reshape(-1), ret.reshape(-1), val_buf.reshape(-1)
        idx = np.arange(batch)
        for _ in range(epochs):
            np.random.shuffle(idx)
            for lo in range(0, batch, mb):
                i = idx[lo : lo + mb]
                _, logp, entropy, value = agent.act(b_obs[i], b_act.long()[i])
                ratio = (logp - b_logp[i]).exp()
                m_adv = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                pg = torch.max(-m_adv * ratio, -m_adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                v_clipped = b_val[i] + (value - b_val[i]).clamp(-clip, clip)
                v_loss = 0.5 * torch.max((value - b_ret[i]) ** 2, (v_clipped - b_ret[i]) ** 2).mean()
                loss = pg - ent_coef * entropy.mean() + vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_norm)
                opt.step()

    wall = time.time() - start
    last100 = float(np.mean([e[2] for e in episodes[-100:]]))
    with open(a.out, "w") as f:
        json.dump(
            {
                "env": a.env,
                "seed": a.seed,
                "steps": step,
                "wall_s": wall,
                "torch": torch.__version__,
                "gymnasium": gym.__version__,
                "last100": last100,
                "episodes": episodes,
            },
            f,
        )
    print(f"{a.env} seed {a.seed}: last-100 mean {last100:.2f} ({step} steps, {wall:.0f} s)")


if __name__ == "__main__":
    main()
