"""Cart-pole swing-up in plain numpy, under the gymnasium 1.x API.

This reimplements the task of the public ``gym-cartpole-swingup`` package
(version 0.1.1) so that it runs beside gymnasium 1.x without the old ``gym``.
PyBullet's ``CartPoleSwingUp`` is not used because ``pybullet_envs`` targets the
retired ``gym<0.26`` API (4-tuple ``step``, ``seed()`` methods, ``gym`` imports)
and does not import beside gymnasium 1.x.

Dynamics
--------
State ``(x, x_dot, theta, theta_dot)``; ``theta = 0`` is the pole upright.
Constants: ``g = 9.82``, ``dt = 0.01``, friction ``b = 0.1``, cart mass
``m_c = 0.5``, pole mass ``m_p = 0.5``, pole length ``l = 0.6``, total mass
``M = m_c + m_p = 1.0``, ``mpl = m_p * l``. The applied force is
``F = 10 * clip(a, -1, 1)``. With ``s = sin(theta)``, ``c = cos(theta)``::

    x_acc     = (-2 mpl theta_dot^2 s + 3 m_p g s c + 4 F - 4 b x_dot)
                / (4 M - 3 m_p c^2)
    theta_acc = (-3 mpl theta_dot^2 s c + 6 M g s + 6 (F - b x_dot) c)
                / (4 l M - 3 mpl c^2)

Integration is explicit Euler, with positions advanced by the *old*
velocities::

    x     += dt * x_dot;      theta     += dt * theta_dot
    x_dot += dt * x_acc;      theta_dot += dt * theta_acc

Episode
-------
``reset`` draws ``(x, x_dot, theta, theta_dot)`` from
``N([0, 0, pi, 0], 0.2^2 I)`` with the env's seeded generator
(``self.np_random``, seeded through ``reset(seed=...)``), so the pole starts
hanging down. The observation is float32 ``[x, x_dot, cos theta, sin theta,
theta_dot]``. The reward is ``(1 + cos theta') / 2`` computed from the *next*
state. The episode terminates when ``|x| > 2.4``. Truncation at 500 steps is
not done here: the environment is registered with ``max_episode_steps=500``,
so gymnasium's ``TimeLimit`` wrapper (added by ``gymnasium.make``) sets
``truncated`` on the 500th step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["CartPoleSwingUpEnv"]


class CartPoleSwingUpEnv(gym.Env):
    """Cart-pole swing-up after ``gym-cartpole-swingup`` 0.1.1 (see module docstring).

    The internal state is ``self.state``, a float64 array
    ``[x, x_dot, theta, theta_dot]``; it may be set directly (e.g. in tests)
    after ``reset``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}

    # Physical constants, as in gym-cartpole-swingup 0.1.1.
    gravity = 9.82
    mass_cart = 0.5
    mass_pole = 0.5
    total_mass = mass_cart + mass_pole  # M = 1.0
    pole_length = 0.6
    mpl = mass_pole * pole_length
    friction = 0.1
    force_mag = 10.0
    dt = 0.01
    x_threshold = 2.4
    reset_mean = np.array([0.0, 0.0, np.pi, 0.0])
    reset_std = 0.2

    # rgb_array render geometry.
    screen_width = 600
    screen_height = 400

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        # cos/sin lie in [-1, 1]; x, x_dot and theta_dot are unbounded in
        # principle, so they get float32's largest finite value (gymnasium's
        # checker warns on infinite bounds).
        big = np.finfo(np.float32).max
        high = np.array([big, big, 1.0, 1.0, big], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.state: np.ndarray | None = None

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = self.np_random.normal(loc=self.reset_mean, scale=self.reset_std)
        return self._obs(), {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.state is None:
            raise RuntimeError("Call reset() before step().")
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        force = self.force_mag * float(np.clip(a, -1.0, 1.0))

        x, x_dot, theta, theta_dot = (float(v) for v in self.state)
        s, c = np.sin(theta), np.cos(theta)
        m_p, g, M, b, l, mpl = (  # noqa: E741 - the physics symbols of the model
            self.mass_pole,
            self.gravity,
            self.total_mass,
            self.friction,
            self.pole_length,
            self.mpl,
        )
        x_acc = (
            -2.0 * mpl * theta_dot**2 * s + 3.0 * m_p * g * s * c + 4.0 * force - 4.0 * b * x_dot
        ) / (4.0 * M - 3.0 * m_p * c**2)
        theta_acc = (
            -3.0 * mpl * theta_dot**2 * s * c + 6.0 * M * g * s + 6.0 * (force - b * x_dot) * c
        ) / (4.0 * l * M - 3.0 * mpl * c**2)

        # Explicit Euler: positions move with the old velocities.
        self.state = np.array(
            [
                x + self.dt * x_dot,
                x_dot + self.dt * x_acc,
                theta + self.dt * theta_dot,
                theta_dot + self.dt * theta_acc,
            ],
            dtype=np.float64,
        )

        reward = 0.5 * (1.0 + float(np.cos(self.state[2])))
        terminated = bool(abs(self.state[0]) > self.x_threshold)
        return self._obs(), reward, terminated, False, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; make the env with render_mode='rgb_array'."
            )
            return None
        return self._render_rgb()

    def close(self) -> None:
        pass

    # ------------------------------------------------------------- helpers
    def _obs(self) -> np.ndarray:
        x, x_dot, theta, theta_dot = self.state
        return np.array(
            [x, x_dot, np.cos(theta), np.sin(theta), theta_dot], dtype=np.float32
        )

    def _render_rgb(self) -> np.ndarray:
        """Draw track, cart, pole and axle with plain numpy (no pygame): a 400x600 frame in ~0.2 ms."""
        W, H = self.screen_width, self.screen_height
        img = np.full((H, W, 3), 255, dtype=np.uint8)
        scale = W / (2.0 * (self.x_threshold + 0.6))  # pixels per metre
        track_y = int(H * 0.6)

        def to_px(wx: float, wy: float) -> tuple[float, float]:
            return W / 2.0 + wx * scale, track_y - wy * scale

        # Track and the |x| = 2.4 limits.
        img[track_y, :] = (0, 0, 0)
        for lim in (-self.x_threshold, self.x_threshold):
            col = int(round(to_px(lim, 0.0)[0]))
            if 0 <= col < W:
                img[track_y - 10 : track_y + 10, col] = (200, 0, 0)

        if self.state is None:
            return img
        x, _, theta, _ = (float(v) for v in self.state)

        # Cart: filled rectangle.
        cx, cy = to_px(x, 0.0)
        half_w, half_h = 0.25 * scale, 0.1 * scale
        r0, r1 = int(max(cy - half_h, 0)), int(min(cy + half_h, H))
        c0, c1 = int(max(cx - half_w, 0)), int(min(cx + half_w, W))
        if r0 < r1 and c0 < c1:
            img[r0:r1, c0:c1] = (60, 60, 160)

        # Pole: a thick segment from the cart's axle (theta = 0 points up), then the axle. The distance to the
        # segment is computed only over the pixels of its bounding box, not the whole frame (~20x faster).
        tip = to_px(x + self.pole_length * np.sin(theta), self.pole_length * np.cos(theta))
        self._draw_segment(img, (cx, cy), tip, 0.03 * scale, (200, 130, 50))
        self._draw_segment(img, (cx, cy), (cx, cy), 0.035 * scale, (120, 120, 220))
        return img

    @staticmethod
    def _draw_segment(img: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float,
                      colour: tuple[int, int, int]) -> None:
        """Paint every pixel within ``radius`` of the segment ``start``-``end`` (pixel coordinates, col/row)."""
        H, W = img.shape[:2]
        c0 = max(int(np.floor(min(start[0], end[0]) - radius)), 0)
        c1 = min(int(np.ceil(max(start[0], end[0]) + radius)) + 1, W)
        r0 = max(int(np.floor(min(start[1], end[1]) - radius)), 0)
        r1 = min(int(np.ceil(max(start[1], end[1]) + radius)) + 1, H)
        if c0 >= c1 or r0 >= r1:
            return
        rows, cols = np.mgrid[r0:r1, c0:c1]
        px, py = cols - start[0], rows - start[1]
        dx, dy = end[0] - start[0], end[1] - start[1]
        seg2 = dx * dx + dy * dy
        t = np.clip((px * dx + py * dy) / seg2, 0.0, 1.0) if seg2 > 0 else np.zeros(px.shape)
        dist2 = (px - t * dx) ** 2 + (py - t * dy) ** 2
        img[r0:r1, c0:c1][dist2 <= radius**2] = colour
