"""Loading a sweep for the report: every run record of ``sweep.json`` with its run's evaluations."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.records import FINAL_STATUSES, RunRecord, read_index

EVALUATION_COLUMNS = ("timesteps", "mean_reward", "actor_effective_lr", "critic_effective_lr")


def _no_data() -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single-bool ==
class Run(RunRecord):
    """One grid point's record, with its rule's name and its evaluations (empty where it has none)."""

    schedule: str = ""  #: the variant's optimizer rule (``adam``, ``adamloss``, ...)
    steps: np.ndarray = field(default_factory=_no_data)
    returns: np.ndarray = field(default_factory=_no_data)
    actor_lr: np.ndarray = field(default_factory=_no_data)
    critic_lr: np.ndarray = field(default_factory=_no_data)

    @property
    def b0_label(self) -> str:
        """b0 as the sweep wrote it in the run's folder name (``b0=1e6``), else ``%g``."""
        match = re.search(r"(?:^|/)b0=([^/]+)", Path(self.run_dir).as_posix())
        return match.group(1) if match else f"{self.b0:g}"

    @property
    def has_data(self) -> bool:
        """Whether the run enters the numbers: finished or diverged, with at least one evaluation."""
        return self.status in FINAL_STATUSES and len(self.steps) > 0

    @property
    def final(self) -> float:
        """The run's score at the end of the budget: last evaluation, or for a diverged run its minimum."""
        return float(np.min(self.returns)) if self.status == "diverged" else float(self.returns[-1])


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_evaluations(path: Path) -> dict[str, np.ndarray]:
    """``evaluations.csv`` as arrays (empty ones if the file is missing), rows sorted by step, non-finite returns
    dropped; empty cells (the b columns of Adam) read as NaN."""
    if not path.is_file():
        return {name: _no_data() for name in EVALUATION_COLUMNS}
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if math.isfinite(_float(row.get("mean_reward")))]
    rows.sort(key=lambda row: _float(row.get("timesteps")))
    return {name: np.array([_float(row.get(name)) for row in rows], dtype=float) for name in EVALUATION_COLUMNS}


def load_run(record: RunRecord, sweep_dir: Path, schedule: str) -> Run:
    """``record`` with its evaluations; only a run that ended has evaluations that count."""
    if record.status not in FINAL_STATUSES:
        return Run(**record.to_json(), schedule=schedule)
    table = read_evaluations(Path(sweep_dir) / record.run_dir / "evaluations.csv")
    return Run(**record.to_json(), schedule=schedule, steps=table["timesteps"], returns=table["mean_reward"],
               actor_lr=table["actor_effective_lr"], critic_lr=table["critic_effective_lr"])


def load_runs(sweep_dir: str | Path) -> tuple[dict[str, Any], list[Run]]:
    """The sweep config and every grid point of ``sweep.json``, with its run's data where there is any.

    Raises :class:`~rl_adaloss.errors.UsageError` where ``sweep_dir`` is not a readable sweep folder.
    """
    sweep, records = read_index(Path(sweep_dir))
    variants = sweep.get("optimizers") or {}
    return sweep, [load_run(record, sweep_dir, (variants.get(record.optimizer) or {}).get("name", record.optimizer))
                   for record in records]
