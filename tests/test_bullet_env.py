"""Tests for ``envs.bullet_swingup``: equal to pybullet's own ``pybullet_envs`` swing-up, step by step, over
several episodes; gymnasium's checker; rendering; registration. Skipped without pybullet (``pip install .[bullet]``)."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

import gymnasium
import numpy as np
import pytest

pybullet = pytest.importorskip("pybullet")

import envs  # noqa: E402
from envs.bullet_swingup import InvertedPendulumSwingupBulletEnv  # noqa: E402

ENV_ID = "InvertedPendulumSwingupBulletEnv-v0"


def _stand_in_gym() -> dict[str, types.ModuleType]:
    """The few names of the old ``gym`` (and of ``pkg_resources``) that ``pybullet_envs`` imports, over gymnasium."""

    def module(name: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    class Env:  # the old gym.Env as pybullet_envs uses it: a plain base class
        pass

    seeding = module("gym.utils.seeding", np_random=gymnasium.utils.seeding.np_random)
    utils = module("gym.utils", seeding=seeding)
    spaces = module("gym.spaces", Box=gymnasium.spaces.Box)
    registry = types.SimpleNamespace(env_specs={}, all=lambda: [])
    registration = module("gym.envs.registration", registry=registry, make=None, spec=None,
                          register=lambda id, **kwargs: registry.env_specs.setdefault(id, kwargs))
    gym_envs = module("gym.envs", registration=registration, registry=registry)
    gym = module("gym", Env=Env, spaces=spaces, utils=utils, envs=gym_envs, __version__="0.21.0")
    pkg_resources = module("pkg_resources", parse_version=lambda v: tuple(int(x) for x in v.split(".")))
    return {m.__name__: m for m in (gym, spaces, utils, seeding, gym_envs, registration, pkg_resources)}


@pytest.fixture
def original(monkeypatch):
    """pybullet_envs' ``InvertedPendulumSwingupBulletEnv`` class, imported under the stand-in ``gym``; the stand-in,
    the modules imported under it and their ``sys.path`` entries are gone after the test."""
    if importlib.util.find_spec("pybullet_envs") is None:
        pytest.skip("pybullet without its pybullet_envs")
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name, mod in _stand_in_gym().items():
        monkeypatch.setitem(sys.modules, name, mod)
    imported_before = set(sys.modules)
    try:
        from pybullet_envs.gym_pendulum_envs import InvertedPendulumSwingupBulletEnv as Original

        yield Original
    finally:
        for name in set(sys.modules) - imported_before:
            if name.split(".")[0] in {"pybullet_envs", "robot_pendula", "robot_bases"}:
                del sys.modules[name]


def test_equals_pybullet_envs(original):
    """Same seed, same actions: the same observations and rewards over three full episodes, across resets.

    The actions pump energy into the pole (push against theta_dot cos theta) plus noise, some beyond [-1, 1]: the
    pole swings over the top and the cart runs into the slider's limits."""
    theirs, ours = original(), gymnasium.make(ENV_ID)
    rng = np.random.default_rng(1)
    try:
        theirs.seed(7)
        obs_theirs = theirs.reset()
        obs_ours, _ = ours.reset(seed=7)
        for episode in range(3):
            if episode:
                obs_theirs, (obs_ours, _) = theirs.reset(), ours.reset()
            np.testing.assert_allclose(obs_ours, obs_theirs, rtol=1e-6, atol=1e-6)
            rewards, xs = [], []
            for t in range(1000):
                a = np.array([-np.sign(obs_theirs[4] * obs_theirs[2]) + rng.normal(0.0, 0.5)], dtype=np.float32)
                obs_theirs, r_theirs, done, _ = theirs.step(a)
                obs_ours, r_ours, terminated, truncated, _ = ours.step(a)
                np.testing.assert_allclose(obs_ours, obs_theirs, rtol=1e-6, atol=1e-6, err_msg=f"step {t}")
                assert r_ours == pytest.approx(r_theirs, rel=1e-9, abs=1e-9)
                assert obs_ours.dtype == np.float32 and not done and not terminated
                assert truncated == (t == 999)
                rewards.append(r_ours)
                xs.append(obs_ours[0])
            assert max(rewards) > 0.99 and min(rewards) < -0.99  # swung up from hanging down
            assert max(np.abs(xs)) > 0.99  # reached the slider's limit
    finally:
        theirs.close()
        ours.close()


