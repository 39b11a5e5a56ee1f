"""PyBullet's inverted-pendulum swing-up under the gymnasium 1.x API.

This is the task ``InvertedPendulumSwingupBulletEnv-v0`` of ``pybullet_envs``
(pybullet 3.2.7: ``gym_pendulum_envs.py``, ``robot_pendula.py`` and their bases),
written anew against pybullet itself, because ``pybullet_envs`` imports the old
``gym`` and uses its 4-tuple ``step`` and ``seed()`` methods.
``tests/test_bullet_env.py`` checks it equal to the original, step by step.

Model and physics
-----------------
The MJCF model ``mjcf/inverted_pendulum.xml`` shipped in ``pybullet_data``: a
cart on a slider joint limited to ``[-1, 1]`` with an unlimited hinge carrying
the pole. Each joint's default motor is switched off (position control with
force 0). The world has gravity ``9.8`` (not the model's 9.81), contact ERP
0.9, 5 solver iterations and a fixed timestep of ``0.0165`` s, one simulation
step per environment step. The action sets the slider torque to
``100 * clip(a, -1, 1)`` for the next step.

Episode
-------
``reset`` puts the cart at rest at ``x = 0`` and the pole at rest at
``theta = 3.1415 + u`` (hanging down; pybullet's constant is 3.1415, not pi),
``u ~ U(-0.1, 0.1)`` drawn from the env's seeded generator (``self.np_random``,
seeded through ``reset(seed=...)``). The observation is float32
``[x, x_dot, cos theta, sin theta, theta_dot]`` (``theta`` unwrapped), the
reward ``cos theta`` after the step. The swing-up never terminates; the
environment is registered with ``max_episode_steps=1000``, so gymnasium's
``TimeLimit`` truncates.

State: ``get_state()`` gives everything the next steps read (both joints' position
and velocity, the seeded generator, whether the env has been reset), picklable,
and ``set_state()`` puts it into any env of this class, connecting it first if
needed; the continued episode is the same bit for bit (the world's settings are
the constants above, and pybullet keeps nothing else between steps that this
model's steps read: ``tests/test_batched_gym_envs.py`` checks it).

Rendering is ``rgb_array`` only, through pybullet's TinyRenderer
(``getCameraImage``), which runs headless. Each env owns its own
``pybullet.DIRECT`` client, connected on the first ``reset``; ``close()``
disconnects it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@contextlib.contextmanager
def _quiet_native_stdout() -> Iterator[None]:
    """Silence file descriptor 1 for a moment: pybullet's C code prints its build time on import and "argv[0]="
    on every connect straight to it, past ``sys.stdout``, which buried a batched sweep's progress bar under
    one line per env."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


with _quiet_native_stdout():
    import pybullet
    import pybullet_data
    from pybullet_utils import bullet_client

__all__ = ["InvertedPendulumSwingupBulletEnv"]


