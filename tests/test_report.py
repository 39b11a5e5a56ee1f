"""The sweep report on a small hand-made sweep: every number checked against values worked out by hand.

The fake sweep: Pendulum-v1, adam and adamloss, b0 in {1, 1e4}, seeds 0-2, 1000 steps.

    b0=1    adamloss  finals -200, -210, -190                          (mean -200)   clearly better
            adam      finals -1000, -1100, and seed 2 diverged at 700
                      after evals -1200 @0, -900 @500 -> counts -1200   (mean -1100)
    b0=1e4  adamloss  finals -800, -820; seed 2 never run               (mean -810)   clearly worse
            adam      finals -150, -160, -170                           (mean -160)

Seed 1 of adam at b0=1 is evaluated at 0, 400, 1000 instead of 0, 500, 1000.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import poll

from rl_adaloss.errors import UsageError
from rl_adaloss.report import aggregation, cli, runs, stats
from rl_adaloss.report import tensorboard as tb
from rl_adaloss.report.text import verdicts

ENV = "Pendulum-v1"
TOTAL = 1000
EVAL_STEPS = [0, 500, 1000]

# (optimizer, b0 label, seed) -> (status, steps, returns, diverged_at); None = never run.
RUNS = {
    ("adamloss", "1", 0): ("finished", EVAL_STEPS, [-1300, -600, -200], None),
    ("adamloss", "1", 1): ("finished", EVAL_STEPS, [-1250, -500, -210], None),
    ("adamloss", "1", 2): ("finished", EVAL_STEPS, [-1200, -400, -190], None),
    ("adam", "1", 0): ("finished", EVAL_STEPS, [-1300, -1100, -1000], None),
    ("adam", "1", 1): ("finished", [0, 400, 1000], [-1250, -1150, -1100], None),
    ("adam", "1", 2): ("diverged", [0, 500], [-1200, -900], 700),
    ("adamloss", "1e4", 0): ("finished", EVAL_STEPS, [-1300, -1000, -800], None),
    ("adamloss", "1e4", 1): ("finished", EVAL_STEPS, [-1250, -1000, -820], None),
    ("adamloss", "1e4", 2): None,
    ("adam", "1e4", 0): ("finished", EVAL_STEPS, [-1300, -500, -150], None),
    ("adam", "1e4", 1): ("finished", EVAL_STEPS, [-1250, -450, -160], None),
    ("adam", "1e4", 2): ("finished", EVAL_STEPS, [-1200, -400, -170], None),
}
SCHEDULES = {"adam": "adam", "adamloss": "adamloss"}


def lr_schedule(optimizer: str, b0: float, steps: list[int]) -> list[float]:
    """Adam: constant 1/sqrt(b0); AdamLoss: decaying from 1/sqrt(b0)."""
    first = 1 / np.sqrt(b0)
    return [first if optimizer == "adam" else first / (1 + s / 500) for s in steps]


def growing_b(rule: str, b0: float, step: float) -> float | str:
    """The b column of the fake runs: none for Adam, else b0 * (1 + step/500)^2."""
    return "" if rule == "adam" else b0 * (1 + step / 500) ** 2


def write_fake_sweep(sweep_dir: Path, sweep: dict, points_spec: dict, b_column=growing_b,
                     mimics: dict[str, str] | None = None) -> Path:
    """A sweep folder: ``sweep.json`` with ``sweep`` and a point per key of ``points_spec`` ((variant, b0 label,
    seed) -> (status, eval steps, returns, diverged_at), or None: never run), and each run's files; ``b_column(rule,
    b0, step)`` gives the actor's and critic's b at each evaluation. Step sizes and b follow the variant's rule
    (from ``sweep``), or the rule ``mimics`` names for it."""
    points, counts = [], {}
    for (variant, label, seed), spec in points_spec.items():
        b0 = float(label)
        rule = sweep["optimizers"][variant]["name"]
        rule = (mimics or {}).get(rule, rule)
        rel = f"{ENV}/{variant}/b0={label}/seed={seed}"
        status = spec[0] if spec else "not run"
        counts[status] = counts.get(status, 0) + 1
        points.append(dict(env=ENV, optimizer=variant, b0=b0, seed=seed, run_dir=rel, status=status,
                           reason="a loss became NaN or infinite" if status == "diverged" else None))
        if spec is None:
            continue
        status, steps, returns, diverged_at = spec
        run_dir = sweep_dir / rel
        run_dir.mkdir(parents=True)
        lrs = lr_schedule(rule, b0, steps)
        with (run_dir / "evaluations.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timesteps", "mean_reward", "std_reward", "actor_effective_lr", "critic_effective_lr",
                             "actor_b", "critic_b"])
            for step, ret, lr in zip(steps, returns, lrs):
                b = b_column(rule, b0, step)
                writer.writerow([step, ret, 10.0, lr, lr / 2, b, b])
        result = dict(status=status, reason=points[-1]["reason"], timesteps=diverged_at or TOTAL,
                      total_timesteps=TOTAL, final_eval_return=returns[-1], best_eval_return=max(returns),
                      wall_time_s=1.0)
        if diverged_at is not None:
            result["diverged_at"] = diverged_at
        (run_dir / "result.json").write_text(json.dumps(result))
        (run_dir / "config.yaml").write_text(f"env: {ENV}\nseed: {seed}\n")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(dict(sweep=sweep, points=points, counts=counts)))
    return sweep_dir


def make_fake_sweep(root: Path, rename: dict[str, str] | None = None) -> Path:
    """The fake sweep; ``rename`` gives its two variants (and their rules) other names, e.g. adam -> sgd."""
    rename = rename or {}
    adam, adamloss = rename.get("adam", "adam"), rename.get("adamloss", "adamloss")
    sweep = dict(name="fake", base="/nowhere/base.yaml", total_timesteps=TOTAL, eta=1.0, b0=[1.0, 1.0e4],
                 seeds=[0, 1, 2], optimizers={adam: {"name": adam}, adamloss: {"name": adamloss, "layout": "separate"}})
    points = {(rename.get(optimizer, optimizer), label, seed): spec for (optimizer, label, seed), spec in RUNS.items()}
    return write_fake_sweep(root / "fake", sweep, points, mimics={rename.get(n, n): n for n in ("adam", "adamloss")})


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory) -> Path:
    sweep_dir = make_fake_sweep(tmp_path_factory.mktemp("sweeps"))
    assert cli.main([str(sweep_dir), "--reps", "300"]) == 0
    return sweep_dir


def summary(sweep_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as handle:
        return {(row["optimizer"], row["b0"]): row for row in csv.DictReader(handle)}


# -- resampling and scoring, by hand -------------------------------------------------------------------------------

def test_resampling_onto_a_common_step_axis():
    grid = aggregation.common_steps([np.array([0, 10, 30]), np.array([0, 20, 30]), np.array([])])
    assert grid.tolist() == [0, 10, 20, 30]
    values = aggregation.resample(np.array([0, 10, 30]), np.array([0.0, 1.0, 3.0]), np.array([0, 5, 10, 20, 30, 40]))
    assert values.tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]  # linear inside, held after the last evaluation
    assert aggregation.resample(np.array([10, 20]), np.array([4.0, 6.0]), np.array([0, 15])).tolist() == [4.0, 5.0]


def test_a_diverged_run_counts_as_its_minimum_after_its_last_evaluation():
    run = runs.Run(ENV, "adam", 1.0, 2, "x", "diverged", diverged_at=700, schedule="adam",
                   steps=np.array([0.0, 500.0]), returns=np.array([-1200.0, -900.0]))
    grid = np.array([0.0, 400.0, 500.0, 1000.0])
    assert aggregation.score_curve(run, grid).tolist() == [-1200.0, -960.0, -900.0, -1200.0]
    assert run.final == -1200.0
    finished = runs.Run(ENV, "adam", 1.0, 0, "x", "finished", schedule="adam",
                        steps=np.array([0.0, 500.0, 1000.0]), returns=np.array([-1300.0, -1100.0, -1000.0]))
    curve = aggregation.score_curve(finished, grid)
    assert curve.tolist() == [-1300.0, -1140.0, -1100.0, -1000.0]
    # AUC: the mean over [0, 1000] of the piecewise-linear curve, (-1200 * 0.5 + -1050 * 0.5)
    assert aggregation.area_under_curve(curve, grid) == pytest.approx(-1125.0)


def test_bootstrap_ci_brackets_the_statistic():
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [100.0, 50.0]])
    point, low, high = stats.bootstrap_ci(scores, "IQM", reps=500)[:3]
    assert point.tolist() == pytest.approx([3.0, 30.0])  # middle half of 5 values: 2, 3, 4 (20, 30, 40)
    assert np.all(low <= point) and np.all(point <= high) and np.all(low >= scores.min(0))
    one = stats.bootstrap_ci(np.array([5.0]), "mean", reps=50)
    assert [float(a[0]) for a in one[:3]] == [5.0, 5.0, 5.0]
    empty = stats.bootstrap_ci(np.zeros((0, 1)), "mean", reps=50)
    assert all(np.isnan(a[0]) for a in empty[:3])


def test_bootstrap_ci_says_which_bootstrap_computed_it(monkeypatch):
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    assert stats.bootstrap_ci(scores, "mean", reps=50).bootstrap == "rliable"
    numpy = stats.bootstrap_ci(scores, "mean", reps=50, bootstrap="numpy")
    assert (numpy.bootstrap, numpy.fallback) == ("numpy", "")
    assert stats.bootstrap_ci(np.zeros((0, 1)), "mean").bootstrap is None  # nothing to resample
    with pytest.raises(ValueError, match="bootstrap"):
        stats.bootstrap_ci(scores, "mean", bootstrap="scipy")

    def broken(*args):
        raise RuntimeError("arch is broken\nsecond line")

    monkeypatch.setattr(stats, "_bootstrap_rliable", broken)
    fallback = stats.bootstrap_ci(scores, "mean", reps=50)
    assert (fallback.bootstrap, fallback.fallback) == ("numpy", "RuntimeError: arch is broken")
    assert fallback.low[0] <= 2.5 <= fallback.high[0]


def test_the_bootstrap_seed_decides_the_ci_and_leaves_numpys_generator_alone():
    # rliable draws from numpy's global generator: the same seed must still give the same CI, whatever its state.
    scores = np.array([[-200.0], [-210.0], [-190.0], [-1000.0], [-1100.0]])
    np.random.seed(1)
    first = stats.bootstrap_ci(scores, "mean", reps=100, seed=3)
    after = np.random.random()
    np.random.seed(2)
    second = stats.bootstrap_ci(scores, "mean", reps=100, seed=3)
    assert (first.low, first.high) == (second.low, second.high)
    np.random.seed(1)
    assert np.random.random() == after  # the caller's generator is as it was


# -- the report on the fake sweep ------------------------------------------------------------------------------------

def test_report_writes_every_file(fake_sweep: Path):
    for name in cli.OUTPUTS:
        assert (fake_sweep / name).stat().st_size > 0, name
    for name in ("reward_curves.png", "robustness.png", "step_sizes.png"):
        assert (fake_sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(fake_sweep.glob(".*tmp*")) and not list(fake_sweep.glob(".aggregate-*"))


def test_summary_csv_matches_the_hand_computed_numbers(fake_sweep: Path):
    rows = summary(fake_sweep)
    assert set(rows) == {("adam", "1"), ("adamloss", "1"), ("adam", "10000"), ("adamloss", "10000")}
    expected = {  # optimizer, b0 -> (n_used, n_finished, n_diverged, n_not_run, mean final)
        ("adamloss", "1"): (3, 3, 0, 0, -200.0),
        ("adam", "1"): (3, 2, 1, 0, (-1000 - 1100 - 1200) / 3),
        ("adamloss", "10000"): (2, 2, 0, 1, -810.0),
        ("adam", "10000"): (3, 3, 0, 0, -160.0),
    }
    for key, (used, finished, diverged, not_run, final) in expected.items():
        row = rows[key]
        assert row["statistic"] == "mean"  # 3 seeds: under 4, so the mean
        assert (int(row["n_seeds"]), int(row["n_used"]), int(row["n_finished"]), int(row["n_diverged"]),
                int(row["n_not_run"]), int(row["n_failed"])) == (3, used, finished, diverged, not_run, 0)
        assert float(row["final_mean"]) == pytest.approx(final, rel=1e-5)
        assert float(row["final_iqm"]) == pytest.approx(final, rel=1e-5)  # IQM of <= 3 values trims nothing
        assert float(row["final_ci_low"]) <= float(row["final_mean"]) <= float(row["final_ci_high"])
    # The lowest resample means are -1200 (all three at -1200, 1/27 of resamples) and -1166.67 (4/27 more): a 2.5%
    # percentile lands on one of them, depending on the bootstrap's draws.
    assert -1200.0 - 1e-6 <= float(rows[("adam", "1")]["final_ci_low"]) <= -1166.66
    assert float(rows[("adam", "10000")]["initial_step"]) == pytest.approx(0.01)
    # AUC of adamloss b0=1 seed 0 on the common axis {0, 400, 500, 1000}: piecewise linear, so exact trapezoids
    auc = [np.mean([(a + b) / 2, (b + c) / 2]) for a, b, c in ([-1300, -600, -200], [-1250, -500, -210],
                                                                [-1200, -400, -190])]
    assert float(rows[("adamloss", "1")]["auc_mean"]) == pytest.approx(np.mean(auc), rel=1e-5)


def test_summary_paragraph_reflects_the_data(fake_sweep: Path):
    text = (fake_sweep / "summary.md").read_text()
    paragraph = text.split("## What the numbers say")[1].split("\n\n")[1]
    b0_1 = paragraph.split("At b0=1 ")[1].split("At b0=")[0]
    b0_1e4 = paragraph.split("At b0=1e4 ")[1]
    assert "adamloss beat adam" in b0_1 and "lost" not in b0_1
    assert "1 diverged" in b0_1
    assert "adamloss lost to adam" in b0_1e4.split(".")[0] + b0_1e4
    assert "beat" not in b0_1e4.split("smallest spread")[0]
    # spread of the mean final return across b0: adam 940 (-1100 .. -160), adamloss 610 (-810 .. -200)
    assert "adamloss has the smallest spread" in paragraph and "610.0" in paragraph and "adam 940.0" in paragraph
    assert "adamloss b0=1e4 seed=2: not run" in text  # every grid point accounted for
    assert "adam b0=1 seed=2: diverged at step 700" in text


def test_paragraph_says_no_evidence_with_one_seed(tmp_path: Path):
    sweep_dir = make_fake_sweep(tmp_path)
    index = json.loads((sweep_dir / "sweep.json").read_text())
    index["sweep"]["seeds"] = [0]
    index["points"] = [p for p in index["points"] if p["seed"] == 0]
    (sweep_dir / "sweep.json").write_text(json.dumps(index))
    sweep, loaded = runs.load_runs(sweep_dir)
    paragraph = " ".join(verdicts(aggregation.aggregate(sweep, loaded, reps=50)))
    assert "beat" not in paragraph and "lost" not in paragraph
    assert "no evidence either way" in paragraph
    cli.write_report(sweep_dir, reps=50)
    rows = summary(sweep_dir)
    assert rows[("adam", "1")]["final_mean"] == "-1000" and rows[("adam", "1")]["final_ci_low"] == ""
    assert "no CIs at all" in (sweep_dir / "summary.md").read_text()


def test_the_verdict_names_the_sweeps_own_variants(tmp_path: Path):
    # No Adam variant: the first variant (sgd) is the reference, adaloss the challenger; same numbers as adam/adamloss.
    sweep_dir = make_fake_sweep(tmp_path, rename={"adam": "sgd", "adamloss": "adaloss"})
    report = aggregation.aggregate(*runs.load_runs(sweep_dir), reps=50)
    paragraph = " ".join(verdicts(report))
    assert "adaloss beat sgd" in paragraph and "adaloss lost to sgd" in paragraph
    assert "adam" not in paragraph.lower()
    cli.write_report(sweep_dir, reps=50)
    assert "adam" not in (sweep_dir / "summary.md").read_text().lower()
    # named by the caller, the other way round
    swapped = " ".join(verdicts(report, challengers=["sgd"], references=["adaloss"]))
    assert "sgd lost to adaloss" in swapped and "sgd beat adaloss" in swapped
    with pytest.raises(UsageError, match="no variant adam in this sweep; it has sgd, adaloss"):
        verdicts(report, references=["adam"])


def test_summary_says_which_bootstrap_computed_the_cis(tmp_path: Path, monkeypatch, capsys):
    sweep_dir = make_fake_sweep(tmp_path)
    cli.write_report(sweep_dir, reps=50, bootstrap="numpy")
    text = (sweep_dir / "summary.md").read_text()
    assert "computed with numpy." in text and "rliable" not in text

    def broken(*args):
        raise ImportError("no module named arch")

    monkeypatch.setattr(stats, "_bootstrap_rliable", broken)
    cli.write_report(sweep_dir, reps=50)
    assert "because rliable could not run here (ImportError: no module named arch)" in (
        sweep_dir / "summary.md").read_text()
    assert capsys.readouterr().err.count("rliable is unusable") == 1  # said once, not once per CI


def test_a_sweep_with_nothing_run_yet_is_reported_not_an_error(tmp_path: Path):
    sweep_dir = make_fake_sweep(tmp_path)
    index = json.loads((sweep_dir / "sweep.json").read_text())
    for point in index["points"]:
        point.update(status="not run", reason=None)
        for name in ("result.json", "evaluations.csv"):
            (sweep_dir / point["run_dir"] / name).unlink(missing_ok=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(index))
    cli.write_report(sweep_dir, reps=20)
    rows = summary(sweep_dir)
    assert len(rows) == 4 and all(row["n_not_run"] == "3" and row["final_mean"] == "" for row in rows.values())
    text = (sweep_dir / "summary.md").read_text()
    assert text.count(": not run") == 12 and "cannot be compared" in text


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_events_hold_the_tags_and_the_layout(fake_sweep: Path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    # re-running replaces the aggregate events instead of adding to them
    tb.write_tensorboard(aggregation.aggregate(*runs.load_runs(fake_sweep), reps=50), fake_sweep)
    # one TensorBoard run per optimizer, with the same tags: TensorBoard colours them apart
    assert sorted(p.name for p in (fake_sweep / "aggregate").iterdir()) == ["adam", "adamloss"]
    assert not list((fake_sweep / "aggregate").glob("events.out.tfevents.*"))
    adam, adamloss = _events(fake_sweep / "aggregate" / "adam"), _events(fake_sweep / "aggregate" / "adamloss")
    for acc in (adam, adamloss):
        assert len(list(Path(acc.path).glob("events.out.tfevents.*"))) == 1
        tags = set(acc.Tags()["scalars"])
        for b0 in ("1", "1e4"):
            assert f"eval_return/b0={b0}" in tags
            assert f"step_size/b0={b0}/actor" in tags
            assert f"step_size/b0={b0}/critic" in tags
            assert f"step_size_log10_change/b0={b0}/actor" in tags
    curve = adam.Scalars("eval_return/b0=1")
    assert [e.step for e in curve] == [0, 400, 500, 1000]
    # mean over seeds at 1000: -1000, -1100 and the diverged run's minimum -1200
    assert curve[-1].value == pytest.approx(-1100.0)
    assert adam.Scalars("step_size/b0=1e4/actor")[0].value == pytest.approx(0.01)
    assert adam.Scalars("step_size/b0=1e4/critic")[0].value == pytest.approx(0.005)
    # log10 of the step size over the shared first step 1/sqrt(b0): Adam 0 (critic: half the step, log10(0.5));
    # the fake AdamLoss decays as 1/(1 + step/500), so at 1000 it is log10(1/3)
    assert adam.Scalars("step_size_log10_change/b0=1e4/actor")[-1].value == pytest.approx(0.0, abs=1e-6)
    assert adam.Scalars("step_size_log10_change/b0=1e4/critic")[0].value == pytest.approx(np.log10(0.5))
    assert adamloss.Scalars("step_size_log10_change/b0=1e4/actor")[-1].value == pytest.approx(np.log10(1 / 3))
    # the fake accumulator b = b0 (1 + step/500)^2 with b0 read from the sweep's pairing: growth 8 at step 1000
    assert adamloss.Scalars("accumulator_growth/b0=1/critic")[-1].value == pytest.approx(8.0)
    assert "accumulator_growth/b0=1/actor" not in set(adam.Tags()["scalars"])  # Adam has no accumulator

    assert "custom_scalars__config__" in adam.PluginTagToContent("custom_scalars")
    assert "custom_scalars__config__" not in adamloss.Tags()["tensors"]  # written once
    layout = layout_pb2.Layout.FromString(adam.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    categories = {c.title: c for c in layout.category}
    returns = categories["eval return by b0 (seed aggregate)"]
    assert len(returns.chart) == 2
    first = returns.chart[0]
    assert "b0=1 " in first.title
    assert list(first.multiline.tag) == [r"^eval_return/b0=1$"]  # one tag, one line per optimizer's run
    steps = categories["step size by b0: log10(η_t / η0), 0 = the first step"].chart
    assert [list(c.multiline.tag) for c in steps] == [[rf"^step_size_log10_change/b0={b0}/{role}$"]
                                                      for b0 in ("1", "1e4") for role in ("actor", "critic")]
    growth = categories["accumulator growth by b0: b_t/b0 − 1 (under 0.1: ≡ fixed step)"].chart
    assert list(growth[1].multiline.tag) == [r"^accumulator_growth/b0=1/critic$"]
    margin = categories["eval return by b0, with 95% CI"].chart[0].margin.series[0]
    assert (margin.value, margin.lower, margin.upper) == (
        "eval_return/b0=1", "eval_return_ci/b0=1/low", "eval_return_ci/b0=1/high")
    assert {margin.lower, margin.upper} <= set(adam.Tags()["scalars"])
    assert "training-episode return by b0 (seed aggregate)" not in categories  # the fake sweep has no monitor files


def test_a_single_seed_dashboard_has_no_empty_margin_charts(tmp_path: Path):
    sweep_dir = make_fake_sweep(tmp_path)
    index = json.loads((sweep_dir / "sweep.json").read_text())
    index["sweep"]["seeds"] = [0]
    index["points"] = [p for p in index["points"] if p["seed"] == 0]
    (sweep_dir / "sweep.json").write_text(json.dumps(index))
    report = aggregation.aggregate(*runs.load_runs(sweep_dir), reps=20)
    layout = tb.custom_scalars_layout(report)
    assert "eval return by b0, with 95% CI" not in layout  # one seed, no CI: TensorBoard would say "Missing Tags"
    assert len(layout["eval return by b0 (seed aggregate)"]) == 2


def test_cli_missing_dir_exits_2_with_one_line(tmp_path: Path):
    missing = tmp_path / "no-such-sweep"
    done = subprocess.run([sys.executable, "-m", "rl_adaloss.report", str(missing)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and str(missing) in done.stderr and done.stdout == ""


def test_cli_folder_without_sweep_json_exits_2(tmp_path: Path, capsys):
    assert cli.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.json" in err


def test_cli_bad_reps_exits_2_with_one_line(tmp_path: Path, capsys):
    assert cli.main([str(tmp_path), "--reps", "0"]) == 2
    assert capsys.readouterr().err == "error: --reps: expected an integer >= 1, got 0\n"


# -- a real TensorBoard server on the fake sweep -------------------------------------------------------------------

@pytest.mark.slow
def test_tensorboard_serves_the_aggregate_tags_and_the_layout(fake_sweep: Path, tensorboard):
    from urllib.parse import quote

    expected = {"aggregate/adam": {"eval_return/b0=1", "step_size_log10_change/b0=1/actor"},
                "aggregate/adamloss": {"eval_return/b0=1e4", "accumulator_growth/b0=1/actor"}}
    with tensorboard(fake_sweep) as get:
        tags = poll(lambda: get("/data/plugin/scalars/tags"),
                    lambda t: all(want <= set(t.get(run, {})) for run, want in expected.items()))
        layout = poll(lambda: get("/data/plugin/custom_scalars/layout"), lambda got: bool(got.get("category")))
        titles = [category["title"] for category in layout["category"]]
        assert "eval return by b0 (seed aggregate)" in titles
        assert "step size by b0: log10(η_t / η0), 0 = the first step" in titles
        charts = layout["category"][titles.index("eval return by b0 (seed aggregate)")]["chart"]
        assert charts[1]["multiline"]["tag"] == [r"^eval_return/b0=1e4$"]
        # Every multiline chart: each regex matched, as the dashboard matches it, by one tag of each optimizer's run
        # that wrote it, so every line is a distinct run (a distinct colour), and the run list is the legend.
        n_charts = 0
        for category in layout["category"]:
            for chart in category["chart"]:
                if "multiline" not in chart:
                    continue
                n_charts += 1
                series = [(run, name) for pattern in chart["multiline"]["tag"] for run, run_tags in tags.items()
                          for name in run_tags if re.search(pattern, name)]
                run_names = [run for run, _ in series]
                assert len(run_names) == len(set(run_names)), chart
                wrote = {"adam", "adamloss"} if "accumulator" not in chart["title"] else {"adamloss"}
                assert set(run_names) == {f"aggregate/{name}" for name in wrote}, chart
                for run, name in series:
                    points = get(f"/data/plugin/scalars/scalars?run={quote(run)}&tag={quote(name)}")
                    assert len(points) >= 2 and all(math.isfinite(p[2]) for p in points), (run, name)
    # per b0: eval return, step size and accumulator growth per network (no training returns: no monitor files)
    assert n_charts == 2 * (1 + 2 + 2)
