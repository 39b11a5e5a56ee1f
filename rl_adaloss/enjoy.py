"""Watch, record and evaluate a trained policy: ``python -m rl_adaloss.enjoy RUN_DIR`` (rl-baselines3-zoo's name).

Loads a run's final model (``model.zip``), its best one (``--load-best``: ``best_model.zip``) or its latest
checkpoint (``--load-last-checkpoint``), each with the VecNormalize statistics saved beside it, runs N episodes on a
freshly seeded environment (seed + 20000 by default: neither the training nor the evaluation episodes) and prints
each episode's return and length, then the mean ± std return::

    python -m rl_adaloss.enjoy runs/<run>                          # final model, the run's eval.episodes episodes
    python -m rl_adaloss.enjoy runs/<run> --load-best --episodes 20
    python -m rl_adaloss.enjoy runs/<run> --render                 # a window (pygame; needs a display)
    python -m rl_adaloss.enjoy runs/<run> --record video.mp4       # headless; an H.264 video through imageio-ffmpeg

Actions are deterministic (the Gaussian's mean) unless ``--stochastic``. Returns are the environment's raw rewards,
as in ``evaluations.csv``; observations are normalized with the saved statistics, frozen. ``--render`` uses the
environment's own ``render_mode="human"`` where it has one (Pendulum-v1) and otherwise shows its ``rgb_array``
frames in a pygame window (CartPoleSwingUp-v1, InvertedPendulumSwingupBulletEnv-v0); closing the window stops.
``--record`` renders ``rgb_array`` frames (every step, and each episode's first) and writes them at the env's
``render_fps`` (``--fps`` to change it). Rendering and video need the ``video`` extra:
``pip install -e '.[video]'`` (pygame, imageio, imageio-ffmpeg, which ships its own ffmpeg binary). On a machine
without a display, ``--record`` works as it is; ``--render`` needs ``SDL_VIDEODRIVER=dummy`` (and shows nothing).

Exit codes: 0 done, 2 bad input (one line ``error: ...``), 130 interrupted (the finished episodes are reported).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import pickle
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import envs  # noqa: F401  (registers CartPoleSwingUp-v1 and, with pybullet, the bullet swing-up)
from rl_adaloss.errors import UsageError, report_usage_error
from rl_adaloss.io import write_atomic

#: Offsets the default seed from the run's, past the evaluation env's (seed + 10000): fresh episodes.
ENJOY_SEED_OFFSET = 20_000
#: The files of each model a run keeps: (model, VecNormalize statistics).
MODEL_FILES = {"final": ("model.zip", "vecnormalize.pkl"), "best": ("best_model.zip", "best_vecnormalize.pkl")}
VIDEO_SUFFIXES = (".mp4",)
VIDEO_EXTRA = "pip install -e '.[video]'"


# -- loading a run's model -----------------------------------------------------------------------------------------

def load_run(run_dir: Path, which: str = "final", device: str = "cpu") -> tuple[dict[str, Any], Any, Any, str]:
    """The run's config, its ``which`` model (``final``, ``best`` or ``checkpoint``), the VecNormalize saved with it
    (None where the run does not normalize) and a one-line description of what was loaded. Raises UsageError for a
    folder that is not a run or a model that is not there."""
    from rl_adaloss.config import load_config
    from rl_adaloss.ppo import AdaLossPPO

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.yaml)")
    config = load_config(run_dir / "config.yaml")
    normalizes = config["normalize"]["obs"] or config["normalize"]["reward"]

    if which == "checkpoint":
        path = run_dir / "checkpoint.pkl"
        if not path.is_file():
            raise UsageError(f"no checkpoint.pkl in {run_dir} (a run checkpoints every checkpoint_freq steps)")
        try:
            state = pickle.loads(path.read_bytes())
            model_bytes, normalizer_bytes = state["model"], state["vecnormalize"]
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError) as error:
            raise UsageError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
        source, stats = model_bytes, normalizer_bytes
        described = f"{path} (step {state['timesteps']})"
    else:
        model_name, stats_name = MODEL_FILES[which]
        path = run_dir / model_name
        if not path.is_file():
            hint = {"final": "the run has not finished: try --load-best or --load-last-checkpoint",
                    "best": "written by runs that evaluate; try without --load-best"}[which]
            raise UsageError(f"no {model_name} in {run_dir} ({hint})")
        source = path
        stats_path = run_dir / stats_name
        stats = stats_path.read_bytes() if stats_path.is_file() else None
        if normalizes and stats is None:
            raise UsageError(f"no {stats_name} in {run_dir}: the run normalizes observations, and {model_name} "
                             "cannot be run without its statistics")
        described = str(path)
    try:
        model = AdaLossPPO.load(io.BytesIO(source) if isinstance(source, bytes) else source, device=device)
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
        raise UsageError(f"cannot load the model of {described}: {type(error).__name__}: {error}") from error
    normalizer = None
    if stats is not None:
        normalizer = pickle.loads(stats)
        normalizer.training, normalizer.norm_reward = False, False  # frozen statistics, raw rewards
    described += f" (step {model.num_timesteps})" if which != "checkpoint" else ""
    return config, model, normalizer, described


# -- watching ------------------------------------------------------------------------------------------------------

class Window:
    """A pygame window that shows ``rgb_array`` frames at ``fps``, for envs without a ``human`` render mode.
    Closing it raises KeyboardInterrupt, which stops the episodes."""

    def __init__(self, title: str, fps: float) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pygame, self.title, self.fps = pygame, title, fps
        self.screen = None
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> None:
        pygame = self.pygame
        if self.screen is None:
            pygame.display.init()
            self.screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            pygame.display.set_caption(self.title)
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                raise KeyboardInterrupt
        self.screen.blit(pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1))), (0, 0))
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.screen is not None:
            self.pygame.display.quit()
            self.screen = None


def _check_display() -> None:
    """``--render`` on Linux without a display fails deep in SDL; say so up front, with what works instead."""
    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in
                                                    ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")):
        raise UsageError("--render needs a display (DISPLAY or WAYLAND_DISPLAY is not set): use --record video.mp4, "
                         "or SDL_VIDEODRIVER=dummy to run the render path without showing anything")


def _import(module: str, what: str):
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        raise UsageError(f"{what} needs {module.split('.')[0]}: {VIDEO_EXTRA}") from error


def make_env(env_id: str, render_mode: str | None, max_episode_steps: int | None):
    import gymnasium

    kwargs: dict[str, Any] = {}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gymnasium.make(env_id, render_mode=render_mode, **kwargs)


def render_modes(env_id: str) -> list[str]:
    env = make_env(env_id, None, None)
    try:
        return list(env.metadata.get("render_modes", []))
    finally:
        env.close()


@contextmanager
def headless_sdl(active: bool):
    """Frames only, no window: keep pygame (Pendulum-v1 draws with it) off the display and the sound card, which it
    probes noisily on a headless machine. The variables are set for the episodes only (unless already set)."""
    names = [name for name in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER") if active and name not in os.environ]
    os.environ.update({name: "dummy" for name in names})
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)


def enjoy(run_dir: str | Path, which: str = "final", episodes: int | None = None, seed: int | None = None,
          deterministic: bool = True, render: bool = False, record: str | Path | None = None,
          fps: float | None = None, max_episode_steps: int | None = None, device: str = "cpu",
          out=None) -> dict[str, Any]:
    """Run a run's model for ``episodes`` episodes; print each, then the mean ± std return; return
    ``{"returns", "lengths", "model", "seed", "frames"}`` (``frames``: how many the video holds, or None).

    On KeyboardInterrupt (Ctrl-C, or the window closed) the finished episodes are reported and the interrupt is
    raised again; a video is written only for a complete set of episodes."""
    if episodes is not None and episodes < 1:
        raise UsageError(f"--episodes: expected a positive number, got {episodes}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise UsageError(f"--max-episode-steps: expected a positive number, got {max_episode_steps}")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise UsageError(f"--fps: expected a positive number, got {fps}")
    if record is not None:
        record = Path(record)
        if record.suffix.lower() not in VIDEO_SUFFIXES:
            raise UsageError(f"--record: expected a path ending in {' or '.join(VIDEO_SUFFIXES)}, got {record}")
        if record.is_dir():
            raise UsageError(f"--record: {record} is a directory; give a file name such as {record / 'video.mp4'}")
        _import("imageio.v2", "--record")
        _import("imageio_ffmpeg", "--record")
    if render:
        _check_display()
        _import("pygame", "--render")

    with headless_sdl(record is not None and not render):
        return _episodes(Path(run_dir), which, episodes, seed, deterministic, render, record, fps, max_episode_steps,
                         device, out or sys.stdout)


def _episodes(run_dir: Path, which: str, episodes: int | None, seed: int | None, deterministic: bool, render: bool,
              record: Path | None, fps: float | None, max_episode_steps: int | None, device: str, out) -> dict:
    import gymnasium
    from stable_baselines3.common.utils import set_random_seed

    config, model, normalizer, described = load_run(run_dir, which, device)
    env_id = config["env"]
    episodes = episodes or config["eval"]["episodes"]
    seed = config["seed"] + ENJOY_SEED_OFFSET if seed is None else seed

    # Frames are needed for a video, and for a window where the env cannot draw one itself.
    human = render and record is None and "human" in render_modes(env_id)
    render_mode = "human" if human else ("rgb_array" if render or record is not None else None)
    try:
        env = make_env(env_id, render_mode, max_episode_steps)
    except gymnasium.error.DependencyNotInstalled as error:
        raise UsageError(f"rendering {env_id}: {error}; {VIDEO_EXTRA}") from error
    env_fps = env.metadata.get("render_fps") or 30
    fps = fps or env_fps
    window = Window(f"{env_id}: {described}", fps) if render and not human else None
    writer = video_dir = None
    frames = 0

    def frame() -> None:
        nonlocal frames
        if window is None and writer is None:
            return
        try:
            image = env.render()
        except gymnasium.error.DependencyNotInstalled as error:
            raise UsageError(f"rendering {env_id}: {error}; {VIDEO_EXTRA}") from error
        if window is not None:
            window.show(image)
        if writer is not None:
            writer.append_data(np.asarray(image, dtype=np.uint8))
            frames += 1

    mode = "deterministic" if deterministic else "stochastic"
    print(f"model: {described}" + (" with its VecNormalize statistics" if normalizer is not None else ""), file=out)
    print(f"env: {env_id}, seed {seed}, {episodes} {mode} episode{'s' * (episodes != 1)}", file=out)
    set_random_seed(seed)  # the stochastic actions' torch draws
    returns: list[float] = []
    lengths: list[int] = []
    try:
        try:
            if record is not None:
                # Encoded into a private folder, then put in place atomically: never half a video at ``record``.
                import imageio.v2 as imageio

                video_dir = tempfile.TemporaryDirectory(prefix=".enjoy-")
                writer = imageio.get_writer(Path(video_dir.name) / record.name, format="FFMPEG", mode="I", fps=fps,
                                            codec="libx264", macro_block_size=2, ffmpeg_log_level="error")
            for episode in range(episodes):
                obs, _ = env.reset(seed=seed if episode == 0 else None)
                frame()
                total, length, done = 0.0, 0, False
                while not done:
                    policy_obs = normalizer.normalize_obs(obs) if normalizer is not None else obs
                    action, _ = model.predict(policy_obs, deterministic=deterministic)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    length += 1
                    done = terminated or truncated
                    frame()
                returns.append(total)
                lengths.append(length)
                print(f"episode {episode + 1}: return {total:.2f}, length {length}", file=out)
        finally:
            env.close()
            if window is not None:
                window.close()
            if writer is not None:
                writer.close()
        if returns:
            print(f"mean return {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes "
                  f"(mean length {np.mean(lengths):.1f})", file=out)
        if record is not None:
            write_atomic(record, (Path(video_dir.name) / record.name).read_bytes())
            print(f"video: {record} ({frames} frames at {fps:g} fps)", file=out)
    except KeyboardInterrupt:
        if returns:
            print(f"interrupted after {len(returns)} episodes: mean return {np.mean(returns):.2f} ± "
                  f"{np.std(returns):.2f}" + ("; no video written" if record is not None else ""), file=out)
        raise
    finally:
        if video_dir is not None:
            video_dir.cleanup()
    return dict(returns=returns, lengths=lengths, model=described, seed=seed,
                frames=frames if record is not None else None)


# -- the command line ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.enjoy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Watch, record and evaluate a trained run's policy: N episodes on a freshly seeded env, each "
                    "episode's return and length, then the mean ± std return.",
        epilog="Examples:\n"
               "  python -m rl_adaloss.enjoy runs/<run> --load-best --episodes 20\n"
               "  python -m rl_adaloss.enjoy runs/<run> --record video.mp4 --episodes 2\n"
               "  python -m rl_adaloss.enjoy runs/<run> --render\n"
               f"Rendering and video need the video extra: {VIDEO_EXTRA}.\n"
               "Exit codes: 0 done, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (runs/<run>)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--load-best", action="store_true",
                       help="the best model (best_model.zip + best_vecnormalize.pkl) instead of the final one")
    which.add_argument("--load-last-checkpoint", action="store_true",
                       help="the model of the latest checkpoint (checkpoint.pkl), e.g. of an interrupted run")
    parser.add_argument("-n", "--episodes", type=int, help="episodes to run (default: the run's eval.episodes)")
    parser.add_argument("--seed", type=int, help=f"env seed (default: the run's seed + {ENJOY_SEED_OFFSET})")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean")
    parser.add_argument("--render", action="store_true",
                        help="show the episodes in a window (the env's render_mode='human', or its rgb_array "
                             "frames in a pygame window); needs a display")
    parser.add_argument("--record", type=Path, metavar="VIDEO.mp4", help="write the episodes to an mp4 video")
    parser.add_argument("--fps", type=float, help="frames per second of the video and of our window (default: the "
                                                  "env's render_fps; an env's own human window keeps its own pace)")
    parser.add_argument("--max-episode-steps", type=int,
                        help="cut episodes at this many steps (default: the env's own limit)")
    parser.add_argument("--device", default="cpu", help="torch device for the policy (default: cpu)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    which = "best" if args.load_best else "checkpoint" if args.load_last_checkpoint else "final"
    try:
        enjoy(args.run_dir, which, episodes=args.episodes, seed=args.seed, deterministic=not args.stochastic,
              render=args.render, record=args.record, fps=args.fps, max_episode_steps=args.max_episode_steps,
              device=args.device)
    except UsageError as error:
        return report_usage_error(error)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
