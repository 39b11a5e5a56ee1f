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
      rawadv: {name: adamloss, overrides: {ppo.normalize_advantage: false}}   # a variant's own dotted keys
      eta-0.1: {name: adamloss, layout: joint, eta: 0.1}   # a variant's own base step size (a grid over eta)
    overrides: {eval.episodes: 5}       # optional, applied to every run
    conditions:                         # optional: a grid over any keys; every variant runs under every condition
      normalized: {normalize.reward: true}        #   as the variant normalized/adam, ... (folders nest alike)
      raw: {normalize.reward: false}
    quick: {b0: [1.0, 1.0e6], seeds: [0], total_timesteps: 8192}   # what --quick changes

The optimizers are paired at the **same initial step size** eta/sqrt(b0), as in the paper: Adam runs at
``lr = eta/sqrt(b0)``; AdamLoss and AdamSqrt start from ``b0`` with base ``eta``; the Algorithm-1 rules (AdaLoss,
AdaGrad-Norm, SGD), whose b0 is squared (their class says so: ``b0_squared``), start from ``sqrt(b0)``. Every other
hyperparameter is the base config's.

Each run lives in ``<out-dir>/<name>/<env>/<optimizer>/b0=<v>/seed=<s>/`` (a ``train`` run directory), so a sweep is
resumable: finished and diverged runs are skipped, interrupted ones resume from their checkpoint, failed ones are
retried. ``sweep.json`` accounts for every grid point. A run is executed by one process at a time: it holds the
run's lock, so two invocations of one sweep on one folder share the grid instead of running it twice.

Two engines run the grid points (``--engine``):

* ``sb3`` (the default, and the reference): each point is one ``rl_adaloss.train`` run, one process each. It runs
  every env, action space and option the training config has, with SB3's own environments and RNG streams.
* ``batched``: the grid points that can share one engine (everything equal but the seed and the optimizer's
  ``lr``/``b0``/``alpha``/``c``; different variants' rules or layouts are different batches) are grouped, the groups
  split into about one batch per worker (:mod:`rl_adaloss.batched.grouping`), and each batch trains as K members in
  lockstep in one process (:mod:`rl_adaloss.batched`), or one Ray task. Every member writes the run directory an
  ``sb3`` run writes, holds its run's lock while its batch runs, and ends with the same statuses. Its episodes are the
  batched envs' own draws, so its numbers are not the ``sb3`` engine's bit for bit (equally distributed; envs without
  a torch version run through a gymnasium fallback whose training envs are seeded as the ``sb3`` engine's, the
  policy's noise still the engine's own); options it does not support are refused up front, in one line.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from filelock import FileLock, Timeout
from pydantic import AfterValidator, ConfigDict, Field, PositiveInt, model_validator

from rl_adaloss.batched.grouping import BATCHES_DIR, batch_threads, check_batched, plan_batches
from rl_adaloss.config import find_config, load_config, optimizer_arguments, override, resolve
from rl_adaloss.errors import UsageError, exit_on_usage_error
from rl_adaloss.optim import OPTIMIZERS
from rl_adaloss.records import FINAL_STATUSES, RunRecord, read_result, with_result
from rl_adaloss.records import write_index as write_records
from rl_adaloss.schema import Positive, Section, describe, read_yaml, validate
from rl_adaloss.train import sigterm_as_interrupt


def _folder_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"expected a plain folder name, got {name!r}")
    return name


FolderName = Annotated[str, AfterValidator(_folder_name)]


class Variant(Section):
    """A named optimizer variant: the rule, its layout and any of its arguments but lr and b0 (the grid's)."""

    model_config = ConfigDict(extra="allow")

    name: Literal[tuple(OPTIMIZERS)] = Field(description=f"the rule: {', '.join(OPTIMIZERS)}")
    layout: Literal["separate", "joint"] | None = Field(None, description="separate or joint (null: the base's)")
    eta: float | None = Field(None, gt=0, description="this variant's base step size (null: the sweep's eta); a "
                                                      "grid over eta at a fixed b0")
    overrides: dict[str, Any] | None = Field(None, description="dotted keys set in this variant's runs only")

    @model_validator(mode="after")
    def _no_grid_keys(self) -> Variant:
        if {"lr", "b0"} & set(self.model_extra or {}):
            raise ValueError("lr and b0 come from the grid (eta, b0), not the variant")
        return self


