"""python -m rl_adaloss.sweep --engine batched: batches planned from the grid, locks per member, refusals up front,
and (slow) the same tree of files as the sb3 engine, which the report reads unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from rl_adaloss.sweep import BUSY, LOCK_NAME, expand, load_sweep, main, plan_batches, run_batch_points, run_sweep

TINY_BASE = {
    "env": "Pendulum-v1",
    "total_timesteps": 512,
    "n_envs": 2,
    "eval": {"freq": 256, "episodes": 1},
    "checkpoint_freq": 256,
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "optimizer": {"name": "adamloss", "lr": 1.0, "b0": 1.0e6, "betas": [0.9, 0.99], "eps": 1.0e-5},
}


def write_sweep(tmp_path: Path, base: dict | None = None, **changes) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base or TINY_BASE))
    sweep = {"name": "tiny", "base": "base.yaml", "eta": 1.0, "b0": [1.0e4, 1.0e6], "seeds": [0, 1],
             "optimizers": {"adam": {"name": "adam"}, "adamloss": {"name": "adamloss", "layout": "separate"}}}
    sweep.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def labels(batches) -> list[list[str]]:
    return [[p.label for p in batch] for batch in batches]


def test_batches_group_by_variant_and_split_to_about_one_per_worker(tmp_path):
    points = expand(load_sweep(write_sweep(tmp_path)), tmp_path / "out")
    two = plan_batches(points, points, workers=2)
    assert [len(b) for b in two] == [4, 4]
    for batch in two:  # one variant's rule and layout per batch; b0 and seeds are members
        assert len({p.optimizer for p in batch}) == 1
    four = plan_batches(points, points, workers=4)
    assert [len(b) for b in four] == [2, 2, 2, 2]
    assert sorted(p.label for b in four for p in b) == sorted(p.label for p in points)
    assert [len(b) for b in plan_batches(points, points, workers=1)] == [4, 4]  # variants never share a batch
    assert [len(b) for b in plan_batches(points, points, workers=64)] == [1] * 8
    # Variants of one rule and layout that differ in alpha share a batch: alpha is a member's own.
    alphas = write_sweep(tmp_path, optimizers={"a": {"name": "adamloss", "alpha": 1.0},
                                               "b": {"name": "adamloss", "alpha": 0.1}})
    points = expand(load_sweep(alphas), tmp_path / "out2")
    assert [len(b) for b in plan_batches(points, points, workers=1)] == [8]


def test_a_batch_skips_busy_and_ended_members_and_runs_the_rest(tmp_path):
    points = expand(load_sweep(write_sweep(tmp_path, optimizers={"adamloss": {"name": "adamloss"}})), tmp_path / "o")
    batch = points[:3]
    ended = {"status": "finished", "reason": None, "timesteps": 512}
    batch[2].run_dir.mkdir(parents=True)
    (batch[2].run_dir / "result.json").write_text(json.dumps(ended))
    batch[1].run_dir.mkdir(parents=True)
    with FileLock(str(batch[1].run_dir / LOCK_NAME)):
        results = run_batch_points([p.config for p in batch], [str(p.run_dir) for p in batch])
    assert results[0]["status"] == "finished" and results[0]["batch_size"] == 1
    assert results[1]["status"] == BUSY and not (batch[1].run_dir / "config.yaml").exists()
    assert results[2] == ended and not (batch[2].run_dir / "evaluations.csv").exists()


@pytest.mark.parametrize("base_change, extra, message", [
    ({"env": "CartPole-v1"}, {}, "continuous (Box) actions only; CartPole-v1 has Discrete(2)"),
    ({}, {"overrides": {"optimizer.lr": "lin_1.0"}}, "schedules are not supported"),
    ({}, {"overrides": {"policy_kwargs.squash_output": True, "ppo.use_sde": True}}, "squash_output"),
])
def test_what_the_batched_engine_cannot_run_is_refused_up_front(tmp_path, capsys, base_change, extra, message):
    base = {**TINY_BASE, **base_change}
    if base["env"] == "CartPole-v1":
        base["optimizer"] = {"name": "adamloss", "lr": 1.0, "b0": 1.0e6}
    path = write_sweep(tmp_path, base=base, optimizers={"adamloss": {"name": "adamloss"}}, **extra)
    assert main(["--config", str(path), "--engine", "batched", "--out-dir", str(tmp_path / "out"),
                 "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --engine batched: optimizers.adamloss: ")
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_dry_run_prints_the_batches(tmp_path, capsys):
    path = write_sweep(tmp_path)
    assert main(["--config", str(path), "--dry-run", "--engine", "batched", "--workers", "2",
                 "--out-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "batch 0: 4 members: adam b0=10000 seed=0" in out and "2 batches for 2 workers" in out
    assert not (tmp_path / "out").exists()


def test_engine_is_sb3_by_default_and_named_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--engine {sb3,batched}" in out and "sb3 (default, the reference)" in out


@pytest.mark.slow
def test_batched_engine_writes_the_sb3_engines_tree_and_the_report_reads_it(tmp_path):
    """2 variants x 2 b0 x 2 seeds, 512 steps: the same run directories, statuses, evaluation steps and output
    files with either engine; the report runs on the batched sweep; a second run skips every point."""
    from rl_adaloss.report import main as report

    sweep = load_sweep(write_sweep(tmp_path))
    assert run_sweep(sweep, tmp_path / "sb3", workers=2, progress=False) == {"finished": 8}
    assert run_sweep(sweep, tmp_path / "batched", workers=2, progress=False, engine="batched") == {"finished": 8}
    sb3, batched = tmp_path / "sb3" / "tiny", tmp_path / "batched" / "tiny"

    def runs(root: Path) -> dict[str, dict]:
        return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("result.json")}

    def outputs(run_dir: Path) -> set[str]:
        names = {"config.yaml", "evaluations.csv", "evaluations.npz", "result.json", "model.zip", "vecnormalize.pkl",
                 "best_model.zip", "best_vecnormalize.pkl", "wall_time.json"}
        found = {p.name for p in run_dir.iterdir() if p.name in names}
        found |= {f"monitor/{p.name}" for p in (run_dir / "monitor").glob("*.csv")}
        return found | {"events"} if list(run_dir.glob("events.out.tfevents.*")) else found

    assert runs(sb3).keys() == runs(batched).keys() and len(runs(sb3)) == 8
    for run, result in runs(batched).items():
        assert result["status"] == runs(sb3)[run]["status"] == "finished" and result["engine"] == "batched"
        assert outputs(sb3 / run) == outputs(batched / run), run
        steps = [[r["timesteps"] for r in csv.DictReader((root / run / "evaluations.csv").open())]
                 for root in (sb3, batched)]
        assert steps[0] == steps[1] == ["0", "256", "512"]
        assert yaml.safe_load((sb3 / run / "config.yaml").read_text()) == \
            yaml.safe_load((batched / run / "config.yaml").read_text())
    index = json.loads((batched / "sweep.json").read_text())
    assert index["counts"] == {"finished": 8}
    assert report([str(batched)]) == 0
    rows = list(csv.DictReader((batched / "summary.csv").open()))
    assert len(rows) == 4 and all(int(r["n_seeds"]) == 2 for r in rows)
    stamps = {p: p.stat().st_mtime_ns for p in batched.rglob("result.json")}
    assert run_sweep(sweep, tmp_path / "batched", workers=2, progress=False, engine="batched") == {"finished": 8}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_batched_sweep_shows_its_env_steps(tmp_path, capfd):
    """A batch's runs end together, so the progress line also counts the running batches' env-steps: each batch
    writes <sweep>/.batches/<id>.progress after every update, and the sweep shows their sum (here all of it)."""
    sweep = load_sweep(write_sweep(tmp_path, b0=[1.0e6], optimizers={"adam": {"name": "adam"}}))
    assert run_sweep(sweep, tmp_path / "out", workers=1, progress=True, engine="batched") == {"finished": 2}
    progress = list((tmp_path / "out" / "tiny" / ".batches").glob("*.progress"))
    assert len(progress) == 1
    assert json.loads(progress[0].read_text()) == {"timesteps": 512, "members": 2, "total_timesteps": 512}
    assert "env_steps=1.02e+03/1.02e+03" in capfd.readouterr().err


def _evaluations(root: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(root)): p.read_text() for p in sorted(root.rglob("evaluations.csv"))}


@pytest.mark.slow
def test_a_killed_batched_sweep_resumes_its_batch_from_the_checkpoint_bit_exact(tmp_path):
    """kill -9 mid-batch, then the same command: the batch resumes from its periodic checkpoint and every run's
    evaluations.csv is the uninterrupted sweep's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = write_sweep(tmp_path, total_timesteps=4096, optimizers={"adamloss": {"name": "adamloss"}})
    sweep = load_sweep(path)
    assert run_sweep(sweep, tmp_path / "ref", workers=1, progress=False, engine="batched") == {"finished": 4}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rl_adaloss.sweep", "--config", str(path), "--out-dir", str(out),
               "--workers", "1", "--engine", "batched", "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while not list((out / "tiny" / ".batches").glob("*.pkl")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list((out / "tiny" / ".batches").glob("*.pkl")), "no checkpoint in time"
        time.sleep(1.0)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert len(list((out / "tiny").rglob("result.json"))) < 4, "the batch ended before the kill"
    assert run_sweep(sweep, out, workers=1, progress=False, engine="batched") == {"finished": 4}
    assert _evaluations(out / "tiny") == _evaluations(tmp_path / "ref" / "tiny")


@pytest.mark.slow
def test_ray_backend_runs_the_same_batches(tmp_path):
    ray = pytest.importorskip("ray")
    sweep = load_sweep(write_sweep(tmp_path))
    run_sweep(sweep, tmp_path / "local", workers=2, progress=False, engine="batched")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        counts = run_sweep(sweep, tmp_path / "ray", workers=2, backend="ray", progress=False, engine="batched")
    finally:
        ray.shutdown()
    assert counts == {"finished": 8}
    assert _evaluations(tmp_path / "ray" / "tiny") == _evaluations(tmp_path / "local" / "tiny")
