"""Tests for the ``envs`` package: CartPoleSwingUp-v1 physics, episode rules,
reset distribution, API checkers, and registration."""

from __future__ import annotations

import ast
import importlib
import math
import pathlib
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.cartpole_swingup import CartPoleSwingUpEnv

ENV_ID = "CartPoleSwingUp-v1"


def reference_step(state, action):
    """Independent float64 transcription of the gym-cartpole-swingup 0.1.1 equations."""
    g, b, mc, mp, l = 9.82, 0.1, 0.5, 0.5, 0.6  # noqa: E741 - the model's symbols
    M = mc + mp
    mpl = mp * l
    dt = 0.01
    F = 10.0 * min(max(action, -1.0), 1.0)
    x, xd, th, thd = state
    s, c = math.sin(th), math.cos(th)
    xdd = (-2 * mpl * thd * thd * s + 3 * mp * g * s * c + 4 * F - 4 * b * xd) / (
        4 * M - 3 * mp * c * c
    )
    thdd = (-3 * mpl * thd * thd * s * c + 6 * M * g * s + 6 * (F - b * xd) * c) / (
        4 * l * M - 3 * mpl * c * c
    )
    return (x + dt * xd, xd + dt * xdd, th + dt * thd, thd + dt * thdd)


def fresh_env(state=(0.1, -0.3, 2.5, 1.2)):
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    env.state = np.array(state, dtype=np.float64)
    return env


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize(
    "start",
    [(0.1, -0.3, 2.5, 1.2), (0.0, 0.0, math.pi, 0.0), (-1.0, 0.7, 0.2, -3.0), (0.5, 1.5, -1.3, 6.0)],
)
def test_physics_matches_reference(start):
    env = fresh_env(start)
    ref = tuple(start)
    # Includes actions beyond +-1, which must be clipped.
    for a in [0.0, 0.3, -0.8, 1.0, 2.7, -5.0, -1.0, 0.55]:
        obs, reward, terminated, truncated, _ = env.step(np.array([a], dtype=np.float32))
        ref = reference_step(ref, float(np.float32(a)))
        np.testing.assert_allclose(env.state, ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            obs,
            [ref[0], ref[1], math.cos(ref[2]), math.sin(ref[2]), ref[3]],
            rtol=1e-6,
            atol=1e-6,
        )
        assert reward == pytest.approx((1 + math.cos(ref[2])) / 2, abs=1e-9)
        assert not truncated


def test_action_clipping():
    for big, edge in [(3.0, 1.0), (-42.0, -1.0)]:
        e1, e2 = fresh_env(), fresh_env()
        e1.step(np.array([big], dtype=np.float32))
        e2.step(np.array([edge], dtype=np.float32))
        np.testing.assert_array_equal(e1.state, e2.state)


def test_positions_use_old_velocities():
    start = (0.2, 1.0, 1.0, -2.0)
    env = fresh_env(start)
    env.step(np.array([0.5], dtype=np.float32))
    assert env.state[0] == pytest.approx(0.2 + 0.01 * 1.0, abs=1e-12)
    assert env.state[2] == pytest.approx(1.0 + 0.01 * -2.0, abs=1e-12)


# ------------------------------------------------------------ episode rules
def test_reward_from_next_state():
    # theta_dot large so cos(theta) differs noticeably before and after the step.
    start = (0.0, 0.0, 0.5, 20.0)
    env = fresh_env(start)
    _, reward, *_ = env.step(np.array([0.0], dtype=np.float32))
    nxt = reference_step(start, 0.0)
    assert reward == pytest.approx((1 + math.cos(nxt[2])) / 2, abs=1e-12)
    assert abs(reward - (1 + math.cos(start[2])) / 2) > 1e-2


