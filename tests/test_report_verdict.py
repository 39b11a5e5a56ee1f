"""The verdict matrix (verdict.md, verdict.csv, verdict_alpha.csv) on hand-made sweeps whose verdicts are known, and
(slow) on a real tiny batched sweep with conditions.

The sweep with conditions: Pendulum-v1, b0 in {1, 1e2, 1e4, 1e6} (first steps 1, 0.1, 0.01, 0.001), seeds 0-2, each
cell's final returns its level + (-10, 0, +10), so a cell's 95% CI is about level ± 10 and two cells match when their
levels are less than about 20 apart.

    condition "norm" (tuned Adam: b0=1e4, level -200)
                     b0=1     1e2     1e4     1e6     matches at          verdict
      adam          -1500   -1000    -200    -900    1e4                 reference
      adamloss       -200    -205    -200   -1000    1, 1e2, 1e4         robust (every b0 <= 1e4; Adam fails at 1)
      adaloss       -1500   -1500   -1500   -1500    none                worse than Adam
      adamsqrt      -1500   -1500    -200    -195    1e4, 1e6            wider range than Adam
      adamloss-joint -1500  -1500    -205   -1500    1e4                 no better than Adam
    condition "raw" (tuned Adam: b0=1, level -300: no larger first step, so nothing can be "robust")
      adam           -300   -1000   -1000   -1000    1                   reference
      adamloss       -300   -1500   -1500   -1500    1                   no better than Adam
      every other   -1500 everywhere                 none                worse than Adam

AdamLoss's accumulators grow 8-fold (b = b0 (1 + step/500)^2); AdaLoss's b by 1% (its accumulator b^2 by about
2%): ≡ Adam wherever Adam fails.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from test_report import ENV, TOTAL, make_fake_sweep, write_fake_sweep

from rl_adaloss.report import aggregation, cli, runs, verdict

LABELS = ["1", "1e2", "1e4", "1e6"]
RULES = {"adam": "adam", "adamloss": "adamloss", "adaloss": "adaloss", "adamsqrt": "adamsqrt",
         "adamloss-joint": "adamloss"}
LEVELS = {
    "norm": {"adam": [-1500, -1000, -200, -900], "adamloss": [-200, -205, -200, -1000],
             "adaloss": [-1500] * 4, "adamsqrt": [-1500, -1500, -200, -195],
             "adamloss-joint": [-1500, -1500, -205, -1500]},
    "raw": {"adam": [-300, -1000, -1000, -1000], "adamloss": [-300, -1500, -1500, -1500],
            "adaloss": [-1500] * 4, "adamsqrt": [-1500] * 4, "adamloss-joint": [-1500] * 4},
}
EXPECTED = {
    ("norm", "adam"): verdict.REFERENCE, ("norm", "adamloss"): verdict.ROBUST, ("norm", "adaloss"): verdict.WORSE,
    ("norm", "adamsqrt"): verdict.WIDER, ("norm", "adamloss-joint"): verdict.NO_BETTER,
    ("raw", "adam"): verdict.REFERENCE, ("raw", "adamloss"): verdict.NO_BETTER, ("raw", "adaloss"): verdict.WORSE,
    ("raw", "adamsqrt"): verdict.WORSE, ("raw", "adamloss-joint"): verdict.WORSE,
}


def b_column(rule: str, b0: float, step: float) -> float | str:
    if rule == "adamloss":
        return b0 * (1 + step / 500) ** 2
    if rule == "adaloss":  # Algorithm 1: b starts at sqrt(b0)
        return math.sqrt(b0) * (1 + 0.01 * step / TOTAL)
    return ""


def final_returns(level: float) -> list[list[float]]:
    """Per seed, eval returns at steps 0, 500, 1000 ending at level - 10, level, level + 10."""
    return [[-1600.0, (level + offset - 1600) / 2, level + offset] for offset in (-10, 0, 10)]


def make_sweep(root: Path, levels: dict[str, dict[str, list[float]]], name: str = "conditions",
               specs: dict[str, dict] | None = None, labels: list[str] = LABELS, conditions: bool = True) -> Path:
    """A fake sweep with ``levels[condition][variant][i]`` the level of b0 ``labels[i]``; the variants named
    ``<condition>/<variant>`` where ``conditions``."""
    specs = specs or {name_: {"name": rule} for name_, rule in RULES.items()}
    optimizers, points = {}, {}
    for condition, variants in levels.items():
        for variant, per_b0 in variants.items():
            full = f"{condition}/{variant}" if conditions else variant
            optimizers[full] = {**specs[variant], "overrides": {"normalize.reward": condition == "norm"}}
            for label, level in zip(labels, per_b0):
                for seed, returns in enumerate(final_returns(level)):
                    points[(full, label, seed)] = ("finished", [0, 500, 1000], returns, None)
    sweep = dict(name=name, base="/nowhere/base.yaml", total_timesteps=TOTAL, eta=1.0,
                 b0=[float(label) for label in labels], seeds=[0, 1, 2], optimizers=optimizers)
    return write_fake_sweep(root / name, sweep, points, b_column=b_column)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def conditions_sweep(tmp_path_factory) -> Path:
    sweep_dir = make_sweep(tmp_path_factory.mktemp("verdict"), LEVELS)
    assert cli.main([str(sweep_dir), "--reps", "300"]) == 0
    return sweep_dir


def test_the_verdicts_of_known_sweeps(conditions_sweep: Path):
    rows = read_csv(conditions_sweep / "verdict.csv")
    assert [(r["condition"], r["variant"]) for r in rows] == list(EXPECTED)  # Adam first in each condition
    assert {(r["condition"], r["variant"]): r["verdict"] for r in rows} == EXPECTED
    by = {(r["condition"], r["variant"]): r for r in rows}
    norm = by[("norm", "adamloss")]
    assert norm["matching_first_steps"] == "1; 0.1; 0.01"
    assert (norm["n_matched"], norm["n_adam_matched"], norm["n_b0"]) == ("3", "1", "4")
    assert float(norm["reference_b0"]) == 1e4 and float(norm["reference_first_step"]) == pytest.approx(0.01)
    assert float(norm["reference_final_mean"]) == pytest.approx(-200)
    assert float(norm["reference_final_ci_low"]) == pytest.approx(-210, abs=1e-6)
    assert float(norm["worst_b0"]) == 1e6 and float(norm["worst_final_mean"]) == pytest.approx(-1000)
    assert float(norm["adam_worst_b0"]) == 1 and float(norm["adam_worst_final_mean"]) == pytest.approx(-1500)
    assert float(norm["spread_over_b0"]) == pytest.approx(800)
    assert by[("norm", "adamsqrt")]["matching_first_steps"] == "0.01; 0.001"
    assert by[("raw", "adam")]["matching_first_steps"] == "1"
    assert all(r["evidence"] == "95% CIs" for r in rows)


def test_growth_and_the_adam_equivalent_flag(conditions_sweep: Path):
    by = {(r["condition"], r["variant"]): r for r in read_csv(conditions_sweep / "verdict.csv")}
    assert float(by[("norm", "adamloss")]["median_actor_growth_over_b0"]) == pytest.approx(8.0)
    assert by[("norm", "adamloss")]["adam_equivalent_where_adam_fails"] == "False"
    adaloss = by[("norm", "adaloss")]  # Algorithm 1: the growth of b^2 against b0^2
    assert float(adaloss["median_actor_growth_over_b0"]) == pytest.approx(1.01 ** 2 - 1)
    assert adaloss["adam_equivalent_where_adam_fails"] == "True"
    assert by[("norm", "adam")]["adam_equivalent_where_adam_fails"] == ""  # no accumulator
    assert by[("norm", "adamsqrt")]["median_actor_growth_over_b0"] == ""


def test_verdict_md_reads_as_a_matrix_with_a_how_to_read(conditions_sweep: Path):
    text = (conditions_sweep / "verdict.md").read_text()
    assert text.startswith("# Verdict: is AdamLoss robust to b0? (conditions)\n\nHow to read this:")
    assert "can only shrink" in text and "cannot recover from a too-small first step" in text
    matrix = text.split("## The matrix")[1].split("\n## ")[0]
    table = [line for line in matrix.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == 10
    assert table[1].startswith(f"| norm | adamloss | adamloss | {verdict.ROBUST} | 1, 0.1, 0.01 | 3/4 (1/4) |")
    assert "| norm | adaloss | adaloss | worse than Adam | none | 0/4 (1/4) |" in matrix
    assert "yes: AdamLoss ≡ Adam there" in table[2]
    assert "- Pendulum-v1, norm: tuned Adam is adam at b0=1e4 (first step 0.01" in text
    cells = text.split("## Cells")[1].split("\n## ")[0]
    assert "| norm | adamloss | 1e2 | 0.1 | 3 | -205.0 [-215.0, -195.0] |" in cells  # 3 seeds: CI = min..max
    assert "| norm | adam | 1e4 | 0.01 | 3 | -200.0 [-210.0, -190.0] |" in cells and "tuned Adam |" in cells
    assert "No variants of this sweep differ only in alpha." in text


def test_summary_compares_each_variant_with_the_adam_of_its_own_condition(conditions_sweep: Path):
    paragraph = (conditions_sweep / "summary.md").read_text().split("## What the numbers say")[1].split("## ")[0]
    assert "norm/adamloss and norm/adam are not distinguishable" in paragraph  # b0=1e4: both -200
    assert "raw/adamloss lost to raw/adam" in paragraph  # b0=1
    crossed = [f"{mine}/{variant} {verb} {theirs}/adam " for mine, theirs in (("norm", "raw"), ("raw", "norm"))
               for variant in RULES for verb in ("beat", "lost to", "and")]
    assert not [phrase for phrase in crossed if phrase in paragraph]


def test_first_step_is_the_rules_own_and_the_grids(tmp_path: Path):
    """AdaLoss starts from sqrt(b0) with first step eta/b0_rule: the same eta/sqrt(b0) as Adam's lr."""
    report = aggregation.aggregate(*runs.load_runs(make_sweep(tmp_path, LEVELS)), reps=20)
    for group in report.groups:
        assert verdict.first_step(report, group) == pytest.approx(1 / math.sqrt(group.b0))
    adaloss = next(g for g in report.groups if g.schedule == "adaloss" and g.b0 == 1e4)
    assert adaloss.used[0].actor_b0 == pytest.approx(100.0)