class QuickSection(Section):
    """What ``--quick`` changes."""

    b0: list[Positive] | None = Field(None, min_length=1, description="the quick grid's b0 values")
    seeds: list[int] | None = Field(None, min_length=1, description="the quick grid's seeds")
    total_timesteps: PositiveInt | None = Field(None, description="the quick budget per run")
    overrides: dict[str, Any] | None = Field(None, description="the quick runs' overrides")
    optimizers: dict[FolderName, Variant] | None = Field(None, min_length=1, description="the quick grid's variants")


class SweepConfig(Section):
    """A grid of b0 x optimizer variants x seeds over one base training config."""

    name: FolderName = Field(description="the sweep folder's name, under --out-dir")
    base: str = Field(description="the training config every run starts from (relative to the sweep config, or "
                                  "a shipped config's name)")
    total_timesteps: PositiveInt | None = Field(None, description="the budget of every run (null: the base's)")
    eta: float = Field(1.0, gt=0, description="base step size: every run's first step is eta/sqrt(b0)")
    b0: list[Positive] = Field(min_length=1, description="initial accumulators (AdamLoss's unsquared b0)")
    seeds: list[int] = Field(min_length=1, description="seeds of every grid point")
    optimizers: dict[FolderName, Variant] = Field(min_length=1, description="named variants: a rule plus how it is "
                                                                            "wired")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted keys set in every run")
    conditions: dict[FolderName, dict[str, Any]] | None = Field(
        None, description="named sets of dotted keys (a grid over any key): every variant runs under every "
                          "condition, as the variant <condition>/<variant>")
    quick: QuickSection | None = Field(None, description="what --quick changes")
    ray_gpu_fraction: float = Field(0.25, gt=0, le=1, description="GPU share of a Ray task with device: cuda")


def with_conditions(variants: dict[str, Any], conditions: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Every variant under every condition, as the variant ``<condition>/<variant>`` whose overrides are the
    condition's then the variant's own; the variants as they are without conditions."""
    if not conditions:
        return variants
    return {f"{condition}/{name}": {**spec, "overrides": {**keys, **(spec.get("overrides") or {})}}
            for condition, keys in conditions.items() for name, spec in variants.items()}


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
    return re.sub(r"e\+?(-?)0*(?=\d)", r"e\1", f"{b0:g}")  # %g's exponent without its sign + and leading zeros


# -- the sweep config and its grid --------------------------------------------------------------------------------

def load_sweep(path: str | Path, quick: bool = False, conditions: bool = True) -> dict[str, Any]:
    """Read and check a sweep config; with ``quick``, apply its ``quick`` section and suffix the name; with
    ``conditions``, every variant under every condition (:func:`with_conditions`), else the variants as written."""
    path = find_config(path)
    sweep = validate(SweepConfig, read_yaml(path, follow_base=False), label="sweep ").model_dump(exclude_none=True)
    changes = sweep.pop("quick", None) or {}
    if quick:
        sweep = {**sweep, **changes, "name": f"{sweep['name']}-quick"}
    if conditions:
        sweep["optimizers"] = with_conditions(sweep["optimizers"], sweep.pop("conditions", None))
    base = Path(sweep["base"])
    sweep["base"] = str(base if base.is_absolute() else find_config(path.parent / base).resolve())
    return sweep


def paired_optimizer(spec: dict[str, Any], base_optimizer: dict[str, Any], eta: float, b0: float) -> dict[str, Any]:
    """The optimizer section of one grid point: the variant's settings, the base's shared Adam settings (betas,
    eps) where the optimizer takes them, and lr/b0 set so that the first step size is eta/sqrt(b0), with the
    variant's own ``eta`` where it has one.

    ``b0`` is in Algorithm 2's units (AdamLoss: the accumulator itself). A rule without a b0 (torch's Adam) runs
    at ``lr = eta/sqrt(b0)``; a rule whose class says its b0 is squared (Algorithm 1) starts from ``sqrt(b0)``."""
    name = spec["name"]
    accepted = optimizer_arguments(name)
    section = {k: v for k, v in base_optimizer.items() if k in ("betas", "eps") and k in accepted}
    eta = spec.get("eta") or eta
    section.update({k: v for k, v in spec.items() if v is not None and k not in ("overrides", "eta")})
    section.setdefault("layout", base_optimizer.get("layout", "separate"))
    if "b0" not in accepted:
        return {**section, "lr": eta / math.sqrt(b0)}
    return {**section, "lr": eta, "b0": OPTIMIZERS[name].b0_from_unsquared(b0)}


def first_step(optimizer: dict[str, Any]) -> float:
    """The first step size of a grid point's optimizer section: its rule's ``initial_step``, torch Adam's lr."""
    rule = OPTIMIZERS[optimizer["name"]]
    return rule.initial_step(optimizer["lr"], optimizer["b0"]) if "b0" in optimizer else optimizer["lr"]


