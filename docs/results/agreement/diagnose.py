"""Diagnostics behind "Do the engines agree?" (issue 9): is the torch Pendulum-v1 path of the batched engine
distributed as gymnasium's?

    python docs/results/agreement/diagnose.py init            # the initial policy on both envs, 2000 episodes each
    python docs/results/agreement/diagnose.py seeds torch     # 24 fresh seeds (100..123), 6e4 steps, one batch
    python docs/results/agreement/diagnose.py seeds gym       # the same through the gymnasium fallback
    python docs/results/agreement/diagnose.py compare runs/diag/seeds_torch runs/diag/seeds_gym

``init``: member 0's initial deterministic policy (``pendulum_adam``, seed 0) for one episode in each of 2000 envs,
the torch env against real gymnasium envs (seeded 10007 + i), observations normalized with untouched statistics as
at step 0: the mean returns must agree within their standard errors.
``seeds``: the agreement config (``pendulum_adam``: Adam, lr 3.2e-4; eval every 1e4 steps, 10 episodes) for seeds
100..123, 6e4 steps (evaluated with the side-by-side evaluator of the time; see the README). Through the fallback
these members' envs are seeded as SB3 seeds them (env i: seed + i), so members with adjacent seeds share env
streams and are not independent samples; the torch path's members are.
``compare``: AUC (the mean eval return over the evaluations) and final eval return of two such folders, Welch and
Mann-Whitney p-values, and the mean curves.
"""

import copy
import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from rl_adaloss.batched.envs import make_batched_env
from rl_adaloss.batched.ppo import BatchedVecNormalize, NormalizeSettings
from rl_adaloss.batched.run import build_engine, run_batch
from rl_adaloss.config import load_config


def initial_policy(episodes: int = 2000) -> None:
    engine = build_engine([load_config("pendulum_adam.yaml", ["seed=0"])])
    for use_gymnasium in (False, True):
        env = BatchedVecNormalize(make_batched_env("Pendulum-v1", [10007], episodes, use_gymnasium=use_gymnasium),
                                  NormalizeSettings(obs=True, reward=False), training=False)
        obs, returns = env.reset(), torch.zeros(1, episodes, dtype=torch.float64)
        for _ in range(200):
            result = env.step(engine.policy.predict(obs))
            returns += result.reward.double()
            obs = result.obs
        print(f"{'gymnasium' if use_gymnasium else 'torch'}: mean return {returns.mean():.1f} "
              f"(standard error {returns.std() / math.sqrt(episodes):.1f})")


def fresh_seeds(which: str) -> None:
    base = load_config("pendulum_adam.yaml", ["total_timesteps=60000", "eval.freq=10000", "eval.episodes=10",
                                              "checkpoint_freq=1000000000"])
    target = Path(f"runs/diag/seeds_{which}")
    shutil.rmtree(target, ignore_errors=True)
    configs = [dict(copy.deepcopy(base), seed=seed) for seed in range(100, 124)]
    dirs = [target / f"seed={c['seed']}" for c in configs]
    torch.set_num_threads(1)
    if which == "gym":
        import rl_adaloss.batched.envs as envs
        del envs.BATCHED_ENVS["Pendulum-v1"]  # make_batched_env then takes the gymnasium fallback
    print([r["status"] for r in run_batch(configs, dirs, target / "batch.pkl")])


def compare(a: str, b: str) -> None:
    from scipy import stats

    def load(folder):
        curves = [np.array([float(row["mean_reward"]) for row in csv.DictReader(open(f))])
                  for f in sorted(Path(folder).rglob("evaluations.csv"))]
        return np.array([c.mean() for c in curves]), np.array([c[-1] for c in curves]), np.mean(curves, axis=0)

    (auc_a, final_a, curve_a), (auc_b, final_b, curve_b) = load(a), load(b)
    for name, x, y in (("AUC", auc_a, auc_b), ("final", final_a, final_b)):
        welch, mann_whitney = stats.ttest_ind(x, y, equal_var=False).pvalue, stats.mannwhitneyu(x, y).pvalue
        print(f"{name}: {x.mean():.1f} (n={len(x)}) against {y.mean():.1f} (n={len(y)}); Welch p={welch:.3g}, "
              f"Mann-Whitney p={mann_whitney:.3g}")
    print("mean curves:", np.round(curve_a).tolist(), np.round(curve_b).tolist(), sep="\n")


if __name__ == "__main__":
    {"init": initial_policy, "seeds": fresh_seeds, "compare": compare}[sys.argv[1]](*sys.argv[2:])