def test_a_variant_with_its_own_eta_has_its_own_first_step(tmp_path: Path):
    """A grid over eta at fixed b0 (the sweep's per-variant ``eta``): each cell's first step is its own eta/sqrt(b0),
    and a label shared by every variant at one b0 does not pretend to one number."""
    specs = {"adam": {"name": "adam"}, "eta-0.1": {"name": "adamloss", "layout": "joint", "eta": 0.1},
             "adamloss": {"name": "adamloss"}}
    levels = {"-": {"adam": [-300, -900], "eta-0.1": [-250, -900], "adamloss": [-400, -900]}}
    sweep_dir = make_sweep(tmp_path, levels, name="etas", specs=specs, labels=["1", "1e2"], conditions=False)
    report = aggregation.aggregate(*runs.load_runs(sweep_dir), reps=20)
    steps = {(g.optimizer, g.b0): verdict.first_step(report, g) for g in report.groups}
    assert steps == pytest.approx({("adam", 1.0): 1.0, ("adam", 100.0): 0.1, ("eta-0.1", 1.0): 0.1,
                                   ("eta-0.1", 100.0): 0.01, ("adamloss", 1.0): 1.0, ("adamloss", 100.0): 0.1})
    assert report.initial_step(100.0, "eta-0.1") == pytest.approx(0.01)
    assert report.first_step_text(100.0) == "first step: the variant's eta/√b0"
    report.sweep["optimizers"]["eta-0.1"].pop("eta")
    assert report.first_step_text(100.0) == "first step 0.1"


