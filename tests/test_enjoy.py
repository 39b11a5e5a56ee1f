"""``python -m rl_adaloss.enjoy RUN_DIR``: load a run's final, best or checkpointed model with its VecNormalize
statistics, run deterministic episodes on a freshly seeded env, record an mp4 headless, and refuse bad input with
one line. The runs are tiny (512 or 1024 steps); videos are checked by reading them back, frame by frame. The
command line itself, in a subprocess without a display, is the one slow test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import rl_adaloss.enjoy as enjoy_module
from rl_adaloss.config import load_config
from rl_adaloss.enjoy import ENJOY_SEED_OFFSET, enjoy, main
from rl_adaloss.train import run

imageio = pytest.importorskip("imageio.v2", reason="the video extra: pip install -e '.[video]'")
pytest.importorskip("imageio_ffmpeg", reason="the video extra: pip install -e '.[video]'")
pytest.importorskip("pygame", reason="the video extra: pip install -e '.[video]'")

ROOT = Path(__file__).resolve().parent.parent
TINY = ["n_envs=2", "ppo.n_steps=256", "ppo.batch_size=64", "ppo.n_epochs=1", "eval.episodes=1", "device=cpu"]
HEADLESS = {key: value for key, value in os.environ.items()
            if key not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "SDL_AUDIODRIVER")}


def tiny_run(run_dir: Path, env: str = "Pendulum-v1", steps: int = 1024) -> Path:
    config = load_config(None, [*TINY, f"env={env}", f"total_timesteps={steps}", "eval.freq=512",
                                "checkpoint_freq=512"])
    assert run(config, run_dir)["status"] == "finished"
    return run_dir


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("enjoy") / "pendulum")


def read_video(path: Path) -> tuple[list[np.ndarray], dict]:
    reader = imageio.get_reader(path)
    try:
        # Not list(reader): the reader's length is inf (ffmpeg does not count the frames up front).
        return [frame for frame in reader.iter_data()], reader.get_meta_data()
    finally:
        reader.close()


@pytest.mark.slow
def test_record_writes_a_playable_video_headless(pendulum_run, tmp_path):
    """The issue's check, as a user runs it: no display, two episodes, an mp4 that decodes frame by frame."""
    video = tmp_path / "out" / "video.mp4"
    done = subprocess.run([sys.executable, "-m", "rl_adaloss.enjoy", str(pendulum_run), "--record", str(video),
                           "--episodes", "2"], cwd=ROOT, env={**HEADLESS, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("episode ") for line in lines) == 2
    assert any(line.startswith("mean return ") and " ± " in line for line in lines), done.stdout
    assert f"video: {video} (402 frames at 30 fps)" in done.stdout

    # Two Pendulum episodes of 200 steps: each episode's first frame and one per step, 500x500 at 30 fps.
    frames, meta = read_video(video)
    assert len(frames) == 402
    assert {frame.shape for frame in frames} == {(500, 500, 3)}
    assert meta["codec"] == "h264" and meta["fps"] == 30 and meta["duration"] == pytest.approx(402 / 30, abs=0.1)
    assert not np.array_equal(frames[0], frames[100])  # the pendulum moves
    # ffmpeg itself decodes the whole stream without an error.
    import imageio_ffmpeg

    check = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "null", "-"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert video.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in video.parent.iterdir()] == ["video.mp4"]  # no temporary file left beside it