class InvertedPendulumSwingupBulletEnv(gym.Env):
    """PyBullet's ``InvertedPendulumSwingupBulletEnv-v0`` for gymnasium (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    model_path = os.path.join(pybullet_data.getDataPath(), "mjcf", "inverted_pendulum.xml")
    gravity = 9.8
    timestep = 0.0165
    solver_iterations = 5
    contact_erp = 0.9
    torque_scale = 100.0
    theta_down = 3.1415
    theta_noise = 0.1

    # rgb_array camera: pybullet_envs' defaults for this task.
    render_width, render_height = 320, 240
    camera = dict(cameraTargetPosition=[0, 0, 0], distance=3.0, yaw=0.0, pitch=-30.0, roll=0.0, upAxisIndex=2)

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        # As in envs.cartpole_swingup: finite bounds, cos/sin in [-1, 1].
        big = np.finfo(np.float32).max
        high = np.array([big, big, 1.0, 1.0, big], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self._p: bullet_client.BulletClient | None = None
        self._ready = False

    # ------------------------------------------------------------------ simulation
    def _load(self) -> None:
        """Connect a headless client and load the model, with every joint's motor off."""
        with _quiet_native_stdout():
            p = self._p = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        p.resetSimulation()
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        bodies = p.loadMJCF(self.model_path, flags=pybullet.URDF_USE_SELF_COLLISION
                            | pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS
                            | pybullet.URDF_GOOGLEY_UNDEFINED_COLORS)
        joints = {}
        for body in bodies:
            for j in range(p.getNumJoints(body)):
                p.setJointMotorControl2(body, j, pybullet.POSITION_CONTROL, positionGain=0.1, velocityGain=0.1,
                                        force=0)
                joints[p.getJointInfo(body, j)[1].decode()] = (body, j)
        self._slider, self._hinge = joints["slider"], joints["hinge"]

    def _joint(self, joint: tuple[int, int]) -> tuple[float, float]:
        position, velocity, _, _ = self._p.getJointState(*joint)
        return position, velocity

    def _obs(self) -> tuple[np.ndarray, float]:
        x, x_dot = self._joint(self._slider)
        theta, theta_dot = self._joint(self._hinge)
        obs = np.array([x, x_dot, np.cos(theta), np.sin(theta), theta_dot], dtype=np.float32)
        return obs, float(np.cos(theta))

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._configure()
        u = self.np_random.uniform(low=-self.theta_noise, high=self.theta_noise)
        self._set_joints(((0.0, 0.0), (self.theta_down + u, 0.0)))
        self._ready = True
        return self._obs()[0], {}

    def _configure(self) -> None:
        """Connect (the first time) and set the world's settings, as every reset does."""
        if self._p is None:
            self._load()
        p = self._p
        p.setGravity(0, 0, -self.gravity)
        p.setDefaultContactERP(self.contact_erp)
        p.setPhysicsEngineParameter(fixedTimeStep=self.timestep, numSolverIterations=self.solver_iterations,
                                    numSubSteps=1)

    def _set_joints(self, joints) -> None:
        """``((x, x_dot), (theta, theta_dot))``: the slider's and the hinge's position and velocity."""
        for joint, (position, velocity) in zip((self._slider, self._hinge), joints):
            self._p.resetJointState(*joint, targetValue=position, targetVelocity=velocity)

    def get_state(self) -> dict[str, Any]:
        """What the next steps read (see the module docstring), picklable."""
        joints = (self._joint(self._slider), self._joint(self._hinge)) if self._ready else None
        return {"joints": joints, "np_random": self._np_random, "np_random_seed": self._np_random_seed,
                "ready": self._ready}

    def set_state(self, state: dict[str, Any]) -> None:
        """Put a :meth:`get_state` back (connecting first where this env has not been reset yet)."""
        self._np_random, self._np_random_seed = state["np_random"], state["np_random_seed"]
        self._ready = state["ready"]
        if state["joints"] is not None:
            self._configure()
            self._set_joints(state["joints"])

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("Call reset() before step().")
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not np.isfinite(a):
            raise ValueError(f"action must be finite, got {action!r}")
        self._p.setJointMotorControl2(*self._slider, controlMode=pybullet.TORQUE_CONTROL,
                                      force=self.torque_scale * float(np.clip(a, -1.0, 1.0)))
        self._p.stepSimulation()
        obs, reward = self._obs()
        return obs, reward, False, False, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._p is None:
            raise RuntimeError("Call reset() before render().")
        w, h = self.render_width, self.render_height
        view = self._p.computeViewMatrixFromYawPitchRoll(**self.camera)
        projection = self._p.computeProjectionMatrixFOV(fov=60, aspect=w / h, nearVal=0.1, farVal=100.0)
        _, _, rgba, _, _ = self._p.getCameraImage(w, h, viewMatrix=view, projectionMatrix=projection,
                                                  renderer=pybullet.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self._p is not None:
            self._p.disconnect()
            self._p = None
        self._ready = False