def test_matching_is_ci_upper_bound_against_the_references_lower_bound():
    def cell(mean: float, low: float, high: float, n_used: int = 3) -> verdict.Cell:
        return verdict.Cell(ENV, "-", "x", "x", "adam", 1.0, "1", 1.0, n_used, verdict.Interval(mean, low, high),
                            verdict.NO_INTERVAL, math.nan, math.nan, None)

    reference = cell(-200, -210, -190)
    assert verdict.matches(cell(-230, -250, -210), reference)  # upper bound reaches the lower bound: not worse
    assert not verdict.matches(cell(-230, -250, -210.5), reference)
    assert not verdict.matches(cell(-100, -110, -90, n_used=0), reference)
    single = verdict.Interval(-205)  # one seed: no CI, point estimates decide
    assert not verdict.matches(verdict.Cell(ENV, "-", "x", "x", "adam", 1.0, "1", 1.0, 1, single,
                                            verdict.NO_INTERVAL, math.nan, math.nan, None), reference)


def test_a_sweep_without_conditions_has_one_condition(tmp_path: Path):
    """test_report's fake sweep: tuned Adam at b0=1e4 (-160 [-170, -150]); AdamLoss at b0=1 ends at -200 [-210,
    -190], below it, and at b0=1e4 at -810: it matches nowhere, Adam at one b0."""
    sweep_dir = make_fake_sweep(tmp_path)
    assert cli.main([str(sweep_dir), "--reps", "200"]) == 0
    rows = read_csv(sweep_dir / "verdict.csv")
    assert [(r["condition"], r["variant"], r["verdict"]) for r in rows] == [
        ("-", "adam", verdict.REFERENCE), ("-", "adamloss", verdict.WORSE)]
    assert float(rows[1]["adam_worst_final_mean"]) == pytest.approx(-1100)  # the diverged seed at its minimum
    text = (sweep_dir / "verdict.md").read_text()
    assert "- Pendulum-v1: tuned Adam is adam at b0=1e4" in text
    assert read_csv(sweep_dir / "verdict_alpha.csv") == []


