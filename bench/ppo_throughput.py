"""Training throughput (environment steps per second) of AdaLossPPO + AdamLoss against stock SB3 PPO + Adam.

Both arms train on the shipped Pendulum-v1 config's settings (``configs/pendulum_adamloss.yaml`` /
``configs/pendulum_adam.yaml``: 4 envs x 512 steps, VecNormalize, gSDE, 10 epochs of 64-sample minibatches,
net_arch [64, 64]), without evaluation, checkpoints or logging to disk:

* ``AdaLossPPO + AdamLoss``: the project's trainer, separate actor/critic optimizers, each fed its own loss;
* ``SB3 PPO + Adam``: stable-baselines3's own PPO with torch's Adam (the config's lr, betas and eps), the baseline;
* ``AdaLossPPO + Adam``: the project's trainer with torch's Adam in the separate layout, for reference (the cost
  of the trainer alone, without AdamLoss).

Every measurement builds a fresh env and model (not timed) and times ``model.learn(timesteps)``. The arms are
timed in alternation (the order rotates every round) after one untimed warm-up each, with one torch thread, and
each arm's figure is the median over rounds. The target is AdaLossPPO + AdamLoss / SB3 PPO + Adam >= 0.97.

Background load (other trainings on the machine) changes the absolute numbers, but the alternating arms share it,
so the ratio stays meaningful; the default clock is the process's CPU time, which also leaves out the time spent
descheduled (``--clock wall`` for wall time).

    python bench/ppo_throughput.py [--timesteps 2048] [--repeats 7] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rl_adaloss.config import load_config
from rl_adaloss.train import build_model


def make_env(config: dict):
    env = make_vec_env(config["env"], n_envs=config["n_envs"], seed=config["seed"])
    normalize = config["normalize"]
    return VecNormalize(env, norm_obs=normalize["obs"], norm_reward=normalize["reward"], gamma=config["ppo"]["gamma"])


def stock_ppo(config: dict, env) -> PPO:
    """SB3's PPO and Adam with the config's settings: the same networks, rollouts and minibatches."""
    ppo = dict(config["ppo"])
    optimizer = config["optimizer"]
    policy_kwargs = dict(net_arch=config["policy_kwargs"]["net_arch"],
                         optimizer_kwargs=dict(betas=tuple(optimizer["betas"]), eps=optimizer["eps"]))
    return PPO("MlpPolicy", env, learning_rate=optimizer["lr"], seed=config["seed"], device=config["device"],
               policy_kwargs=policy_kwargs, verbose=0, **ppo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=2048,
                        help="environment steps per timed run (default 2048: one update)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per arm (default 7)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="process CPU time (default; ignores time descheduled) or wall time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    adamloss = load_config("pendulum_adamloss", ["device=cpu"])
    adam = load_config("pendulum_adam", ["device=cpu"])
    arms = {
        "AdaLossPPO + AdamLoss": lambda env: build_model(adamloss, env),
        "SB3 PPO + Adam": lambda env: stock_ppo(adam, env),
        "AdaLossPPO + Adam": lambda env: build_model(adam, env),
    }
    rollout = adam["n_envs"] * adam["ppo"]["n_steps"]
    print(f"{adam['env']}: {adam['n_envs']} envs x {adam['ppo']['n_steps']} steps, {adam['ppo']['n_epochs']} epochs "
          f"of {adam['ppo']['batch_size']}-sample minibatches; {args.timesteps} steps per run "
          f"({-(-args.timesteps // rollout)} update(s)), {args.repeats} runs per arm, {args.clock} clock, 1 thread")

    def measure(name: str, timesteps: int) -> float:
        env = make_env(adam)
        try:
            model = arms[name](env)
            start = clock()
            model.learn(timesteps)
            elapsed = clock() - start
            return model.num_timesteps / elapsed
        finally:
            env.close()

    for name in arms:  # warm-up: imports, allocator, env registration
        measure(name, rollout)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for round_ in range(args.repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            rates[name].append(measure(name, args.timesteps))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"  {name:<24} {medians[name]:8.0f} steps/s  (median; runs {spread})")
    baseline = medians["SB3 PPO + Adam"]
    ratio = medians["AdaLossPPO + AdamLoss"] / baseline
    print(f"AdaLossPPO + AdamLoss / SB3 PPO + Adam = {ratio:.3f}  (target >= 0.97)")
    print(f"AdaLossPPO + Adam     / SB3 PPO + Adam = {medians['AdaLossPPO + Adam'] / baseline:.3f}  (reference)")


if __name__ == "__main__":
    main()
