"""Sweeps: grid expansion and pairing, resume after deletion and after kill -9, divergence, and the Ray backend."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import poll

from rl_adaloss.config import load_config
from rl_adaloss.sweep import expand, first_step, format_b0, load_sweep, main, run_sweep

TINY_BASE = {
    "env": "Pendulum-v1",
    "total_timesteps": 256,
    "n_envs": 2,
    "eval": {"freq": 128, "episodes": 1},
    "checkpoint_freq": 128,
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "optimizer": {"name": "adamloss", "lr": 1.0, "b0": 1.0e6, "betas": [0.9, 0.99], "eps": 1.0e-5},
}


def write_sweep(tmp_path: Path, **changes) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY_BASE))
    sweep = {
        "name": "tiny",
        "base": "base.yaml",
        "eta": 1.0,
        "b0": [1.0e4, 1.0e6],
        "seeds": [0],
        "optimizers": {"adam": {"name": "adam"}, "adamloss": {"name": "adamloss", "layout": "separate"}},
    }
    sweep.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def tree(root: Path) -> dict[str, dict]:
    """Every run's result, by its path relative to the sweep folder."""
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("result.json"))}


def test_grid_pairs_optimizers_at_the_same_initial_step(tmp_path):
    path = write_sweep(tmp_path, seeds=[0, 1], b0=[1.0, 100.0, 1.0e6],
                       optimizers={"adam": {"name": "adam"}, "adamloss": {"name": "adamloss"},
                                   "adamloss-joint": {"name": "adamloss", "layout": "joint"},
                                   "adamsqrt": {"name": "adamsqrt"}, "adaloss": {"name": "adaloss"}})
    points = expand(load_sweep(path), tmp_path / "out")
    assert len(points) == 5 * 3 * 2
    base = load_config(tmp_path / "base.yaml")
    for point in points:
        optimizer = point.config["optimizer"]
        if optimizer["name"] == "adam":
            first_step = optimizer["lr"]
        elif optimizer["name"] == "adaloss":  # Algorithm 1 squares b0
            first_step = optimizer["lr"] / optimizer["b0"]
        else:
            assert optimizer["lr"] == 1.0 and optimizer["b0"] == point.b0
            first_step = optimizer["lr"] / math.sqrt(optimizer["b0"])
        assert first_step == pytest.approx(1.0 / math.sqrt(point.b0))
        # Everything but the optimizer and the seed is the base config's.
        assert {k: v for k, v in point.config.items() if k not in ("optimizer", "seed")} == \
               {k: v for k, v in base.items() if k not in ("optimizer", "seed")}
        assert (optimizer.get("eps", base["optimizer"]["eps"]) == base["optimizer"]["eps"]
                or optimizer["name"] == "adaloss")
        assert point.run_dir == (tmp_path / "out" / "tiny" / "Pendulum-v1" / point.optimizer
                                 / f"b0={format_b0(point.b0)}" / f"seed={point.seed}")
    layouts = {p.optimizer: p.config["optimizer"]["layout"] for p in points}
    assert layouts["adamloss"] == "separate" and layouts["adamloss-joint"] == "joint"


def test_a_variant_with_its_own_eta_starts_from_its_own_first_step(tmp_path):
    path = write_sweep(tmp_path, seeds=[0], b0=[1.0, 100.0], eta=1.0,
                       optimizers={"adam": {"name": "adam", "eta": 0.1}, "eta-0.01": {"name": "adamloss", "eta": 0.01},
                                   "adaloss": {"name": "adaloss", "eta": 0.1}, "adamsqrt": {"name": "adamsqrt"}})
    steps = {(p.optimizer, p.b0): first_step(p.config["optimizer"]) for p in expand(load_sweep(path), tmp_path)}
    assert steps == pytest.approx({("adam", 1.0): 0.1, ("adam", 100.0): 0.01, ("eta-0.01", 1.0): 0.01,
                                   ("eta-0.01", 100.0): 0.001, ("adaloss", 1.0): 0.1, ("adaloss", 100.0): 0.01,
                                   ("adamsqrt", 1.0): 1.0, ("adamsqrt", 100.0): 0.1})
    assert all("eta" not in p.config["optimizer"] for p in expand(load_sweep(path), tmp_path))


def test_conditions_run_every_variant_under_every_condition_with_its_own_overrides(tmp_path, capsys):
    """conditions x variants become the variants <condition>/<variant>, each point with the condition's keys and
    then its variant's own; a variant's override does not leak into the points expanded after it."""
    path = write_sweep(tmp_path, seeds=[0], b0=[1.0e4], conditions={
        "normalized": {"normalize.reward": True}, "raw": {"normalize.reward": False}},
        optimizers={"adam": {"name": "adam"},
                    "rawadv": {"name": "adamloss", "overrides": {"ppo.normalize_advantage": False}},
                    "adamloss": {"name": "adamloss"}})
    points = {p.optimizer: p for p in expand(load_sweep(path), tmp_path / "out")}
    assert sorted(points) == sorted(f"{c}/{v}" for c in ("normalized", "raw") for v in ("adam", "rawadv", "adamloss"))
    for name, point in points.items():
        condition, variant = name.split("/")
        assert point.config["normalize"]["reward"] is (condition == "normalized")
        assert point.config["ppo"]["normalize_advantage"] is (variant != "rawadv")
        assert point.run_dir.parent.parent.parent.name == condition and point.run_dir.parent.parent.name == variant
    assert main(["--config", str(path), "--print-config"]) == 0  # the config as written, conditions and all
    printed = capsys.readouterr().out
    assert "conditions: {normalized: {normalize.reward: true}, raw: {normalize.reward: false}}" in printed