def expand(sweep: dict[str, Any], out_dir: Path) -> list[GridPoint]:
    """Every (optimizer, b0, seed) of the sweep as a validated training config and its run directory."""
    base = load_config(sweep["base"])
    points = []
    for variant, spec in sweep["optimizers"].items():
        overrides = list({**(sweep.get("overrides") or {}), **(spec.get("overrides") or {})}.items())
        for b0, seed in itertools.product(sweep["b0"], sweep["seeds"]):
            raw = copy.deepcopy(base)  # a deep copy: an override sets keys inside the base's sections
            raw.update(seed=seed, optimizer=paired_optimizer(spec, base["optimizer"], sweep["eta"], b0),
                       total_timesteps=sweep.get("total_timesteps", base["total_timesteps"]))
            try:
                config = resolve(override(raw, overrides))
            except UsageError as error:
                raise UsageError(f"optimizers.{variant}: {error}") from None
            run_dir = out_dir / sweep["name"] / config["env"] / variant / f"b0={format_b0(b0)}" / f"seed={seed}"
            points.append(GridPoint(config["env"], variant, b0, seed, config, run_dir))
    return points


# -- running one grid point ----------------------------------------------------------------------------------------

#: The engines that run grid points: ``sb3`` (one rl_adaloss.train run per point; the default and the reference)
#: and ``batched`` (rl_adaloss.batched: the points that can share an engine, as one batch per process).
ENGINES = ("sb3", "batched")

#: Held by the process that runs a grid point. An OS lock (flock): it dies with its process, so a kill -9 never
#: leaves a run that looks taken.
LOCK_NAME = ".run.lock"
#: The result of a grid point that another live process holds: skipped, waited for at the end.
BUSY = "busy"
#: Seconds an interrupted sweep waits for its running jobs to save their checkpoints before it kills its workers.
STOP_GRACE_S = 120.0
#: Seconds between looks at the running batches' progress.
TICK_S = 5.0


def point_status(point: GridPoint) -> str | None:
    return (read_result(point.run_dir) or {}).get("status")


#: Set in a worker process once one of its jobs was interrupted (Ctrl-C, or the SIGTERM an interrupted sweep passes
#: on): the jobs the pool had already queued to that worker then return at once instead of running to the end while
#: the sweep waits for them.
_interrupted = False


@contextmanager
def held(run_dirs: list[str]) -> Iterator[dict[int, dict[str, Any]]]:
    """Hold the lock of every run directory that no other process holds, for the block. Yields the results known
    by index: ``{"status": "busy"}`` for the others, and the results of the held runs that have ended (another
    process may have finished one since this one looked). Once a job of this worker was interrupted, every point is
    known, as "not run", and nothing is held; the block fills in the results of the points it runs."""
    global _interrupted
    if _interrupted:
        yield {i: {"status": "not run", "reason": "the sweep was interrupted"} for i in range(len(run_dirs))}
        return
    with ExitStack() as locks:
        known = {}
        for i, run_dir in enumerate(run_dirs):
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            try:
                locks.enter_context(FileLock(str(Path(run_dir) / LOCK_NAME), timeout=0))
            except Timeout:
                known[i] = {"status": BUSY, "reason": "being run by another process"}
                continue
            done = read_result(Path(run_dir))
            if done and done["status"] in FINAL_STATUSES:
                known[i] = done
        yield known
        _interrupted = any(result["status"] == "interrupted" for result in known.values())


def run_points(configs: list[dict[str, Any]], run_dirs: list[str]) -> list[dict[str, Any]]:
    """The ``sb3`` engine's job (it holds one point): each point run (or resumed) as its own ``rl_adaloss.train`` run
    in this process, holding its lock; ``{"status": "busy"}`` for a point another process holds."""
    import torch

    from rl_adaloss.train import run

    torch.set_num_threads(1)  # one process per run: threads would only fight each other
    with held(run_dirs) as results:
        for i, (config, run_dir) in enumerate(zip(configs, run_dirs)):
            if i not in results:
                resume = (Path(run_dir) / "checkpoint.pkl").exists()
                results[i] = run(config, Path(run_dir), resume=resume, progress=False)
    return [results[i] for i in range(len(run_dirs))]


