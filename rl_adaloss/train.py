"""One PPO training run: ``python -m rl_adaloss.train [--config configs/NAME.yaml] [key=value ...]``.

Reads top to bottom as a run does: resolve the config, build the environments and the model, train with periodic
evaluation and checkpoints, and write the results. Everything a run writes goes under its run directory:

    config.yaml        the resolved config
    events.out.tfevents.*   TensorBoard scalars (SB3's ``train/*``, ``rollout/*``, and ``eval/mean_reward``)
    monitor/           per-env episode CSVs (SB3's Monitor)
    evaluations.csv    deterministic evaluation returns, and the step sizes at each evaluation
    evaluations.npz    the same evaluations per episode, in SB3's EvalCallback format (``timesteps``,
                       ``results`` and ``ep_lengths``, n_evals x n_episodes), as rl-zoo's plot scripts read it
    best_model.zip, best_vecnormalize.pkl   the model and its normalization at the best evaluation so far,
                       rewritten whenever an evaluation beats it (``python -m rl_adaloss.enjoy RUN --load-best``)
    checkpoint.pkl     model, optimizers, normalization, evaluations, RNG and environment states, at a rollout's
                       start; written periodically and on Ctrl-C/SIGTERM, so --resume continues bit for bit
    model.zip, vecnormalize.pkl   the final model and its observation normalization (``stable_baselines3.PPO.load``
                       opens both model files; ``python -m rl_adaloss.enjoy RUN`` watches, records and evaluates them)
    result.json        status (finished, diverged, interrupted or failed), steps, final/best eval return, wall time
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import pickle
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

import envs  # noqa: F401  (registers CartPoleSwingUp-v1)
from rl_adaloss import snapshot
from rl_adaloss.config import (
    ACTIVATIONS,
    TrainConfig,
    dump_config,
    load_config,
    load_raw,
    override,
    print_config,
    resolve,
    schedule,
)
from rl_adaloss.errors import UsageError, report_usage_error
from rl_adaloss.io import read_json, write_atomic, write_json_atomic
from rl_adaloss.optim import OPTIMIZERS
from rl_adaloss.ppo import AdaLossPPO, TrainingDiverged
from rl_adaloss.schema import key_table, parse_override

EVAL_COLUMNS = ["timesteps", "mean_reward", "std_reward",
                "actor_effective_lr", "critic_effective_lr", "actor_b", "critic_b"]
#: Offsets the evaluation env's seed from the training seed, so the two never replay the same episodes.
EVAL_SEED_OFFSET = 10_000


# -- building a run ---------------------------------------------------------------------------------------------

def make_envs(config: dict[str, Any], run_dir: Path, seed: int, resume: bool):
    """The training envs (with Monitor CSVs) and the separately seeded evaluation env, normalized if configured.

    The evaluation env shares the training env's observation statistics (synced before each evaluation, frozen
    there) and reports raw rewards, so eval returns are comparable across normalization settings."""
    train_env = make_vec_env(config["env"], n_envs=config["n_envs"], seed=seed, monitor_dir=str(run_dir / "monitor"),
                             monitor_kwargs=dict(override_existing=not resume))
    eval_env = make_vec_env(config["env"], n_envs=1, seed=config["seed"] + EVAL_SEED_OFFSET)
    normalize = config["normalize"]
    if normalize["obs"] or normalize["reward"]:
        gamma = normalize["gamma"] if normalize["gamma"] is not None else config["ppo"]["gamma"]
        common = dict(clip_obs=normalize["clip_obs"], clip_reward=normalize["clip_reward"],
                      epsilon=normalize["epsilon"], gamma=gamma)
        train_env = VecNormalize(train_env, norm_obs=normalize["obs"], norm_reward=normalize["reward"], **common)
        eval_env = VecNormalize(eval_env, training=False, norm_obs=normalize["obs"], norm_reward=False, **common)
    return train_env, eval_env


def build_model(config: dict[str, Any], env) -> AdaLossPPO:
    """AdaLossPPO with the configured optimizer: ``optimizer.lr`` is SB3's learning_rate (eta), the rest its kwargs."""
    spec = dict(config["optimizer"])
    name, layout = spec.pop("name"), spec.pop("layout")
    actor, critic = spec.pop("actor", None), spec.pop("critic", None)
    lr = schedule(spec.pop("lr"))
    ppo = dict(config["ppo"])
    ppo["clip_range"] = schedule(ppo["clip_range"])
    if ppo["clip_range_vf"] is not None:
        ppo["clip_range_vf"] = schedule(ppo["clip_range_vf"])
    policy_kwargs = dict(config["policy_kwargs"], optimizer_class=OPTIMIZERS[name], optimizer_kwargs=spec,
                         separate_optimizers=layout == "separate")
    policy_kwargs["activation_fn"] = ACTIVATIONS[policy_kwargs["activation_fn"]]
    if actor:
        policy_kwargs["actor_optimizer_kwargs"] = actor
    if critic:
        policy_kwargs["critic_optimizer_kwargs"] = critic
    return AdaLossPPO("MlpPolicy", env, learning_rate=lr, seed=config["seed"], device=config["device"],
                      policy_kwargs=policy_kwargs, verbose=0, **ppo)