def test_format_b0():
    assert [format_b0(v) for v in (1.0, 100.0, 1e6, 0.01, 2.5e-7)] == ["1", "100", "1e6", "0.01", "2.5e-7"]


def test_dry_run_prints_the_grid_and_writes_nothing(tmp_path, capsys):
    path = write_sweep(tmp_path)
    assert main(["--config", str(path), "--dry-run", "--out-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 optimizers x 2 b0 x 1 seeds)" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown sweep key 'colour'"),
    ({"b0": [0.0, 1.0]}, "b0[0]: expected greater than 0, got 0.0"),
    ({"b0": [1.0, float("inf")]}, "b0[1]: expected a finite number"),
    ({"seeds": []}, "seeds: expected at least 1 item"),
    ({"seeds": [0, 1.5]}, "seeds[1]: expected a valid integer"),
    ({"optimizers": {"x-y": {"name": "rmsprop"}}}, "optimizers.x-y.name: expected 'adam', "),
    ({"optimizers": {"x": {"name": "adam", "lr": 0.1}}}, "optimizers.x: lr and b0 come from the grid"),
    ({"optimizers": {"a/b": {"name": "adam"}}}, "optimizers.a/b: expected a plain folder name, got 'a/b'"),
    ({"optimizers": {"x": {"name": "adam", "alpha": 0.1}}}, "unknown key 'optimizer.alpha' for optimizer adam"),
])
def test_bad_sweep_configs_exit_2_with_one_line(tmp_path, capsys, change, message):
    path = write_sweep(tmp_path, **change)
    assert main(["--config", str(path), "--out-dir", str(tmp_path / "out"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resume_reruns_only_the_missing_run_and_records_divergence(tmp_path, tensorboard):
    # b0 = 1e-16 gives Adam lr = 1e8: it diverges at its first update, and the sweep must go on.
    path = write_sweep(tmp_path, b0=[1.0e-16, 1.0e6])
    sweep, out = load_sweep(path), tmp_path / "out"
    counts = run_sweep(sweep, out, workers=2, progress=False)
    root = out / "tiny"
    results = tree(root)
    assert results["Pendulum-v1/adam/b0=1e-16/seed=0"]["status"] == "diverged"
    assert results["Pendulum-v1/adam/b0=1e-16/seed=0"]["diverged_at"] > 0
    assert results["Pendulum-v1/adam/b0=1e6/seed=0"]["status"] == "finished"
    assert results["Pendulum-v1/adamloss/b0=1e6/seed=0"]["status"] == "finished"
    assert sum(counts.values()) == 4 and set(counts) <= {"finished", "diverged"}
    index = json.loads((root / "sweep.json").read_text())
    assert {p["status"] for p in index["points"]} == {"finished", "diverged"} and len(index["points"]) == 4

    check_report(root, tensorboard)

    victim = root / "Pendulum-v1/adamloss/b0=1e6/seed=0/result.json"
    victim.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("result.json")}
    assert run_sweep(sweep, out, workers=2, progress=False) == counts
    assert victim.exists() and json.loads(victim.read_text())["status"] == "finished"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the others were not touched


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume(tmp_path):
    path = write_sweep(tmp_path, seeds=[0, 1], total_timesteps=1024)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rl_adaloss.sweep", "--config", str(path), "--out-dir", str(out),
               "--workers", "1", "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    root = out / "tiny"
    deadline = time.monotonic() + 240
    try:
        while not list(root.rglob("result.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(root.rglob("result.json")), "no run finished in time"
        time.sleep(3)  # let the next run get going, so the kill lands mid-run
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    done_before = tree(root)
    assert 1 <= len(done_before) < 8
    for result in root.rglob("*.json"):
        json.loads(result.read_text())  # nothing half-written

    counts = run_sweep(load_sweep(path), out, workers=2, progress=False)
    assert counts == {"finished": 8}
    after = tree(root)
    for run, result in done_before.items():
        assert after[run] == result  # finished runs were kept, not redone


@pytest.mark.slow
def test_sigterm_stops_the_sweep_without_starting_the_next_run(tmp_path):
    """SIGTERM to the sweep alone: the running run saves its checkpoint and ends interrupted, and the worker does not
    go on to the run the pool had queued to it (it once ran it to the end while the sweep waited)."""
    path = write_sweep(tmp_path, seeds=[0, 1, 2], b0=[1.0e6], optimizers={"adam": {"name": "adam"}},
                       total_timesteps=100_000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rl_adaloss.sweep", "--config", str(path), "--out-dir", str(out),
               "--workers", "1", "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    root = out / "tiny"
    try:
        assert poll(lambda: list(root.rglob("evaluations.csv")), bool, 240), "no run started in time"
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=180) != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    results = tree(root)
    assert [r["status"] for r in results.values()] == ["interrupted"], results  # the first run only
    assert len(list(root.rglob("checkpoint.pkl"))) == 1


@pytest.mark.slow
def test_two_concurrent_invocations_run_each_point_exactly_once(tmp_path):
    """Two identical sweeps started at once on one folder share the grid: every run is executed by one of them,
    once (one TensorBoard event file, one set of Monitor CSVs), and both end with the whole grid done."""
    path = write_sweep(tmp_path, seeds=[0, 1], total_timesteps=512,
                       quick={"seeds": [0, 1, 2], "total_timesteps": 512})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rl_adaloss.sweep", "--quick", "--config", str(path), "--out-dir", str(out),
               "--workers", "1", "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                 for _ in range(2)]
    errors = [process.communicate(timeout=600)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    root = out / "tiny-quick"
    results = tree(root)
    assert len(results) == 2 * 2 * 3 and {r["status"] for r in results.values()} == {"finished"}
    for run in results:
        run_dir = root / run
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1, run
        # Each Monitor CSV is one run's: a header, then exactly the episodes of 512 / 2 envs = 256 steps each.
        for monitor in (run_dir / "monitor").glob("*.csv"):
            assert len(monitor.read_text().splitlines()) == 2 + 256 // 200, run
    index = json.loads((root / "sweep.json").read_text())
    assert index["counts"] == {"finished": 12}


@pytest.mark.slow
def test_ray_backend_gives_the_same_tree_as_local(tmp_path):
    ray = pytest.importorskip("ray")
    path = write_sweep(tmp_path)
    sweep = load_sweep(path)
    run_sweep(sweep, tmp_path / "local", workers=2, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep(sweep, tmp_path / "ray", workers=2, backend="ray", progress=False)
    finally:
        ray.shutdown()
    local, remote = tmp_path / "local" / "tiny", tmp_path / "ray" / "tiny"

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "tfevents" not in p.name}

    assert files(local) == files(remote)
    for run in tree(local):
        for name in ("evaluations.csv", "config.yaml"):
            assert (local / run / name).read_text() == (remote / run / name).read_text(), f"{run}/{name}"
    strip = lambda results: {k: {f: v for f, v in r.items() if f != "wall_time_s"} for k, r in results.items()}  # noqa: E731
    assert strip(tree(local)) == strip(tree(remote))


def check_report(root: Path, tensorboard) -> None:
    """The report of a real (tiny) sweep: summary.csv agrees with the runs' result.json, and a real TensorBoard server
    serves every run's scalars, the aggregate tags and the custom-scalars layout."""
    import csv

    from rl_adaloss.report import main as report

    assert report([str(root)]) == 0
    for name in ("reward_curves.png", "robustness.png", "step_sizes.png", "accumulator_growth.png",
                 "training_scores.png", "summary.csv", "summary.md", "diagnostics.csv"):
        assert (root / name).stat().st_size > 0, name
    results = tree(root)
    rows = list(csv.DictReader((root / "summary.csv").open()))
    assert len(rows) == 4  # 2 optimizers x 2 b0
    for row in rows:
        runs = [r for path, r in results.items()
                if path.split("/")[1] == row["optimizer"] and path.split("/")[2] == f"b0={format_b0(float(row['b0']))}"]
        assert int(row["n_seeds"]) == len(runs) == 1
        assert int(row["n_diverged"]) == sum(r["status"] == "diverged" for r in runs)
        finished = [r["final_eval_return"] for r in runs if r["status"] == "finished"]
        if finished:
            assert float(row["final_mean"]) == pytest.approx(finished[0], abs=0.01)  # the CSV keeps 2 decimals

    wanted = {"aggregate/adam": "eval_return/b0=1e6", "aggregate/adamloss": "eval_return/b0=1e6"}
    with tensorboard(root) as get:
        tags = poll(lambda: get("/data/plugin/scalars/tags"),
                    lambda t: all(tag in t.get(run, {}) for run, tag in wanted.items()) and len(t) >= 6)
        layout = poll(lambda: get("/data/plugin/custom_scalars/layout"), lambda found: bool(found.get("category")))
    run_tags = {run: set(t) for run, t in tags.items() if run.startswith("Pendulum-v1/")}
    assert len(run_tags) == 4, tags.keys()
    for run, names in run_tags.items():
        assert "eval/mean_reward" in names, run
    assert {"train/actor_effective_lr", "train/critic_b"} <= run_tags["Pendulum-v1/adamloss/b0=1e6/seed=0"]
    assert all(tag in tags[run] for run, tag in wanted.items())  # one TensorBoard run per optimizer, same tag
    assert "accumulator_growth/b0=1e6/actor" in tags["aggregate/adamloss"]
    charts = [chart for category in layout["category"] for chart in category["chart"]]
    assert any(chart.get("multiline", {}).get("tag") == [r"^eval_return/b0=1e6$"] for chart in charts)