def run_batch_points(configs: list[dict[str, Any]], run_dirs: list[str], threads: int = 1,
                     checkpoint_dir: str | None = None) -> list[dict[str, Any]]:
    """Run (or resume) one batch of grid points in this process with the batched engine, holding the lock of every
    member it runs; the function both backends dispatch for ``--engine batched``. Returns one result per member,
    in order: ``{"status": "busy"}`` for a member another process holds, the existing result of one that has ended.

    A member that has ended rides along (writing nothing) where the batch resumes from its checkpoint, so that the
    others continue exactly; without a checkpoint to resume, it is left out and the others start afresh."""
    import torch

    from rl_adaloss.batched.run import default_checkpoint_path, run_batch

    with held(run_dirs) as results:
        members = [i for i in range(len(run_dirs)) if results.get(i, {}).get("status") != BUSY]
        if not default_checkpoint_path([run_dirs[i] for i in members], checkpoint_dir).is_file():
            members = [i for i in members if i not in results]
        if any(i not in results for i in members):
            torch.set_num_threads(threads)
            dirs = [run_dirs[i] for i in members]
            ran = run_batch([configs[i] for i in members], dirs, default_checkpoint_path(dirs, checkpoint_dir))
            for i, result in zip(members, ran):
                results.setdefault(i, result)  # a member that had ended keeps its result
    return [results[i] for i in range(len(run_dirs))]


def _check_unchanged(points: list[GridPoint]) -> None:
    """Refuse to mix runs of a different config into a sweep's folders."""
    for point in points:
        existing = point.run_dir / "config.yaml"
        if existing.exists() and yaml.safe_load(existing.read_text()) != point.config:
            raise UsageError(f"{point.run_dir} holds a run with another config; remove it or rename the sweep")


# -- backends ------------------------------------------------------------------------------------------------------

class Progress:
    """Live counts (done, running, finished, diverged, failed) and an ETA from the runs done so far, on one line;
    without ``show``, nothing."""

    def __init__(self, total: int, todo: int, workers: int, show: bool) -> None:
        from tqdm.auto import tqdm

        self.todo, self.workers, self.env_steps = todo, workers, {}
        self.counts: Counter[str] = Counter()
        self.bar = tqdm(total=total, initial=total - todo, unit="run", desc="sweep", dynamic_ncols=True,
                        disable=not show)
        self._show()

    def finished(self, status: str) -> None:
        self.counts[status] += 1
        self.bar.update(1)
        self._show()

    def steps(self, done: int, due: int) -> None:
        """The env-steps of the running batches (a batch's runs all end together, so counting runs alone would sit
        at 0 for most of a batched sweep)."""
        self.env_steps = {"env_steps": f"{done:.3g}/{due:.3g}"} if due else {}
        self._show()

    def _show(self) -> None:
        running = min(self.workers, self.todo - self.counts.total())
        self.bar.set_postfix(running=running, **self.env_steps, **self.counts)

    def write(self, line: str) -> None:
        if not self.bar.disable:
            self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class Job:
    """What one worker process or Ray task runs: ``function(*args)``, which returns one result per point."""

    function: Callable[..., list[dict[str, Any]]]
    args: tuple
    points: list[GridPoint]


def _collect(pending: dict[Future, Job], on_results: Callable[[Job, list[dict]], None], on_tick: Callable[[], None],
             failure: Callable[[Exception], str]) -> None:
    """Pass each job's results to ``on_results`` as it ends, ``on_tick`` every few seconds; a job that raised (a
    worker that died, a Ray task lost beyond its retries) is recorded as failed, ``failure(error)``, and the sweep
    goes on."""
    while pending:
        done, _ = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
        on_tick()
        for future in done:
            job = pending.pop(future)
            try:
                results = future.result()
            except Exception as error:  # noqa: BLE001 - recorded, the sweep goes on
                results = [{"status": "failed", "reason": failure(error).splitlines()[0]}] * len(job.points)
            on_results(job, results)


