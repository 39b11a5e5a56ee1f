"""Throughput of the batched engine: the sweep grid against the process-pool SB3 sweep, and the scaling in K.

    python bench/batched_throughput.py                       # both parts, 2 interleaved repeats
    python bench/batched_throughput.py --part grid --grid-steps 8192 --repeats 3
    python bench/batched_throughput.py --part scaling --members 1 16 256 --threads 1 2
    python bench/batched_throughput.py --part scaling --device cuda --members 16 256 1024 4096 --threads 1
    git worktree add /tmp/old <commit> && python bench/batched_throughput.py --part scaling --code /tmp/old .

Grid (``--sweep``, default ``sweep_pendulum``: 4 optimizers x 5 b0 x 3 seeds = 60 runs, ``--grid-steps`` env-steps
each):

* SB3: the 60 runs as ``rl_adaloss.sweep`` runs them, one ``AdaLossPPO`` per run in a process pool of ``--workers``
  spawned processes with one torch thread each;
* batched: one batch per optimizer (the grid points that can share an engine: 15 members each), in a process pool
  of ``--workers`` spawned processes that take the batches in turn (as the sweep runs them), each batch with
  ``cores // min(workers, batches)`` torch threads (the sweep's rule).

Both train only (``learn``: rollouts and updates; no evaluation, no files), on the same configs (``sweep.expand``)
and the same step budget; wall time includes starting the processes. Printed: summed env-steps/s of each and the
ratio, per repeat and as the median; the repeats alternate SB3 and batched, so load from elsewhere hits both alike.

Scaling (``--config``, default ``pendulum_adamloss``): K = ``--members`` members for ``--steps`` env-steps each, each
K and thread count in a fresh process (so the peak RSS is that K's), interleaved over the repeats: env-steps/s
total and per member, peak RSS, and the host reads of one more rollout and update (``HostReads``; on CUDA each is a
host-device sync: on an accelerator the engine defers them to a few per rollout and update, on the CPU it reads every
step and minibatch, where a read is free). ``--device cuda`` times with ``torch.cuda.synchronize()`` at both ends and
adds the peak GPU memory.

Targets (issue): grid >= 10x the SB3 sweep on 2 cores; 256 members <= 2 GB RSS. The numbers are what they are;
nothing here asserts a time. Report ``uptime`` with them: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _grid(sweep: str, steps: int) -> dict[str, list[dict]]:
    """The sweep's grid configs at ``steps`` env-steps each, by optimizer variant (the batches)."""
    from rl_adaloss.sweep import expand, load_sweep

    grid: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for point in expand(load_sweep(sweep), Path(tmp)):
            config = dict(point.config, total_timesteps=steps)
            grid.setdefault(point.optimizer, []).append(config)
    return grid


def _train_batch(configs: list[dict], threads: int, count_reads: bool = False) -> dict:
    import torch

    from rl_adaloss.batched.run import build_engine

    torch.set_num_threads(threads)
    engine = build_engine(configs)
    cuda = engine.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    started, cpu_started = time.perf_counter(), time.process_time()
    engine.learn()
    sync()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    out = dict(members=len(configs), steps_per_member=engine.num_timesteps, wall_s=wall, cpu_s=cpu,
               env_steps=engine.num_timesteps * len(configs), peak_rss_mb=_peak_rss_mb(),
               diverged=sum(d is not None for d in engine.diverged_at))
    if cuda:
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    try:
        from rl_adaloss.batched.host import HostReads
    except ImportError:  # an older tree (--code)
        count_reads = False
    if count_reads:
        with HostReads() as rollout:
            engine.collect_rollouts()
        with HostReads() as update:
            engine.train()
        out.update(rollout_reads=rollout.count, update_reads=update.count)
    return out


def one_scaling(config: str, members: int, steps: int, threads: int, device: str = "cpu") -> dict:
    """(In its own process.) K members of ``config`` (seeds 0..K-1) for ``steps`` env-steps each."""
    from rl_adaloss.config import load_config

    configs = [load_config(config, [f"seed={seed}", f"total_timesteps={steps}", f"device={device}"])
               for seed in range(members)]
    out = _train_batch(configs, threads, count_reads=True)
    out.update(threads=threads, env_steps_per_s=out["env_steps"] / out["wall_s"],
               env_steps_per_cpu_s=out["env_steps"] / out["cpu_s"])
    return out


def _sb3_run(config: dict) -> int:
    import torch

    torch.set_num_threads(1)
    from rl_adaloss.train import build_model, make_envs

    with tempfile.TemporaryDirectory() as tmp:
        train_env, eval_env = make_envs(config, Path(tmp), config["seed"], resume=False)
        model = build_model(config, train_env)
        model.learn(config["total_timesteps"])
        train_env.close(), eval_env.close()
        return model.num_timesteps