def test_sensitivity_to_alpha(tmp_path: Path):
    """Three AdamLoss (joint) variants that differ only in alpha, and one with another layout, at b0=1: no Adam, so
    no reference; the alpha family's spread is max - min of its means."""
    specs = {"alpha-1e-2": {"name": "adamloss", "layout": "joint", "alpha": 0.01},
             "alpha-1": {"name": "adamloss", "layout": "joint", "alpha": 1.0},
             "alpha-1e+1": {"name": "adamloss", "layout": "joint", "alpha": 10.0},
             "separate": {"name": "adamloss", "layout": "separate", "alpha": 1.0}}
    levels = {"-": {"alpha-1e+1": [-900], "alpha-1e-2": [-300], "alpha-1": [-250], "separate": [-100]}}
    sweep_dir = make_sweep(tmp_path, levels, name="alphas", specs=specs, labels=["1"], conditions=False)
    assert cli.main([str(sweep_dir), "--reps", "200"]) == 0
    rows = read_csv(sweep_dir / "verdict_alpha.csv")
    assert [r["variant"] for r in rows] == ["alpha-1e-2", "alpha-1", "alpha-1e+1"]  # by alpha
    assert [float(r["final_mean"]) for r in rows] == [-300, -250, -900]
    assert {float(r["spread_over_alpha"]) for r in rows} == {650.0}
    assert rows[0]["family"] == "adamloss, layout joint" and rows[0]["condition"] == "-"
    assert float(rows[0]["final_ci_low"]) == pytest.approx(-310)
    assert {r["verdict"] for r in read_csv(sweep_dir / "verdict.csv")} == {verdict.NO_REFERENCE}
    text = (sweep_dir / "verdict.md").read_text()
    assert f"| - | alpha-1e-2 | adamloss | {verdict.NO_REFERENCE} | n/a | n/a |" in text
    assert ("| - | adamloss, layout joint | 1 (1) | 0.01: -300.0 [-310.0, -290.0]; 1.0: -250.0 [-260.0, -240.0]; "
            "10.0: -900.0 [-910.0, -890.0] | 650.0 |") in text


@pytest.mark.slow
def test_a_real_tiny_batched_sweep_with_conditions(tmp_path: Path):
    """2 conditions x (adam, adamloss) x b0 {1e4, 1e6} x 2 seeds, 512 steps, on the batched engine: verdict.md has
    one matrix row per condition x variant. Observations normalised in both, as in the study's base config."""
    from test_batched_sweep import TINY_BASE, write_sweep

    from rl_adaloss.sweep import load_sweep, run_sweep

    base = {**TINY_BASE, "normalize": {"obs": True}}
    path = write_sweep(tmp_path, base, conditions={"normalized": {"normalize.reward": True},
                                             "raw": {"normalize.reward": False}})
    assert run_sweep(load_sweep(path), tmp_path / "out", workers=1, progress=False, engine="batched") == {
        "finished": 16}
    sweep_dir = tmp_path / "out" / "tiny"
    assert cli.main([str(sweep_dir), "--reps", "100"]) == 0
    rows = read_csv(sweep_dir / "verdict.csv")
    assert [(r["condition"], r["variant"]) for r in rows] == [
        ("normalized", "adam"), ("normalized", "adamloss"), ("raw", "adam"), ("raw", "adamloss")]
    assert [r["verdict"] for r in rows][::2] == [verdict.REFERENCE] * 2
    allowed = {verdict.ROBUST, verdict.WIDER, verdict.NO_BETTER, verdict.WORSE}
    assert {r["verdict"] for r in rows[1::2]} <= allowed
    matrix = (sweep_dir / "verdict.md").read_text().split("## The matrix")[1].split("\n## ")[0]
    table = [line for line in matrix.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[:2] for line in table] == [
        ["| normalized", "adam"], ["| normalized", "adamloss"], ["| raw", "adam"], ["| raw", "adamloss"]]