# -- evaluation, checkpoints, progress --------------------------------------------------------------------------

class Evaluations:
    """The run's evaluation table, kept in memory and rewritten atomically at every row: ``evaluations.csv`` (one
    row per evaluation, with the step sizes) and, for the evaluations added with their episodes,
    ``evaluations.npz`` beside it in SB3's EvalCallback format."""

    def __init__(self, path: Path, rows: list[dict[str, float]] | None = None,
                 episodes: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.npz_path = path.with_name("evaluations.npz")
        self.rows = list(rows or [])
        #: Per evaluation that has them: ``{"timesteps", "results": [returns], "ep_lengths": [lengths]}``.
        self.episodes = list(episodes or [])

    def add(self, row: dict[str, float], episode_rewards: list[float] | None = None,
            episode_lengths: list[int] | None = None) -> None:
        self.rows.append(row)
        if episode_rewards is not None:
            self.episodes.append(dict(timesteps=int(row["timesteps"]), results=[float(r) for r in episode_rewards],
                                      ep_lengths=[int(n) for n in episode_lengths]))
        self.write()

    def write(self) -> None:
        """Both files from the table as it stands (neither while it is empty): after each row, and where a resume
        takes the table back to a checkpoint's."""
        if not self.rows:
            self.path.unlink(missing_ok=True)
            self.npz_path.unlink(missing_ok=True)
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=EVAL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, text.getvalue())
        if self.episodes:
            write_atomic(self.npz_path, evaluations_npz(self.episodes))

    @property
    def returns(self) -> list[float]:
        return [row["mean_reward"] for row in self.rows]


def write_best_files(run_dir: Path, best: dict[str, Any] | None) -> None:
    """best_model.zip and best_vecnormalize.pkl from a best evaluation's bytes (a model saved as model.zip is, so
    ``stable_baselines3.PPO.load`` opens it); neither file for no best evaluation; none written for a best whose
    model a checkpoint from before best models did not keep."""
    if best is None:
        for name in ("best_model.zip", "best_vecnormalize.pkl"):
            (run_dir / name).unlink(missing_ok=True)
        return
    if best["model"] is None:
        return
    write_atomic(run_dir / "best_model.zip", best["model"])
    if best["vecnormalize"] is not None:
        write_atomic(run_dir / "best_vecnormalize.pkl", best["vecnormalize"])
    else:
        (run_dir / "best_vecnormalize.pkl").unlink(missing_ok=True)


def evaluations_npz(episodes: list[dict[str, Any]]) -> bytes:
    """The bytes of SB3's ``evaluations.npz``: ``timesteps`` (n_evals,), ``results`` and ``ep_lengths``
    (n_evals, n_episodes), as ``EvalCallback`` saves them. Evaluations of fewer episodes than the widest (a config
    edited between resumes) are padded with NaN returns and 0 lengths."""
    width = max(len(e["results"]) for e in episodes)
    results = np.full((len(episodes), width), np.nan)
    lengths = np.zeros((len(episodes), width), dtype=np.int64)
    for i, evaluation in enumerate(episodes):
        results[i, :len(evaluation["results"])] = evaluation["results"]
        lengths[i, :len(evaluation["ep_lengths"])] = evaluation["ep_lengths"]
    buffer = io.BytesIO()
    np.savez(buffer, timesteps=np.array([e["timesteps"] for e in episodes], dtype=np.int64), results=results,
             ep_lengths=lengths)
    return buffer.getvalue()


