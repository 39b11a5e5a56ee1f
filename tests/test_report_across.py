"""Several sweeps in one report: per-sweep tables in each folder, rliable's aggregates across tasks in --out.

Two small fake sweeps (test_report's): task A is the fake sweep on Pendulum-v1; task B the same sweep renamed to
CartPoleSwingUp-v1 with every return mapped by r -> 10 r + 5000 (an affine map that min-max normalisation undoes) and
one seed of Adam at b0=1e4 not run. Normalised over all its runs (worst -1200, best -150), task A's final returns
are (r + 1200) / 1050, and so are task B's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_report import make_fake_sweep

from rl_adaloss.errors import UsageError
from rl_adaloss.report import across, aggregation, cli, runs


def affine_copy(root: Path, env: str) -> Path:
    """The fake sweep as another task: its env renamed, returns r -> 10 r + 5000, Adam b0=1e4 seed 2 not run."""
    sweep_dir = make_fake_sweep(root)
    index = json.loads((sweep_dir / "sweep.json").read_text())
    for point in index["points"]:
        point["env"] = env
        run_dir = sweep_dir / point["run_dir"]
        if (point["optimizer"], point["b0"], point["seed"]) == ("adam", 1e4, 2):
            point.update(status="not run", reason=None)
            (run_dir / "result.json").unlink()
            (run_dir / "evaluations.csv").unlink()
            continue
        if not (run_dir / "evaluations.csv").is_file():
            continue
        with (run_dir / "evaluations.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            row["mean_reward"] = 10 * float(row["mean_reward"]) + 5000
        with (run_dir / "evaluations.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (sweep_dir / "sweep.json").write_text(json.dumps(index))
    return sweep_dir


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("across")
    first, second = make_fake_sweep(root / "a"), affine_copy(root / "b", "CartPoleSwingUp-v1")
    out = root / "out"
    assert cli.main([str(first), str(second), "--out", str(out), "--reps", "50"]) == 0
    return first, second, out


def across_rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "across_tasks.csv").open() as handle:
        return {(row["optimizer"], row["b0"]): row for row in csv.DictReader(handle)}


def test_each_sweep_gets_its_own_report_and_out_gets_the_aggregates(two_sweeps):
    first, second, out = two_sweeps
    for sweep_dir in (first, second):
        for name in cli.OUTPUTS:
            assert (sweep_dir / name).stat().st_size > 0, (sweep_dir, name)
    for name in cli.ACROSS_OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for name in ("across_tasks_iqm.png", "performance_profiles.png", "probability_of_improvement.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the per-sweep table of the second sweep is its own: its env, its scale
    with (second / "summary.csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if (r["optimizer"], r["b0"]) == ("adamloss", "1"))
    assert row["env"] == "CartPoleSwingUp-v1" and float(row["final_mean"]) == pytest.approx(10 * -200 + 5000)


def test_the_aggregates_are_on_normalised_returns(two_sweeps):
    rows = across_rows(two_sweeps[2])
    assert set(rows) == {("adam", "1"), ("adamloss", "1"), ("adam", "10000"), ("adamloss", "10000")}
    # adamloss b0=1: normalised (1000, 990, 1010)/1050 in both tasks; the IQM of the 6 trims one from each end
    assert float(rows[("adamloss", "1")]["iqm"]) == pytest.approx(1000 / 1050)
    assert float(rows[("adamloss", "1")]["iqm_ci_low"]) <= 1000 / 1050 <= float(rows[("adamloss", "1")]["iqm_ci_high"])
    # adam b0=1e4: task B has 2 runs with data, so task A keeps its first 2 seeds (-150, -160): one run dropped
    adam = rows[("adam", "10000")]
    assert (adam["n_tasks"], adam["runs_per_task"], adam["runs_dropped"]) == ("2", "2", "1")
    assert float(adam["iqm"]) == pytest.approx(np.mean([1050, 1040]) / 1050)
    # probability of improvement over Adam: every adamloss run above every adam run at b0=1, below at b0=1e4
    assert rows[("adamloss", "1")]["reference"] == "adam" and rows[("adam", "1")]["reference"] == ""
    assert float(rows[("adamloss", "1")]["probability_of_improvement"]) == 1.0
    assert float(rows[("adamloss", "10000")]["probability_of_improvement"]) == 0.0
    text = (two_sweeps[2] / "across_tasks.md").read_text()
    assert "min-max normalised over all its runs" in text
    assert "Pendulum-v1 (final return -1200.0 .. -150.0), CartPoleSwingUp-v1 (final return -7000.0 .. 3500.0)" in text
    assert "at b0=1, adamloss is likely better than adam" in text and "at b0=1e4, adamloss is likely worse" in text
    assert "1 runs with data were left out" in text


def test_probability_of_improvement_by_hand_and_without_rliable(tmp_path: Path, monkeypatch):
    report = aggregation.aggregate(*runs.load_runs(make_fake_sweep(tmp_path)), reps=20)
    x = np.array([[0.1, 0.9], [0.5, 0.9], [0.9, 0.9]])
    y = np.array([[0.3, 0.9], [0.3, 0.9]])
    # task 1: x beats y in 4 of 6 pairs; task 2: all ties, 0.5. rliable and the numpy version agree.
    assert across._poi(x, y)[0] == pytest.approx((4 / 6 + 0.5) / 2)
    assert across._poi_numpy(x, y)[0] == pytest.approx((4 / 6 + 0.5) / 2)

    def broken(*args, **kwargs):
        raise ImportError("no module named arch")

    import rliable.library

    monkeypatch.setattr(rliable.library, "get_interval_estimates", broken)
    result = across.across_tasks([("one", report)], reps=50)
    assert (result.bootstrap, result.fallback) == ("numpy", "ImportError: no module named arch")
    cell = result.cell("adamloss", 1.0)
    assert cell.iqm == pytest.approx(1000 / 1050) and cell.iqm_low <= cell.iqm <= cell.iqm_high
    assert cell.poi == 1.0 and cell.profile[0] == 1.0 and cell.profile_low is not None
    assert [t.name for t in result.tasks] == ["Pendulum-v1"]


def test_several_sweeps_need_out_and_distinct_folders(tmp_path: Path, capsys):
    first, second = make_fake_sweep(tmp_path / "a"), make_fake_sweep(tmp_path / "b")
    assert cli.main([str(first), str(second)]) == 2
    assert capsys.readouterr().err == ("error: --out: required with more than one sweep (the folder for the "
                                       "aggregates across tasks)\n")
    assert cli.main([str(first), str(first), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert cli.main([str(first), str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (first / "summary.md").exists()  # every folder checked before anything is written
    with pytest.raises(UsageError, match="named twice"):
        cli.write_reports([first, first], tmp_path / "out")


def test_tasks_with_the_same_env_are_named_by_their_sweep(tmp_path: Path):
    one = aggregation.aggregate(*runs.load_runs(make_fake_sweep(tmp_path / "a")), reps=10)
    tasks = across.tasks_of([("a", one), ("b", one), ("b", one)])
    assert [t.name for t in tasks] == ["a:Pendulum-v1", "b:Pendulum-v1", "b:Pendulum-v1 (2)"]
