"""The run record: what a sweep says about each grid point, in ``sweep.json``, and what the report reads back.

One schema for both sides. ``sweep.json`` holds the sweep config and one record per grid point, run or not; a run's
own ``result.json`` is fresher than the index (a run may have ended after the index was written), so
:func:`read_index` takes the status from there where it can.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rl_adaloss.errors import UsageError
from rl_adaloss.io import read_json, write_json_atomic

#: Statuses that end a grid point; anything else (interrupted, failed, never run) runs again.
FINAL_STATUSES = ("finished", "diverged")
#: Statuses of points that are left out of the numbers, with their reason.
MISSING_STATUSES = ("failed", "interrupted", "not run")
INDEX_NAME = "sweep.json"


@dataclass(frozen=True)
class RunRecord:
    """One grid point of a sweep."""

    env: str
    optimizer: str  #: the sweep's variant name (``adamloss-joint``), not only the rule's
    b0: float
    seed: int
    run_dir: str  #: relative to the sweep folder
    status: str = "not run"
    reason: str | None = None
    diverged_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> RunRecord:
        return cls(env=str(entry["env"]), optimizer=str(entry["optimizer"]), b0=float(entry["b0"]),
                   seed=int(entry["seed"]), run_dir=str(entry["run_dir"]), status=entry.get("status") or "not run",
                   reason=entry.get("reason"), diverged_at=entry.get("diverged_at"))


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``result.json``, or None where the run has not ended (or its file cannot be read)."""
    try:
        result = read_json(Path(run_dir) / "result.json")
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and "status" in result else None


def with_result(record: RunRecord, sweep_dir: Path) -> RunRecord:
    """``record`` with the status, reason and divergence step of its run's ``result.json``, where there is one."""
    result = read_result(sweep_dir / record.run_dir)
    return record if result is None else replace(record, status=result["status"], reason=result.get("reason"),
                                                 diverged_at=result.get("diverged_at"))


def write_index(sweep_dir: Path, sweep: dict[str, Any], records: list[RunRecord]) -> dict[str, int]:
    """Write ``sweep.json``: the sweep config and every record; return the counts by status."""
    counts = dict(Counter(record.status for record in records))
    write_json_atomic(Path(sweep_dir) / INDEX_NAME,
                      dict(sweep=sweep, points=[r.to_json() for r in records], counts=counts))
    return counts


def read_index(sweep_dir: Path) -> tuple[dict[str, Any], list[RunRecord]]:
    """The sweep config and every record of ``sweep_dir/sweep.json``, each refreshed from its ``result.json``."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UsageError(f"not a directory: {sweep_dir}")
    path = sweep_dir / INDEX_NAME
    if not path.is_file():
        raise UsageError(f"{sweep_dir} is not a sweep folder (no {INDEX_NAME})")
    try:
        index = read_json(path)
        sweep, records = index["sweep"], [RunRecord.from_json(p) for p in index["points"]]
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if not records:
        raise UsageError(f"{path} lists no grid points")
    return sweep, [with_result(r, sweep_dir) for r in records]
