"""Grids of initial step sizes x optimizers x seeds: ``python -m rl_adaloss.sweep --config configs/sweep_NAME.yaml``.

A sweep config (YAML) names a base training config and what varies::

    name: pendulum                      # outputs go to <out-dir>/pendulum/
    base: pendulum_adamloss.yaml        # training config every run starts from (relative to the sweep config)
    total_timesteps: 100000             # the budget of every run
    eta: 1.0                            # base step size
    b0: [1.0e0, 1.0e2, 1.0e4, 1.0e6, 1.0e8]
    seeds: [0, 1, 2]
    optimizers:                         # named variants: a schedule plus how it is wired
      adam: {name: adam}
      adamloss: {name: adamloss, layout: separate}
      adamloss-joint: {name: adamloss, layout: joint}
      adamsqrt: {name: adamsqrt}
    overrides: {eval.episodes: 5}       # optional, applied to every run
    quick: {b0: [1.0, 1.0e6], seeds: [0], total_timesteps: 8192}   # what --quick changes

The optimizers are paired at the **same initial step size** eta/sqrt(b0), as in the paper: Adam runs at
``lr = eta/sqrt(b0)``; AdamLoss and AdamSqrt start from ``b0`` with base ``eta``; the Algorithm-1 rules (AdaLoss,
AdaGrad-Norm, SGD), whose b0 is squared, start from ``sqrt(b0)``. Every other hyperparameter is the base config's.

Each run lives in ``<out-dir>/<name>/<env>/<optimizer>/b0=<v>/seed=<s>/`` (a ``train`` run directory), so a sweep is
resumable: finished and diverged runs are skipped, interrupted ones resume from their checkpoint, failed ones are
retried. ``sweep.json`` accounts for every grid point.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from rl_adaloss.config import ConfigError, from_dict, load_config, optimizer_arguments
from rl_adaloss.io import read_json, write_json_atomic
from rl_adaloss.optim import OPTIMIZERS
from rl_adaloss.train import sigterm_as_interrupt

#: Statuses that end a grid point; anything else (interrupted, failed, never run) runs again.
FINAL_STATUSES = ("finished", "diverged")
SWEEP_KEYS = ("name", "base", "total_timesteps", "eta", "b0", "seeds", "optimizers", "overrides", "quick",
              "ray_gpu_fraction")
QUICK_KEYS = ("b0", "seeds", "total_timesteps", "overrides", "optimizers")
#: Rules whose b0 is squared (Algorithm 1): they start from sqrt(b0) to take the same first step.
SQUARED_B0 = ("adaloss", "adagradnorm", "sgd", "sgd_decaysqrt")


@dataclass(frozen=True)
class GridPoint:
    env: str
    optimizer: str
    b0: float
    seed: int
    config: dict[str, Any]
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.optimizer} b0={format_b0(self.b0)} seed={self.seed}"


def format_b0(b0: float) -> str:
    """A folder-friendly b0: 1e6 → ``1e6``, 0.01 → ``0.01``, 100 → ``100``."""
    text = f"{b0:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


# -- the sweep config and its grid --------------------------------------------------------------------------------

def load_sweep(path: str | Path, quick: bool = False) -> dict[str, Any]:
    """Read and check a sweep config; with ``quick``, apply its ``quick`` section and suffix the name."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep config not found: {path}")
    try:
        sweep = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(sweep, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"unknown sweep key {key!r} (expected one of: {', '.join(SWEEP_KEYS)})")
    for key in ("name", "base", "b0", "seeds", "optimizers"):
        if key not in sweep:
            raise ConfigError(f"sweep config {path} lacks the key {key!r}")
    if quick:
        changes = sweep.get("quick") or {}
        for key in changes:
            if key not in QUICK_KEYS:
                raise ConfigError(f"unknown key quick.{key} (expected one of: {', '.join(QUICK_KEYS)})")
        sweep = {**sweep, **changes, "name": f"{sweep['name']}-quick"}
    sweep.pop("quick", None)
    sweep["base"] = str((path.parent / sweep["base"]).resolve()) if not Path(sweep["base"]).is_absolute() else sweep["base"]
    _check_sweep(sweep)
    return sweep


def _check_sweep(sweep: dict[str, Any]) -> None:
    name = sweep["name"]
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"name: expected a plain folder name, got {name!r}")
    b0s = sweep["b0"]
    if not isinstance(b0s, list) or not b0s or not all(_number(v) and float(v) > 0 for v in b0s):
        raise ConfigError(f"b0: expected a non-empty list of numbers > 0, got {b0s!r}")
    seeds = sweep["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds: expected a non-empty list of integers, got {seeds!r}")
    if "eta" in sweep and not (_number(sweep["eta"]) and float(sweep["eta"]) > 0):
        raise ConfigError(f"eta: expected a number > 0, got {sweep['eta']!r}")
    optimizers = sweep["optimizers"]
    if not isinstance(optimizers, dict) or not optimizers:
        raise ConfigError("optimizers: expected a mapping of variant names to optimizer settings")
    for variant, spec in optimizers.items():
        if not isinstance(spec, dict) or spec.get("name") not in OPTIMIZERS:
            raise ConfigError(f"optimizers.{variant}: expected a mapping with name one of {', '.join(OPTIMIZERS)}")
        if "lr" in spec or "b0" in spec:
            raise ConfigError(f"optimizers.{variant}: lr and b0 come from the grid (eta, b0), not the variant")


