"""The batched engine's deferred host reads (rl_adaloss.batched.host), the form it runs on CUDA, tried on the CPU.

Deferred, the engine must give the same numbers as it does reading on the host, bit for bit (divergence, target_kl's
early stop and the training episodes included), and its reads must not grow with the number of env steps or
minibatches: on a GPU each one is a host-device sync. :class:`~rl_adaloss.batched.host.HostReads` counts them.
"""

from __future__ import annotations

import pytest
import torch

from rl_adaloss.batched import host
from rl_adaloss.batched.host import HostReads
from rl_adaloss.batched.outputs import EpisodeRecorder
from rl_adaloss.batched.run import build_engine
from rl_adaloss.config import load_config


def engine_for(n_steps: int, *extra: str, deferred: bool, monkeypatch: pytest.MonkeyPatch, members: int = 3):
    """A small Pendulum batch; member 1 diverges (a huge step) where ``lr`` is given per member."""
    monkeypatch.setattr(host, "defers_reads", lambda device: deferred)
    settings = ["n_envs=2", f"ppo.n_steps={n_steps}", "ppo.batch_size=32", "ppo.n_epochs=4",
                f"total_timesteps={4 * n_steps}", *extra]
    configs = [load_config("pendulum_adamloss", [f"seed={k}", *settings,
                                                 f"optimizer.lr={1e30 if k == 1 else 1.0}"]) for k in range(members)]
    engine = build_engine(configs)
    assert engine.deferred is deferred and engine.env.env.deferred is deferred and engine.policy.deferred is deferred
    return engine


def state_of(engine, recorder) -> dict:
    """Everything a run's outputs are made of, after an update."""
    state = {f"param.{name}": p.detach().clone() for name, p in engine.policy.params.items()}
    for role, optimizer in engine.optimizers.items():
        state[f"{role}.flat"] = optimizer.flat.detach().clone()
        for key, value in optimizer.optimizer.state[optimizer.flat].items():
            state[f"{role}.{key}"] = torch.as_tensor(value).clone()
    state.update(diverged_at=list(engine.diverged_at), reason=list(engine.diverged_reason), n_updates=engine.n_updates,
                 stats=dict(engine.stats.values), permutation_words=engine.permutation_rng.counter.clone(),
                 reset_words=engine.env.env.rng.counter.clone(), obs_mean=engine.env.obs_rms.mean.clone(),
                 episodes=[(e.member, e.env, e.reward, e.length, e.timesteps) for e in recorder.take()])
    return state


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN records


@pytest.mark.parametrize("extra", [
    ["ppo.target_kl=0.002"],  # every member stops early in some update: the deferred epochs run on, changing nothing
    ["optimizer.layout=joint", "normalize=true", "ppo.use_sde=true", "ppo.sde_sample_freq=16"],
], ids=["target_kl", "joint-normalized-gsde"])
def test_deferred_reads_give_the_same_numbers(monkeypatch, extra):
    runs = {}
    for deferred in (False, True):
        engine = engine_for(100, *extra, deferred=deferred, monkeypatch=monkeypatch)  # 200-step episodes end
        recorder = EpisodeRecorder(engine.env.env, engine)
        runs[deferred] = []
        for _ in range(3):
            engine.collect_rollouts()
            engine.train()
            runs[deferred].append(state_of(engine, recorder))
    immediate, deferred = runs[False], runs[True]
    assert immediate[-1]["diverged_at"][1] is not None and immediate[-1]["diverged_at"][0] is None
    assert len(immediate[1]["episodes"]) == 2 * 3  # each member's two envs ended an episode at step 200
    if extra == ["ppo.target_kl=0.002"]:
        assert any(s["n_updates"] < 4 * (i + 1) for i, s in enumerate(immediate)), "no update stopped early"
    for i, (a, b) in enumerate(zip(immediate, deferred)):
        different = [key for key in a if not same(a[key], b[key])]
        assert not different, f"update {i}: {different}"


def reads(n_steps: int, deferred: bool, monkeypatch, *extra: str) -> tuple[int, int]:
    """Host reads in a rollout and in an update (the second of each, after the first reset)."""
    engine = engine_for(n_steps, *extra, deferred=deferred, monkeypatch=monkeypatch)
    engine.collect_rollouts()
    engine.train()
    with HostReads() as rollout:
        engine.collect_rollouts()
    with HostReads() as update:
        engine.train()
    return rollout.count, update.count


def test_deferred_reads_do_not_grow_with_steps_or_minibatches(monkeypatch):
    for extra in ([], ["ppo.target_kl=0.002"]):  # 4 and 16 minibatches per epoch, all run or stopped early
        short, long = reads(64, True, monkeypatch, *extra), reads(256, True, monkeypatch, *extra)
        assert short == long, f"{extra}: deferred reads grew: rollout, update {short} -> {long}"
        # one read of the divergences in a rollout; in an update also the divergence checks, epochs and records
        assert short[0] <= 1 and short[1] <= 16
    # The counter sees reads: reading on the host, the engine reads every step and every minibatch.
    immediate_short, immediate_long = reads(64, False, monkeypatch), reads(256, False, monkeypatch)
    assert immediate_long[0] - immediate_short[0] >= 256 - 64 and immediate_long[1] - immediate_short[1] >= 4 * 12


def test_a_checkpoint_does_not_carry_the_read_mode(monkeypatch):
    """Whether reads are deferred belongs to the device a batch runs on: a checkpoint saved in one mode and resumed
    in the other (a CPU batch resumed on a GPU) takes the mode of the engine it is restored into."""
    from rl_adaloss.batched.checkpoint import capture, restore

    for saved_mode in (False, True):
        saved = engine_for(64, deferred=saved_mode, monkeypatch=monkeypatch)
        saved.collect_rollouts()
        saved.train()
        resumed = engine_for(64, deferred=not saved_mode, monkeypatch=monkeypatch)
        restore(resumed, capture(saved))
        assert resumed.num_timesteps == saved.num_timesteps
        assert resumed.deferred is resumed.env.env.deferred is resumed.policy.deferred is (not saved_mode)
