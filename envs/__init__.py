"""Environments for rl-adaloss, registered with gymnasium on import.

gymnasium 1.x has no plugin entry points, so ``import envs`` is what makes
``gymnasium.make("CartPoleSwingUp-v1")`` work. Registration checks
``gymnasium.envs.registry`` first, so importing (or reloading) this package
twice neither warns nor fails.

* ``CartPoleSwingUp-v1``: :class:`envs.cartpole_swingup.CartPoleSwingUpEnv`,
  the swing-up of ``gym-cartpole-swingup`` 0.1.1 in plain numpy, with
  ``max_episode_steps=500`` (gymnasium's ``TimeLimit`` truncates).
* ``InvertedPendulumSwingupBulletEnv-v0``:
  :class:`envs.bullet_swingup.InvertedPendulumSwingupBulletEnv`, pybullet's
  swing-up (the paper's task) without the old ``gym``, with
  ``max_episode_steps=1000``. Registered only when ``pybullet`` is installed
  (``pip install .[bullet]``); pybullet is not imported until ``make``.
* ``Pendulum-v1`` is gymnasium's own and is used as it is.

This package must not import ``rl_adaloss``.
"""

from __future__ import annotations

import importlib.util

import gymnasium

from envs.cartpole_swingup import CartPoleSwingUpEnv

__all__ = ["CartPoleSwingUpEnv", "register_envs", "CARTPOLE_SWINGUP_ID", "BULLET_SWINGUP_ID"]

CARTPOLE_SWINGUP_ID = "CartPoleSwingUp-v1"
BULLET_SWINGUP_ID = "InvertedPendulumSwingupBulletEnv-v0"


def register_envs() -> None:
    """Register this package's environments with gymnasium (idempotent)."""
    if CARTPOLE_SWINGUP_ID not in gymnasium.envs.registry:
        gymnasium.register(
            id=CARTPOLE_SWINGUP_ID,
            entry_point="envs.cartpole_swingup:CartPoleSwingUpEnv",
            max_episode_steps=500,
        )
    if BULLET_SWINGUP_ID not in gymnasium.envs.registry and _has_pybullet():
        gymnasium.register(
            id=BULLET_SWINGUP_ID,
            entry_point="envs.bullet_swingup:InvertedPendulumSwingupBulletEnv",
            max_episode_steps=1000,
        )


def _has_pybullet() -> bool:
    # Looked up, not imported: importing pybullet costs ~0.2 s and prints its build time to stderr.
    return importlib.util.find_spec("pybullet") is not None


register_envs()