def _number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


def paired_optimizer(spec: dict[str, Any], base_optimizer: dict[str, Any], eta: float, b0: float) -> dict[str, Any]:
    """The optimizer section of one grid point: the variant's settings, the base's shared Adam settings (betas,
    eps) where the optimizer takes them, and lr/b0 set so that the first step size is eta/sqrt(b0)."""
    name = spec["name"]
    accepted = optimizer_arguments(name)
    section = {k: v for k, v in base_optimizer.items() if k in ("betas", "eps") and k in accepted}
    section.update(spec)
    section.setdefault("layout", base_optimizer.get("layout", "separate"))
    if name == "adam":
        section["lr"] = eta / math.sqrt(b0)
    elif name in SQUARED_B0:
        section.update(lr=eta, b0=math.sqrt(b0))
    else:
        section.update(lr=eta, b0=b0)
    return section


def expand(sweep: dict[str, Any], out_dir: Path) -> list[GridPoint]:
    """Every (optimizer, b0, seed) of the sweep as a validated training config and its run directory."""
    base = load_config(sweep["base"])
    eta = float(sweep.get("eta", 1.0))
    points = []
    for variant, spec in sweep["optimizers"].items():
        for b0 in (float(v) for v in sweep["b0"]):
            for seed in sweep["seeds"]:
                overrides = dict(sweep.get("overrides") or {})
                raw = {k: v for k, v in base.items() if k != "optimizer"}
                raw["optimizer"] = paired_optimizer(spec, base["optimizer"], eta, b0)
                raw["seed"] = seed
                if "total_timesteps" in sweep:
                    raw["total_timesteps"] = sweep["total_timesteps"]
                try:
                    config = from_dict(raw, [f"{k}={v}" for k, v in overrides.items()])
                except ConfigError as error:
                    raise ConfigError(f"optimizers.{variant}: {error}") from None
                run_dir = out_dir / sweep["name"] / config["env"] / variant / f"b0={format_b0(b0)}" / f"seed={seed}"
                points.append(GridPoint(config["env"], variant, b0, seed, config, run_dir))
    return points


# -- running one grid point ----------------------------------------------------------------------------------------

def point_status(point: GridPoint) -> str | None:
    result = point.run_dir / "result.json"
    return read_json(result)["status"] if result.exists() else None


