"""Training configs: YAML files in ``configs/``, validated against one schema, overridable with ``key=value``.

A config is a nested dict. ``DEFAULTS`` below is the schema: every key a config may set, with its default value,
whose type is the type expected (a float key also takes an int). ``optimizer`` is the exception: which keys it takes
depends on the optimizer named, and is read off that optimizer's constructor.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import yaml

from rl_adaloss.optim import OPTIMIZERS


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what was expected."""


DEFAULTS: dict[str, Any] = {
    "env": "Pendulum-v1",
    "seed": 0,
    "total_timesteps": 100_000,
    "n_envs": 4,
    "device": "auto",
    # VecNormalize on observations and rewards, as rl-baselines3-zoo tunes Pendulum-v1.
    "normalize": True,
    "eval": {"freq": 10_000, "episodes": 10},
    "checkpoint_freq": 20_000,
    "ppo": {
        "n_steps": 512,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.9,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "use_sde": True,
        "sde_sample_freq": 4,
        "net_arch": [64, 64],
    },
    "optimizer": {
        "name": "adamloss",
        # "separate": actor and critic each have an optimizer fed their own loss; "joint": SB3's single optimizer.
        "layout": "separate",
        "lr": 1.0,
        "b0": 1.0e7,
        "alpha": 1.0,
        "c": 0.0,
        "betas": [0.9, 0.99],
        "eps": 1.0e-5,
    },
}

ENVS_NOTE = "a gymnasium id such as Pendulum-v1 or CartPoleSwingUp-v1"
DEVICES = ("auto", "cpu", "cuda")
LAYOUTS = ("separate", "joint")
#: Keys of the ``optimizer`` section that are not constructor arguments of the optimizer.
OPTIMIZER_META_KEYS = ("name", "layout", "actor", "critic")


def optimizer_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments (with defaults) that optimizer ``name`` takes, read off its constructor."""
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    return {
        key: param.default
        for key, param in signature.parameters.items()
        if key not in ("self", "params") and param.kind is param.POSITIONAL_OR_KEYWORD
    }


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read ``path`` (or start from the defaults), apply ``key=value`` overrides, validate, and return the config."""
    config: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
        config = loaded or {}
    return from_dict(config, overrides)


def from_dict(config: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a raw config dict, validate, and return the resolved config."""
    config = copy.deepcopy(config)
    for item in overrides or []:
        key, value = parse_override(item)
        set_key(config, key, value)
    return resolve(config)


def parse_override(item: str) -> tuple[str, Any]:
    """``"ppo.n_steps=256"`` → ``("ppo.n_steps", 256)``; the value is read as YAML, so ``[0.9, 0.99]`` works."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Merge ``config`` over the defaults and check every key, type and range."""
    # Always resolve the optimizer section, so that resolving a resolved config changes nothing.
    config = {**config, "optimizer": config.get("optimizer", {})}
    resolved = _merge(copy.deepcopy(DEFAULTS), config, prefix="", schema=DEFAULTS)
    _check_values(resolved)
    return resolved


def _merge(base: dict, update: dict, prefix: str, schema: dict) -> dict:
    if prefix == "optimizer.":
        return _merge_optimizer(base, update)
    for key, value in update.items():
        where = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"unknown key {where!r} (expected one of: {', '.join(schema)})")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
            base[key] = _merge(base[key], value, f"{where}.", expected)
        else:
            base[key] = _typed(where, value, expected)
    return base


def _merge_optimizer(base: dict, update: dict) -> dict:
    name = update.get("name", base["name"])
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name: unknown optimizer {name!r} (expected one of: {', '.join(OPTIMIZERS)})")
    accepted = optimizer_arguments(name)
    # Another optimizer than the default starts from its own constructor's defaults (Adam: lr 1e-3).
    merged: dict[str, Any] = {"name": name, "layout": base["layout"]}
    for key, default in accepted.items():
        # Constructor defaults typed as ints (torch's weight_decay=0) are numbers; tuples become YAML lists.
        if isinstance(default, tuple):
            merged[key] = list(default)
        elif isinstance(default, (int, float)):
            merged[key] = default if isinstance(default, bool) else float(default)
    if name == base["name"]:
        merged.update(base)
    for key, value in update.items():
        if key == "name":
            continue
        where = f"optimizer.{key}"
        if key in ("actor", "critic"):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a section of per-network overrides, got {value!r}")
            merged[key] = {k: _optimizer_value(f"{where}.{k}", k, v, accepted, name) for k, v in value.items()}
        elif key == "layout":
            merged[key] = _typed(where, value, "separate")
        else:
            merged[key] = _optimizer_value(where, key, value, accepted, name)
    return merged