def run_local(jobs: list[Job], workers: int, on_results: Callable[[Job, list[dict]], None],
              on_tick: Callable[[], None] = lambda: None) -> None:
    """One process per job, ``workers`` at a time; ``on_tick`` every few seconds while they run."""
    import multiprocessing

    # Spawn, not fork: a forked torch can deadlock, and each run should start from a clean interpreter.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(job.function, *job.args): job for job in jobs}
        try:
            _collect(pending, on_results, on_tick, lambda error: f"worker died: {type(error).__name__}: {error}")
        except KeyboardInterrupt:
            # Ctrl-C reaches the workers too, but a SIGTERM to the sweep alone does not: pass it on, so that every
            # running run (or batch) saves a checkpoint. A worker whose job returned would then take the next job
            # the pool had already queued to it and run it to the end, so once the running jobs have returned
            # (their checkpoints saved), the workers are killed: a job killed as it starts leaves nothing that a
            # rerun does not redo (its lock dies with it).
            running = [future for future in pending if future.running()]
            for future in pending:
                future.cancel()
            processes = [p for p in getattr(pool, "_processes", {}).values() if p.is_alive()]
            for process in processes:
                process.terminate()
            wait(running, timeout=STOP_GRACE_S)
            for process in processes:
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_ray(jobs: list[Job], address: str | None, gpu_fraction: float,
            on_results: Callable[[Job, list[dict]], None], on_tick: Callable[[], None] = lambda: None) -> None:
    """The same jobs as Ray tasks: one CPU each, a GPU fraction for ``device: cuda``, retried if a worker is lost.
    Run directories must be on storage that every node sees (the --out-dir)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'rl-adaloss[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        pending = {}
        for job in jobs:
            gpus = gpu_fraction if job.points[0].config["device"] == "cuda" else 0
            task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=3)(job.function)
            pending[task.remote(*job.args).future()] = job  # a concurrent.futures.Future, as the local backend's
        _collect(pending, on_results, on_tick, lambda error: f"ray task failed: {type(error).__name__}")
    finally:
        if started_here:
            ray.shutdown()


# -- a whole sweep ----------------------------------------------------------------------------------------------

def write_index(sweep: dict[str, Any], points: list[GridPoint], out_dir: Path) -> dict[str, int]:
    """``sweep.json``: the sweep config and every grid point's record; returns counts by status."""
    sweep_dir = out_dir / sweep["name"]
    records = [RunRecord(p.env, p.optimizer, p.b0, p.seed, str(p.run_dir.relative_to(sweep_dir))) for p in points]
    return write_records(sweep_dir, sweep, [with_result(record, sweep_dir) for record in records])