def _child(*args: str, code: str | None = None) -> dict:
    """Run this script with ``args`` in a fresh process; with ``code``, against the rl_adaloss tree in that folder."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join([code, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=code or ROOT, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def grid_sb3(sweep: str, steps: int, workers: int) -> dict:
    import multiprocessing

    configs = [c for batch in _grid(sweep, steps).values() for c in batch]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        total = sum(pool.map(_sb3_run, configs))
    wall = time.perf_counter() - started
    return dict(runs=len(configs), env_steps=total, wall_s=wall, env_steps_per_s=total / wall)


def grid_batched(sweep: str, steps: int, workers: int) -> dict:
    import multiprocessing

    batches = list(_grid(sweep, steps).values())
    threads = max(1, (os.cpu_count() or 1) // max(1, min(workers, len(batches))))
    started = time.perf_counter()
    # As the sweep runs its batches (sweep.run_local): a pool of ``workers`` spawned processes, each taking batches
    # in turn, so a process's start-up (importing torch and SB3) is paid once per worker, not once per batch.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(_train_batch, batches, [threads] * len(batches)))
    wall = time.perf_counter() - started
    total = sum(r["env_steps"] for r in rows)
    return dict(batches=len(rows), members=sum(r["members"] for r in rows), threads=threads, env_steps=total,
                wall_s=wall, env_steps_per_s=total / wall, peak_rss_mb=max(r["peak_rss_mb"] for r in rows),
                diverged=sum(r["diverged"] for r in rows))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def run_grid(args) -> None:
    print(f"== grid: sweep {args.sweep}, {args.grid_steps} env-steps per run, {args.workers} workers, "
          f"{os.cpu_count()} cores; {_uptime()}", flush=True)
    ratios, sb3s, bats = [], [], []
    for repeat in range(args.repeats):
        order = ["sb3", "batched"] if repeat % 2 == 0 else ["batched", "sb3"]
        got = {}
        for which in order:
            if which == "sb3":
                got[which] = grid_sb3(args.sweep, args.grid_steps, args.workers)
            else:
                got[which] = grid_batched(args.sweep, args.grid_steps, args.workers)
        s, b = got["sb3"], got["batched"]
        sb3s.append(s["env_steps_per_s"]), bats.append(b["env_steps_per_s"])
        ratios.append(b["env_steps_per_s"] / s["env_steps_per_s"])
        print(f"repeat {repeat + 1}: SB3 sweep {s['runs']} runs: {s['env_steps_per_s']:8.0f} env-steps/s "
              f"(wall {s['wall_s']:.1f} s) | batched {b['batches']} batches x {b['members'] // b['batches']} members, "
              f"{b['threads']} thread(s) each: {b['env_steps_per_s']:8.0f} env-steps/s (wall {b['wall_s']:.1f} s, "
              f"peak RSS {b['peak_rss_mb']} MB, {b['diverged']} diverged) | ratio {ratios[-1]:.1f}x", flush=True)
    print(f"grid median: SB3 {statistics.median(sb3s):.0f}, batched {statistics.median(bats):.0f} env-steps/s, "
          f"ratio {statistics.median(ratios):.1f}x (per repeat: {', '.join(f'{r:.1f}' for r in ratios)}); "
          f"{_uptime()}", flush=True)


def run_scaling(args) -> None:
    print(f"== scaling: {args.config} on {args.device}, {args.steps} env-steps per member, threads {args.threads}; "
          f"{_uptime()}", flush=True)
    codes = args.code or [None]
    results: dict[tuple[int, int, int], list[dict]] = {}
    for repeat in range(args.repeats):
        members = args.members if repeat % 2 == 0 else list(reversed(args.members))
        for k in members:
            for threads in args.threads:
                for code in codes if repeat % 2 == 0 else list(reversed(codes)):
                    c = codes.index(code)
                    row = _child("--one", str(k), "--config", args.config, "--steps", str(args.steps),
                                 "--threads", str(threads), "--device", args.device, code=code)
                    results.setdefault((k, threads, c), []).append(row)
                    print(f"  repeat {repeat + 1} K={k:4d} threads={threads} code={code or ROOT}: "
                          f"{row['env_steps_per_s']:8.0f} env-steps/s (wall {row['wall_s']:.1f} s, "
                          f"{row['env_steps_per_cpu_s']:8.0f} per CPU-second)", flush=True)
    print(f"{'code':>20} {'K':>5} {'threads':>7} {'env-steps/s':>12} {'per member':>11} {'per CPU-s':>10} "
          f"{'peak RSS MB':>12} {'GPU MB':>7} {'reads/rollout':>13} {'reads/update':>12}   (median of "
          f"{args.repeats}; per CPU-second: env-steps per second of this process's CPU time, less sensitive to "
          f"other load with one thread; reads: host reads of one more rollout and update)")
    for (k, threads, c), rows in sorted(results.items()):
        rate = statistics.median(r["env_steps_per_s"] for r in rows)
        cpu_rate = statistics.median(r["env_steps_per_cpu_s"] for r in rows)
        name = str(codes[c] or ROOT)[-20:]
        print(f"{name:>20} {k:5d} {threads:7d} {rate:12.0f} {rate / k:11.1f} {cpu_rate:10.0f} "
              f"{max(r['peak_rss_mb'] for r in rows):12d} {max(r.get('peak_gpu_mb', 0) for r in rows):7d} "
              f"{rows[0].get('rollout_reads', -1):13d} {rows[0].get('update_reads', -1):12d}")
    print(_uptime(), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["grid", "scaling", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every measurement")
    parser.add_argument("--sweep", default="sweep_pendulum", help="the sweep config whose grid is measured")
    parser.add_argument("--grid-steps", type=int, default=4096, help="env-steps per grid run (both engines)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes at a time (both engines)")
    parser.add_argument("--config", default="pendulum_adamloss", help="the scaling part's config")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--steps", type=int, default=2048, help="env-steps per member in the scaling part")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads (scaling part)")
    parser.add_argument("--code", nargs="+", help="scaling part: measure these rl_adaloss trees (folders put first "
                        "on PYTHONPATH) side by side, interleaved, e.g. a checkout of an older commit")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the scaling part's device")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_scaling(args.config, args.one, args.steps, args.threads[0], args.device)))
        return 0
    if args.part in ("grid", "both"):
        run_grid(args)
    if args.part in ("scaling", "both"):
        run_scaling(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
