"""Atomic file writes: a reader sees the old file or the new one, never half of either, even after a kill -9.

Files get the permissions the user's umask gives, as any other tool's (0644 under umask 022): ``mkstemp`` alone would
make them private (0600), which locks out other accounts and a TensorBoard server reading a shared output folder.
This is the project's one writer of result files.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_directory(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Replace the directory ``path`` with one that ``fill(folder)`` writes.

    ``fill`` writes into a hidden folder beside ``path``, which then takes its place by two renames (the old one
    out, the new one in): a reader such as a live TensorBoard sees the old directory or the complete new one (or,
    for the instant between the renames, none), never one half written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    fresh, old = path.parent / f".{path.name}-{token}", path.parent / f".{path.name}-old-{token}"
    fresh.mkdir()  # not mkdtemp, which makes it private: the umask's permissions, as for files
    try:
        fill(fresh)
        if path.exists():
            os.replace(path, old)
        os.replace(fresh, path)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_figure(figure, path: str | Path, dpi: int = 80, rect: tuple[float, float, float, float] | None = None,
                bbox_inches: str | None = None, as_drawn: bool = False) -> None:
    """Lay out (``tight_layout(rect=rect)``), save as PNG atomically, and close a matplotlib figure.

    Minor ticks are switched off: on log axes spanning many decades they are most of the drawing time. With
    ``as_drawn`` the figure is saved as its caller laid it out: its own layout engine (constrained layout, which
    ``tight_layout`` would replace) and its minor ticks (the only labels of a log axis spanning one decade) stay.
    """
    import matplotlib.pyplot as plt

    if not as_drawn:
        for axis in figure.axes:
            axis.minorticks_off()
        figure.tight_layout(rect=rect)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches=bbox_inches)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