class EvalCheckpointProgress(BaseCallback):
    """After every PPO update: evaluate every ``eval_freq`` steps, mark a resume point, checkpoint every
    ``checkpoint_freq`` steps, and advance the progress bar. Hooked on rollout start, the first moment after an
    update."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def _on_rollout_start(self) -> None:
        self.run.after_update()

    def _on_step(self) -> bool:
        return True


class Run:
    """The state of one training run in progress: model, envs, evaluations and where they are written."""

    def __init__(self, config: dict[str, Any], run_dir: Path, progress: bool) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        self.evaluations = Evaluations(run_dir / "evaluations.csv")
        #: The best evaluation so far: ``timesteps``, ``mean_reward``, and the ``model`` and ``vecnormalize``
        #: bytes written to best_model.zip and best_vecnormalize.pkl (kept, so that a checkpoint holds them).
        self.best: dict[str, Any] | None = None
        self.next_eval = 0
        self.next_checkpoint = config["checkpoint_freq"]
        self.bar = None
        #: The checkpoint of the latest rollout start: what an interrupt saves, wherever it strikes.
        self.resume_point: dict[str, Any] | None = None

    def start(self, resume: bool) -> None:
        checkpoint = self.run_dir / "checkpoint.pkl"
        if resume and checkpoint.exists():
            state = pickle.loads(checkpoint.read_bytes())
            # Episodes finished after the resume point are played again by the resumed run: drop their rows.
            for name, size in state.get("monitor_sizes", {}).items():
                with open(self.run_dir / "monitor" / name, "r+b") as monitor:
                    monitor.truncate(size)
            self.train_env, self.eval_env = make_envs(self.config, self.run_dir, self.config["seed"], resume=True)
            if state["vecnormalize"] is not None:
                normalizer = pickle.loads(state["vecnormalize"])
                normalizer.set_venv(self.train_env.venv)
                self.train_env = normalizer
            self.model = AdaLossPPO.load(io.BytesIO(state["model"]), env=self.train_env, device=self.config["device"])
            self.evaluations = Evaluations(self.run_dir / "evaluations.csv", state["evaluations"],
                                           state.get("eval_episodes"))
            self.restore_best(state)
            self.next_eval = self._next_multiple(self.model.num_timesteps, self.config["eval"]["freq"])
            self.next_checkpoint = self._next_multiple(self.model.num_timesteps, self.config["checkpoint_freq"])
            # Environments, RNGs and the last observation as they were: the run goes on as if never stopped. (A
            # checkpoint of an env whose state could not be captured resumes on fresh episodes instead.)
            if not snapshot.restore(state["snapshot"], self.model, self.train_env, self.eval_env):
                self.train_env.seed(self.config["seed"] + self.model.num_timesteps)
        else:
            self.train_env, self.eval_env = make_envs(self.config, self.run_dir, self.config["seed"], resume=False)
            self.model = build_model(self.config, self.train_env)
        self.model.set_logger(configure(str(self.run_dir), ["tensorboard"]))

    @staticmethod
    def _next_multiple(step: int, every: int) -> int:
        return (step // every + 1) * every

    @property
    def timesteps(self) -> int:
        return self.model.num_timesteps

    def learn(self) -> None:
        remaining = self.config["total_timesteps"] - self.timesteps
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.config["total_timesteps"], initial=self.timesteps, unit="step",
                            desc=f"{self.config['env']} {self.config['optimizer']['name']}", dynamic_ncols=True)
        try:
            if self.timesteps == 0:
                self.evaluate()
            if remaining > 0:
                self.model.learn(remaining, callback=EvalCheckpointProgress(self), reset_num_timesteps=False)
            self.after_update(final=True)
        finally:
            if self.bar is not None:
                self.bar.close()

    def after_update(self, final: bool = False) -> None:
        if self.bar is not None:
            self.bar.update(self.timesteps - self.bar.n)
        if final or self.timesteps >= self.next_eval:
            if not self.evaluations.rows or self.evaluations.rows[-1]["timesteps"] != self.timesteps:
                self.evaluate()
            self.next_eval = self._next_multiple(self.timesteps, self.config["eval"]["freq"])
        if final:
            return
        self.resume_point = self.capture()
        if self.timesteps >= self.next_checkpoint:
            self.save_checkpoint()
            self.next_checkpoint = self._next_multiple(self.timesteps, self.config["checkpoint_freq"])

    def evaluate(self) -> None:
        if isinstance(self.train_env, VecNormalize):
            sync_envs_normalization(self.train_env, self.eval_env)
        rewards, lengths = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.config["eval"]["episodes"],
                                           deterministic=True, return_episode_rewards=True)
        mean, std = np.mean(rewards), np.std(rewards)  # as evaluate_policy computes them
        row = {"timesteps": self.timesteps, "mean_reward": float(mean), "std_reward": float(std)}
        row.update(self.model.step_size_stats())
        self.evaluations.add(row, rewards, lengths)
        if math.isfinite(mean) and (self.best is None or mean > self.best["mean_reward"]):
            self.best = dict(timesteps=self.timesteps, mean_reward=float(mean), model=self._model_bytes(),
                             vecnormalize=self._normalizer_bytes())
            self.write_best()
        self.model.logger.record("eval/mean_reward", float(mean))
        self.model.logger.record("eval/std_reward", float(std))
        self.model.logger.dump(step=self.timesteps)
        if self.bar is not None:
            self.bar.set_postfix(eval_return=f"{mean:.1f}")

    def write_best(self) -> None:
        if self.best is not None:
            write_best_files(self.run_dir, self.best)

    def restore_best(self, state: dict[str, Any]) -> None:
        """The best evaluation as of a checkpoint, and its files rewritten from it: an evaluation after the
        checkpoint that a kill -9 cut off, or one that an inexact resume does not replay, leaves no best model
        behind that the evaluations do not show. A checkpoint from before best models (no ``best``) keeps the best
        return of its evaluations, so that only a better evaluation replaces best_model.zip."""
        if "best" in state:
            self.best = state["best"]
            self.write_best()
            return
        finite = [row for row in state["evaluations"] if math.isfinite(row["mean_reward"])]
        if finite:
            top = max(finite, key=lambda row: row["mean_reward"])
            self.best = dict(timesteps=top["timesteps"], mean_reward=top["mean_reward"], model=None,
                             vecnormalize=None)

    def _model_bytes(self) -> bytes:
        model = io.BytesIO()
        self.model.save(model)
        return model.getvalue()

    def _normalizer_bytes(self) -> bytes | None:
        return pickle.dumps(self.train_env) if isinstance(self.train_env, VecNormalize) else None

    def capture(self) -> dict[str, Any]:
        """A checkpoint of this moment, a rollout's start: model, normalization, evaluations (with their episodes
        and the best model so far), and the snapshot of RNGs and environments that makes the resumed run continue
        bit for bit."""
        return dict(timesteps=self.timesteps, model=self._model_bytes(), vecnormalize=self._normalizer_bytes(),
                    evaluations=list(self.evaluations.rows), eval_episodes=list(self.evaluations.episodes),
                    best=self.best, monitor_sizes=self._monitor_sizes(),
                    snapshot=snapshot.capture(self.model, self.train_env, self.eval_env,
                                              rng=getattr(self.model, "rollout_start_rng", None)))

    def _monitor_sizes(self) -> dict[str, int]:
        # SB3's Monitor flushes every episode's row: these sizes are the files as of this resume point.
        return {path.name: path.stat().st_size for path in sorted((self.run_dir / "monitor").glob("*.csv"))}

    def save_checkpoint(self) -> None:
        """Write the latest resume point. Interrupted mid-rollout or mid-update, the run goes back to that rollout's
        start: its steps were never trained on (or half), and the resumed run redoes them exactly."""
        if self.resume_point is not None:
            write_atomic(self.run_dir / "checkpoint.pkl", pickle.dumps(self.resume_point))
            self.model.num_timesteps = self.resume_point["timesteps"]

    def save_final(self) -> None:
        write_atomic(self.run_dir / "model.zip", self._model_bytes())
        normalizer = self._normalizer_bytes()
        if normalizer is not None:
            write_atomic(self.run_dir / "vecnormalize.pkl", normalizer)

    def close(self) -> None:
        for env in (getattr(self, "train_env", None), getattr(self, "eval_env", None)):
            if env is not None:
                env.close()


# -- one run, start to finish -------------------------------------------------------------------------------------

@contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt, so that both save a checkpoint (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: dict[str, Any], run_dir: str | Path, resume: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train one configured run into ``run_dir`` and return its ``result.json`` content.

    Never raises for a training problem: divergence, Ctrl-C/SIGTERM and errors are recorded as the result's
    ``status`` (``diverged``, ``interrupted``, ``failed``), so a caller running many trainings carries on.
    With ``resume``, continues from ``run_dir/checkpoint.pkl`` if there is one, else starts afresh.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml", dump_config(config))
    (run_dir / "result.json").unlink(missing_ok=True)
    started = time.perf_counter()
    previous_wall = 0.0
    if resume and (run_dir / "checkpoint.pkl").exists() and (run_dir / "wall_time.json").exists():
        previous_wall = read_json(run_dir / "wall_time.json")["seconds"]
    result: dict[str, Any] = {"status": "failed", "reason": None}
    current = Run(config, run_dir, progress)
    try:
        with sigterm_as_interrupt():
            try:
                current.start(resume)
                current.learn()
                current.save_final()
                result.update(status="finished")
            except TrainingDiverged as diverged:
                result.update(status="diverged", reason=diverged.reason, diverged_at=diverged.step)
            except KeyboardInterrupt:
                if hasattr(current, "model"):
                    current.save_checkpoint()
                result.update(status="interrupted", reason="interrupted (Ctrl-C or SIGTERM); resume with --resume")
    except Exception as error:  # noqa: BLE001 - recorded, so that a sweep goes on
        write_atomic(run_dir / "error.txt", traceback.format_exc())
        result.update(status="failed", reason=f"{type(error).__name__}: {error}".splitlines()[0])
    finally:
        current.close()
    wall = previous_wall + time.perf_counter() - started
    write_json_atomic(run_dir / "wall_time.json", {"seconds": wall})
    returns = current.evaluations.returns
    finite = [r for r in returns if math.isfinite(r)]
    result.update(
        env=config["env"],
        optimizer=config["optimizer"]["name"],
        seed=config["seed"],
        timesteps=int(current.timesteps) if hasattr(current, "model") else 0,
        total_timesteps=config["total_timesteps"],
        final_eval_return=returns[-1] if returns else None,
        best_eval_return=max(finite) if finite else None,
        wall_time_s=round(wall, 3),
    )
    write_json_atomic(run_dir / "result.json", result)
    return result


# -- the command line ---------------------------------------------------------------------------------------------

EXIT_CODES = {"finished": 0, "diverged": 1, "failed": 1, "interrupted": 130}

#: Flags that are shorthands for config keys; their values are set into the config as argparse typed them.
FLAG_KEYS = {
    "env": "env", "seed": "seed", "total_timesteps": "total_timesteps", "n_envs": "n_envs", "device": "device",
    "optimizer": "optimizer.name", "layout": "optimizer.layout", "lr": "optimizer.lr", "b0": "optimizer.b0",
    "alpha": "optimizer.alpha", "c": "optimizer.c", "betas": "optimizer.betas", "eps": "optimizer.eps",
}


def _number_or_schedule(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # lin_3e-4; the schema checks it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    keys = "\n".join(f"  {key:34s} {text}" for key, text in key_table(TrainConfig))
    parser = argparse.ArgumentParser(
        prog="python -m rl_adaloss.train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train PPO on a swing-up task with AdamLoss (or another step-size rule) in the actor and the "
                    "critic.\nWith no arguments: AdamLoss-PPO on Pendulum-v1, 2048-step rollouts, 1e5 steps, "
                    "raw rewards, one optimizer\nfed the total loss, from a first step of 0.32: a setting where its "
                    "step size adapts (rl_adaloss/configs/default.yaml).",
        epilog="Any config key can be set as key=value, dotted for sections: ppo.n_epochs=5, eval.freq=5000,\n"
               "optimizer.actor.alpha=0.01 (per-network override), optimizer.critic.b0=1e4, normalize.reward=false,\n"
               "optimizer.lr=lin_1e-3 (a linear schedule). The optimizer section also takes the named optimizer's own\n"
               "arguments (b0, alpha, c, betas, eps, weight_decay, ...). Config keys (defaults are SB3's; a config\n"
               f"file sets its own):\n{keys}\n\n"
               "Exit codes: 0 finished, 1 diverged or failed, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")
    parser.add_argument("--config", type=Path, help="a YAML config file, or the name of a shipped one such as "
                                                    "pendulum_adam (default: default, AdamLoss on Pendulum-v1)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config, every key with its description, and exit")
    parser.add_argument("--env", help="gymnasium id: Pendulum-v1, CartPoleSwingUp-v1 or "
                                      "InvertedPendulumSwingupBulletEnv-v0 (the paper's task; pip install '.[bullet]')")
    parser.add_argument("--seed", type=int, help="random seed (training envs, networks; eval env uses seed+10000)")
    parser.add_argument("--total-timesteps", type=int, help="environment steps to train for")
    parser.add_argument("--n-envs", type=int, help="parallel training envs (rollout = n_envs x ppo.n_steps)")
    parser.add_argument("--device", help="torch device for the networks: auto, cpu or cuda")
    parser.add_argument("--optimizer", help="step-size rule: adam, adamloss, adamsqrt, adaloss, adagradnorm, sgd, "
                                            "sgd_decaysqrt")
    parser.add_argument("--layout", help="separate: actor and critic optimizers each fed their own loss; joint: "
                                         "SB3's one optimizer fed the total loss")
    parser.add_argument("--lr", type=_number_or_schedule,
                        help="base step size eta (for adam: the learning rate itself), or lin_<eta>")
    parser.add_argument("--b0", type=float, help="initial accumulator b0 (AdamLoss/AdamSqrt: first step ~ lr/sqrt(b0); "
                                                 "AdaLoss/AdaGradNorm/SGD: lr/b0)")
    parser.add_argument("--alpha", type=float, help="weight of the loss in the AdaLoss/AdamLoss accumulator")
    parser.add_argument("--c", type=float, help="constant subtracted from the loss in the accumulator")
    parser.add_argument("--betas", type=float, nargs=2, metavar=("BETA1", "BETA2"), help="Adam moment decay rates")
    parser.add_argument("--eps", type=float, help="Adam's epsilon")
    parser.add_argument("--name", help="run name (default: <env>_<optimizer>_s<seed>_<timestamp>)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs"), help="parent folder of runs (default: runs)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its checkpoint (its config.yaml is used)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_intermixed_args(argv)  # key=value overrides may stand before and after flags


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config file (or the default), then the flags, then the ``key=value`` overrides, validated."""
    flags = [(key, getattr(args, flag)) for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None]
    return resolve(override(load_raw(args.config), flags + [parse_override(item) for item in args.overrides]))


