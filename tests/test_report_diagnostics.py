"""The report's diagnostics: could a setting have shown the mechanism at all? Accumulator growth against b0 per
network, the "≡ Adam here" flag, and training-episode returns from the Monitor files, on hand-made runs and on the
fake sweep of test_report with Monitor files and per-network b0s added."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_report import ENV, make_fake_sweep, summary

from rl_adaloss.report import aggregation, cli, diagnostics, runs


def run_with(schedule: str, b: list[float], actor_b0: float, critic_b0: float | None = None, **extra) -> runs.Run:
    steps = np.arange(len(b), dtype=float) * 100
    values = np.array(b, dtype=float)
    return runs.Run(ENV, schedule, 1.0, 0, "x", extra.pop("status", "finished"), schedule=schedule, steps=steps,
                    returns=np.zeros(len(b)), actor_b=values, critic_b=values, actor_b0=actor_b0,
                    critic_b0=actor_b0 if critic_b0 is None else critic_b0, **extra)


# -- growth, by hand ------------------------------------------------------------------------------------------------

def test_adamloss_growth_is_b_minus_b0_against_b0():
    run = run_with("adamloss", [1e4, 1e4 + 200, 1e4 + 500], 1e4)
    g = diagnostics.growth(run, "actor")
    assert (g.start, g.growth, g.relative) == pytest.approx((1e4, 500.0, 0.05))
    assert diagnostics.accumulator_ratio(run, "critic").tolist() == pytest.approx([1.0, 1.02, 1.05])
    assert diagnostics.adam_equivalent("adamloss", 0.05, 0.09) is True
    assert diagnostics.adam_equivalent("adamloss", 0.05, 0.1) is False  # one network moved enough


def test_adaloss_growth_is_of_b_squared_and_each_network_has_its_own_b0():
    # AdaLoss's b columns hold b unsquared; its accumulator is b^2, from b0^2: b 10 -> 10*sqrt(1.05) is 5% growth
    run = run_with("adaloss", [10.0, 10.0 * math.sqrt(1.05)], 10.0, critic_b0=5.0)
    actor, critic = diagnostics.growth(run, "actor"), diagnostics.growth(run, "critic")
    assert (actor.start, actor.growth, actor.relative) == pytest.approx((100.0, 5.0, 0.05))
    assert (critic.start, critic.growth, critic.relative) == pytest.approx((25.0, 105.0 - 25.0, 105 / 25 - 1))
    assert diagnostics.accumulator("adaloss").counterpart == "SGD"
    assert diagnostics.accumulator("adamloss").counterpart == "Adam"


def test_rules_without_an_accumulator_have_no_growth_and_no_flag():
    assert diagnostics.accumulator("adam") is None  # torch's Adam: no b0_squared
    adam = run_with("adam", [math.nan, math.nan], 1e4)
    assert math.isnan(diagnostics.growth(adam, "actor").relative)
    assert diagnostics.adam_equivalent("adam", math.nan, math.nan) is None
    assert diagnostics.adam_equivalent("adamsqrt", 0.0, 0.0) is None  # not loss-driven: the question does not arise
    assert diagnostics.adam_equivalent("adagradnorm", 0.0, 0.0) is None
    assert diagnostics.adam_equivalent("adamloss", 0.01, math.nan) is None


def test_network_b0s_from_the_config_with_per_network_overrides():
    config = {"optimizer": {"name": "adamloss", "b0": 1e4, "critic": {"b0": 1e2}}}
    assert runs.network_b0s(config, 7.0) == {"actor": 1e4, "critic": 1e2}
    assert runs.network_b0s({"optimizer": {"name": "adam", "lr": 1e-3}}, 7.0) == {"actor": 7.0, "critic": 7.0}
    assert runs.network_b0s({}, 7.0) == {"actor": 7.0, "critic": 7.0}


def test_monitor_files_give_episode_ends_on_the_run_step_axis(tmp_path: Path):
    # two envs in lockstep: env 0's episode after its 200th step ends at about step 400 of the run
    (tmp_path / "0.monitor.csv").write_text('#{"t_start": 0, "env_id": "Pendulum-v1"}\nr,l,t\n-1000,200,1.0\n'
                                            "-900,200,2.0\n-800,200,3.0\n")  # the last row appended on resume
    (tmp_path / "1.monitor.csv").write_text('#{"t_start": 0, "env_id": "Pendulum-v1"}\nr,l,t\n-1100,100,1.0\n'
                                            "-700,300,2.0\n")
    steps, returns = runs.read_monitor(tmp_path)
    assert steps.tolist() == [200, 400, 800, 800, 1200]
    assert returns.tolist() == [-1100, -1000, -900, -700, -800]
    assert [a.tolist() for a in runs.read_monitor(tmp_path / "missing")] == [[], []]


def test_training_scores_are_a_trailing_mean_resampled_like_the_eval_curves():
    returns = np.arange(1.0, 13.0)  # 12 episodes
    run = runs.Run(ENV, "adam", 1.0, 0, "x", "diverged", schedule="adam", steps=np.array([0.0]),
                   returns=np.array([0.0]), episode_steps=np.arange(1, 13) * 100.0, episode_returns=returns)
    scores = aggregation.training_scores(run)
    assert scores[:3].tolist() == [1.0, 1.5, 2.0] and scores[-1] == pytest.approx(np.mean(returns[-10:]))
    curve = aggregation.training_curve(run, np.array([50.0, 150.0, 1200.0, 1300.0]))
    # held before the first episode, linear between, and a diverged run's minimum after its last episode
    assert curve.tolist() == pytest.approx([1.0, 1.25, scores[-1], 1.0])
    # two envs ending episodes at the same step: one point per step, the score after both
    run = runs.Run(ENV, "adam", 1.0, 0, "x", "finished", schedule="adam",
                   episode_steps=np.array([400.0, 400, 800, 800]), episode_returns=np.array([1.0, 3.0, 5.0, 7.0]))
    steps, points = aggregation.training_points(run)
    assert steps.tolist() == [400, 800] and points.tolist() == [2.0, 4.0]


# -- the fake sweep with Monitor files and per-network b0 ----------------------------------------------------------

def add_diagnostics(sweep_dir: Path, adamloss_growth: dict[str, float]) -> Path:
    """Give every run of the fake sweep a config.yaml with its b0s, Monitor files, and AdamLoss b columns that grow
    by ``adamloss_growth[b0 label]`` of b0 in the actor and half of that in the critic."""
    index = json.loads((sweep_dir / "sweep.json").read_text())
    for point in index["points"]:
        run_dir = sweep_dir / point["run_dir"]
        if not (run_dir / "evaluations.csv").is_file():
            continue
        label, b0 = point["run_dir"].split("b0=")[1].split("/")[0], point["b0"]
        optimizer = point["optimizer"]
        section = f"{{name: adamloss, b0: {b0}}}" if optimizer == "adamloss" else f"{{name: adam, lr: {b0 ** -0.5}}}"
        (run_dir / "config.yaml").write_text(f"env: {ENV}\nseed: {point['seed']}\noptimizer: {section}\n")
        with (run_dir / "evaluations.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        last = float(rows[-1]["timesteps"]) or 1.0
        for row in rows:
            if optimizer == "adamloss":
                done = float(row["timesteps"]) / last
                row["actor_b"] = b0 * (1 + adamloss_growth[label] * done)
                row["critic_b"] = b0 * (1 + adamloss_growth[label] / 2 * done)
        with (run_dir / "evaluations.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        monitor = run_dir / "monitor"
        monitor.mkdir()
        episodes = "\n".join(f"{-1500 + 50 * i + 10 * point['seed']},100,{i}" for i in range(int(last) // 100))
        (monitor / "0.monitor.csv").write_text(f'#{{"t_start": 0}}\nr,l,t\n{episodes}\n')
    return sweep_dir


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory) -> Path:
    sweep_dir = add_diagnostics(make_fake_sweep(tmp_path_factory.mktemp("diag")), {"1": 8.0, "1e4": 0.05})
    assert cli.main([str(sweep_dir), "--reps", "50"]) == 0
    return sweep_dir


def test_summary_has_the_growth_and_the_flag_per_cell(diagnosed: Path):
    rows = summary(diagnosed)
    assert float(rows[("adamloss", "1")]["actor_growth_over_b0"]) == pytest.approx(8.0)
    assert float(rows[("adamloss", "1")]["critic_growth_over_b0"]) == pytest.approx(4.0)
    assert rows[("adamloss", "1")]["adam_equivalent"] == "False"
    assert float(rows[("adamloss", "10000")]["actor_growth_over_b0"]) == pytest.approx(0.05)
    assert rows[("adamloss", "10000")]["adam_equivalent"] == "True"
    assert rows[("adam", "1")]["adam_equivalent"] == rows[("adam", "1")]["actor_growth_over_b0"] == ""
    with (diagnosed / "diagnostics.csv").open() as handle:
        per_run = list(csv.DictReader(handle))
    assert len(per_run) == 11  # every run with data
    seed0 = next(r for r in per_run if (r["optimizer"], r["b0"], r["seed"]) == ("adamloss", "10000", "0"))
    assert float(seed0["actor_growth"]) == pytest.approx(500.0)
    assert float(seed0["critic_growth"]) == pytest.approx(250.0)
    assert seed0["n_training_episodes"] == "10"


def test_summary_md_says_which_cells_were_adam(diagnosed: Path):
    text = (diagnosed / "summary.md").read_text()
    section = text.split("## Could this sweep have shown the mechanism?")[1].split("\n## ")[0]
    assert "≡ Adam here (growth < 10% in both networks): adamloss b0=1e4 (actor 0.05, critic 0.025)." in section
    assert "grew by at least 10% in: adamloss b0=1 (actor 8, critic 4)" in section
    assert "could not have shown" not in section
    assert "| yes (≡ Adam) |" in text and "| no |" in text


def test_when_every_loss_driven_cell_was_adam_the_summary_says_the_sweep_could_not_show_it(tmp_path: Path):
    sweep_dir = add_diagnostics(make_fake_sweep(tmp_path), {"1": 0.01, "1e4": 1e-5})
    report = aggregation.aggregate(*runs.load_runs(sweep_dir), reps=20)
    from rl_adaloss.report.text import mechanism_section

    section = "\n".join(mechanism_section(report))
    assert "Every loss-driven cell of this sweep was ≡ Adam: the sweep could not have shown" in section
    assert "adamloss b0=1 (actor 0.01, critic 0.005); adamloss b0=1e4 (actor 1e-05, critic 5e-06)" in section


def test_the_figures_and_the_dashboard_have_the_training_returns(diagnosed: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("accumulator_growth.png", "training_scores.png"):
        assert (diagnosed / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for optimizer in ("adam", "adamloss"):
        acc = EventAccumulator(str(diagnosed / "aggregate" / optimizer), size_guidance={"scalars": 0})
        acc.Reload()
        curve = acc.Scalars("training_return/b0=1e4")
        assert curve[0].step == 100 and curve[-1].step == 1000  # the env's training axis, first to last episode
    # adamloss b0=1e4: seeds 0 and 1 end with the mean of their last 10 episodes, -1500 + 50*4.5 + 10*seed
    assert curve[-1].value == pytest.approx(-1500 + 225 + 5)