def run_sweep(sweep: dict[str, Any], out_dir: Path, workers: int, backend: str = "local",
              address: str | None = None, progress: bool = True, engine: str = "sb3") -> dict[str, int]:
    """Run every grid point that has not ended, with the ``sb3`` engine (one process per point) or the ``batched``
    one (one process per batch of points). Points that another live process holds are skipped, then waited for at
    the end; any that the other process left unfinished are taken up."""
    if engine not in ENGINES:
        raise UsageError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    points = expand(sweep, out_dir)
    _check_unchanged(points)
    if engine == "batched":
        check_batched(points)
    checkpoint_dir = out_dir / sweep["name"] / BATCHES_DIR
    todo = [p for p in points if point_status(p) not in FINAL_STATUSES]
    bar = Progress(len(points), len(todo), workers, show=progress)
    busy: list[GridPoint] = []

    def on_results(job: Job, results: list[dict]) -> None:
        for point, result in zip(job.points, results):
            if result["status"] == BUSY:
                busy.append(point)
                continue
            bar.finished(result["status"])
            if result["status"] != "finished":
                bar.write(f"{point.label}: {result['status']} ({result.get('reason')})")
        write_index(sweep, points, out_dir)

    started = time.time()

    def on_tick() -> None:
        if engine == "batched":
            from rl_adaloss.batched.run import read_progress

            bar.steps(*read_progress(checkpoint_dir, started))

    write_index(sweep, points, out_dir)
    try:
        while todo:
            if engine == "batched":
                batches = plan_batches(points, todo, workers)
                # A Ray task has one CPU; local batches share the cores.
                threads = 1 if backend == "ray" else batch_threads(workers, len(batches))
                jobs = [Job(run_batch_points, ([p.config for p in batch], [str(p.run_dir) for p in batch], threads,
                                               str(checkpoint_dir)), batch) for batch in batches]
            else:
                jobs = [Job(run_points, ([p.config], [str(p.run_dir)]), [p]) for p in todo]
            if backend == "ray":
                run_ray(jobs, address, float(sweep.get("ray_gpu_fraction", 0.25)), on_results, on_tick)
            else:
                run_local(jobs, workers, on_results, on_tick)
            on_tick()
            if busy:
                bar.write(f"waiting for {len(busy)} runs that another process is running")
            for point in busy:
                with FileLock(str(point.run_dir / LOCK_NAME)):  # blocks until no process holds the point
                    pass
                if point_status(point) in FINAL_STATUSES:
                    bar.finished(point_status(point))
            todo, busy = [p for p in busy if point_status(p) not in FINAL_STATUSES], []
    finally:
        bar.close()
        counts = write_index(sweep, points, out_dir)
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.sweep",
        description="Run a grid of initial step sizes (b0) x optimizers x seeds, in parallel, resumably; then "
                    "write the comparison report (figures, tables, TensorBoard dashboard).",
        epilog="Re-running the same command skips finished and diverged runs, resumes interrupted ones from their "
               "checkpoints and retries failed ones. See them live: tensorboard --logdir runs/<name>.")
    parser.add_argument("--config", type=Path, default=Path("sweep_pendulum"),
                        help="sweep config file, or a shipped one's name (default: sweep_pendulum)")
    parser.add_argument("--quick", action="store_true",
                        help="the config's small 'quick' grid, into <name>-quick/: a few minutes, for trying it out")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="runs in parallel, one process each (default: the number of cores)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: a process pool on this machine; ray: Ray tasks (needs the 'ray' extra)")
    parser.add_argument("--engine", choices=ENGINES, default="sb3",
                        help="sb3 (default, the reference): one rl_adaloss.train run per grid point. batched: the "
                             "points that differ only in seed and optimizer lr/b0/alpha/c train as one batch per "
                             "process, each writing the same run directory; its own env draws, so not the sb3 numbers "
                             "bit for bit; flat Box observations and Box actions, a constant lr (else refused at once)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto, or ray://host:port (default: start a local Ray)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs"),
                        help="where the sweep folder goes; with Ray on several nodes, a shared path (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and the number of runs; run nothing")
    parser.add_argument("--print-config", action="store_true", help="print the resolved sweep config, described; exit")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return exit_on_usage_error(_main, argv)


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    if args.workers < 1:
        raise UsageError(f"--workers: expected an integer >= 1, got {args.workers}")
    sweep = load_sweep(args.config, quick=args.quick)
    points = expand(sweep, args.out_dir)
    if not args.dry_run:
        _check_unchanged(points)
    if args.engine == "batched" and not args.print_config:
        check_batched(points)

    if args.print_config:
        print(describe(SweepConfig.model_validate(load_sweep(args.config, args.quick, conditions=False))))
        return 0
    if args.dry_run:
        for point in points:
            print(f"{point.env:20s} {point.optimizer:16s} b0={format_b0(point.b0):8s} seed={point.seed:<4d} "
                  f"first step={first_step(point.config['optimizer']):<8.3g} "
                  f"steps={point.config['total_timesteps']}  -> {point.run_dir}")
        print(f"{len(points)} runs ({len(sweep['optimizers'])} optimizers x {len(sweep['b0'])} b0 x "
              f"{len(sweep['seeds'])} seeds)")
        if args.engine == "batched":
            batches = plan_batches(points, points, args.workers)
            for i, batch in enumerate(batches):
                print(f"batch {i}: {len(batch)} members: " + ", ".join(p.label for p in batch))
            print(f"{len(batches)} batches for {args.workers} workers (engine batched)")
        return 0

    sweep_dir = args.out_dir / sweep["name"]
    print(f"sweep {sweep['name']}: {len(points)} runs, {args.workers} workers, backend {args.backend}, "
          f"engine {args.engine}; tensorboard --logdir {sweep_dir}", file=sys.stderr)
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            counts = run_sweep(sweep, args.out_dir, args.workers, args.backend, args.address, engine=args.engine)
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept; run the same command to resume", file=sys.stderr)
        return 130
    print(f"done in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), file=sys.stderr)
    if not args.no_report:
        # The report reads the sweep's files; run as its own module, so imports keep pointing one way.
        subprocess.run([sys.executable, "-m", "rl_adaloss.report", str(sweep_dir)], check=False)
    return 0 if all(status in FINAL_STATUSES for status in counts) else 1


if __name__ == "__main__":
    sys.exit(main())
