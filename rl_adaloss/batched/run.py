"""``run_batch(configs, run_dirs)``: train K configs as one batched engine, each member writing the run directory
``rl_adaloss.train.run`` writes, so that ``python -m rl_adaloss.report`` and TensorBoard read it unchanged:

    config.yaml              the member's resolved config
    events.out.tfevents.*    TensorBoard scalars with the SB3 path's tags, at its steps: ``train/*`` (losses,
                             ``actor_effective_lr``, ``critic_effective_lr``, ``actor_b``, ``critic_b``, ...),
                             ``rollout/ep_rew_mean``, ``rollout/ep_len_mean``, ``time/fps`` after each update, and
                             ``eval/mean_reward``, ``eval/std_reward`` at each evaluation
    monitor/<i>.monitor.csv  the member's training episodes per env, SB3 Monitor's format
    evaluations.csv          deterministic evaluations with the step sizes (train.py's columns)
    evaluations.npz          the same evaluations per episode, in SB3's EvalCallback format
    best_model.zip, best_vecnormalize.pkl   the model and its normalization at the member's best evaluation so far
    model.zip, vecnormalize.pkl   the member's final model (weights and optimizer states), which
                             ``AdaLossPPO.load`` opens, and its normalization (where the config normalizes)
    result.json, wall_time.json   as train.py's (plus ``engine: batched`` and ``batch_size``); a member's
                             ``wall_time_s`` is the batch's wall time until that member ended
    batch.json               which batch the member belongs to, and where the batch's checkpoint is

The batch's checkpoint is one file for all its members (by default ``<common parent>/.batches/<id>.pkl``): the
engine's whole state (weights, optimizer states, normalization statistics, every env's state and generator, the
evaluation envs, the last observations), each member's evaluations, Monitor file sizes and episode window, at a
rollout's start; written every ``checkpoint_freq`` steps and on Ctrl-C/SIGTERM. Run again with the same configs and
run directories, the batch resumes from it and writes what an uninterrupted batch writes. A member whose
``result.json`` already says finished or diverged when the batch starts rides along without writing (a
"passenger"), so that the others continue exactly; also where a checkpoint of another version cannot be resumed and
the batch starts afresh, so that an ended run's files are never overwritten.

Any env the SB3 path trains with flat Box observations and Box actions can be batched: Pendulum-v1 and
CartPoleSwingUp-v1 run as torch tensors (:mod:`rl_adaloss.batched.envs`), every other registered gymnasium env
(InvertedPendulumSwingupBulletEnv-v0, the paper's) through the gymnasium fallback
(:mod:`rl_adaloss.batched.gym_envs`): real envs stepped on the CPU one by one with SB3's seeding, so a member's training
episodes are the SB3 path's for its seed where the actions are the same; only the networks and updates are batched.
Discrete actions and image (non-flat) observations are refused.

The configs must describe members of one batch: the same env, PPO settings, networks, normalization, evaluation
schedule, budget and optimizer rule and layout; they may differ in ``seed`` and in the optimizer's ``lr``, ``b0``,
``alpha`` and ``c`` (also per network). Anything else is refused with a one-line :class:`UsageError`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
import traceback
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rl_adaloss.batched.ppo import BatchedEvaluator, BatchedPPO, NormalizeSettings, PPOSettings
from rl_adaloss.errors import UsageError

__all__ = ["run_batch", "read_progress", "build_engine", "check_batch", "check_supported", "batch_key",
           "default_checkpoint_path", "MEMBER_KEYS"]

#: Optimizer arguments that may differ between the members of a batch.
MEMBER_KEYS = ("lr", "b0", "alpha", "c")


def _shared_part(config: dict[str, Any]) -> dict[str, Any]:
    shared = copy.deepcopy(config)
    shared.pop("seed", None)
    optimizer = shared["optimizer"]
    for key in MEMBER_KEYS:
        optimizer.pop(key, None)
    for role in ("actor", "critic"):
        if isinstance(optimizer.get(role), dict):
            for key in MEMBER_KEYS:
                optimizer[role].pop(key, None)
            if not optimizer[role]:
                optimizer.pop(role)
    return shared


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    return None if a == b else where


def batch_key(config: dict[str, Any]) -> str:
    """What configs must share to be members of one batch (everything but the seed and the optimizer's
    ``lr``/``b0``/``alpha``/``c``), as a string: equal keys, one batch."""
    return json.dumps(_shared_part(config), sort_keys=True, default=str)


def check_batch(configs: Sequence[dict[str, Any]]) -> None:
    """Refuse, in one line, configs that cannot be members of one batch or options the engine does not support."""
    if not configs:
        raise UsageError("run_batch: no configs")
    first = _shared_part(configs[0])
    for i, config in enumerate(configs[1:], start=1):
        key = _first_difference(first, _shared_part(config))
        if key:
            raise UsageError(f"{key}: members of a batch may differ only in seed and optimizer "
                             f"{'/'.join(MEMBER_KEYS)}; config {i} differs from config 0 here")
    for config in configs:
        if isinstance(config["optimizer"]["lr"], str):
            raise UsageError("optimizer.lr: schedules are not supported by the batched engine (use a number)")
    if configs[0]["device"] == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: cuda requested but not available")


def build_engine(configs: Sequence[dict[str, Any]], force_loop_optimizer: bool = False,
                 use_gymnasium: bool = False) -> BatchedPPO:
    """The batched engine for these (resolved) configs (``use_gymnasium``: through the gymnasium fallback even
    where the env has a torch version)."""
    check_batch(configs)
    base = configs[0]
    normalize = dict(base["normalize"])
    if normalize.get("gamma") is None:
        normalize["gamma"] = base["ppo"]["gamma"]
    layout = base["optimizer"]["layout"]
    roles = ["actor", "critic"] if layout == "separate" else ["joint"]
    kwargs: dict[str, list[dict[str, Any]]] = {role: [] for role in roles}
    for config in configs:
        spec = dict(config["optimizer"])
        spec.pop("name"), spec.pop("layout")
        over = {"actor": spec.pop("actor", None) or {}, "critic": spec.pop("critic", None) or {}}
        for role in roles:
            kwargs[role].append({**spec, **over.get(role, {})})
    device = "cpu" if base["device"] == "auto" else base["device"]
    return BatchedPPO(base["env"], [c["seed"] for c in configs], base["n_envs"], PPOSettings(**base["ppo"]),
                      dict(base["policy_kwargs"]), NormalizeSettings(**normalize), base["optimizer"]["name"], layout,
                      kwargs, total_timesteps=base["total_timesteps"], device=device,
                      force_loop_optimizer=force_loop_optimizer, use_gymnasium=use_gymnasium)




# -- running a batch ------------------------------------------------------------------------------------------------

#: A batch's checkpoint format; a checkpoint of another version is not resumed from.
# 3: one eval env per member, its episodes in turn (SB3's evaluate_policy); 4: a role's optimizer state is that of
# its one (K, P) parameter buffer
CHECKPOINT_VERSION = 4


def default_checkpoint_path(run_dirs: Sequence[str | Path], folder: str | Path | None = None) -> Path:
    """``<folder>/<id>.pkl``, the id a digest of the run dirs in order; ``folder`` defaults to
    ``<common parent of the run dirs>/.batches``."""
    dirs = [Path(d).resolve() for d in run_dirs]
    folder = Path(folder).resolve() if folder is not None else Path(os.path.commonpath(dirs)) / ".batches"
    names = "\n".join(os.path.relpath(d, folder.parent) for d in dirs)  # the same wherever the tree is mounted
    return folder / f"{hashlib.sha1(names.encode()).hexdigest()[:16]}.pkl"


def check_supported(config: dict[str, Any]) -> None:
    """Refuse, with the one-line :class:`UsageError` the engine gives, a config the batched engine cannot run
    (an unregistered env, discrete actions, non-flat observations, an lr schedule, squash_output, ...): builds a
    one-member engine, which checks everything a batch would."""
    build_engine([config])


class BatchRun:
    """One batch in progress: the engine, its evaluator, and each member's files."""

    def __init__(self, configs: Sequence[dict[str, Any]], run_dirs: Sequence[Path], checkpoint_path: Path) -> None:
        self.configs = list(configs)
        self.dirs = [Path(d) for d in run_dirs]
        self.checkpoint_path = Path(checkpoint_path)
        self.base = configs[0]
        self.K = len(configs)
        self.freq = self.base["eval"]["freq"]
        self.checkpoint_freq = self.base["checkpoint_freq"]
        self.next_eval = self.freq
        self.next_checkpoint = self.checkpoint_freq
        #: Members that write nothing: their result.json already said finished or diverged when the batch started;
        #: they ride along so that the others continue exactly.
        self.passengers: set[int] = set()
        self.ended_wall: list[float | None] = [None] * self.K  #: batch wall time at which each member ended
        self.previous_wall = 0.0
        self.started = time.perf_counter()
        self.resume_point: dict[str, Any] | None = None
        self.loggers: dict[int, Any] = {}
        self.written_divergence: set[int] = set()
        #: Per member, its best evaluation so far (train.Run.best's form: the bytes of its best files, kept so
        #: that the checkpoint holds them).
        self.best: list[dict[str, Any] | None] = [None] * self.K

    # -- start, fresh or from the checkpoint ----------------------------------------------------------------

    def _load_checkpoint(self) -> dict[str, Any] | None:
        from rl_adaloss.batched.checkpoint import loads

        if not self.checkpoint_path.is_file():
            return None
        try:
            state = loads(self.checkpoint_path.read_bytes())
        except Exception:  # noqa: BLE001 - an unreadable checkpoint: start afresh
            return None
        if (state.get("version") != CHECKPOINT_VERSION or state.get("configs") != self.configs
                or state.get("run_dirs") != self._relative_dirs()):
            return None
        return state

    def _relative_dirs(self) -> list[str]:
        """The members' run dirs relative to the checkpoint's folder: a tree moved whole still resumes."""
        return [os.path.relpath(d.resolve(), self.checkpoint_path.parent.resolve()) for d in self.dirs]

    def start(self) -> None:
        from rl_adaloss.batched.checkpoint import restore_value
        from rl_adaloss.batched.outputs import EpisodeRecorder, MonitorFiles
        from rl_adaloss.config import dump_config
        from rl_adaloss.io import write_atomic, write_json_atomic
        from rl_adaloss.records import FINAL_STATUSES, read_result
        from rl_adaloss.snapshot import set_rng_state
        from rl_adaloss.train import Evaluations

        self.engine = build_engine(self.configs)
        self.evaluator = BatchedEvaluator(self.engine, self.base["env"], self.base["eval"]["episodes"],
                                          self.engine.env.settings)
        self.recorder = EpisodeRecorder(self.engine.env.env, self.engine)
        window = self.base["ppo"]["stats_window_size"]
        state = self._load_checkpoint()
        if state is not None:
            restore_value({"engine": self.engine, "evaluator": self.evaluator}, state["engine"])
            self.recorder.load_state(state["recorder"])
            self.next_eval, self.next_checkpoint = state["next_eval"], state["next_checkpoint"]
            self.previous_wall = state["wall"]
            self.ended_wall = list(state["ended_wall"])
            self.written_divergence = set(state["written_divergence"])
            t_starts = state["t_start"]
            rows, windows, sizes = state["evaluations"], state["windows"], state["monitor_sizes"]
            episodes, self.best = state["episodes"], list(state["best"])
            set_rng_state(state["rng"])
        else:
            t_starts = [round(time.time(), 6)] * self.K
            rows, windows, sizes = [[] for _ in range(self.K)], [[] for _ in range(self.K)], None
            episodes = [[] for _ in range(self.K)]
        # A member whose run has ended writes nothing, with or without a checkpoint to resume: where the checkpoint
        # could not be resumed (another version, or unreadable) and the batch starts afresh, the ended runs' files
        # must still stand as they are (each member is its own streams, so riding along changes no other member).
        for k, run_dir in enumerate(self.dirs):
            result = read_result(run_dir)
            if result is not None and result["status"] in FINAL_STATUSES:
                self.passengers.add(k)
        self.evaluations = [Evaluations(d / "evaluations.csv", rows[k], episodes[k]) for k, d in enumerate(self.dirs)]
        self.windows = [deque(windows[k], maxlen=window) for k in range(self.K)]
        self.monitors = [MonitorFiles(d / "monitor", self.base["n_envs"], self.base["env"], t_starts[k])
                         for k, d in enumerate(self.dirs)]
        from stable_baselines3.common.logger import configure

        for k in self.active:
            run_dir, config = self.dirs[k], self.configs[k]
            run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run_dir / "config.yaml", dump_config(config))
            (run_dir / "result.json").unlink(missing_ok=True)
            if state is None:
                # A fresh start owns the directory: an earlier attempt's files (the sb3 engine's checkpoint
                # included, which no longer matches what is written here) go.
                for stale in [*run_dir.glob("events.out.tfevents.*"), run_dir / "model.zip",
                              run_dir / "vecnormalize.pkl", run_dir / "evaluations.csv", run_dir / "evaluations.npz",
                              run_dir / "best_model.zip", run_dir / "best_vecnormalize.pkl", run_dir / "checkpoint.pkl",
                              run_dir / "error.txt"]:
                    stale.unlink(missing_ok=True)
                self.monitors[k].create()
            else:
                self.monitors[k].truncate(sizes[k])
                self._rewrite(k)
            here = run_dir.resolve()
            write_json_atomic(run_dir / "batch.json", dict(
                engine="batched", member=k, members=[os.path.relpath(d.resolve(), here) for d in self.dirs],
                checkpoint=os.path.relpath(self.checkpoint_path.resolve(), here)))
            self.loggers[k] = configure(str(run_dir), ["tensorboard"])

    def _rewrite(self, k: int) -> None:
        """evaluations.csv, evaluations.npz and the best files as of the checkpoint (what a killed run wrote after
        it goes)."""
        from rl_adaloss.train import write_best_files

        write_best_files(self.dirs[k], self.best[k])
        self.evaluations[k].write()

    @property
    def active(self) -> list[int]:
        return [k for k in range(self.K) if k not in self.passengers]

    @property
    def wall(self) -> float:
        return self.previous_wall + time.perf_counter() - self.started

    def ended(self, k: int) -> bool:
        return self.engine.diverged_at[k] is not None

    # -- training ---------------------------------------------------------------------------------------------

    def learn(self) -> None:
        engine = self.engine
        if engine.num_timesteps == 0:
            self.evaluate()
            self.resume_point = self.capture()
        self.learn_started = time.perf_counter()
        self.learn_start_steps = engine.num_timesteps
        if engine.num_timesteps < engine.total_timesteps:
            engine.learn(on_update=lambda _engine: self.after_update())
        self.after_update(final=True)

    def after_update(self, final: bool = False) -> None:
        engine = self.engine
        step = engine.num_timesteps
        if not final:
            self.write_update()
        if final or step >= self.next_eval:
            self.evaluate()
            self.next_eval = (step // self.freq + 1) * self.freq
        self.write_divergences()
        self.write_progress()
        if final:
            return
        self.resume_point = self.capture()
        if step >= self.next_checkpoint:
            self.save_checkpoint()
            self.next_checkpoint = (step // self.checkpoint_freq + 1) * self.checkpoint_freq

    @property
    def progress_path(self) -> Path:
        """Beside the checkpoint: how far the batch is, for the sweep's progress line (see :func:`read_progress`)."""
        return self.checkpoint_path.with_suffix(".progress")

    def write_progress(self) -> None:
        from rl_adaloss.io import write_json_atomic

        write_json_atomic(self.progress_path, dict(timesteps=int(self.engine.num_timesteps), members=len(self.active),
                                                   total_timesteps=int(self.engine.total_timesteps)))

    def write_update(self) -> None:
        """After an update: Monitor rows, then each live member's rollout/*, time/fps and train/* scalars."""
        from rl_adaloss.batched.outputs import rollout_records, update_records

        engine = self.engine
        step = engine.num_timesteps
        episodes = self.recorder.take()
        for k in range(self.K):
            mine = [e for e in episodes if e.member == k
                    and (engine.diverged_at[k] is None or e.timesteps <= engine.diverged_at[k])]
            if not mine or k in self.written_divergence:
                continue
            self.windows[k].extend((e.reward, e.length) for e in mine)
            if k not in self.passengers:
                self.monitors[k].append(mine)
        elapsed = max(time.perf_counter() - self.learn_started, 1e-9)
        fps = int((step - self.learn_start_steps) / elapsed)
        step_sizes = engine.step_size_stats()
        for k in self.active:
            diverged = engine.diverged_at[k]
            if k in self.written_divergence or (diverged is not None and diverged < step):
                continue  # ended in an earlier update, or in this rollout (SB3 raises before it logs)
            logger = self.loggers[k]
            for key, value in rollout_records(self.windows[k], fps).items():
                logger.record(key, value)
            if diverged is None:  # diverged in this update's training: AdaLossPPO raises before it records
                logger.record("train/learning_rate", float(self.configs[k]["optimizer"]["lr"]))
                for key, value in update_records(engine, k, step_sizes).items():
                    logger.record(key, value)
            logger.dump(step=step)

    def evaluate(self) -> None:
        engine = self.engine
        means, stds = self.evaluator.evaluate()
        stats = engine.step_size_stats()
        for k, table in enumerate(self.evaluations):
            if self.ended(k) or k in self.passengers:
                continue
            if table.rows and table.rows[-1]["timesteps"] == engine.num_timesteps:
                continue
            row = {"timesteps": engine.num_timesteps, "mean_reward": means[k], "std_reward": stds[k]}
            row.update({key: values[k] for key, values in stats.items()})
            table.add(row, self.evaluator.episode_returns[k], self.evaluator.episode_lengths[k])
            # As train.Run.evaluate (SB3's EvalCallback): a better finite mean return saves the best model.
            best = self.best[k]
            if math.isfinite(means[k]) and (best is None or means[k] > best["mean_reward"]):
                from rl_adaloss.batched.export import model_bytes, vecnormalize_bytes
                from rl_adaloss.train import write_best_files

                self.best[k] = dict(timesteps=engine.num_timesteps, mean_reward=float(means[k]),
                                    model=model_bytes(engine, k, self.configs[k]),
                                    vecnormalize=vecnormalize_bytes(engine, k, self.configs[k]))
                write_best_files(self.dirs[k], self.best[k])
            logger = self.loggers[k]
            logger.record("eval/mean_reward", float(means[k]))
            logger.record("eval/std_reward", float(stds[k]))
            logger.dump(step=engine.num_timesteps)

    def write_divergences(self) -> None:
        """A member that diverged ends now: its result.json is written at once (the batch goes on)."""
        for k in self.active:
            if self.ended(k) and k not in self.written_divergence:
                self.ended_wall[k] = self.wall
                self.written_divergence.add(k)
                self.write_result(k, "diverged")

    # -- checkpoints ----------------------------------------------------------------------------------------

    def capture(self) -> dict[str, Any]:
        from rl_adaloss.batched.checkpoint import capture
        from rl_adaloss.snapshot import rng_state

        return dict(version=CHECKPOINT_VERSION, configs=self.configs, run_dirs=self._relative_dirs(),
                    engine=capture({"engine": self.engine, "evaluator": self.evaluator}),
                    recorder=self.recorder.state(), rng=rng_state(), next_eval=self.next_eval,
                    next_checkpoint=self.next_checkpoint, wall=self.wall, ended_wall=list(self.ended_wall),
                    written_divergence=sorted(self.written_divergence),
                    t_start=[m.t_start for m in self.monitors],
                    evaluations=[list(t.rows) for t in self.evaluations],
                    episodes=[list(t.episodes) for t in self.evaluations], best=list(self.best),
                    windows=[list(w) for w in self.windows],
                    monitor_sizes=[m.sizes() for m in self.monitors])

    def save_checkpoint(self) -> None:
        from rl_adaloss.batched.checkpoint import dumps
        from rl_adaloss.io import write_atomic

        if self.resume_point is not None:
            write_atomic(self.checkpoint_path, dumps(self.resume_point))

    # -- the end --------------------------------------------------------------------------------------------

    def save_final(self, k: int) -> None:
        from rl_adaloss.batched.export import model_bytes, vecnormalize_bytes
        from rl_adaloss.io import write_atomic

        run_dir, config = self.dirs[k], self.configs[k]
        write_atomic(run_dir / "model.zip", model_bytes(self.engine, k, config))
        normalizer = vecnormalize_bytes(self.engine, k, config)
        if normalizer is not None:
            write_atomic(run_dir / "vecnormalize.pkl", normalizer)

    def write_result(self, k: int, status: str, reason: str | None = None) -> dict[str, Any]:
        from rl_adaloss.io import write_json_atomic

        config, run_dir = self.configs[k], self.dirs[k]
        engine = getattr(self, "engine", None)
        result: dict[str, Any] = {"status": status, "reason": reason}
        timesteps = 0 if engine is None else int(engine.num_timesteps)
        if engine is not None and engine.diverged_at[k] is not None:
            result.update(status="diverged", reason=engine.diverged_reason[k], diverged_at=engine.diverged_at[k])
            timesteps = int(engine.diverged_at[k])
        wall = self.ended_wall[k] if self.ended_wall[k] is not None else self.wall
        returns = self.evaluations[k].returns if hasattr(self, "evaluations") else []
        finite = [r for r in returns if math.isfinite(r)]
        result.update(env=config["env"], optimizer=config["optimizer"]["name"], seed=config["seed"],
                      timesteps=timesteps, total_timesteps=config["total_timesteps"],
                      final_eval_return=returns[-1] if returns else None,
                      best_eval_return=max(finite) if finite else None, wall_time_s=round(wall, 3),
                      engine="batched", batch_size=self.K)
        write_json_atomic(run_dir / "wall_time.json", {"seconds": wall})
        write_json_atomic(run_dir / "result.json", result)
        return result

    def close(self) -> None:
        for logger in self.loggers.values():
            logger.close()
        self.loggers = {}
        # The gymnasium fallback's envs hold clients (a physics engine's) to let go; the torch envs hold nothing.
        if hasattr(self, "engine"):
            self.engine.env.env.close()
        if hasattr(self, "evaluator"):
            self.evaluator.env.env.close()


def read_progress(folder: Path, since: float) -> tuple[int, int]:
    """The env-steps done and due by the batches in ``folder`` whose progress file changed at or after ``since``
    (a time.time()): each batch's ``timesteps x members`` and ``total_timesteps x members``, summed."""
    from rl_adaloss.io import read_json

    done = due = 0
    for path in Path(folder).glob("*.progress"):
        try:
            if path.stat().st_mtime < since:
                continue
            info = read_json(path)
            done += int(info["timesteps"]) * int(info["members"])
            due += int(info["total_timesteps"]) * int(info["members"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or not ours: the next look counts it
    return done, due


def run_batch(configs: Sequence[dict[str, Any]], run_dirs: Sequence[str | Path],
              checkpoint_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Train (or resume) the configs as one batch; write each member's run directory; return the members'
    ``result.json`` contents (a passenger's is its existing one).

    Never raises for a training problem: divergence (per member), Ctrl-C/SIGTERM (``interrupted``, after saving
    the checkpoint) and errors (``failed``, with ``error.txt``) are recorded in each member's ``result.json``.
    A bad batch (configs that cannot share an engine, an unsupported option) raises :class:`UsageError`.
    """
    from rl_adaloss.io import write_atomic
    from rl_adaloss.records import read_result
    from rl_adaloss.train import sigterm_as_interrupt

    if len(configs) != len(run_dirs):
        raise UsageError(f"run_batch: {len(configs)} configs but {len(run_dirs)} run directories")
    check_batch(configs)
    path = Path(checkpoint_path) if checkpoint_path is not None else default_checkpoint_path(run_dirs)
    batch = BatchRun(configs, [Path(d) for d in run_dirs], path)
    outcome: dict[int, dict[str, Any]] = {}
    try:
        with sigterm_as_interrupt():
            try:
                batch.start()
                batch.learn()
                for k in batch.active:
                    if not batch.ended(k):
                        batch.save_final(k)
                        batch.ended_wall[k] = batch.wall
                        outcome[k] = batch.write_result(k, "finished")
            except KeyboardInterrupt:
                batch.save_checkpoint()
                for k in batch.active:
                    if k not in outcome and not (hasattr(batch, "engine") and batch.ended(k)):
                        outcome[k] = batch.write_result(
                            k, "interrupted", "interrupted (Ctrl-C or SIGTERM); run the same batch again to resume")
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - recorded, so that a sweep goes on
        text = traceback.format_exc()
        for k in batch.active:
            if k not in outcome and not (hasattr(batch, "engine") and batch.ended(k)):
                write_atomic(batch.dirs[k] / "error.txt", text)
                outcome[k] = batch.write_result(k, "failed", f"{type(error).__name__}: {error}".splitlines()[0])
    finally:
        batch.close()
    results = []
    for k, run_dir in enumerate(batch.dirs):
        if k not in outcome and k in batch.active and hasattr(batch, "engine") and batch.ended(k) \
                and k not in batch.written_divergence:
            outcome[k] = batch.write_result(k, "diverged")
        results.append(outcome.get(k) or read_result(run_dir) or {"status": "failed", "reason": "no result"})
    return results