def run_dir_for(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The config and the run directory of this invocation; raises UsageError before anything is written."""
    if args.resume is not None:
        run_dir = args.resume
        if not (run_dir / "config.yaml").is_file():
            raise UsageError(f"--resume: {run_dir} is not a run directory (no config.yaml)")
        if args.config or args.overrides or any(getattr(args, f) is not None for f in FLAG_KEYS):
            raise UsageError("--resume takes no config or overrides: the run continues with its own config.yaml")
        return load_config(run_dir / "config.yaml"), run_dir
    config = config_from_args(args)
    name = args.name or (f"{config['env']}_{config['optimizer']['name']}_s{config['seed']}_"
                         f"{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"--name: expected a plain folder name, got {name!r}")
    run_dir = args.out_dir / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {run_dir} already exists; pick another --name or use --resume")
    return config, run_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config, run_dir = run_dir_for(args)
    except UsageError as error:
        return report_usage_error(error)
    if args.print_config:
        print(print_config(config), end="")
        return 0

    print(f"run directory: {run_dir}", file=sys.stderr)
    result = run(config, run_dir, resume=args.resume is not None, progress=not args.quiet)
    final = result["final_eval_return"]
    summary = f"{result['status']} at step {result['timesteps']}"
    if final is not None:
        summary += f"; final eval return {final:.1f}, best {result['best_eval_return']:.1f}"
    if result["reason"]:
        summary += f" ({result['reason']})"
    print(summary)
    print(f"outputs: {run_dir}\nsee them: tensorboard --logdir {run_dir.parent}")
    if result["status"] == "interrupted":
        print(f"resume: python -m rl_adaloss.train --resume {run_dir}")
    return EXIT_CODES[result["status"]]


if __name__ == "__main__":
    sys.exit(main())