def test_reward_range_upright_and_down():
    env = fresh_env((0.0, 0.0, 0.0, 0.0))
    _, r_up, *_ = env.step(np.array([0.0], dtype=np.float32))
    env = fresh_env((0.0, 0.0, math.pi, 0.0))
    _, r_down, *_ = env.step(np.array([0.0], dtype=np.float32))
    assert r_up == pytest.approx(1.0)
    assert r_down == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_termination_beyond_2_4(sign):
    # x moves by dt * x_dot = 0.05 with the old velocity: 2.39 -> 2.44.
    env = fresh_env((sign * 2.39, sign * 5.0, math.pi, 0.0))
    _, _, terminated, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
    assert terminated and not truncated
    assert abs(env.state[0]) > 2.4
    # Inside the limit: not terminated.
    env = fresh_env((sign * 2.30, sign * 5.0, math.pi, 0.0))
    _, _, terminated, _, _ = env.step(np.array([0.0], dtype=np.float32))
    assert not terminated


def test_truncation_at_exactly_500_steps():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 500
    env.reset(seed=1)
    # Hanging straight down at rest: an equilibrium, so it can't terminate.
    env.unwrapped.state = np.array([0.0, 0.0, math.pi, 0.0])
    zero = np.zeros(1, dtype=np.float32)
    for t in range(1, 501):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert truncated == (t == 500), t
    env.close()


# --------------------------------------------------------------------- reset
def test_reset_reproducible_with_seed():
    env = CartPoleSwingUpEnv()
    o1, _ = env.reset(seed=123)
    s1 = env.state.copy()
    o2, _ = env.reset(seed=123)
    np.testing.assert_array_equal(env.state, s1)
    np.testing.assert_array_equal(o1, o2)
    env.reset(seed=124)
    assert not np.array_equal(env.state, s1)
    # Unseeded resets continue the seeded stream reproducibly.
    env.reset(seed=5)
    seq_a = [env.reset()[0] for _ in range(3)]
    env.reset(seed=5)
    seq_b = [env.reset()[0] for _ in range(3)]
    np.testing.assert_array_equal(seq_a, seq_b)


def test_reset_distribution():
    env = CartPoleSwingUpEnv()
    env.reset(seed=0)
    states = []
    for _ in range(2000):
        env.reset()
        states.append(env.state.copy())
    states = np.asarray(states)
    np.testing.assert_allclose(states.mean(axis=0), [0.0, 0.0, math.pi, 0.0], atol=0.03)
    np.testing.assert_allclose(states.std(axis=0), 0.2, atol=0.02)


# --------------------------------------------------------- spaces / checkers
def test_spaces_and_obs_dtype():
    env = gym.make(ENV_ID)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.observation_space.dtype == np.float32
    assert env.observation_space.shape == (5,)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (5,)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and obs.shape == (5,)
    assert isinstance(reward, float) and isinstance(terminated, bool)
    assert obs[2] ** 2 + obs[3] ** 2 == pytest.approx(1.0, abs=1e-6)
    env.close()


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Made through gym.make so the checker has a spec and also tests the
        # rgb_array render mode.
        check_env(gym.make(ENV_ID).unwrapped)
        check_env(gym.make(ENV_ID, render_mode="rgb_array").unwrapped)


def test_sb3_env_checker():
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(CartPoleSwingUpEnv(), warn=True)
        check_env(gym.make(ENV_ID), warn=True)


def test_rgb_array_render():
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (400, 600, 3)
    env.unwrapped.state = np.array([1.0, 0.0, 0.0, 0.0])
    assert not np.array_equal(frame, env.render())
    env.close()


# -------------------------------------------------------------- registration
def test_pendulum_available_after_import():
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,)
    env.close()


def test_registration_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(envs)
        importlib.reload(envs)
        envs.register_envs()
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "envs.cartpole_swingup:CartPoleSwingUpEnv"
    assert spec.max_episode_steps == 500


def test_envs_does_not_import_our_package():
    pkg = pathlib.Path(envs.__file__).parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "rl_adaloss" for n in names), path
