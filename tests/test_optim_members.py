"""The member axis of ``rl_adaloss.optim``: ``members=K`` runs K independent optimizers in one.

The core check: member ``k`` of a member-mode optimizer moves exactly as an ordinary instance of the same class,
built with member ``k``'s hyper-parameters and fed slice ``k`` of every parameter, gradient and loss (to float32
rounding, 1e-6 relative). A member with a non-finite loss stays bit for bit as it was, while the others go on.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from rl_adaloss.optim import (
    AdaGradNorm,
    AdaLoss,
    AdamLoss,
    AdamSqrt,
    ScheduledOptimizer,
    SGDConstant,
    SGDDecaySqrt,
    member_adam,
)

K = 3
STEPS = 8
TOL = 1e-6
NAN = float("nan")

ALL_CLASSES = [AdaLoss, AdaGradNorm, AdamLoss, AdamSqrt, SGDConstant, SGDDecaySqrt]
ADAM_CLASSES = (AdamLoss, AdamSqrt)
# The per-group scalar state, and whether ``opt.b`` reads it.
GROUP_STATE = {AdaLoss: "b_squared", AdaGradNorm: "b_squared", AdamLoss: "b", AdamSqrt: "step", SGDDecaySqrt: "step"}
PER_MEMBER = ("lr", "b0", "alpha", "c")

# Every rule with per-member lr and b0 (and alpha, c where it has them); the second AdaLoss case mixes a shared lr
# with per-member values given as a tensor.
CASES = [
    ("adaloss", AdaLoss, dict(lr=[0.3, 0.1, 0.02], b0=[1.0, 0.5, 2.0], alpha=[1.0, 0.0, 3.0], c=[0.0, 0.4, 0.1],
                              weight_decay=0.01)),
    ("adaloss-shared-lr", AdaLoss, dict(lr=0.2, b0=torch.tensor([1.0, 0.7, 1.3]), alpha=2.0, c=[0.0, 0.0, 0.5])),
    ("adagradnorm", AdaGradNorm, dict(lr=[0.8, 0.2, 0.05], b0=[0.5, 1.0, 3.0], weight_decay=0.01)),
    ("adamloss", AdamLoss, dict(lr=[0.05, 0.01, 0.2], b0=[1.0, 4.0, 9.0], alpha=[0.5, 0.0, 2.0], c=[0.1, 0.0, 0.0],
                                weight_decay=0.01)),
    ("adamloss-eps", AdamLoss, dict(lr=[0.05, 0.01, 0.2], b0=2.0, eps=0.05, betas=(0.8, 0.95))),
    ("adamsqrt", AdamSqrt, dict(lr=[0.05, 0.02, 0.1], b0=[1.0, 2.0, 0.5], betas=(0.8, 0.95), weight_decay=0.01)),
    ("sgd", SGDConstant, dict(lr=[0.3, 0.1, 0.5], b0=[1.5, 1.0, 4.0])),
    ("sgd_decaysqrt", SGDDecaySqrt, dict(lr=[1.0, 0.3, 0.1], b0=[1.5, 1.0, 0.5])),
]
CASE_IDS = [case[0] for case in CASES]
ONE_CASE = {cls: kwargs for _, cls, kwargs in reversed(CASES)}  # the first case of each class

# An actor's parameters with a member axis: Linear weights (K, out, in), biases (K, out), log_std (K, act_dim).
SHAPES = [(6, 4), (6,), (6, 6), (6,), (2, 6), (2,), (2,)]


def member_kwargs(kwargs: dict, k: int) -> dict:
    """Member ``k``'s hyper-parameters, for an ordinary instance."""
    out = {}
    for key, value in kwargs.items():
        if key in PER_MEMBER and isinstance(value, torch.Tensor):
            value = float(value[k])
        elif key in PER_MEMBER and isinstance(value, (list, tuple)):
            value = value[k]
        out[key] = value
    return out


def make_params(seed: int = 0, members: int = K) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((members, *s), generator=gen).requires_grad_() for s in SHAPES]


