"""How well a sweep scales with workers: the same small sweep with 1 worker, then with 2, in one run.

    python bench/sweep_scaling.py [--runs 4] [--timesteps 8192] [--workers 2]

Prints each arm's wall time and runs per minute, and their ratio (target >= 1.8 on a 2-core machine). Each run is
its own process with one torch thread, so on an idle machine the ratio is bounded by the cores and by the start-up
of the worker processes (importing torch and SB3, a few seconds each, counted in both arms). Run it on an otherwise
idle machine: background load takes cores from the multi-worker arm and pulls the ratio towards 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from rl_adaloss.sweep import load_sweep, run_sweep


def small_sweep(folder: Path, runs: int, timesteps: int) -> dict:
    base = {
        "env": "Pendulum-v1",
        "n_envs": 4,
        "eval": {"freq": timesteps, "episodes": 1},
        "checkpoint_freq": timesteps,
        "optimizer": {"name": "adamloss", "lr": 1.0, "b0": 1.0e7, "betas": [0.9, 0.99], "eps": 1.0e-5},
    }
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {"name": "scaling", "base": "base.yaml", "total_timesteps": timesteps, "eta": 1.0,
             "b0": [1.0e7], "seeds": list(range(runs)), "optimizers": {"adamloss": {"name": "adamloss"}}}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return load_sweep(folder / "sweep.yaml")


def timed(sweep: dict, out: Path, workers: int) -> float:
    started = time.perf_counter()
    counts = run_sweep(sweep, out, workers=workers, progress=False)
    elapsed = time.perf_counter() - started
    assert counts == {"finished": len(sweep["seeds"])}, counts
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="runs in the sweep (default 4)")
    parser.add_argument("--timesteps", type=int, default=8192, help="env steps per run (default 8192)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel arm (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sweep = small_sweep(folder, args.runs, args.timesteps)
        one = timed(sweep, folder / "one", 1)
        many = timed(sweep, folder / "many", args.workers)
    print(f"{args.runs} runs x {args.timesteps} steps (Pendulum-v1, AdamLoss-PPO)")
    print(f"  1 worker:  {one:7.1f} s  {60 * args.runs / one:6.2f} runs/min")
    print(f"  {args.workers} workers: {many:7.1f} s  {60 * args.runs / many:6.2f} runs/min")
    print(f"  speed-up {args.workers} workers / 1 worker: {one / many:.2f}x  (target >= 1.8 with 2 workers)")


if __name__ == "__main__":
    main()
