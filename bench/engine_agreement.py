"""Does the batched engine agree with the SB3 reference, statistically? (issue 9)

    python bench/engine_agreement.py SB3_SWEEP_DIR BATCHED_SWEEP_DIR [--reps 2000] [--seed 0]

Both folders hold the same sweep config run once with ``--engine sb3`` and once with ``--engine batched``
(``rl_adaloss/configs/agreement_pendulum.yaml``: adam and adamloss at b0 1e7, 8 seeds, 1e5 steps). The batched
engine draws its own episodes, so its numbers are not SB3's bit for bit; they should be equally distributed.

Per variant (and b0, and env, where the sweep has several), a markdown table of the final eval return and the area
under the eval curve (the mean eval return over training), scored as the report scores them (a diverged run counts
as its minimum eval return; :mod:`rl_adaloss.report.aggregation`), on one step axis for both engines (the union of
their evaluation steps): per engine the mean over seeds with its 95% percentile bootstrap CI
(:func:`rl_adaloss.report.stats.bootstrap_ci`, rliable's where it runs); the difference of means (batched - sb3)
with its 95% CI, each engine's seeds resampled independently; a two-sided Welch t-test p-value and a two-sided
Mann-Whitney U p-value (scipy). Then one line per variant: "differs" where any of its four tests (two metrics x two
tests) has p < 0.05, else "no significant difference at 5%". Four tests at 5% each flag about one agreeing variant
in five by chance: read a lone "differs" with that in mind.

The tests assume each engine's runs are independent samples. Under SB3 they are not where two seeds are closer than
the runs' ``n_envs`` (``make_vec_env`` seeds env i with seed + i, so seeds 0 and 1 share env streams: the same
episode starts); such a comparison gets a warning line, since its p-values come out too small
(``agreement_pendulum`` spaces its seeds 100 apart).

Exit codes: 0 compared; 2 (one line on stderr) where a folder is not a sweep folder, the two are one folder, their
sweeps differ, a folder's runs ran on the other engine, or they share no variant with finished runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rl_adaloss.errors import UsageError, exit_on_usage_error
from rl_adaloss.records import read_result
from rl_adaloss.report.aggregation import area_under_curve, common_steps, score_curve
from rl_adaloss.report.runs import Run, load_runs
from rl_adaloss.report.stats import (
    DEFAULT_REPS,
    add_bootstrap_arguments,
    bootstrap_ci,
    check_bootstrap_arguments,
    stratified_bootstrap_numpy,
)

ENGINES = ("sb3", "batched")
ALPHA = 0.05


def engine_of(sweep_dir: Path, run: Run) -> str:
    """The engine that ran ``run``, from its result.json (``engine``; the SB3 engine writes none)."""
    result = read_result(sweep_dir / run.run_dir) or {}
    return str(result.get("engine") or "sb3")


def load(sweep_dir: Path, engine: str, label: str) -> tuple[dict, list[Run]]:
    """The sweep and its runs with data, checked to have run on ``engine``."""
    sweep, runs = load_runs(sweep_dir)
    used = [run for run in runs if run.has_data]
    if not used:
        raise UsageError(f"{label}: {sweep_dir} has no finished or diverged run with evaluations yet")
    others = sorted({engine_of(sweep_dir, run) for run in used} - {engine})
    if others:
        raise UsageError(f"{label}: {sweep_dir} has runs from the {'/'.join(others)} engine, expected {engine} "
                         f"(usage: engine_agreement.py SB3_SWEEP_DIR BATCHED_SWEEP_DIR)")
    return sweep, used


def shared_streams(runs: list[Run], sweep_dir: Path) -> list[tuple[int, int]]:
    """Pairs of seeds closer than the runs' ``n_envs`` (from the first run's config.yaml; none without one): under
    SB3's seeding they share env streams."""
    import yaml

    config = sweep_dir / runs[0].run_dir / "config.yaml"
    if not config.is_file():
        return []
    n_envs = int(yaml.safe_load(config.read_text()).get("n_envs", 1))
    seeds = sorted({run.seed for run in runs})
    return [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:] if b - a < n_envs]


