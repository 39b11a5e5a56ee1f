"""One member of a batch as the SB3 path's files: ``model.zip`` that ``AdaLossPPO.load`` (and SB3's ``PPO.load``)
opens, with the member's weights and optimizer states, and ``vecnormalize.pkl`` with its normalization statistics.

The model is the member's own ``AdaLossPPO`` (``rl_adaloss.train.build_model`` with its config), its weights copied
by name (:meth:`BatchedActorCritic.store_member`) and each optimizer's state sliced out of the member-axis optimizer:
the per-parameter state (Adam moments, step counts) and the group scalars (the accumulator ``b`` or ``b_squared``,
AdamSqrt's step count) at index k, in the layout the ordinary optimizer keeps them (``step`` a float32 0-dim
tensor, group scalars Python numbers). A model loaded from it and trained on goes on as the member would.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["member_model", "member_optimizer_state", "member_vecnormalize", "model_bytes", "vecnormalize_bytes"]


def _on_engine_device(config: dict[str, Any], engine) -> dict[str, Any]:
    return {**config, "device": str(engine.device)}


def _plain_env(config: dict[str, Any]):
    """A DummyVecEnv of the member's env (no Monitor files): what the model and VecNormalize are built on."""
    from stable_baselines3.common.env_util import make_vec_env

    import envs  # noqa: F401  (registers CartPoleSwingUp-v1)

    return make_vec_env(config["env"], n_envs=config["n_envs"])


def _member_scalar(value: Any, k: int, members: int, like: Any) -> Any:
    """Member k's value of a group scalar: a (K,) tensor's entry as a Python number shaped like ``like``."""
    if isinstance(value, Tensor) and value.dim() == 1 and value.shape[0] == members:
        value = value[k].item()
    elif isinstance(value, Tensor) and value.dim() == 0:
        value = value.item()
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, int) and isinstance(value, float) and float(value).is_integer():
        return int(value)
    if isinstance(like, Tensor):
        return torch.as_tensor(value, dtype=like.dtype)
    return value


def _member_param_state(state: dict[str, Any]) -> dict[str, Any]:
    """One member's state of one parameter (member axis already indexed), as an ordinary optimizer keeps it."""
    out = {}
    for key, value in state.items():
        if isinstance(value, Tensor):
            value = value.detach().clone().cpu()
            if key == "step":  # torch's optimizers (and ours without members) keep a float32 0-dim count
                value = value.reshape(()).to(torch.float32)
        out[key] = value
    return out


def member_optimizer_state(member_optimizer, k: int, target: torch.optim.Optimizer,
                           target_names: dict[int, str], engine_names: dict[int, str]) -> dict[str, Any]:
    """``target.state_dict()`` filled with member k's state of ``member_optimizer`` (a batched
    :class:`~rl_adaloss.batched.optim.MemberOptimizer`), parameters matched by SB3 name."""
    members = member_optimizer.members
    engine_index = {engine_names[id(p)]: i for i, p in enumerate(member_optimizer.params)}
    if member_optimizer.member_axis:
        source = member_optimizer.optimizer
        per_param = [_member_param_state(state) for state in member_optimizer.member_state(k)]
        group = source.param_groups[0]
    else:
        source = member_optimizer.optimizers[k]
        per_param = [_member_param_state(source.state.get(v, {})) for v in member_optimizer.views[k]]
        group = source.param_groups[0]
    state = target.state_dict()
    if len(state["param_groups"]) != 1:
        raise ValueError("member_optimizer_state: the target optimizer has more than one parameter group")
    target_group = state["param_groups"][0]
    for key in list(target_group):
        if key != "params" and key in group:
            target_group[key] = _member_scalar(group[key], k, members, target_group[key])
    params = target.param_groups[0]["params"]
    state["state"] = {}
    for index, param in zip(target_group["params"], params):
        source_state = per_param[engine_index[target_names[id(param)]]]
        if source_state:
            state["state"][index] = source_state
    return state


def member_model(engine, k: int, config: dict[str, Any]):
    """Member k as an ``AdaLossPPO`` of its own config: weights, optimizer states and step count."""
    from rl_adaloss.snapshot import rng_state, set_rng_state
    from rl_adaloss.train import build_model

    rng = rng_state()  # build_model seeds the global RNGs; the batch's own run must not notice
    try:
        model = build_model(_on_engine_device(config, engine), _plain_env(config))
    finally:
        set_rng_state(rng)
    engine.policy.store_member(k, model.policy)
    target_names = {id(p): name for name, p in model.policy.named_parameters()}
    engine_names = {id(p): name for name, p in engine.policy.params.items()}
    for role, optimizer in model.policy.optimizers().items():
        optimizer.load_state_dict(member_optimizer_state(engine.optimizers[role], k, optimizer, target_names,
                                                         engine_names))
    model.num_timesteps = int(engine.num_timesteps)
    model._n_updates = int(engine.n_updates)
    return model


def model_bytes(engine, k: int, config: dict[str, Any]) -> bytes:
    """The bytes of member k's ``model.zip``."""
    buffer = io.BytesIO()
    model = member_model(engine, k, config)
    try:
        model.save(buffer)
    finally:
        model.get_env().close()
    return buffer.getvalue()


def member_vecnormalize(engine, k: int, config: dict[str, Any]):
    """Member k's normalization as SB3's ``VecNormalize`` (over a plain env of its config), or None where the
    config normalizes nothing."""
    from stable_baselines3.common.vec_env import VecNormalize

    normalize = config["normalize"]
    if not (normalize["obs"] or normalize["reward"]):
        return None
    gamma = normalize["gamma"] if normalize["gamma"] is not None else config["ppo"]["gamma"]
    env = VecNormalize(_plain_env(config), norm_obs=normalize["obs"], norm_reward=normalize["reward"],
                       clip_obs=normalize["clip_obs"], clip_reward=normalize["clip_reward"],
                       epsilon=normalize["epsilon"], gamma=gamma)
    source = engine.env
    # SB3's VecNormalize has no obs_rms where it does not normalize observations.
    for name in ("obs_rms", "ret_rms") if normalize["obs"] else ("ret_rms",):
        ours, theirs = getattr(source, name), getattr(env, name)
        theirs.mean = np.asarray(ours.mean[k].detach().cpu().numpy(), dtype=np.float64)
        theirs.var = np.asarray(ours.var[k].detach().cpu().numpy(), dtype=np.float64)
        theirs.count = float(ours.count[k])
    env.returns = source.returns[k].detach().cpu().numpy().astype(np.float64)
    return env


def vecnormalize_bytes(engine, k: int, config: dict[str, Any]) -> bytes | None:
    """The bytes of member k's ``vecnormalize.pkl`` (as the SB3 path pickles its VecNormalize), or None."""
    env = member_vecnormalize(engine, k, config)
    if env is None:
        return None
    try:
        return pickle.dumps(env)
    finally:
        env.close()
