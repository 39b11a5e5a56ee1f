"""The batched engine's counter-based random streams: the hash, the distributions, and member independence (a member's
numbers, and so its whole training run, depend on its seed only, not on K or its place in the batch)."""

from __future__ import annotations

import math

import pytest
import torch

from rl_adaloss.batched.rng import MemberRNG, splitmix64, splitmix64_reference
from rl_adaloss.batched.run import build_engine
from rl_adaloss.config import load_config


def test_splitmix64_matches_the_python_reference():
    states = [0, 1, 2, 12345, 2**31 - 1, 2**32, 2**62 + 7, 2**63 - 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15]
    signed = [s - 2**64 if s >= 2**63 else s for s in states]
    out = splitmix64(torch.tensor(signed, dtype=torch.int64)).tolist()
    assert [v & (2**64 - 1) for v in out] == [splitmix64_reference(s) for s in states]
    # Java's SplittableRandom(0).nextLong(): mix(0 + gamma).
    assert splitmix64_reference(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF


def test_distributions():
    rng = MemberRNG([0, 1], "test")
    u = rng.uniform((200_000,), dtype=torch.float64)
    assert u.shape == (2, 200_000) and float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    z = rng.normal((200_000,), dtype=torch.float64)
    assert torch.isfinite(z).all()
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z**4).mean()) - 3) < 0.1  # normal kurtosis
    assert abs(float(torch.corrcoef(torch.stack([z[0, :-1], z[0, 1:]]))[0, 1])) < 0.01
    assert float(rng.normal((10,), dtype=torch.float32).dtype.itemsize) == 4
    perms = MemberRNG([3, 4], "p").permutations(100, count=3)
    assert perms.shape == (2, 3, 100)
    assert torch.equal(perms.sort(dim=-1).values, torch.arange(100).expand(2, 3, 100))
    assert not torch.equal(perms[0, 0], perms[0, 1]) and not torch.equal(perms[0, 0], perms[1, 0])


def test_a_members_stream_depends_on_its_seed_and_stream_only():
    a, b = MemberRNG([5, 7, 9], "noise"), MemberRNG([7], "noise")
    for shape in [(4,), (2, 3), (1,)]:
        assert torch.equal(a.normal(shape)[1], b.normal(shape)[0])
    assert torch.equal(a.counter[1:2], b.counter)
    other = MemberRNG([7], "reset")
    assert not torch.equal(other.uniform((8,)), MemberRNG([7], "noise").uniform((8,)))


def test_rows_draw_a_members_next_words_for_its_selected_rows_only():
    """Member 7 draws the same for its rows whatever its neighbours' masks; rows take the words in row order."""
    a, b = MemberRNG([7, 8], "r"), MemberRNG([1, 7], "r")
    mask_a = torch.tensor([[True, False, True], [True, True, True]])
    mask_b = torch.tensor([[False, False, False], [True, False, True]])
    for _ in range(3):
        da, db = a.rows(mask_a, 2, normal=True), b.rows(mask_b, 2, normal=True)
        assert torch.equal(da[0][mask_a[0]], db[1][mask_b[1]])
    assert a.counter.tolist() == [3 * 2 * 2 * 2, 3 * 3 * 2 * 2] and b.counter.tolist() == [0, 3 * 2 * 2 * 2]
    # The selected rows are the member's next words, in order: as one block of normals would give them.
    fresh = MemberRNG([7], "r")
    block = fresh.normal((6, 2), dtype=torch.float64)
    again = MemberRNG([7, 8], "r").rows(mask_a, 2, normal=True)
    assert torch.equal(again[0][mask_a[0]], block[0, :2])


TINY = ["n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32", "ppo.n_epochs=2", "total_timesteps=384"]


@pytest.mark.parametrize("name,options", [("pendulum_adamloss", []), ("cartpole_swingup_adamloss", []),
                                          ("pendulum_adam", ["ppo.use_sde=false"])],
                         ids=["pendulum-adamloss-gsde", "cartpole-adamloss-gsde", "pendulum-adam-gaussian"])
def test_a_member_trained_alone_equals_itself_in_a_batch(name, options):
    """Seed 0 alone, and seed 0 as member 2 of 4 (with other seeds and b0s): same parameters, accumulators and
    environment states after three rollouts and updates, bit for bit. Resets, gSDE or Gaussian action noise and
    minibatch orders all come from the member's own streams."""
    def config(seed, *extra):
        return load_config(name, [f"seed={seed}", *TINY, *options, *extra])

    alone = build_engine([config(0)])
    other = "optimizer.lr=1e-3" if name == "pendulum_adam" else "optimizer.b0=1e5"
    batch = build_engine([config(4, other), config(9), config(0), config(1, other)])
    alone.learn(), batch.learn()
    assert alone.num_timesteps == batch.num_timesteps == 384
    # Bit for bit: every op rounds a member's numbers the same whatever K (see BatchedActorCritic._linear).
    assert torch.equal(batch.env.env.state[2], alone.env.env.state[0])
    for pname, param in alone.policy.params.items():
        assert torch.equal(batch.policy.params[pname][2], param[0]), pname
    for role, optimizer in alone.optimizers.items():
        assert batch.optimizers[role].effective_lr[2] == optimizer.effective_lr[0]
        assert optimizer.b is None or batch.optimizers[role].b[2] == optimizer.b[0]
    assert math.isfinite(alone.stats.values["approx_kl"][0])
