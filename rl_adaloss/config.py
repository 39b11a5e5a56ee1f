"""Training configs: one typed schema (pydantic, see :mod:`rl_adaloss.schema`), YAML files, ``key=value`` overrides.

A config names the environment, PPO's settings (any of SB3's ``PPO`` arguments), the policy's ``policy_kwargs``,
VecNormalize's settings, the evaluation and checkpoint schedule, and the optimizer. The schema's defaults are
Stable-Baselines3's; the settings tuned for an environment live in one base file per environment in
``rl_adaloss/configs/`` (``pendulum.yaml``), and each optimizer is a small overlay on it (``pendulum_adam.yaml``:
``base: pendulum.yaml`` plus an ``optimizer:`` section), so no setting is written twice.

The ``optimizer`` section is the one whose keys depend on a value: which arguments it takes is read off the named
optimizer's constructor, and they are checked by constructing that optimizer on a dummy parameter, so the
optimizers' own checks are the only rules.

:func:`load_config` returns the resolved config as a plain dict (what ``config.yaml`` holds and ``--resume`` reads
back); every problem raises :class:`~rl_adaloss.errors.UsageError` with one line naming the key.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, ConfigDict, Field, PositiveInt, field_validator, model_validator
from torch import nn

from rl_adaloss.errors import UsageError
from rl_adaloss.optim import OPTIMIZERS
from rl_adaloss.optim.base import skip_dynamo_import
from rl_adaloss.schema import Section, describe, parse_override, read_yaml, set_dotted, validate

#: The configs shipped with the package (``configs/`` at the repository root points here).
CONFIG_DIR = Path(str(resources.files("rl_adaloss") / "configs"))

#: ``lin_3e-4``: rl-baselines3-zoo's linear schedule, from the value at the start to 0 at the end.
SCHEDULE = re.compile(r"^lin_([0-9.]+(?:[eE][-+]?[0-9]+)?)$")
#: ``policy_kwargs.activation_fn`` by name.
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
               "silu": nn.SiLU}


def schedule(value: float | str) -> float | Callable[[float], float]:
    """A number, or SB3's schedule (a function of the remaining progress, 1 → 0) for ``lin_<start>``."""
    if isinstance(value, str):
        start = float(SCHEDULE.match(value).group(1))  # type: ignore[union-attr]
        return lambda progress_remaining: progress_remaining * start
    return value


