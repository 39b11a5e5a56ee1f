"""Small numerical experiments that check the optimizers in :mod:`rl_adaloss.optim` against the paper's theory.

* :mod:`rl_adaloss.experiments.linreg`: linear regression (Section 3 of Wu, Xie, Du & Ward, AAAI 2022: Figure 1,
  Lemma 1, Theorem 1).
* :mod:`rl_adaloss.experiments.two_layer`: the two-layer ReLU network of Du et al. (2019) (Section 4: Definition 1,
  Theorems 2 and 3, Figures 5 and 6).

Both are command-line programs (``python -m rl_adaloss.experiments.<name> --help``) run by :func:`cli`. Each one's
settings are a :class:`rl_adaloss.schema.Section` model that holds the defaults, so every setting (type, range,
description, default) is written once; its config file ``rl_adaloss/configs/<name>.yaml`` holds only what differs:
the ``quick`` section that ``--quick`` applies. This module also holds the optimizer factory, the helpers and the
tables both experiments use.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import numpy as np
import torch
from pydantic import ConfigDict, ValidationError

from rl_adaloss.config import CONFIG_DIR  # the packaged configs, rl_adaloss/configs/<name>.yaml
from rl_adaloss.errors import UsageError, exit_on_usage_error
from rl_adaloss.optim import OPTIMIZERS, SGDConstant
from rl_adaloss.schema import Section, describe, error_line, parse_override, read_yaml, yaml_value

S = TypeVar("S", bound="ExperimentSettings")


class ExperimentSettings(Section):
    """An experiment's settings: every field has its default and description; numbers must be finite. The defaults
    live here, beside each key's type, range and description, so that every setting is written once and a config
    file names only what it changes (the packaged one: the ``quick`` overlay)."""

    model_config = ConfigDict(allow_inf_nan=False)

    def check(self) -> None:
        """Checks across keys (raise :class:`UsageError`), made once all sources are applied."""


def make_optimizer(method: str, params, eta: float, b0: float, alpha: float = 1.0, c: float = 0.0):
    """The :mod:`rl_adaloss.optim` rule ``method`` (a name of ``OPTIMIZERS`` whose arguments are lr and b0, and
    AdaLoss's alpha and c) with step size ``eta / b``; ``gd`` is plain gradient descent (``sgd`` with ``b0 = 1``:
    step ``eta``)."""
    if method == "gd":
        return SGDConstant(params, lr=eta, b0=1.0)
    return OPTIMIZERS[method](params, lr=eta, b0=b0, **(dict(alpha=alpha, c=c) if method == "adaloss" else {}))


def settled_index(below: np.ndarray) -> int | None:
    """The first index from which ``below`` holds to the end (None if it does not hold at the end)."""
    if not below.size or not below[-1]:
        return None
    above = np.flatnonzero(~below)
    return int(above[-1]) + 1 if above.size else 0


def trainable(start: Any, method: str, eta: float, b0: float, alpha: float = 1.0, c: float = 0.0):
    """A float64 copy of ``start`` (an array or tensor) with a zero gradient, and the optimizer ``method`` over it:
    the weights an experiment trains."""
    w = torch.as_tensor(start, dtype=torch.float64).clone()
    w.grad = torch.zeros_like(w)
    return w, make_optimizer(method, [w], eta, b0, alpha, c)


def fitted_rate(values: np.ndarray, fit: np.ndarray) -> float:
    """The per-step factor of ``values``, fitted log-linearly on the steps where ``fit`` holds (nan if under 3)."""
    steps = np.flatnonzero(fit)
    if steps.size < 3:
        return float("nan")
    return float(math.exp(np.polyfit(steps, np.log(values[steps]), 1)[0]))


# -- the command line ----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def flag_text(value: Any) -> str:
    """``value`` the way its flag takes it: lists comma-separated, windows ``FIRST-LAST``, floats as ``%g``."""
    if isinstance(value, list):
        return ",".join(map(flag_text, value))
    if isinstance(value, tuple):
        return "-".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _from_flag(annotation: Any, text: str) -> Any:
    """A flag's text as a value: each item of a list (comma-separated) or a scalar is read as YAML; windows (a list of
    pairs) are left to their own validator."""
    if get_origin(annotation) is list and get_origin(get_args(annotation)[0]) is not tuple:
        return [yaml_value(item.strip()) for item in text.split(",") if item.strip()]
    return text if get_origin(annotation) is list else yaml_value(text)


def cli(model: type[S], name: str, description: str, run: Callable[[S, Path, bool, Callable[[str], None]], list[str]],
        argv: Sequence[str] | None = None) -> int:
    """The command line of experiment ``name``: ``run(settings, out_dir, quick, log)`` with the settings that
    :func:`resolve` finds, on one torch thread, logging its progress to stderr (not with ``--quick``); it returns the
    names of the files it wrote. With ``--print-config``, those settings, described. Bad input is one line on stderr
    and exit code 2, before anything is written."""
    def main(argv: Sequence[str] | None) -> int:
        args = parser(model, name, description).parse_intermixed_args(argv)
        settings = resolve(model, args)
        if args.print_config:
            print(describe(settings))
            return 0
        start = time.perf_counter()
        log = (lambda line: None) if args.quick else (lambda line: print(line, file=sys.stderr))
        args.out.mkdir(parents=True, exist_ok=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # for the run only: the caller (a test) keeps its own setting
        try:
            written = run(settings, args.out, args.quick, log)
        finally:
            torch.set_num_threads(threads)
        print(f"Wrote {args.out}/{', '.join(written)} in {time.perf_counter() - start:.1f} s")
        return 0

    return exit_on_usage_error(main, argv)


def parser(model: type[ExperimentSettings], name: str, description: str) -> argparse.ArgumentParser:
    """``--config``, ``--quick``, ``--out``, ``--print-config``, ``KEY=VALUE`` and a flag per key of ``model``,
    whose help gives its description, default, and value in the packaged ``quick`` section."""
    default_config = CONFIG_DIR / f"{name}.yaml"
    quick_keys = read_yaml(default_config).get("quick") or {}
    quick = model.model_validate(quick_keys)
    result = _Parser(
        prog=f"python -m rl_adaloss.experiments.{name}", usage="%(prog)s [options] [KEY=VALUE ...]",
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Lists are comma-separated (--b0-grid 0.01,1,100), windows FIRST-LAST (--windows 101-200,991-1000).\n"
               "The config's keys override the defaults, its 'quick' section (with --quick) overrides them, then\n"
               "KEY=VALUE, then flags. Bad input: one line on stderr, exit 2.")
    result.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="set a key; the value is YAML (b0_grid=[0.01,1] windows=[[1,10]])")
    result.add_argument("--config", type=Path, default=default_config, metavar="YAML",
                        help=f"config file: keys, and a 'quick' section (default: the packaged {name}.yaml)")
    result.add_argument("--quick", action="store_true", help="apply the config's 'quick' section: a run of seconds")
    result.add_argument("--out", type=Path, default=Path("runs") / "experiments" / name, metavar="DIR",
                        help=f"output folder for figures and tables (default: runs/experiments/{name})")
    result.add_argument("--print-config", action="store_true", help="print the resolved settings, described; exit")
    group = result.add_argument_group("settings (also config keys and KEY=VALUE)")
    for key, field in model.model_fields.items():
        in_quick = f"; quick: {flag_text(getattr(quick, key))}" if key in quick_keys else ""
        text = f"{field.description} (default: {flag_text(field.default)}{in_quick})"
        group.add_argument("--" + key.replace("_", "-"), dest=key, default=None, metavar="VALUE",
                           help=text.replace("%", "%%"))
    return result


def resolve(model: type[S], args: argparse.Namespace) -> S:
    """The settings: ``model``'s defaults, then the config file's keys, its ``quick`` section with ``--quick``,
    ``KEY=VALUE`` arguments, and flags, each later source over the earlier ones; each source is checked as it is
    applied, so that an error names where the bad value came from (``source`` + ``prefix`` + key: a config file and
    section, or the flag where ``prefix`` is ``--``); then checks across keys."""
    values = read_yaml(args.config)
    quick = values.pop("quick", None) or {}
    if not isinstance(quick, dict):
        raise UsageError(f"{args.config}: quick: expected a mapping of keys, got {quick!r}")
    flags = {key: _from_flag(field.annotation, getattr(args, key))
             for key, field in model.model_fields.items() if getattr(args, key) is not None}
    file = f"{args.config}: "
    for update, source, prefix in (({}, file, ""), (quick if args.quick else {}, file, "quick."),
                                   (dict(map(parse_override, args.overrides)), "", ""), (flags, "", "--")):
        values.update(update)
        try:
            settings = model.model_validate(values)
        except ValidationError as error:
            if prefix != "--":
                raise UsageError(source + error_line(error, prefix, model)) from None
            key = str(error.errors()[0]["loc"][0])
            raise UsageError("--" + key.replace("_", "-") + error_line(error).removeprefix(key)) from None
    settings.check()
    return settings


# -- tables --------------------------------------------------------------------------------------------------------


def markdown_header(title: str, name: str, quick: bool, settings: Section) -> str:
    """The start of an experiment's ``.md`` report: its title, the command, and the settings used as a list."""
    return (f"# {title}{' (quick run)' if quick else ''}\n\nGenerated by `python -m rl_adaloss.experiments.{name}"
            f"{' --quick' if quick else ''}`. Settings:\n\n"
            + "".join(f"- `{key}` = {flag_text(value)}\n" for key, value in settings))


def subplots(rows: int, columns: int, figsize: tuple[float, float], **options: Any):
    """A matplotlib figure (drawn off screen, no window) and its ``rows`` x ``columns`` axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, **options)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"  # nan, inf and -inf as such
    return "" if value is None else str(value)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text, the union of their keys as the columns (blank where a row has none); floats written in
    full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)  # None: ""
    return buffer.getvalue()


def _cells(rows: list[dict[str, Any]], columns: Sequence[str] | None) -> list[list[str]]:
    """The header (``columns``, or the first row's keys), then each row's cells."""
    columns = list(columns or rows[0])
    return [columns] + [[_cell(row.get(c)) for c in columns] for row in rows]


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a GitHub markdown table, floats with 4 significant digits."""
    columns, *cells = _cells(rows, columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"


def text_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a plain aligned table for the terminal."""
    table = _cells(rows, columns)
    widths = [max(map(len, column)) for column in zip(*table)]
    return "".join("  ".join(cell.rjust(w) for cell, w in zip(cells, widths)) + "\n" for cells in table)