def make_data(seed: int = 1, steps: int = STEPS, members: int = K):
    """Per step: random gradients for every parameter, and K positive losses."""
    gen = torch.Generator().manual_seed(seed)
    grads = [[torch.randn((members, *s), generator=gen) for s in SHAPES] for _ in range(steps)]
    losses = [torch.rand(members, generator=gen) * 3 for _ in range(steps)]
    return grads, losses


def slice_params(params: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    return [p[k].detach().clone().requires_grad_() for p in params]


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = g.clone()


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double(), want.detach().double()
    scale = max(float(want.abs().max()), 1e-12)
    return float((got - want).abs().max()) / scale


def assert_member_equals(opt, params, k, single, single_params, where: str) -> None:
    """Member ``k`` of ``opt`` against the ordinary optimizer ``single``: parameters, moments, scalars."""
    for i, (p, q) in enumerate(zip(params, single_params)):
        assert rel_err(p[k], q) <= TOL, f"{where}: parameter {i} of member {k}"
        for key, value in single.state[q].items():
            mine = opt.state[p][key]
            theirs = value if key != "step" else value.reshape(())
            assert rel_err(mine[k], theirs) <= TOL, f"{where}: state {key!r} of parameter {i}, member {k}"
    cls = type(opt)
    key = GROUP_STATE.get(cls)
    if key is not None:
        mine = opt.param_groups[0][key]
        assert isinstance(mine, torch.Tensor) and mine.shape == (opt.members,) and mine.dtype == torch.float64
        assert float(mine[k]) == pytest.approx(float(single.param_groups[0][key]), rel=TOL), f"{where}: {key}"
    if hasattr(opt, "b"):
        assert opt.b[0][k] == pytest.approx(single.b[0], rel=TOL), f"{where}: b"
    assert opt.effective_lr[0][k] == pytest.approx(single.effective_lr[0], rel=TOL), f"{where}: effective_lr"


def snapshot_member(opt, params, k):
    """Everything member ``k`` owns, cloned: its parameter slices, moment slices, and per-group scalars."""
    state = [{key: v[k].clone() for key, v in opt.state[p].items()} for p in params]
    scalars = [{key: v[k].clone() for key, v in g.items() if key != "params" and isinstance(v, torch.Tensor)}
               for g in opt.param_groups]
    return [p[k].detach().clone() for p in params], state, scalars


def assert_bitwise(a, b, what: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b) or (a.isnan().any() and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))), what
        # Bit for bit, signs of zero included.
        assert torch.equal(a.view(torch.int32) if a.dtype == torch.float32 else a,
                           b.view(torch.int32) if b.dtype == torch.float32 else b), what
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for key in a:
            assert_bitwise(a[key], b[key], f"{what}[{key!r}]")
    else:
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise(x, y, f"{what}[{i}]")


# -- 1. member k is an independent optimizer fed member k's slice ---------------------------------------------------


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_members_equal_independent_optimizers(name, cls, kwargs):
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    singles = []
    for k in range(K):
        ps = slice_params(params, k)
        singles.append((cls(ps, **member_kwargs(kwargs, k)), ps))
    grads, losses = make_data()
    for k, (single, ps) in enumerate(singles):
        assert_member_equals(opt, params, k, single, ps, "before the first step")
    for t in range(STEPS):
        set_grads(params, grads[t])
        assert opt.step(loss=losses[t]) is losses[t]
        for k, (single, ps) in enumerate(singles):
            set_grads(ps, [g[k] for g in grads[t]])
            single.step(loss=float(losses[t][k]))
            assert_member_equals(opt, params, k, single, ps, f"step {t + 1}")
    # The members really differ, and they moved.
    assert not torch.allclose(params[0][0] - make_params()[0][0], params[0][1] - make_params()[0][1])
    assert torch.equal(opt.skipped_steps, torch.zeros(K, dtype=torch.int64))


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_one_member_equals_an_ordinary_optimizer(cls):
    kwargs = member_kwargs(ONE_CASE[cls], 0)
    params = make_params(members=1)
    plain = [p[0].detach().clone().requires_grad_() for p in params]
    opt, ref = cls(params, **kwargs, members=1), cls(plain, **kwargs)
    grads, losses = make_data(members=1)
    for t in range(STEPS):
        set_grads(params, grads[t])
        set_grads(plain, [g[0] for g in grads[t]])
        opt.step(loss=losses[t])
        ref.step(loss=float(losses[t][0]))
        assert_member_equals(opt, params, 0, ref, plain, f"step {t + 1}")


