"""How a sweep's grid points become batches of the batched engine (``python -m rl_adaloss.sweep --engine batched``).

The points that can share one engine (:func:`rl_adaloss.batched.run.batch_key`: everything but the seed and the
optimizer's lr/b0/alpha/c) are grouped in grid order, and the groups split into about one batch per worker; a batch
that a checkpoint can resume is kept as it was. The sweep (:mod:`rl_adaloss.sweep`) runs the batches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rl_adaloss.errors import UsageError
from rl_adaloss.io import read_json

if TYPE_CHECKING:
    from rl_adaloss.sweep import GridPoint


#: Where a sweep's batch checkpoints go, inside the sweep folder.
BATCHES_DIR = ".batches"


def saved_batch(point: GridPoint) -> list[Path] | None:
    """The members (run dirs) of the batch whose checkpoint ``point`` can resume from, or None."""
    try:
        info = read_json(point.run_dir / "batch.json")
        if not (point.run_dir / info["checkpoint"]).is_file():
            return None
        return [(point.run_dir / member).resolve() for member in info["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan_batches(points: list[GridPoint], todo: list[GridPoint], workers: int) -> list[list[GridPoint]]:
    """The batches that run ``todo``. First the batches a checkpoint can resume, as they were (their members that
    have ended ride along); then the other points grouped by what a batch shares (``batch_key``: all but the seed
    and the optimizer's lr/b0/alpha/c), in grid order, the largest batch halved until there are about ``workers``."""
    from rl_adaloss.batched.run import batch_key

    by_dir = {p.run_dir.resolve(): p for p in points}
    batches: list[list[GridPoint]] = []
    assigned: set[Path] = set()
    for point in todo:
        members = saved_batch(point)
        if members and point.run_dir.resolve() in members and all(m in by_dir and m not in assigned for m in members):
            batches.append([by_dir[m] for m in members])
            assigned.update(members)
    groups: dict[str, list[GridPoint]] = {}
    for point in todo:
        if point.run_dir.resolve() not in assigned:
            groups.setdefault(batch_key(point.config), []).append(point)
    fresh = list(groups.values())
    while fresh and len(batches) + len(fresh) < workers and max(map(len, fresh)) > 1:
        largest = max(range(len(fresh)), key=lambda i: len(fresh[i]))
        half = (len(fresh[largest]) + 1) // 2
        fresh[largest:largest + 1] = [fresh[largest][:half], fresh[largest][half:]]
    return batches + fresh


def check_batched(points: list[GridPoint]) -> None:
    """Refuse, in one line, a grid the batched engine cannot run: one engine of one member per group is built."""
    from rl_adaloss.batched.run import batch_key, check_supported

    firsts: dict[str, GridPoint] = {}
    for point in points:
        firsts.setdefault(batch_key(point.config), point)
    for point in firsts.values():
        try:
            check_supported(point.config)
        except UsageError as error:
            raise UsageError(f"--engine batched: optimizers.{point.optimizer}: {error}") from None


def batch_threads(workers: int, batches: int) -> int:
    """torch threads per batch: the cores shared by the batches that run at once (2 for one batch on 2 cores)."""
    return max(1, (os.cpu_count() or 1) // max(1, min(workers, batches)))