def _check_schedule(value: Any) -> Any:
    if isinstance(value, str) and not SCHEDULE.match(value):
        raise ValueError(f"expected a number or a linear schedule such as lin_3e-4, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not value >= 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return value


#: A number >= 0, or ``lin_<start>``.
Schedule = Annotated[float | str, AfterValidator(_check_schedule)]


# -- the schema ------------------------------------------------------------------------------------------------------

class EvalSection(Section):
    freq: PositiveInt = Field(10_000, description="evaluate every this many env steps (and at 0 and at the end)")
    episodes: PositiveInt = Field(10, description="deterministic episodes per evaluation")


class NormalizeSection(Section):
    """VecNormalize's settings; ``normalize: true`` / ``false`` is a shorthand for obs and reward both."""

    obs: bool = Field(False, description="normalize observations by running mean and std")
    reward: bool = Field(False, description="scale rewards by the running std of the discounted return")
    clip_obs: float = Field(10.0, gt=0, description="clip normalized observations to +-clip_obs")
    clip_reward: float = Field(10.0, gt=0, description="clip normalized rewards to +-clip_reward")
    gamma: float | None = Field(None, gt=0, le=1, description="discount of the return whose std scales rewards "
                                                                  "(null: ppo.gamma)")
    epsilon: float = Field(1e-8, gt=0, description="added to the variance to avoid dividing by zero")


class PPOSection(Section):
    """Stable-Baselines3's ``PPO`` arguments (``learning_rate`` is ``optimizer.lr``)."""

    n_steps: PositiveInt = Field(2048, description="rollout steps per env per update (rollout = n_envs x n_steps)")
    batch_size: PositiveInt = Field(64, description="minibatch size")
    n_epochs: PositiveInt = Field(10, description="passes over the rollout per update")
    gamma: float = Field(0.99, ge=0, le=1, description="discount factor")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE(lambda)")
    clip_range: Schedule = Field(0.2, description="PPO's clip range: a number or a schedule such as lin_0.2")
    clip_range_vf: Schedule | None = Field(None, description="value clipping range (null: no value clipping)")
    normalize_advantage: bool = Field(True, description="normalize advantages per minibatch")
    ent_coef: float = Field(0.0, description="entropy bonus coefficient")
    vf_coef: float = Field(0.5, ge=0, description="value loss coefficient")
    max_grad_norm: float = Field(0.5, gt=0, description="gradient clipping norm (per network in the separate layout)")
    use_sde: bool = Field(False, description="generalized state-dependent exploration (continuous actions only)")
    sde_sample_freq: int = Field(-1, ge=-1, description="resample the gSDE noise every n steps (-1: per rollout)")
    target_kl: float | None = Field(None, gt=0, description="stop an update's epochs early above 1.5 x this KL")
    stats_window_size: PositiveInt = Field(100, description="episodes averaged in rollout/ep_rew_mean")


class PolicySection(Section):
    """SB3's ``policy_kwargs`` for ``MlpPolicy`` (the optimizer settings are the ``optimizer`` section)."""

    net_arch: list[int] | dict[Literal["pi", "vf"], list[int]] = Field(
        [64, 64], description="hidden layers, shared shape [64, 64] or per network {pi: [..], vf: [..]}")
    activation_fn: Literal[tuple(ACTIVATIONS)] = Field("tanh", description=f"activation: {', '.join(ACTIVATIONS)}")
    ortho_init: bool = Field(True, description="orthogonal initialisation with SB3's gains")
    log_std_init: float = Field(0.0, description="initial log standard deviation of the action distribution")
    full_std: bool = Field(True, description="gSDE: one std per action and feature (false: per feature)")
    use_expln: bool = Field(False, description="gSDE: expln instead of exp, to keep the std positive and bounded")
    squash_output: bool = Field(False, description="gSDE: squash actions with tanh")
    share_features_extractor: bool = Field(True, description="actor and critic share the features extractor")


class OptimizerSection(Section):
    """The step-size rule. Keys besides these are the named optimizer's constructor arguments."""

    model_config = ConfigDict(extra="allow")

    name: Literal[tuple(OPTIMIZERS)] = Field("adam", description=f"the rule: {', '.join(OPTIMIZERS)}")
    layout: Literal["separate", "joint"] = Field(
        "separate", description="separate: actor and critic optimizers, each fed its own loss; joint: SB3's one "
                                "optimizer fed the total loss")
    lr: Schedule = Field(3e-4, description="the base step size eta (adam: the learning rate); or lin_<eta>")
    actor: dict[str, Any] | None = Field(None, description="per-network overrides of the actor's optimizer")
    critic: dict[str, Any] | None = Field(None, description="per-network overrides of the critic's optimizer")

    @model_validator(mode="before")
    @classmethod
    def _constructor_defaults(cls, data: Any) -> Any:
        """Fill in the named optimizer's own defaults, so that config.yaml shows every argument it runs with."""
        if isinstance(data, dict) and data.get("name", "adam") in OPTIMIZERS:
            defaults = optimizer_arguments(data.get("name", "adam"))
            given = {key: float(value) if isinstance(defaults.get(key), float) and type(value) is int else value
                     for key, value in data.items()}  # b0: 1000 is the number 1000.0, as the optimizer reads it
            data = {**defaults, **given}
        return data

    @model_validator(mode="after")
    def _check_arguments(self) -> OptimizerSection:
        """Construct the optimizer on a dummy parameter with these arguments (and each network's overrides), and
        turn its complaint into a :class:`UsageError` that names the key: its checks are the only rules."""
        import torch

        arguments = self.model_extra or {}
        if self.layout == "joint" and (self.actor or self.critic):
            raise UsageError("optimizer.actor/optimizer.critic: per-network overrides need optimizer.layout=separate")
        start = float(schedule(self.lr)(1.0)) if isinstance(self.lr, str) else self.lr
        # (where, its own keys, the keys it inherits): a network's override takes the section's arguments but lr
        sections = [("optimizer", arguments, {})] + [
            (f"optimizer.{net}", getattr(self, net), arguments) for net in ("actor", "critic") if getattr(self, net)]
        for where, own, inherited in sections:
            allowed = [key for key in optimizer_arguments(self.name) if where == "optimizer" or key != "lr"]
            for key in own:
                if key not in allowed:
                    raise UsageError(f"unknown key {where + '.' + key!r} for optimizer {self.name} "
                                     f"(expected one of: {', '.join(allowed)})")
            kwargs = {**inherited, **own}
            skip_dynamo_import()  # torch's own Adam would import torch._dynamo (~1.5 CPU-s) on this throw-away build
            try:
                OPTIMIZERS[self.name]([torch.zeros(1, requires_grad=True)], **{**kwargs, "lr": start})
            except (ValueError, TypeError) as error:
                message = str(error).splitlines()[0]
                key = _argument_in(message, list(kwargs))
                blame = where if key is None else (f"{where}.{key}" if key in own else f"optimizer.{key}")
                raise UsageError(f"{blame}: {message}") from None
        return self

    def extra_descriptions(self) -> dict[str, str]:
        documented = argument_docs(OPTIMIZERS[self.name])
        return {key: documented.get(key, f"argument of {OPTIMIZERS[self.name].__name__}")
                for key in self.model_extra or {}}


class TrainConfig(Section):
    """One PPO training run."""

    env: str = Field("Pendulum-v1", description="gymnasium id: Pendulum-v1, CartPoleSwingUp-v1, "
                                                "InvertedPendulumSwingupBulletEnv-v0 (the paper's; needs .[bullet])")
    seed: int = Field(0, description="random seed (training envs, networks; the eval env uses seed + 10000)")
    total_timesteps: PositiveInt = Field(100_000, description="environment steps to train for")
    n_envs: PositiveInt = Field(1, description="parallel training envs")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="torch device of the networks")
    normalize: NormalizeSection = Field(default_factory=NormalizeSection,
                                        description="VecNormalize (true/false: obs and reward)")
    eval: EvalSection = Field(default_factory=EvalSection,
                              description="deterministic evaluation on a separately seeded env")
    checkpoint_freq: PositiveInt = Field(20_000, description="save a resumable checkpoint every this many steps")
    ppo: PPOSection = Field(default_factory=PPOSection, description="PPO's settings")
    policy_kwargs: PolicySection = Field(default_factory=PolicySection, description="the policy's networks")
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection, description="the step-size rule")

    @field_validator("normalize", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"obs": value, "reward": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _runnable(self) -> TrainConfig:
        """Refuse, with the reason, what would pass the types and then fail at step 0."""
        import gymnasium

        import envs  # noqa: F401  (registers our environments, so that they can be looked up)

        try:
            gymnasium.spec(self.env)
        except gymnasium.error.Error:
            raise UsageError(f"env: unknown environment {self.env!r} (expected a gymnasium id such as Pendulum-v1, "
                             f"CartPoleSwingUp-v1, or InvertedPendulumSwingupBulletEnv-v0 with pip install "
                             f"'rl-adaloss[bullet]')") from None
        if self.policy_kwargs.squash_output and not self.ppo.use_sde:
            raise UsageError("policy_kwargs.squash_output: SB3 squashes actions only with gSDE; set ppo.use_sde=true")
        if self.ppo.use_sde:
            with gymnasium.make(self.env) as probe:
                space = probe.action_space
            if not isinstance(space, gymnasium.spaces.Box):
                raise UsageError(f"ppo.use_sde: gSDE needs continuous (Box) actions, and {self.env} has {space}; "
                                 f"set ppo.use_sde=false")
        return self


# -- checks that need more than a type ---------------------------------------------------------------------------

#: An optimizer argument's default as the config holds it, by its type (torch's weight_decay=0 is a number, not a
#: count); ``self`` and ``params`` have no default, and keyword-only arguments (torch's ``fused``) are not settings.
_PLAIN = {tuple: list, bool: bool, int: float, float: float}


def optimizer_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments (with defaults) that optimizer ``name`` takes, read off its constructor: numbers,
    booleans and tuples (as lists) only, so that the section is plain YAML."""
    parameters = inspect.signature(OPTIMIZERS[name].__init__).parameters.values()
    return {p.name: _PLAIN[type(p.default)](p.default) for p in parameters
            if p.kind is p.POSITIONAL_OR_KEYWORD and type(p.default) in _PLAIN}


def argument_docs(cls: type) -> dict[str, str]:
    """The first line of each argument's entry in a class's ``Args:`` docstring section (ours and torch's)."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    entries = re.findall(r"^ {2,8}(\w+)(?: \([^)]*\))?: (.+)$", section, flags=re.M)
    return {name: re.sub(r":math:|`", "", text).strip().rstrip(".") for name, text in entries}


#: How torch's own optimizers name an argument in their error messages.
_TORCH_WORDS = {"learning rate": "lr", "epsilon": "eps", "beta": "betas"}


def _argument_in(message: str, keys: list[str]) -> str | None:
    named = [key for key in sorted(keys, key=len, reverse=True) if re.search(rf"\b{re.escape(key)}\b", message)]
    named += [key for words, key in _TORCH_WORDS.items() if words in message.lower() and key in keys]
    return named[0] if named else None


# -- loading -------------------------------------------------------------------------------------------------------

def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a raw config (defaults filled in) and return it as a plain dict; resolving it again changes
    nothing."""
    config = validate(TrainConfig, raw)
    # no per-network section: the optimizer section is its arguments, and no more
    unset = {role for role in ("actor", "critic") if getattr(config.optimizer, role) is None}
    return config.model_dump(mode="python", exclude={"optimizer": unset})


def load_raw(path: str | Path | None) -> dict[str, Any]:
    """The raw tree of ``path`` (a file, or the name of a shipped config), or of the default config; with
    ``normalize: true`` as the section it stands for, so that ``normalize.reward=false`` can override it."""
    raw = read_yaml(find_config(path) if path is not None else CONFIG_DIR / "default.yaml")
    if isinstance(raw.get("normalize"), bool):
        raw["normalize"] = TrainConfig._shorthand(raw["normalize"])
    return raw


def find_config(path: str | Path) -> Path:
    """``path`` itself if it is a file, else the shipped config of that name (``pendulum_adam`` or
    ``pendulum_adam.yaml``), so configs are found outside a source checkout."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (path.name if path.suffix else f"{path.name}.yaml")
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise UsageError(f"config file not found: {path}")


def override(raw: dict[str, Any], items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted ``(key, value)`` in ``raw``. A change of ``optimizer.name`` comes first and starts that
    section afresh (keeping the layout): another rule takes other arguments, and its own defaults (Adam: lr 1e-3)."""
    for key, value in sorted(items, key=lambda item: item[0] != "optimizer.name"):
        section = raw.get("optimizer") if isinstance(raw.get("optimizer"), dict) else {}
        if key == "optimizer.name" and value != section.get("name"):
            raw["optimizer"] = {"layout": section["layout"]} if "layout" in section else {}
        set_dotted(raw, key, value)
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read ``path`` (default: the default config), apply ``key=value`` overrides, validate, and return it."""
    return resolve(override(load_raw(path), [parse_override(item) for item in overrides or []]))


def dump_config(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def print_config(config: dict[str, Any]) -> str:
    """The resolved config as YAML with every key's description, for ``--print-config``."""
    return describe(TrainConfig.model_validate(config)) + "\n"