def mean_ci(values: np.ndarray, reps: int, seed: int) -> tuple[float, float, float, str]:
    """Mean with its 95% bootstrap CI (NaN bounds with fewer than 2 values), and the bootstrap that computed it."""
    if len(values) < 2:
        return (float(np.mean(values)) if len(values) else math.nan), math.nan, math.nan, ""
    estimate = bootstrap_ci(values, "mean", reps, seed)
    return float(estimate.point[0]), float(estimate.low[0]), float(estimate.high[0]), estimate.bootstrap or ""


def difference_ci(sb3: np.ndarray, batched: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """mean(batched) - mean(sb3) and its 95% CI, each engine's seeds resampled independently (rliable's
    StratifiedIndependentBootstrap, as :func:`~rl_adaloss.report.stats.stratified_bootstrap_numpy` does it)."""
    point = float(np.mean(batched) - np.mean(sb3))
    if len(sb3) < 2 or len(batched) < 2:
        return point, math.nan, math.nan
    low, high = stratified_bootstrap_numpy((sb3[:, None], batched[:, None]),
                                           lambda a, b: np.mean(b) - np.mean(a), reps, seed)
    return point, float(low), float(high)


def p_values(sb3: np.ndarray, batched: np.ndarray) -> tuple[float, float]:
    """Two-sided Welch t-test and Mann-Whitney U p-values; NaN where a test cannot run (fewer than 2 values, or
    identical constant samples)."""
    from scipy import stats

    if len(sb3) < 2 or len(batched) < 2:
        return math.nan, math.nan
    with np.errstate(all="ignore"):
        welch = float(stats.ttest_ind(sb3, batched, equal_var=False).pvalue)
    mann_whitney = float(stats.mannwhitneyu(sb3, batched, alternative="two-sided").pvalue)
    return welch, mann_whitney


def scores(runs: list[Run], grid: np.ndarray) -> dict[str, np.ndarray]:
    """Each run's final return and AUC on ``grid``, by seed order."""
    runs = sorted(runs, key=lambda run: run.seed)
    return {"final return": np.array([run.final for run in runs]),
            "AUC": np.array([area_under_curve(score_curve(run, grid), grid) for run in runs])}


def _interval(point: float, low: float, high: float) -> str:
    if math.isnan(point):
        return "n/a"
    return f"{point:.1f} [{low:.1f}, {high:.1f}]" if not math.isnan(low) else f"{point:.1f} (no CI)"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def compare(sb3_dir: Path, batched_dir: Path, reps: int = DEFAULT_REPS, seed: int = 0) -> str:
    """The markdown comparison of the two sweeps."""
    if sb3_dir.resolve() == batched_dir.resolve():
        raise UsageError("SB3_SWEEP_DIR and BATCHED_SWEEP_DIR are one folder; give the sb3 sweep, then the batched one")
    sb3_sweep, sb3_runs = load(sb3_dir, "sb3", "SB3_SWEEP_DIR")
    batched_sweep, batched_runs = load(batched_dir, "batched", "BATCHED_SWEEP_DIR")
    if sb3_sweep.get("name") != batched_sweep.get("name"):
        raise UsageError(f"the two folders hold different sweeps ({sb3_sweep.get('name')!r} and "
                         f"{batched_sweep.get('name')!r}); run one sweep config on both engines")
    keys = list(dict.fromkeys((run.env, run.optimizer, run.b0) for run in sb3_runs))
    keys = [key for key in keys if any((r.env, r.optimizer, r.b0) == key for r in batched_runs)]
    if not keys:
        raise UsageError("the two sweeps share no env x variant x b0 with finished runs")
    several = {name: len({key[i] for key in keys}) > 1 for i, name in enumerate(("env", "variant", "b0"))}
    shared = shared_streams(sb3_runs, sb3_dir)
    pairs = ", ".join(f"{a} and {b}" for a, b in shared[:3]) + (" ..." if len(shared) > 3 else "")
    warning = ([f"**Warning: seeds {pairs} are closer than n_envs, so under SB3 those runs share env streams "
                "(make_vec_env seeds env i with seed + i): they are not independent samples, and the p-values below "
                "are too small.**", ""]
               if shared else [])
    lines = [f"# Engine agreement: {sb3_sweep.get('name')}", "", f"sb3: {sb3_dir}  ", f"batched: {batched_dir}", "",
             "Mean over seeds [95% bootstrap CI]; difference = batched - sb3 [95% CI, seeds resampled independently]; "
             "p-values two-sided. A diverged run counts as its minimum eval return; AUC is the mean eval return over "
             "training, on the union of both engines' evaluation steps.", ""] + warning
    conclusions, bootstraps = [], set()
    for env, variant, b0 in keys:
        mine = {engine: [r for r in runs if (r.env, r.optimizer, r.b0) == (env, variant, b0)]
                for engine, runs in zip(ENGINES, (sb3_runs, batched_runs))}
        grid = common_steps(run.steps for runs in mine.values() for run in runs)
        per_engine = {engine: scores(runs, grid) for engine, runs in mine.items()}
        title = " ".join([variant] + ([env] if several["env"] else []) + ([f"b0={b0:g}"] if several["b0"] else []))
        lines += [f"## {title}", "",
                  "| metric | sb3 (n) | sb3 mean [95% CI] | batched (n) | batched mean [95% CI] | "
                  "difference [95% CI] | Welch p | Mann-Whitney p |", "|---|---|---|---|---|---|---|---|"]
        flagged = []
        for metric in ("final return", "AUC"):
            a, b = per_engine["sb3"][metric], per_engine["batched"][metric]
            *sb3_mean, used_a = mean_ci(a, reps, seed)
            *batched_mean, used_b = mean_ci(b, reps, seed)
            bootstraps |= {used_a, used_b} - {""}
            welch, mann_whitney = p_values(a, b)
            lines.append(f"| {metric} | {len(a)} | {_interval(*sb3_mean)} | {len(b)} | {_interval(*batched_mean)} | "
                         f"{_interval(*difference_ci(a, b, reps, seed))} | {_p(welch)} | {_p(mann_whitney)} |")
            flagged += [f"{metric} {test} p={p:.3g}" for test, p in (("Welch", welch), ("Mann-Whitney", mann_whitney))
                        if p < ALPHA]
        untested = any(len(per_engine[engine]["AUC"]) < 2 for engine in ENGINES)
        verdict = ("not testable: fewer than 2 seeds on an engine" if untested
                   else f"differs ({'; '.join(flagged)})" if flagged else "no significant difference at 5%")
        lines += ["", f"**{title}: {verdict}.**", ""]
        conclusions.append(f"- {title}: {verdict}")
    how = " and ".join(sorted(bootstraps)) or "none"
    lines += ["## Conclusion", ""] + conclusions + ["", f"Per-engine CIs: {how} bootstrap, {reps} resamples; "
                                                       f"difference CIs: numpy independent bootstrap.", ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/engine_agreement.py",
        description="Compare one sweep run on the sb3 engine and on the batched engine: per variant, final eval "
                    "return and AUC, mean with 95%% bootstrap CI per engine, the difference with its CI, Welch t-test "
                    "and Mann-Whitney U p-values, and a conclusion at 5%%.",
        epilog="Exit codes: 0 compared, 2 a folder is not a sweep folder of the right engine, or the sweeps differ.")
    parser.add_argument("sb3_dir", type=Path, metavar="SB3_SWEEP_DIR", help="the sweep run with --engine sb3")
    parser.add_argument("batched_dir", type=Path, metavar="BATCHED_SWEEP_DIR",
                        help="the same sweep run with --engine batched")
    add_bootstrap_arguments(parser)
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_bootstrap_arguments(args)
    print(compare(args.sb3_dir, args.batched_dir, args.reps, args.seed))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command; input that cannot run is one line on stderr and exit code 2."""
    return exit_on_usage_error(run, argv)


if __name__ == "__main__":
    sys.exit(main())
