"""What a checkpoint needs, beyond the model, for a resumed run to continue bit for bit.

A resumed run is the same run only if every source of randomness and every piece of state that the next step reads
is where it was: the torch, numpy and Python RNGs (SB3 draws its minibatch permutations from numpy's global RNG),
each environment's own state and RNG (mid-episode, through every wrapper: the time limit's step count, Monitor's
episode sums), and the algorithm's last observation. :func:`capture` takes all of that; :func:`restore` puts it back.

Environments are captured attribute by attribute, layer by layer, keeping what pickles: that is all the state of an
environment written in Python (Pendulum-v1, CartPoleSwingUp-v1). A layer whose state lives elsewhere (a physics
engine's server) gives it itself, if its class defines ``get_state()`` (picklable) and ``set_state(state)``, as
``envs.bullet_swingup`` does; otherwise it cannot be captured, and its resumed run starts fresh episodes:
:func:`capture` records that, so the checkpoint says whether its resume is exact.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import numpy as np
import torch

#: Attributes that are the link to the next layer or an open file, not state.
_SKIPPED = {"env", "venv", "envs", "results_writer", "class_attributes"}
#: Attributes of the algorithm that the next step reads and SB3's load() clears.
_ALGORITHM_STATE = ("_last_obs", "_last_episode_starts", "_last_original_obs")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _layers(env) -> list:
    """An environment and every wrapper around it, outermost first."""
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


#: The key under which a layer's own ``get_state()`` is kept.
_OWN_STATE = "__get_state__"


def _gives_own_state(layer) -> bool:
    # Looked up on the class: a gymnasium wrapper must not answer for the env it wraps.
    return callable(getattr(type(layer), "get_state", None)) and callable(getattr(type(layer), "set_state", None))


def _layer_state(layer) -> tuple[dict[str, bytes], bool]:
    """The picklable attributes of one layer (or its own ``get_state()``); whether everything that is not a link or
    a file pickled."""
    if _gives_own_state(layer):
        return {_OWN_STATE: pickle.dumps(layer.get_state())}, True
    state, complete = {}, True
    for name, value in vars(layer).items():
        if name in _SKIPPED:
            continue
        try:
            state[name] = pickle.dumps(value)
        except Exception:  # noqa: BLE001 - a handle into a native library: not state we can keep
            complete = False
    return state, complete


def _set_layer_state(layer, state: dict[str, bytes]) -> None:
    if _OWN_STATE in state:
        layer.set_state(pickle.loads(state[_OWN_STATE]))
        return
    for name, value in state.items():
        setattr(layer, name, pickle.loads(value))


def env_layers_state(env) -> tuple[list[dict[str, bytes]], bool]:
    """One gymnasium env's state, every wrapper down to the env itself, and whether the capture is complete."""
    captured = [_layer_state(layer) for layer in _layers(env)]
    return [state for state, _ in captured], all(ok for _, ok in captured)


def set_env_layers_state(env, states: list[dict[str, bytes]]) -> None:
    """Put an :func:`env_layers_state` back into an env made the same way."""
    layers = _layers(env)
    if len(layers) != len(states):
        raise ValueError(f"the checkpoint's environment has {len(states)} layers, this one {len(layers)}")
    for layer, state in zip(layers, states):
        _set_layer_state(layer, state)


def _vec_layers(vec_env) -> list:
    """An SB3 VecEnv and the VecEnvs it wraps (VecNormalize, DummyVecEnv), outermost first."""
    layers = [vec_env]
    while hasattr(layers[-1], "venv"):
        layers.append(layers[-1].venv)
    return layers


def _all_layers(vec_env) -> list:
    """Every layer with state: the VecEnv wrappers (VecNormalize's running return, DummyVecEnv's pending seeds),
    then each sub-env's wrappers (time limit, Monitor) down to the env itself."""
    vec_layers = _vec_layers(vec_env)
    return vec_layers + [layer for env in getattr(vec_layers[-1], "envs", []) for layer in _layers(env)]


def env_state(vec_env) -> tuple[list[dict[str, bytes]], bool]:
    """Every layer's state, and whether the capture is complete (the resume is exact)."""
    states, complete = [], True
    for layer in _all_layers(vec_env):
        state, ok = _layer_state(layer)
        states.append(state)
        complete = complete and ok
    return states, complete


def set_env_state(vec_env, states: list[dict[str, bytes]]) -> None:
    layers = _all_layers(vec_env)
    if len(layers) != len(states):
        raise ValueError(f"the checkpoint's environment has {len(states)} layers, this one {len(layers)}")
    for layer, state in zip(layers, states):
        _set_layer_state(layer, state)


def capture(model, train_env, eval_env, rng: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything besides ``model.save()`` that the next step reads. ``rng``: the RNG states to record, if not the
    current ones (at a rollout's start SB3 has already drawn the gSDE noise; the states before it are wanted)."""
    train, train_complete = env_state(train_env)
    evaluation, eval_complete = env_state(eval_env)
    return {
        "rng": rng if rng is not None else rng_state(),
        "train_env": train,
        "eval_env": evaluation,
        "algorithm": {name: pickle.dumps(getattr(model, name, None)) for name in _ALGORITHM_STATE},
        "exact": train_complete and eval_complete,
    }


def restore(snapshot: dict[str, Any], model, train_env, eval_env) -> bool:
    """Put a :func:`capture` back; returns whether the resume is exact. Call it after loading the model and
    before ``learn()``: the restored last observation keeps ``learn()`` from resetting the envs."""
    set_env_state(train_env, snapshot["train_env"])
    set_env_state(eval_env, snapshot["eval_env"])
    if snapshot["exact"]:
        for name, value in snapshot["algorithm"].items():
            setattr(model, name, pickle.loads(value))
    set_rng_state(snapshot["rng"])
    return bool(snapshot["exact"])