def test_adagradnorm_uses_each_members_own_norm_per_group():
    a = torch.zeros(2, 3, requires_grad=True)
    b = torch.zeros(2, 2, requires_grad=True)
    opt = AdaGradNorm([{"params": [a]}, {"params": [b], "b0": [2.0, 3.0]}], lr=[1.0, 0.5], b0=1.0, members=2)
    a.grad = torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])  # ||g||^2 = 9, 25
    b.grad = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # 25, 1
    opt.step()  # AdaGradNorm needs no loss; without one every member steps
    assert opt.b[0] == pytest.approx([math.sqrt(1 + 9), math.sqrt(1 + 25)])
    assert opt.b[1] == pytest.approx([math.sqrt(4 + 25), math.sqrt(9 + 1)])
    torch.testing.assert_close(a[0], -a.grad[0] / math.sqrt(10))
    torch.testing.assert_close(a[1], -0.5 * a.grad[1] / math.sqrt(26))
    torch.testing.assert_close(b[1], -0.5 * b.grad[1] / math.sqrt(10))


# -- 2. a non-finite loss freezes exactly that member ------------------------------------------------------------


@pytest.mark.parametrize("bad", [NAN, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_non_finite_loss_freezes_that_member_only(name, cls, kwargs, bad):
    frozen, frozen_from = 1, 3
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    singles = []
    for k in range(K):
        ps = slice_params(params, k)
        singles.append((cls(ps, **member_kwargs(kwargs, k)), ps))
    grads, losses = make_data()
    for t in range(STEPS):
        loss = losses[t].clone()
        if t >= frozen_from:
            loss[frozen] = bad
            # What a diverged member feeds the optimizer: non-finite gradients too, and a NaN in its parameters.
            for g in grads[t]:
                g[frozen].fill_(NAN)
            if t == frozen_from:
                with torch.no_grad():
                    params[2][frozen, 0, 0] = NAN
                before = snapshot_member(opt, params, frozen)
        set_grads(params, grads[t])
        opt.step(loss=loss)
        for k, (single, ps) in enumerate(singles):
            if k == frozen and t >= frozen_from:
                continue
            set_grads(ps, [g[k] for g in grads[t]])
            single.step(loss=float(loss[k]))
            assert_member_equals(opt, params, k, single, ps, f"step {t + 1}")
    assert_bitwise(snapshot_member(opt, params, frozen), before, "the frozen member")
    expected = torch.zeros(K, dtype=torch.int64)
    expected[frozen] = STEPS - frozen_from
    assert torch.equal(opt.skipped_steps, expected)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_a_skipped_step_is_as_if_never_taken(cls):
    """One bad loss, then finite ones again: the member goes on as if that step had not happened."""
    kwargs = ONE_CASE[cls]
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    singles = [(cls(ps, **member_kwargs(kwargs, k)), ps) for k, ps in ((k, slice_params(params, k)) for k in range(K))]
    grads, losses = make_data()
    skip = {2: 0, 5: 2}  # step -> the member whose loss is NaN
    for t in range(STEPS):
        loss = losses[t].clone()
        if t in skip:
            loss[skip[t]] = NAN
        set_grads(params, grads[t])
        opt.step(loss=loss)
        for k, (single, ps) in enumerate(singles):
            if skip.get(t) == k:
                continue
            set_grads(ps, [g[k] for g in grads[t]])
            single.step(loss=float(loss[k]))
            assert_member_equals(opt, params, k, single, ps, f"step {t + 1}")
    assert opt.skipped_steps.tolist() == [1, 0, 1]


def test_a_member_frozen_from_the_start_never_moves():
    params = make_params()
    start = [p.detach().clone() for p in params]
    opt = AdamLoss(params, lr=0.1, weight_decay=0.1, members=K)
    grads, losses = make_data()
    for t in range(STEPS):
        loss = losses[t].clone()
        loss[0] = NAN
        set_grads(params, grads[t])
        opt.step(loss=loss)
    for p, p0 in zip(params, start):
        assert_bitwise(p[0].detach(), p0[0], "member 0")
        assert not torch.equal(p[1], p0[1])
    for p in params:
        assert_bitwise(opt.state[p]["exp_avg"][0], torch.zeros_like(p[0]), "exp_avg")
        assert opt.state[p]["step"].tolist() == [0, STEPS, STEPS]


# -- 3. state_dict ------------------------------------------------------------------------------------------------


def _drive(opt, params, grads, losses):
    for g, loss in zip(grads, losses):
        set_grads(params, g)
        opt.step(loss=loss)


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_state_dict_round_trip(name, cls, kwargs):
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    grads, losses = make_data()
    losses = [loss.clone() for loss in losses]
    losses[1][2] = NAN  # a skip, so skipped_steps has something to carry
    _drive(opt, params, grads[:4], losses[:4])

    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=True)

    runs = [(opt, params)]
    for state in (saved, saved, reloaded):
        copies = [p.detach().clone().requires_grad_() for p in params]
        fresh = cls(copies, **{**kwargs, "lr": [123.0] * K}, members=K)  # the loaded lr must win
        fresh.load_state_dict(state)
        assert fresh.effective_lr == opt.effective_lr
        assert torch.equal(fresh.skipped_steps, opt.skipped_steps)
        runs.append((fresh, copies))

    for t in range(4, STEPS):
        for o, ps in runs:
            _drive(o, ps, grads[t:t + 1], losses[t:t + 1])
        for o, ps in runs[1:]:
            for p, q in zip(params, ps):
                assert torch.equal(p, q), f"step {t + 1}"
                for key, value in opt.state[p].items():
                    assert torch.equal(o.state[q][key], value), f"step {t + 1}: {key}"
            for g, h in zip(opt.param_groups, o.param_groups):
                for key, value in g.items():
                    if isinstance(value, torch.Tensor):
                        assert torch.equal(h[key], value), f"step {t + 1}: group {key}"
            assert o.effective_lr == opt.effective_lr
            assert torch.equal(o.skipped_steps, opt.skipped_steps)
    # The saved dict was a snapshot: the steps after it did not touch it.
    assert_bitwise(saved["state"], frozen["state"], "state")
    assert_bitwise([{k: v for k, v in g.items() if isinstance(v, torch.Tensor)} for g in saved["param_groups"]],
                   [{k: v for k, v in g.items() if isinstance(v, torch.Tensor)} for g in frozen["param_groups"]],
                   "param_groups")


def test_state_dict_keeps_members_apart_from_ordinary_optimizers():
    params = make_params()
    opt = AdaLoss(params, members=K)
    member_state = opt.state_dict()
    plain_state = AdaLoss([p[0].detach().clone().requires_grad_() for p in params]).state_dict()
    assert "members" not in plain_state  # an ordinary optimizer's dict is torch's own
    with pytest.raises(ValueError, match="members=3, this one has members=None"):
        AdaLoss([p[0].detach().clone().requires_grad_() for p in params]).load_state_dict(member_state)
    with pytest.raises(ValueError, match="members=None, this one has members=3"):
        AdaLoss(make_params(), members=K).load_state_dict(plain_state)
    with pytest.raises(ValueError, match="members=3, this one has members=4"):
        AdaLoss(make_params(members=4), members=4).load_state_dict(member_state)


def test_deepcopy_keeps_the_member_axis():
    params = make_params()
    opt = AdamLoss(params, lr=[0.1, 0.2, 0.3], members=K)
    grads, losses = make_data()
    _drive(opt, params, grads[:2], losses[:2])
    twin = copy.deepcopy(opt)
    assert twin.members == K
    assert twin.effective_lr == opt.effective_lr
    assert torch.equal(twin.skipped_steps, torch.zeros(K, dtype=torch.int64))


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_all_finite_skips_the_masks_and_changes_nothing(name, cls, kwargs):
    """step(loss=..., all_finite=True), the caller's promise that every member steps, gives bit for bit what the
    masked step gives (parameters, moments, accumulators, step counts)."""
    params_a, params_b = make_params(), make_params()
    opt_a, opt_b = cls(params_a, **kwargs, members=K), cls(params_b, **kwargs, members=K)
    grads, losses = make_data()
    for t in range(STEPS):
        set_grads(params_a, grads[t]), set_grads(params_b, grads[t])
        opt_a.step(loss=losses[t])
        opt_b.step(loss=losses[t], all_finite=True)
        for a, b in zip(params_a, params_b):
            assert_bitwise(b.detach(), a.detach(), f"step {t + 1}")
    for a, b in zip(params_a, params_b):
        for key, value in opt_a.state[a].items():
            assert_bitwise(opt_b.state[b][key], value, key)
    for ga, gb in zip(opt_a.param_groups, opt_b.param_groups):
        for key, value in ga.items():
            if key != "params" and isinstance(value, torch.Tensor):
                assert_bitwise(gb[key], value, key)
    with pytest.raises(ValueError, match="member mode"):
        cls(slice_params(params_a, 0), **member_kwargs(kwargs, 0)).step(loss=1.0, all_finite=True)


# -- 4. the member-axis Adam --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("form", ["member_adam", "adamloss-b0"])
def test_member_axis_adam_equals_torch_adam(form, weight_decay):
    lrs = [3e-4, 1e-3, 3e-2]
    betas = (0.9, 0.999) if form == "member_adam" else (0.9, 0.99)
    params = make_params()
    if form == "member_adam":
        opt = member_adam(params, members=K, lr=lrs, weight_decay=weight_decay)
    else:  # the documented equivalent: AdamLoss(alpha=0, lr=1, b0=1/lr**2)
        opt = AdamLoss(params, lr=1.0, b0=[1 / lr**2 for lr in lrs], alpha=0.0, betas=betas,
                       weight_decay=weight_decay, members=K)
    adams = []
    for k in range(K):
        ps = slice_params(params, k)
        adams.append((torch.optim.Adam(ps, lr=lrs[k], betas=betas, eps=1e-8, weight_decay=weight_decay), ps))
    grads, losses = make_data(steps=25)
    for t in range(25):
        set_grads(params, grads[t])
        opt.step(loss=losses[t])
        for k, (adam, ps) in enumerate(adams):
            set_grads(ps, [g[k] for g in grads[t]])
            adam.step()
    for k, (adam, ps) in enumerate(adams):
        assert opt.effective_lr[0][k] == pytest.approx(lrs[k], rel=TOL)
        for p, q in zip(params, ps):
            assert rel_err(p[k], q) <= TOL
            for key in ("exp_avg", "exp_avg_sq"):
                assert rel_err(opt.state[p][key][k], adam.state[q][key]) <= TOL, key
            assert float(opt.state[p]["step"][k]) == float(adam.state[q]["step"])


def test_member_adam_takes_lr_rewrites_like_adam():
    params = make_params()
    opt = member_adam(params, members=K, lr=1e-3)
    opt.param_groups[0]["lr"] = 5e-4  # as a schedule would
    assert opt.effective_lr[0] == pytest.approx([5e-4] * K, rel=TOL)
    opt.param_groups[0]["lr"] = [1e-4, 2e-4, 3e-4]
    assert opt.effective_lr[0] == pytest.approx([1e-4, 2e-4, 3e-4], rel=TOL)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_rewriting_lr_keeps_the_accumulators(cls):
    kwargs = ONE_CASE[cls]
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    singles = [(cls(ps, **member_kwargs(kwargs, k)), ps) for k, ps in ((k, slice_params(params, k)) for k in range(K))]
    grads, losses = make_data()
    for t in range(STEPS):
        if t == 3:
            opt.param_groups[0]["lr"] = 0.05
            for single, _ in singles:
                single.param_groups[0]["lr"] = 0.05
        if t == 5:
            opt.param_groups[0]["lr"] = torch.tensor([0.01, 0.02, 0.03])
            for k, (single, _) in enumerate(singles):
                single.param_groups[0]["lr"] = [0.01, 0.02, 0.03][k]
        set_grads(params, grads[t])
        opt.step(loss=losses[t])
        for k, (single, ps) in enumerate(singles):
            set_grads(ps, [g[k] for g in grads[t]])
            single.step(loss=float(losses[t][k]))
            assert_member_equals(opt, params, k, single, ps, f"step {t + 1}")


# -- 5. the member path never syncs with the device ---------------------------------------------------------------


def _no_host_reads(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("a tensor was read on the host during a member-mode step")

    for name in ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_member_step_reads_no_tensor_on_the_host(name, cls, kwargs, monkeypatch):
    params = make_params()
    opt = cls(params, **kwargs, members=K)
    grads, losses = make_data()
    with monkeypatch.context() as patch:
        _no_host_reads(patch)
        with pytest.raises(AssertionError, match="read on the host"):
            float(torch.ones(()))  # the patch bites
        for t in range(4):
            loss = losses[t].clone()
            loss[t % K] = NAN
            set_grads(params, grads[t])
            opt.step(loss=loss)
            if t == 2:
                opt.param_groups[0]["lr"] = 0.1  # a rewritten lr is filled in on the device
    # ... and the steps did what they should.
    assert opt.skipped_steps.tolist() == [2, 1, 1]


def test_no_host_reads_without_a_loss(monkeypatch):
    params = make_params()
    opt = AdamSqrt(params, lr=[0.1, 0.2, 0.3], members=K)
    set_grads(params, make_data()[0][0])
    with monkeypatch.context() as patch:
        _no_host_reads(patch)
        opt.step()
    assert opt.param_groups[0]["step"].tolist() == [1.0] * K


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_member_scalars_are_float64_vectors_on_the_parameters_device(cls):
    params = make_params()
    opt = cls(params, **ONE_CASE[cls], members=K)
    grads, losses = make_data()
    _drive(opt, params, grads[:2], losses[:2])
    for group in opt.param_groups:
        for key, value in group.items():
            if key in (*PER_MEMBER, GROUP_STATE.get(cls)):
                assert isinstance(value, torch.Tensor), key
                assert value.shape == (K,) and value.dtype == torch.float64 and value.device == params[0].device, key
    for p in params:
        if cls in ADAM_CLASSES:
            assert opt.state[p]["step"].shape == (K,) and opt.state[p]["step"].dtype == torch.float64
        for key in ("exp_avg", "exp_avg_sq"):
            if key in opt.state[p]:
                assert opt.state[p][key].dtype == p.dtype  # the moments keep the parameters' dtype
    assert isinstance(opt.effective_lr[0], list) and len(opt.effective_lr[0]) == K
    assert all(isinstance(x, float) for x in opt.effective_lr[0])
    if hasattr(opt, "b"):
        assert len(opt.b[0]) == K
    assert opt.skipped_steps.shape == (K,) and opt.skipped_steps.dtype == torch.int64


# -- 6. validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_wrong_leading_dim_is_refused(cls):
    good = torch.zeros(K, 2, requires_grad=True)
    for bad in (torch.zeros(K + 1, 2, requires_grad=True), torch.zeros(2, K, requires_grad=True),
                torch.zeros((), requires_grad=True)):
        with pytest.raises(ValueError, match=rf"{cls.__name__}\(members=3\): dim 0 .* parameter 1 of group 0"):
            cls([good, bad], members=K)
    opt = cls([good], members=K)
    with pytest.raises(ValueError, match=r"parameter 0 of group 1 has shape \(2,\)"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})


INVALID = [
    *[(cls, "lr", v, r"lr\b") for cls in ALL_CLASSES for v in ([0.1, 0.2], [0.1] * 4, torch.ones(2, K))],
    *[(cls, "lr", [0.1, -1.0, 0.1], r"lr\[1\] must be a finite number >= 0") for cls in ALL_CLASSES],
    *[(cls, "lr", torch.tensor([0.1, 0.1, NAN]), r"lr\[2\]") for cls in ALL_CLASSES],
    *[(cls, "b0", [1.0, 0.0, 1.0], r"b0\[1\] must be a finite number > 0") for cls in ALL_CLASSES],
    *[(cls, "b0", [1.0, 1.0], r"b0 must be a number or 3 numbers") for cls in ALL_CLASSES],
    *[(cls, "alpha", [1.0, 1.0, -0.5], r"alpha\[2\]") for cls in (AdaLoss, AdamLoss)],
    *[(cls, "c", [NAN, 0.0, 0.0], r"c\[0\] must be a finite number") for cls in (AdaLoss, AdamLoss)],
    *[(cls, "members", v, r"members must be None or an int >= 1") for cls in ALL_CLASSES for v in (0, True, 2.0)],
]


@pytest.mark.parametrize("cls, arg, value, message", INVALID,
                         ids=[f"{c.__name__}-{a}={v!r}" for c, a, v, _ in INVALID])
def test_invalid_member_arguments_raise(cls, arg, value, message):
    kwargs = {"members": K, arg: value}
    with pytest.raises(ValueError, match=rf"{cls.__name__}: .*{message}"):
        cls([torch.zeros(K, 2, requires_grad=True)], **kwargs)


def test_per_group_values_are_checked_too():
    with pytest.raises(ValueError, match=r"AdaLoss: lr\[0\]"):
        AdaLoss([{"params": [torch.zeros(K, 2, requires_grad=True)], "lr": [-1.0, 0.1, 0.1]}], members=K)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_loss_of_the_wrong_shape_is_refused(cls):
    p = torch.ones(K, 2, requires_grad=True)
    opt = cls([p], members=K)
    p.grad = torch.ones(K, 2)
    for loss in (torch.ones(K + 1), torch.ones(K, 1), torch.ones(())):
        with pytest.raises(ValueError, match=r"members=3, loss must have shape \(3,\), one loss per member"):
            opt.step(loss=loss)
    with pytest.raises(TypeError, match=r"loss must be a tensor of shape \(3,\)"):
        opt.step(loss=1.0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        opt.step(lambda: torch.ones(2))  # a closure's loss is checked the same way
    assert torch.equal(p, torch.ones(K, 2))
    assert torch.equal(opt.skipped_steps, torch.zeros(K, dtype=torch.int64))


@pytest.mark.parametrize("cls", [AdaLoss, AdamLoss])
def test_loss_driven_rules_need_a_loss_in_member_mode(cls):
    p = torch.ones(K, 2, requires_grad=True)
    opt = cls([p], members=K)
    p.grad = torch.ones(K, 2)
    with pytest.raises(ValueError, match=r"loss=.*closure"):
        opt.step()
    returned = opt.step(lambda: torch.tensor([1.0, 2.0, NAN]))
    assert torch.equal(returned[:2], torch.tensor([1.0, 2.0]))
    assert torch.equal(p[2], torch.ones(2)) and torch.all(p[:2] < 1)


def test_skipped_steps_can_be_set_per_member():
    opt = SGDConstant([torch.zeros(K, 2, requires_grad=True)], members=K)
    opt.skipped_steps = 0
    assert opt.skipped_steps.tolist() == [0] * K
    opt.skipped_steps = [1, 2, 3]
    assert opt.skipped_steps.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="skipped_steps"):
        opt.skipped_steps = [1, 2]


@pytest.mark.parametrize("cls", [AdaLoss, AdamLoss])
def test_accumulator_keeps_small_increments_at_large_b0(cls):
    """The shipped Pendulum configs start AdamLoss at b0 = 1e7, where float32's spacing is 1: every loss of 0.3 would
    be lost. The member accumulators are float64, as the host path's Python floats."""
    params = [torch.zeros(2, 3, requires_grad=True)]
    b0 = 1e7 if cls is AdamLoss else math.sqrt(1e7)
    opt, ref = cls(params, lr=1.0, b0=b0, members=2), cls([torch.zeros(3, requires_grad=True)], lr=1.0, b0=b0)
    for _ in range(20):
        params[0].grad = torch.ones(2, 3)
        ref.param_groups[0]["params"][0].grad = torch.ones(3)
        opt.step(loss=torch.tensor([0.3, 0.3]))
        ref.step(loss=0.3)
    key = "b" if cls is AdamLoss else "b_squared"
    assert opt.param_groups[0][key].tolist() == pytest.approx([1e7 + 6.0] * 2, abs=1e-6)
    assert opt.b[0] == pytest.approx([ref.b[0]] * 2, rel=1e-12)


def test_ordinary_optimizers_are_untouched_by_the_member_axis():
    opt = AdaLoss([torch.zeros(2, requires_grad=True)])
    assert opt.members is None
    assert opt.skipped_steps == 0
    assert isinstance(opt.param_groups[0]["b_squared"], float)
    assert issubclass(AdaLoss, ScheduledOptimizer)
