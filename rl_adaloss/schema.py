"""Typed configs: pydantic models, read from YAML, overridden with dotted ``key=value``, printed with descriptions.

Every config of the project (training runs, sweeps, the paper's experiments) is a :class:`Section` model: typed
fields with defaults and one-line descriptions. This module is what they share:

* :func:`read_yaml` reads a file (YAML 1.2 numbers: ``1e6`` is a number, not a string, as PyYAML's YAML 1.1 has it);
  a ``base:`` key names a file it extends (relative to it), so settings are written once;
* :func:`parse_override` and :func:`set_dotted` apply ``ppo.n_steps=256`` to the raw tree;
* :func:`validate` builds the model and turns the first validation error into one :class:`UsageError` line that
  names the key, what was expected and what was given;
* :func:`describe` writes a resolved config as YAML with each key's description, for ``--print-config``.

Why pydantic (v2) rather than OmegaConf or jsonargparse: strict types, ``extra="forbid"`` (an unknown key is named,
not ignored), constraints and unions (``lr: 3e-4`` or ``lr: lin_3e-4``) and per-key descriptions in one place, with
error locations we can print as dotted keys. OmegaConf has no per-key descriptions and weak unions; jsonargparse
ties the schema to the command line, and our configs are mostly files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rl_adaloss.errors import UsageError

M = TypeVar("M", bound=BaseModel)
#: A finite number > 0.
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Section(BaseModel):
    """A config section: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- YAML -------------------------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e6`` and ``1.0e+6`` as floats (YAML 1.2), where YAML 1.1 reads strings."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""
    ^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def load_yaml_text(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, *, follow_base: bool = True) -> dict[str, Any]:
    """The mapping in ``path``. With ``follow_base``, a top-level ``base: FILE`` (relative to ``path``) is read
    first and this file's keys are merged over it, section by section."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = load_yaml_text(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    data = {} if data is None else data  # an empty file
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of keys at the top level")
    if follow_base and "base" in data:
        base = data.pop("base")
        if not isinstance(base, str):
            raise UsageError(f"{path}: base: expected a file name, got {base!r}")
        data = merge(read_yaml(path.parent / base), data)
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, recursively for mappings; neither is modified."""
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


# -- overrides -----------------------------------------------------------------------------------------------------

def parse_override(item: str) -> tuple[str, Any]:
    """``"ppo.n_steps=256"`` → ``("ppo.n_steps", 256)``; the value is read as YAML, so ``[0.9, 0.99]`` works."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"override {item!r} is not of the form key=value")
    return key.strip(), yaml_value(text) if text else ""


def yaml_value(text: str) -> Any:
    """``text`` read as YAML (``1e-3`` a number, ``[1, 2]`` a list), or the text itself where it is not YAML."""
    try:
        return load_yaml_text(text)
    except yaml.YAMLError:
        return text


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``, making sections as needed."""
    node = tree
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise UsageError(f"{dotted}: {'.'.join(parts[:i + 1])} is not a section")
    node[parts[-1]] = value


# -- validation ----------------------------------------------------------------------------------------------------

#: pydantic's "Input should be ...", "List should have ...": what was expected.
_EXPECTED = re.compile(r"^\w+ should (?:be|have) ")


def _dotted(loc: tuple, prefix: str) -> str:
    # pydantic appends union members and validators to the location ("float", "function-after[...]", "[key]"): keep
    # the path of fields and mapping keys.
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts and ("[" in str(item) or str(item) in ("float", "int", "str", "bool", "list", "dict", "none")):
            break
        else:
            parts.append(("." if parts else "") + str(item))
    return prefix + "".join(parts)


def _section_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys of the section at ``loc`` (the path to an unknown key, without the key)."""
    for item in loc:
        field = model.model_fields.get(str(item))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def error_line(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None, label: str = "") -> str:
    """The first error of ``error`` as ``key: expected ..., got ...``."""
    first = error.errors(include_url=False)[0]
    where = _dotted(first["loc"], prefix) or prefix.rstrip(".") or "config"
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        keys = _section_keys(model, first["loc"][:-1]) if model is not None else []
        return f"unknown {label}key {where!r}" + (f" (expected one of: {', '.join(keys)})" if keys else "")
    if kind == "missing":
        return f"{where}: required key missing"
    message = _EXPECTED.sub("expected ", message).removeprefix("Value error, ")
    if "input" in first and kind not in ("value_error", "assertion_error"):
        message += f", got {first['input']!r}"
    return f"{where}: {message}"


def validate(model: type[M], data: Any, prefix: str = "", label: str = "") -> M:
    """``model`` built from ``data``; the first problem raises :class:`UsageError` naming the dotted key (an
    unknown key as "unknown <label>key")."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UsageError(error_line(error, prefix, model, label)) from None


# -- showing a config ------------------------------------------------------------------------------------------------

def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def describe(config: BaseModel, indent: int = 0) -> str:
    """``config`` as YAML that reads back to the same config, each key followed by its description."""
    lines = []
    pad = "  " * indent
    notes = {name: field.description for name, field in type(config).model_fields.items()}
    notes.update(getattr(config, "extra_descriptions", dict)())
    for name, value in config.model_dump(mode="python").items():  # the fields, then any extra keys
        note = f"  # {notes[name]}" if notes.get(name) else ""
        if isinstance(getattr(config, name), BaseModel):
            lines += [f"{pad}{name}:{note}", describe(getattr(config, name), indent + 1)]
        else:
            lines.append(f"{pad}{name}: {_flow(value)}{note}")
    return "\n".join(line for line in lines if line)


def key_table(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, "description (default: v)")`` for every leaf key of ``model``, for ``--help``."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(key_table(annotation, f"{prefix}{name}."))
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", f"{field.description or ''} (default: {_flow(default)})"))
    return rows
