"""Throughput of the batched engine against the process-pool SB3 sweep, on the same cores and step budget.

    python bench/batched_throughput.py                          # Pendulum-v1, AdamLoss, K = 1 4 16 64 256
    python bench/batched_throughput.py --members 1 4 16 --steps 2048 --sweep-runs 4

Prints, per K: summed env-steps/s of the batched engine (training only: rollouts and updates, no evaluation), per
member, and the peak RSS of the process that ran it (each K in a fresh process); then the SB3 sweep's summed
env-steps/s (``--sweep-runs`` AdaLossPPO runs of the same config and budget, ``--workers`` processes of one torch
thread each, as ``rl_adaloss.sweep`` runs them) and the ratio at every K. Targets (issue): >= 10x on 2 cores, and
256 members <= 2 GB RSS. The numbers are what they are; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def _config(name: str, seed: int, steps: int, overrides: list[str]):
    from rl_adaloss.config import load_config

    return load_config(name, [f"seed={seed}", f"total_timesteps={steps}", *overrides])


def one_batch(config: str, members: int, steps: int, threads: int, overrides: list[str]) -> dict:
    """Train ``members`` members for ``steps`` env-steps each; env-steps/s and peak RSS of this process."""
    import torch

    from rl_adaloss.batched.run import build_engine

    torch.set_num_threads(threads)
    configs = [_config(config, seed, steps, overrides) for seed in range(members)]
    engine = build_engine(configs)
    started = time.perf_counter()
    engine.learn()
    wall = time.perf_counter() - started
    total = engine.num_timesteps * members
    return dict(members=members, steps_per_member=engine.num_timesteps, wall_s=round(wall, 2),
                env_steps_per_s=round(total / wall), per_member=round(engine.num_timesteps / wall, 1),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                member_axis=all(o.member_axis for o in engine.optimizers.values()))


def _sb3_run(args: tuple[str, int, int, list[str]]) -> int:
    import torch

    torch.set_num_threads(1)
    from rl_adaloss.train import build_model, make_envs
    import tempfile
    from pathlib import Path

    config, seed, steps, overrides = args
    cfg = _config(config, seed, steps, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        train_env, eval_env = make_envs(cfg, Path(tmp), seed, resume=False)
        model = build_model(cfg, train_env)
        model.learn(steps)
        train_env.close(), eval_env.close()
        return model.num_timesteps


def sweep(config: str, runs: int, steps: int, workers: int, overrides: list[str]) -> dict:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(_sb3_run, [(config, seed, steps, overrides) for seed in range(runs)]))
    wall = time.perf_counter() - started
    return dict(runs=runs, workers=workers, wall_s=round(wall, 2), env_steps_per_s=round(total / wall))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="pendulum_adamloss")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--steps", type=int, default=2048, help="env-steps per member (and per SB3 run)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the batched engine")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes of the SB3 sweep")
    parser.add_argument("--sweep-runs", type=int, default=None, help="SB3 runs (default: 2 per worker)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config key=value overrides for both")
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_batch(args.config, args.one, args.steps, args.threads, args.overrides)))
        return 0
    rows = []
    for members in args.members:
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--one", str(members), "--steps",
                              str(args.steps), "--threads", str(args.threads), *args.overrides],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"batched K={members:4d}: {rows[-1]['env_steps_per_s']:8d} env-steps/s total, "
              f"{rows[-1]['per_member']:8.1f} per member, peak RSS {rows[-1]['peak_rss_mb']} MB, "
              f"wall {rows[-1]['wall_s']} s, member-axis optimizer: {rows[-1]['member_axis']}", flush=True)
    runs = args.sweep_runs or 2 * args.workers
    base = sweep(args.config, runs, args.steps, args.workers, args.overrides)
    print(f"SB3 sweep, {runs} runs on {args.workers} workers: {base['env_steps_per_s']} env-steps/s total "
          f"(wall {base['wall_s']} s)")
    for row in rows:
        print(f"ratio K={row['members']:4d}: {row['env_steps_per_s'] / base['env_steps_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