def run_point(config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Run (or resume) one grid point in this process; the function both backends dispatch."""
    import torch

    from rl_adaloss.train import run

    torch.set_num_threads(1)  # one process per run: threads would only fight each other
    run_dir_path = Path(run_dir)
    resume = (run_dir_path / "checkpoint.pkl").exists()
    return run(config, run_dir_path, resume=resume, progress=False)


def _check_unchanged(points: list[GridPoint]) -> None:
    """Refuse to mix runs of a different config into a sweep's folders."""
    for point in points:
        existing = point.run_dir / "config.yaml"
        if existing.exists() and yaml.safe_load(existing.read_text()) != point.config:
            raise ConfigError(f"{point.run_dir} holds a run with another config; remove it or rename the sweep")


# -- backends ------------------------------------------------------------------------------------------------------

class Progress:
    """Live counts (done, running, finished, diverged, failed) and an ETA from the runs done so far, on one line."""

    def __init__(self, total: int, todo: int, workers: int) -> None:
        from tqdm.auto import tqdm

        self.todo, self.workers, self.done = todo, workers, 0
        self.counts: dict[str, int] = {}
        self.bar = tqdm(total=total, initial=total - todo, unit="run", desc="sweep", dynamic_ncols=True)
        self._show()

    def finished(self, status: str) -> None:
        self.done += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        self.bar.update(1)
        self._show()

    def _show(self) -> None:
        running = min(self.workers, self.todo - self.done)
        self.bar.set_postfix(running=running, **self.counts)

    def write(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


def run_local(points: list[GridPoint], workers: int, on_result: Callable[[GridPoint, dict], None]) -> None:
    """One process per run, ``workers`` at a time."""
    import multiprocessing

    # Spawn, not fork: a forked torch can deadlock, and each run should start from a clean interpreter.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(run_point, p.config, str(p.run_dir)): p for p in points}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    point = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as error:  # noqa: BLE001 - a worker that died; recorded, the sweep goes on
                        result = {"status": "failed", "reason": f"worker died: {type(error).__name__}: {error}"}
                    on_result(point, result)
        except KeyboardInterrupt:
            # Ctrl-C reaches the workers too, but a SIGTERM to the sweep alone does not: pass it on, so that every
            # running run saves a checkpoint, and start no new one.
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
            raise


def run_ray(points: list[GridPoint], address: str | None, gpu_fraction: float,
            on_result: Callable[[GridPoint, dict], None]) -> None:
    """The same run function as Ray tasks: one CPU each, a GPU fraction for ``device: cuda``, retried if a worker
    is lost. Run directories must be on storage that every node sees (the --out-dir)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'rl-adaloss[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        pending = {}
        for point in points:
            gpus = gpu_fraction if point.config["device"] == "cuda" else 0
            task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=3)(run_point)
            pending[task.remote(point.config, str(point.run_dir))] = point
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                point = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - lost beyond its retries; recorded
                    result = {"status": "failed", "reason": f"ray task failed: {type(error).__name__}"}
                on_result(point, result)
    finally:
        if started_here:
            ray.shutdown()


# -- a whole sweep ----------------------------------------------------------------------------------------------

def write_index(sweep: dict[str, Any], points: list[GridPoint], out_dir: Path) -> dict[str, int]:
    """``sweep.json``: the sweep config and every grid point's status; returns counts by status."""
    entries, counts = [], {}
    for point in points:
        status = point_status(point) or "not run"
        result = read_json(point.run_dir / "result.json") if status != "not run" else {}
        counts[status] = counts.get(status, 0) + 1
        entries.append(dict(env=point.env, optimizer=point.optimizer, b0=point.b0, seed=point.seed,
                            run_dir=str(point.run_dir.relative_to(out_dir / sweep["name"])), status=status,
                            reason=result.get("reason")))
    write_json_atomic(out_dir / sweep["name"] / "sweep.json", dict(sweep=sweep, points=entries, counts=counts))
    return counts


def run_sweep(sweep: dict[str, Any], out_dir: Path, workers: int, backend: str = "local",
              address: str | None = None, progress: bool = True) -> dict[str, int]:
    points = expand(sweep, out_dir)
    _check_unchanged(points)
    todo = [p for p in points if point_status(p) not in FINAL_STATUSES]
    bar = Progress(len(points), len(todo), workers) if progress else None

    def on_result(point: GridPoint, result: dict) -> None:
        if bar is not None:
            bar.finished(result["status"])
            if result["status"] != "finished":
                bar.write(f"{point.label}: {result['status']} ({result.get('reason')})")
        write_index(sweep, points, out_dir)

    write_index(sweep, points, out_dir)
    try:
        if todo:
            if backend == "ray":
                run_ray(todo, address, float(sweep.get("ray_gpu_fraction", 0.25)), on_result)
            else:
                run_local(todo, workers, on_result)
    finally:
        if bar is not None:
            bar.close()
        counts = write_index(sweep, points, out_dir)
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.sweep",
        description="Run a grid of initial step sizes (b0) x optimizers x seeds, in parallel, resumably; then "
                    "write the comparison report (figures, tables, TensorBoard dashboard).",
        epilog="Re-running the same command skips finished and diverged runs, resumes interrupted ones from their "
               "checkpoints and retries failed ones. See them live: tensorboard --logdir runs/<name>.",
    )
    parser.add_argument("--config", type=Path, default=Path("configs/sweep_pendulum.yaml"),
                        help="sweep config (default: configs/sweep_pendulum.yaml)")
    parser.add_argument("--quick", action="store_true",
                        help="the config's small 'quick' grid, into <name>-quick/: a few minutes, for trying it out")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="runs in parallel, one process each (default: the number of cores)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: a process pool on this machine; ray: Ray tasks (needs the 'ray' extra)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto, or ray://host:port (default: start a local Ray)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs"),
                        help="where the sweep folder goes; with Ray on several nodes, a shared path (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and the number of runs; run nothing")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.workers < 1:
            raise ConfigError(f"--workers: expected an integer >= 1, got {args.workers}")
        sweep = load_sweep(args.config, quick=args.quick)
        points = expand(sweep, args.out_dir)
        if not args.dry_run:
            _check_unchanged(points)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.dry_run:
        for point in points:
            print(f"{point.env:20s} {point.optimizer:16s} b0={format_b0(point.b0):8s} seed={point.seed:<4d} "
                  f"first step={float(sweep.get('eta', 1.0)) / math.sqrt(point.b0):<8.3g} "
                  f"steps={point.config['total_timesteps']}  -> {point.run_dir}")
        print(f"{len(points)} runs ({len(sweep['optimizers'])} optimizers x {len(sweep['b0'])} b0 x "
              f"{len(sweep['seeds'])} seeds)")
        return 0

    sweep_dir = args.out_dir / sweep["name"]
    print(f"sweep {sweep['name']}: {len(points)} runs, {args.workers} workers, backend {args.backend}; "
          f"tensorboard --logdir {sweep_dir}", file=sys.stderr)
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            counts = run_sweep(sweep, args.out_dir, args.workers, args.backend, args.address)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are kept; run the same command to resume", file=sys.stderr)
        return 130
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), file=sys.stderr)
    if not args.no_report:
        # The report reads the sweep's files; run as its own module, so imports keep pointing one way.
        subprocess.run([sys.executable, "-m", "rl_adaloss.report", str(sweep_dir)], check=False)
    incomplete = sum(n for status, n in counts.items() if status not in FINAL_STATUSES)
    return 0 if incomplete == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
