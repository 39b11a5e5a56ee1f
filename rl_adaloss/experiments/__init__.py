"""Small numerical experiments that check the optimizers in :mod:`rl_adaloss.optim` against the paper's theory.

* :mod:`rl_adaloss.experiments.linreg`: linear regression (Section 3 of Wu, Xie, Du & Ward, AAAI 2022: Figure 1,
  Lemma 1, Theorem 1).
* :mod:`rl_adaloss.experiments.two_layer`: the two-layer ReLU network of Du et al. (2019) (Section 4: Definition 1,
  Theorems 2 and 3, Figures 5 and 6).

Both are command-line programs (``python -m rl_adaloss.experiments.<name> --help``). This module holds what they
share: settings read from a YAML config and overridden by command-line flags, atomic output files, and the
one-line error (exit code 2) for bad input. The experiments import only :mod:`rl_adaloss.optim` from this package.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml

__all__ = [
    "Option",
    "UsageError",
    "atomic_write_bytes",
    "atomic_write_text",
    "cli_main",
    "csv_text",
    "markdown_table",
    "parse_settings",
    "save_figure",
]

#: Where the default configs live: ``configs/<name>.yaml`` at the repository root (the package is installed editable).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class UsageError(Exception):
    """Bad input from the user (config file, config key, flag value): reported in one line, exit code 2."""


# -- settings ----------------------------------------------------------------------------------------------------


def _number(text: Any, kind: type) -> int | float:
    if isinstance(text, bool):
        raise ValueError("a boolean is not a number")
    if kind is int:
        if isinstance(text, float) and not text.is_integer():
            raise ValueError(f"{text!r} is not an integer")
        if isinstance(text, str):
            return int(text.strip())
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value


@dataclass(frozen=True)
class Option:
    """One setting: its config key (also the flag ``--key-with-dashes``), kind, help text, and allowed range.

    ``kind`` is ``int``, ``float``, ``str``, ``ints``/``floats`` (a list; on the command line comma-separated), or
    ``windows`` (a list of ``[first, last]`` iteration pairs; on the command line ``101-200,991-1000``).
    """

    key: str
    kind: str
    help: str
    low: float | None = None  # inclusive lower bound on every number
    low_open: bool = False  # make the lower bound exclusive
    high: float | None = None  # inclusive upper bound on every number
    choices: tuple[str, ...] | None = None  # allowed strings (for str, or the items of a str list "strs")
    nonempty: bool = True  # lists must have at least one item

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def _check_number(self, value: int | float) -> None:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ValueError(f"must be {'>' if self.low_open else '>='} {self.low:g}, got {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"must be <= {self.high:g}, got {value!r}")

    def convert(self, raw: Any, from_cli: bool) -> Any:
        """The checked value of ``raw`` (from YAML, or a flag's text when ``from_cli``); ValueError if bad."""
        if self.kind in ("int", "float"):
            value = _number(raw, int if self.kind == "int" else float)
            self._check_number(value)
            return value
        if self.kind == "str":
            if not isinstance(raw, str):
                raise ValueError(f"must be a string, got {raw!r}")
            if self.choices and raw not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, got {raw!r}")
            return raw
        if self.kind in ("ints", "floats", "strs"):
            items = [s for s in raw.split(",") if s.strip()] if from_cli and isinstance(raw, str) else raw
            if not isinstance(items, list):
                raise ValueError(f"must be a list, got {raw!r}")
            if self.nonempty and not items:
                raise ValueError("must not be empty")
            if self.kind == "strs":
                values = [s.strip() if isinstance(s, str) else s for s in items]
                for value in values:
                    if not isinstance(value, str) or (self.choices and value not in self.choices):
                        allowed = f" (one of {', '.join(self.choices)})" if self.choices else ""
                        raise ValueError(f"item {value!r} is not an allowed name{allowed}")
                return values
            values = [_number(s, int if self.kind == "ints" else float) for s in items]
            for value in values:
                self._check_number(value)
            return values
        if self.kind == "windows":
            if from_cli and isinstance(raw, str):
                pairs = []
                for part in raw.split(","):
                    first, sep, last = part.strip().partition("-")
                    if not sep:
                        raise ValueError(f"window {part!r} is not FIRST-LAST")
                    pairs.append([first, last])
            else:
                pairs = raw
            if not isinstance(pairs, list) or not pairs:
                raise ValueError(f"must be a non-empty list of [first, last] pairs, got {raw!r}")
            windows = []
            for pair in pairs:
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise ValueError(f"window {pair!r} is not a [first, last] pair")
                first, last = (_number(v, int) for v in pair)
                if not 1 <= first <= last:
                    raise ValueError(f"window {pair!r} needs 1 <= first <= last")
                windows.append((first, last))
            return windows
        raise AssertionError(f"unknown option kind {self.kind!r}")

    def show(self, value: Any) -> str:
        """``value`` written the way the flag takes it."""
        if self.kind in ("ints", "floats", "strs"):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        if self.kind == "windows":
            return ",".join(f"{a}-{b}" for a, b in value)
        return f"{value:g}" if isinstance(value, float) else str(value)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (and exit code 2, as argparse does)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def _load_config(path: Path, options: dict[str, Option]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``defaults`` and ``quick`` sections of a config file, keys checked, values converted."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"config file {path} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must be a mapping with sections 'defaults' and 'quick'")
    unknown_sections = sorted(set(data) - {"defaults", "quick"})
    if unknown_sections:
        raise UsageError(f"config file {path}: unknown section {unknown_sections[0]!r} "
                         "(allowed: defaults, quick)")
    sections = {}
    for section in ("defaults", "quick"):
        raw = data.get(section) or {}
        if not isinstance(raw, dict):
            raise UsageError(f"config file {path}: section {section!r} must be a mapping")
        values = {}
        for key, value in raw.items():
            if key not in options:
                raise UsageError(f"config file {path}: unknown key {section}.{key!r}")
            try:
                values[key] = options[key].convert(value, from_cli=False)
            except (ValueError, TypeError) as exc:
                raise UsageError(f"config file {path}: {section}.{key}: {exc}") from None
        sections[section] = values
    missing = [key for key in options if key not in sections["defaults"]]
    if missing:
        raise UsageError(f"config file {path}: section 'defaults' lacks key {missing[0]!r}")
    return sections["defaults"], sections["quick"]


def parse_settings(name: str, description: str, options: Sequence[Option],
                   argv: Sequence[str] | None) -> tuple[dict[str, Any], Path, bool]:
    """Settings for experiment ``name``: the config's ``defaults``, then its ``quick`` section with ``--quick``,
    then any flags. Returns ``(settings, out_dir, quick)``; raises :class:`UsageError` on bad input.

    ``--help`` shows every option with the value the default config gives it.
    """
    by_key = {opt.key: opt for opt in options}
    default_config = CONFIG_DIR / f"{name}.yaml"

    # First pass: find the config (so --help can show its values) without failing on the other flags.
    pre = _Parser(add_help=False)
    pre.add_argument("--config", type=Path, default=default_config)
    pre.add_argument("--quick", action="store_true")
    pre_args, _ = pre.parse_known_args(argv)
    wants_help = any(a in ("-h", "--help") for a in (sys.argv[1:] if argv is None else argv))
    try:
        defaults, quick = _load_config(pre_args.config, by_key)
    except UsageError:
        if not wants_help:
            raise
        defaults, quick = {}, {}

    parser = _Parser(
        prog=f"python -m rl_adaloss.experiments.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Lists are comma-separated (e.g. --b0-grid 0.01,1,100). Flags override the config; with --quick, "
               "the config's 'quick' section overrides its 'defaults' first. Bad input: one line on stderr, exit 2.",
    )
    parser.add_argument("--config", type=Path, default=default_config, metavar="YAML",
                        help=f"config file with sections 'defaults' and 'quick' (default: {default_config})")
    parser.add_argument("--quick", action="store_true",
                        help="apply the config's 'quick' section: a small, fast run (seconds)")
    parser.add_argument("--out", type=Path, default=Path("runs") / "experiments" / name, metavar="DIR",
                        help=f"output folder for figures and tables (default: runs/experiments/{name})")
    for opt in options:
        shown = ""
        if opt.key in defaults:
            shown = f" [config: {opt.show(defaults[opt.key])}"
            if opt.key in quick:
                shown += f"; quick: {opt.show(quick[opt.key])}"
            shown += "]"
        parser.add_argument(opt.flag, dest=opt.key, default=None, metavar=opt.kind.upper(),
                            help=opt.help.replace("%", "%%") + shown)
    args = parser.parse_args(argv)

    settings = dict(defaults)
    if args.quick:
        settings.update(quick)
    for opt in options:
        raw = getattr(args, opt.key)
        if raw is not None:
            try:
                settings[opt.key] = opt.convert(raw, from_cli=True)
            except (ValueError, TypeError) as exc:
                raise UsageError(f"argument {opt.flag}: {exc}") from None
    return settings, args.out, bool(args.quick)


def cli_main(run: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``run(argv)``; turn :class:`UsageError` into one line on stderr and exit code 2."""
    try:
        return run(argv)
    except UsageError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` intra-op threads inside the block, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- output files ------------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: Path, dpi: int = 80, rect: tuple[float, float, float, float] | None = None) -> None:
    """Lay out (``tight_layout(rect=rect)``), save as PNG atomically, and close a matplotlib figure.

    Minor ticks are switched off: on log axes spanning many decades they are most of the drawing time.
    """
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        ax.minorticks_off()
    fig.tight_layout(rect=rect)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return "" if value is None else str(value)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as CSV text; floats written in full precision."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})
    return buffer.getvalue()


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a GitHub markdown table, floats with 4 significant digits."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a plain aligned table for the terminal."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    out += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out) + "\n"


def settings_markdown(settings: dict[str, Any], options: Sequence[Option]) -> str:
    """The settings used, as a markdown list (for the ``.md`` reports)."""
    return "\n".join(f"- `{opt.key}` = {opt.show(settings[opt.key])}" for opt in options) + "\n"