def test_reset_distribution():
    env = InvertedPendulumSwingupBulletEnv()
    try:
        env.reset(seed=0)
        starts = np.array([env.reset()[0] for _ in range(200)])
    finally:
        env.close()
    np.testing.assert_array_equal(starts[:, [0, 1, 4]], 0.0)
    theta = np.arctan2(starts[:, 3], starts[:, 2]) % (2 * np.pi)
    assert np.all(np.abs(theta - 3.1415) <= 0.1 + 1e-6)
    assert theta.min() < 3.1415 - 0.08 and theta.max() > 3.1415 + 0.08


def test_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    made = [gymnasium.make(ENV_ID), gymnasium.make(ENV_ID, render_mode="rgb_array")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # Made through gymnasium.make, so that the checker has a spec and also tries the rgb_array mode.
            for env in made:
                check_env(env.unwrapped, skip_render_check=False)
            sb3_check_env(made[0], warn=True)
    finally:
        for env in made:
            env.close()


def test_render_and_close():
    env = InvertedPendulumSwingupBulletEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2  # something was drawn
    env.close()
    env.close()  # twice is fine
    assert InvertedPendulumSwingupBulletEnv().render() is None  # no render_mode
    with pytest.raises(ValueError):
        InvertedPendulumSwingupBulletEnv(render_mode="human")


def test_registered():
    envs.register_envs()  # idempotent
    spec = gymnasium.spec(ENV_ID)
    assert spec.max_episode_steps == 1000
    env = gymnasium.make(ENV_ID)
    try:
        assert isinstance(env.unwrapped, InvertedPendulumSwingupBulletEnv)
    finally:
        env.close()


def test_envs_without_pybullet():
    """Without pybullet, ``import envs`` still works and leaves the id unregistered (a fresh interpreter, with
    pybullet blocked)."""
    import subprocess

    code = ("import sys; sys.modules['pybullet'] = None\n"
            "import gymnasium, envs\n"
            f"assert {ENV_ID!r} not in gymnasium.envs.registry and 'CartPoleSwingUp-v1' in gymnasium.envs.registry\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_shipped_configs(tmp_path):
    """bullet_swingup*.yaml: rl-zoo's settings; the Adam and AdamLoss overlays differ only in the optimizer, with
    AdamLoss's first step Adam's; each builds a model (no training; tests/test_train.py trains the others)."""
    import math

    from rl_adaloss.config import CONFIG_DIR, load_config
    from rl_adaloss.train import build_model, make_envs

    base = load_config(CONFIG_DIR / "bullet_swingup.yaml")
    assert base["env"] == ENV_ID and base["normalize"]["obs"] and base["normalize"]["reward"]
    assert base["n_envs"] * base["ppo"]["n_steps"] == 2048  # the paper's rollout
    assert {k: base["ppo"][k] for k in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range",
                                        "ent_coef")} == dict(n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99,
                                                             gae_lambda=0.95, clip_range=0.2, ent_coef=0.0)
    adam, adamloss = (load_config(CONFIG_DIR / f"bullet_swingup_{name}.yaml") for name in ("adam", "adamloss"))
    without = lambda config: {k: v for k, v in config.items() if k != "optimizer"}  # noqa: E731
    assert without(adam) == without(adamloss) == without(base)
    assert (adam["optimizer"]["name"], adamloss["optimizer"]["name"]) == ("adam", "adamloss")
    assert adam["optimizer"]["lr"] == 2.5e-4  # rl-zoo's learning_rate
    assert adamloss["optimizer"]["lr"] / math.sqrt(adamloss["optimizer"]["b0"]) == pytest.approx(2.5e-4, rel=1e-12)
    for config in (adam, adamloss):
        config = {**config, "device": "cpu"}
        train_env, eval_env = make_envs(config, tmp_path, config["seed"], resume=False)
        try:
            model = build_model(config, train_env)
            assert list(model.policy.optimizers()) == ["actor", "critic"]
            assert model.n_steps == 2048 and model.n_envs == 1
        finally:
            train_env.close()
            eval_env.close()


def test_pybullet_prints_nothing_on_import_and_connect():
    """pybullet's C code writes its build time and "argv[0]=" to fd 1; the env keeps a sweep's output clean."""
    import subprocess

    code = ("import gymnasium, envs.bullet_swingup\n"
            "for seed in (0, 1):\n"
            "    env = gymnasium.make('InvertedPendulumSwingupBulletEnv-v0'); env.reset(seed=seed); env.close()\n"
            "print('done')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "done\n"