def test_episodes_are_the_ones_sb3s_evaluate_policy_gives(pendulum_run, capsys):
    """Our loop on the loaded model and statistics returns what a plain SB3 user gets: VecNormalize.load, then
    evaluate_policy on an env seeded the same way."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    result = enjoy(pendulum_run, episodes=3)
    out = capsys.readouterr().out
    seed = load_config(pendulum_run / "config.yaml")["seed"] + ENJOY_SEED_OFFSET
    assert result["seed"] == seed and f"seed {seed}, 3 deterministic episodes" in out
    assert result["lengths"] == [200, 200, 200] and result["frames"] is None
    assert f"mean return {np.mean(result['returns']):.2f} ± {np.std(result['returns']):.2f} over 3 episodes" in out

    env = VecNormalize.load(str(pendulum_run / "vecnormalize.pkl"), make_vec_env("Pendulum-v1", n_envs=1, seed=seed))
    env.training, env.norm_reward = False, False
    model = PPO.load(pendulum_run / "model.zip", device="cpu")
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=3, deterministic=True, return_episode_rewards=True)
    env.close()
    assert result["returns"] == pytest.approx(returns, abs=1e-4)  # Monitor rounds to 6 decimals
    assert result["lengths"] == lengths

    # The same seed gives the same episodes; another seed, others.
    assert enjoy(pendulum_run, episodes=3)["returns"] == result["returns"]
    assert enjoy(pendulum_run, episodes=3, seed=1)["returns"] != result["returns"]


def test_best_model_and_last_checkpoint_load(pendulum_run, capsys):
    from rl_adaloss.ppo import AdaLossPPO

    best = AdaLossPPO.load(pendulum_run / "best_model.zip", device="cpu").num_timesteps
    assert main([str(pendulum_run), "--load-best", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert f"model: {pendulum_run / 'best_model.zip'} (step {best}) with its VecNormalize statistics" in out
    assert main([str(pendulum_run), "--load-last-checkpoint", "-n", "1", "--stochastic"]) == 0
    out = capsys.readouterr().out
    assert f"model: {pendulum_run / 'checkpoint.pkl'} (step 512)" in out and "1 stochastic episode\n" in out


@pytest.mark.parametrize("env_id, shape", [("Pendulum-v1", (500, 500, 3)), ("CartPoleSwingUp-v1", (400, 600, 3)),
                                           ("InvertedPendulumSwingupBulletEnv-v0", (240, 320, 3))],
                         ids=["pendulum", "cartpole_swingup", "bullet_swingup"])
def test_every_shipped_env_records(env_id, shape, tmp_path):
    if env_id not in gymnasium.envs.registry:
        pytest.skip(f"{env_id} needs pybullet: pip install -e '.[bullet]'")
    run_dir = tiny_run(tmp_path / "run", env_id, steps=512)
    video = tmp_path / "video.mp4"
    result = enjoy(run_dir, episodes=2, record=video, max_episode_steps=15, fps=25)
    assert result["lengths"] == [15, 15] and result["frames"] == 32
    frames, meta = read_video(video)
    assert len(frames) == 32 and {frame.shape for frame in frames} == {shape} and meta["fps"] == 25


@pytest.mark.parametrize("env_id, mode", [("Pendulum-v1", "human"), ("CartPoleSwingUp-v1", "rgb_array")],
                         ids=["env-draws-its-window", "frames-in-our-window"])
def test_render_opens_a_window(env_id, mode, tmp_path, monkeypatch):
    """--render is wired: the env's own human mode where it has one, else its frames in a pygame window. Run on
    SDL's dummy video driver, the one way to open a 'window' headless."""
    run_dir = tiny_run(tmp_path / "run", env_id, steps=512)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    made, shown = [], []
    make_env, show = enjoy_module.make_env, enjoy_module.Window.show

    def making(env, render_mode, steps):
        made.append(render_mode)
        return make_env(env, render_mode, steps)

    def showing(self, frame):
        shown.append(frame.shape)
        show(self, frame)

    monkeypatch.setattr(enjoy_module, "make_env", making)
    monkeypatch.setattr(enjoy_module.Window, "show", showing)
    assert main([str(run_dir), "--render", "-n", "1", "--max-episode-steps", "5", "--fps", "1000"]) == 0
    assert made[-1] == mode
    assert len(shown) == (0 if mode == "human" else 6)


def test_render_without_a_display_says_so(pendulum_run, monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main([str(pendulum_run), "--render"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --render needs a display") and len(err.strip().splitlines()) == 1


def _config_only(tmp_path: Path, pendulum_run: Path) -> Path:
    run_dir = tmp_path / "unfinished"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((pendulum_run / "config.yaml").read_text())
    return run_dir


@pytest.mark.parametrize("args, message", [
    (lambda tmp, run: [str(tmp / "nowhere")], "no such run directory"),
    (lambda tmp, run: [str(tmp)], "is not a run directory (no config.yaml)"),
    (lambda tmp, run: [str(_config_only(tmp, run))], "no model.zip in"),
    (lambda tmp, run: [str(_config_only(tmp, run)), "--load-best"], "no best_model.zip in"),
    (lambda tmp, run: [str(_config_only(tmp, run)), "--load-last-checkpoint"], "no checkpoint.pkl in"),
    (lambda tmp, run: [str(run), "--record", str(tmp / "video.gif")], "--record: expected a path ending in .mp4"),
    (lambda tmp, run: [str(run), "--record", str(tmp)], "--record: expected a path ending in .mp4"),
    (lambda tmp, run: [str(run), "--episodes", "0"], "--episodes: expected a positive number"),
    (lambda tmp, run: [str(run), "--fps", "0"], "--fps: expected a positive number"),
], ids=["missing-folder", "not-a-run", "no-final-model", "no-best-model", "no-checkpoint", "not-mp4", "a-directory",
        "zero-episodes", "zero-fps"])
def test_bad_input_exits_2_with_one_line(tmp_path, pendulum_run, capsys, args, message):
    (tmp_path / "scratch").mkdir()
    code = main(args(tmp_path / "scratch", pendulum_run))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert not list((tmp_path / "scratch").glob("*.gif"))


def test_a_run_without_normalization_needs_no_statistics(tmp_path, capsys):
    config = load_config(None, [*TINY, "total_timesteps=512", "eval.freq=512", "normalize=false"])
    assert run(config, tmp_path / "raw")["status"] == "finished"
    assert not (tmp_path / "raw" / "vecnormalize.pkl").exists()
    result = enjoy(tmp_path / "raw", episodes=1, max_episode_steps=10)
    assert result["lengths"] == [10]
    assert "VecNormalize" not in capsys.readouterr().out