def _optimizer_value(where: str, key: str, value: Any, accepted: dict[str, Any], name: str) -> Any:
    if key not in accepted or key == "lr" and where.count(".") > 1:
        allowed = [k for k in accepted if not (k == "lr" and where.count(".") > 1)]
        raise ConfigError(f"unknown key {where!r} for optimizer {name} (expected one of: {', '.join(allowed)})")
    default = accepted[key]
    if isinstance(default, int) and not isinstance(default, bool):
        default = float(default)  # torch's weight_decay=0: a number, not an integer
    if isinstance(default, (int, float, bool, str, tuple)) and default is not None:
        return _typed(where, value, list(default) if isinstance(default, tuple) else default)
    return value


def _typed(where: str, value: Any, expected: Any) -> Any:
    if isinstance(expected, bool):
        ok = isinstance(value, bool)
    elif isinstance(expected, float):
        value = _yaml11_float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(expected, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(expected, str):
        ok = isinstance(value, str)
    elif isinstance(expected, list):
        value = [_yaml11_float(v) for v in value] if isinstance(value, list) else value
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(expected)}, got {value!r}")
    return value


def _yaml11_float(value: Any) -> Any:
    """PyYAML follows YAML 1.1, which reads ``1e6`` and ``1.0e6`` as strings; take them as the numbers meant."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _type_name(expected: Any) -> str:
    if isinstance(expected, bool):
        return "true or false"
    if isinstance(expected, list):
        return "a list of numbers"
    return {float: "a number", int: "an integer", str: "a string"}[type(expected)]


def _check_values(config: dict[str, Any]) -> None:
    def positive(where: str, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"{where}: expected a value > 0, got {value!r}")

    for key in ("total_timesteps", "n_envs", "checkpoint_freq"):
        positive(key, config[key])
    positive("eval.freq", config["eval"]["freq"])
    positive("eval.episodes", config["eval"]["episodes"])
    import envs  # noqa: F401  (registers our environments, so that they can be looked up)
    import gymnasium

    try:
        gymnasium.spec(config["env"])
    except gymnasium.error.Error:
        raise ConfigError(f"env: unknown environment {config['env']!r} (expected {ENVS_NOTE})") from None
    if config["device"] not in DEVICES:
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)}, got {config['device']!r}")
    for key in ("n_steps", "batch_size", "n_epochs"):
        positive(f"ppo.{key}", config["ppo"][key])
    optimizer = config["optimizer"]
    if optimizer["layout"] not in LAYOUTS:
        raise ConfigError(f"optimizer.layout: expected one of {', '.join(LAYOUTS)}, got {optimizer['layout']!r}")
    if optimizer["layout"] == "joint" and (optimizer.get("actor") or optimizer.get("critic")):
        raise ConfigError("optimizer.actor/optimizer.critic: per-network overrides need optimizer.layout=separate")
    for section in (optimizer, optimizer.get("actor", {}), optimizer.get("critic", {})):
        where = "optimizer" if section is optimizer else f"optimizer.{'actor' if section is optimizer.get('actor') else 'critic'}"
        if "b0" in section:
            positive(f"{where}.b0", section["b0"])
        if "lr" in section and not section["lr"] > 0:
            raise ConfigError(f"{where}.lr: expected a value > 0, got {section['lr']!r}")
        if "alpha" in section and section["alpha"] < 0:
            raise ConfigError(f"{where}.alpha: expected a value >= 0, got {section['alpha']!r}")
        if "betas" in section:
            betas = section["betas"]
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise ConfigError(f"{where}.betas: expected two numbers in [0, 1), got {betas!r}")
        if "eps" in section and section["eps"] < 0:
            raise ConfigError(f"{where}.eps: expected a value >= 0, got {section['eps']!r}")


def dump_config(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
