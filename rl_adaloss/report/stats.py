"""Statistics over seeds: the IQM and the mean, and their 95% percentile bootstrap confidence intervals.

The bootstrap is rliable's stratified one (``get_interval_estimates``) where rliable can run; where it cannot (its
``arch`` dependency breaks with some pandas versions) a numpy implementation of the same resampling takes over, and
the result says which one computed it, so the report can tell its reader.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

CONFIDENCE = 0.95
DEFAULT_REPS = 2000
BOOTSTRAPS = ("rliable", "numpy")


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs (axis 0): the mean of the middle half, 25% trimmed from each end."""
    from scipy.stats import trim_mean

    return np.asarray(trim_mean(scores, 0.25, axis=0), dtype=float)


def mean(scores: np.ndarray) -> np.ndarray:
    """Plain mean over runs (axis 0)."""
    return np.mean(scores, axis=0)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"IQM": iqm, "mean": mean}


class Estimate(NamedTuple):
    """A statistic over runs, per point, with its 95% CI and the bootstrap that computed the CI."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    bootstrap: str | None  #: "rliable" or "numpy"; None where there were no runs to resample
    fallback: str = ""  #: why numpy computed it where rliable was asked for; empty otherwise


def _bootstrap_numpy(scores: np.ndarray, statistic: Callable, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap, resampling runs with replacement (with one task, stratified = plain resampling)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(scores), size=(reps, len(scores)))
    estimates = np.array([statistic(scores[pick]) for pick in picks])
    tail = (1 - CONFIDENCE) / 2 * 100
    return np.percentile(estimates, tail, axis=0), np.percentile(estimates, 100 - tail, axis=0)


@contextmanager
def rliable_seeded(seed: int):
    """Run rliable with ``seed`` deciding its resamples, and numpy's global generator as it was afterwards.

    rliable 1.2 draws its resamples from numpy's global generator, ignoring ``random_state``: seed that one for the
    call, and give the caller's generator back. arch's FutureWarning about ``random_state`` is silenced.
    """
    outside = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield np.random.RandomState(seed)
    finally:
        np.random.set_state(outside)


def _bootstrap_rliable(scores: np.ndarray, statistic: Callable, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's percentile stratified bootstrap of ``statistic`` over the runs of ``scores`` (runs x points)."""
    from rliable import library as rly

    # rliable wants (runs, tasks, ...): one task, and the steps (or the one number) as the trailing axis.
    data = scores[:, None, :]
    with rliable_seeded(seed) as random_state:
        _, intervals = rly.get_interval_estimates({"x": data}, lambda s: statistic(s[:, 0, :]), reps=reps,
                                                  confidence_interval_size=CONFIDENCE, random_state=random_state)
    return np.asarray(intervals["x"][0], dtype=float), np.asarray(intervals["x"][1], dtype=float)


def stratified_bootstrap_numpy(arrays: tuple[np.ndarray, ...], function: Callable, reps: int, seed: int
                               ) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval of ``function(*arrays)`` (each array runs x tasks [x ...]) under a stratified
    bootstrap: the runs of each task, and of each array, resampled independently with replacement; what rliable's
    ``StratifiedBootstrap`` and ``StratifiedIndependentBootstrap`` do."""
    rng = np.random.default_rng(seed)

    def resample(array: np.ndarray) -> np.ndarray:
        picks = rng.integers(0, array.shape[0], size=array.shape[:2])
        picks = picks.reshape(picks.shape + (1,) * (array.ndim - 2))
        return np.take_along_axis(array, np.broadcast_to(picks, array.shape), axis=0)

    estimates = np.array([np.asarray(function(*[resample(a) for a in arrays])) for _ in range(reps)])
    tail = (1 - CONFIDENCE) / 2 * 100
    return np.percentile(estimates, tail, axis=0), np.percentile(estimates, 100 - tail, axis=0)


def one_line(error: Exception) -> str:
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def bootstrap_ci(scores: np.ndarray, statistic: str, reps: int = DEFAULT_REPS, seed: int = 0,
                 bootstrap: str = "rliable") -> Estimate:
    """Point estimate and 95% CI of ``statistic`` (IQM or mean) over runs, for each column of ``scores``
    (runs x points), computed with the ``bootstrap`` asked for ("rliable" or "numpy").

    Where rliable fails, numpy computes it instead and the estimate says why. NaNs for no runs; a zero-width
    interval for one run.
    """
    if bootstrap not in BOOTSTRAPS:
        raise ValueError(f"bootstrap: expected one of {', '.join(BOOTSTRAPS)}, got {bootstrap!r}")
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if len(scores) == 0:
        nan = np.full(scores.shape[1], np.nan)
        return Estimate(nan, nan.copy(), nan.copy(), None)
    function = STATISTICS[statistic]
    point = function(scores)
    if bootstrap == "rliable":
        try:
            return Estimate(point, *_bootstrap_rliable(scores, function, reps, seed), "rliable")
        except Exception as error:  # noqa: BLE001 - e.g. rliable's arch dependency broken by the pandas version
            return Estimate(point, *_bootstrap_numpy(scores, function, reps, seed), "numpy", one_line(error))
    return Estimate(point, *_bootstrap_numpy(scores, function, reps, seed), "numpy")


def add_bootstrap_arguments(parser) -> None:
    """``--reps`` and ``--seed``, the bootstrap's settings, for a command that computes CIs (checked by
    :func:`check_bootstrap_arguments`)."""
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS,
                        help=f"bootstrap resamples per confidence interval (default: {DEFAULT_REPS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")


def check_bootstrap_arguments(args) -> None:
    from rl_adaloss.errors import UsageError

    if args.reps < 1:
        raise UsageError(f"--reps: expected an integer >= 1, got {args.reps}")
