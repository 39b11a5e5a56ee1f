"""Behaviour of the six step-size rules in ``rl_adaloss.optim``.

The core check runs every optimizer on a small stochastic linear regression next to a plain-numpy float64
transcription of its rule (written here, from the paper's formulas, without calling the package), on both the
host-scalar path (CPU) and the device path (forced on the CPU by patching ``_host_scalars``).
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch

from rl_adaloss.optim import (
    OPTIMIZERS,
    AdaGradNorm,
    AdaLoss,
    AdamLoss,
    AdamSqrt,
    ScheduledOptimizer,
    SGDConstant,
    SGDDecaySqrt,
)

N_SAMPLES, DIM, BATCH, STEPS = 50, 5, 10, 30
REL_TOL = 1e-6

# -- plain-numpy transcriptions of the rules ------------------------------------------------------------------
#
# Each takes the parameters, the minibatch gradients and the loss at the current parameters, and returns the new
# parameters; ``lr_t`` is the step size it used. ``lr`` is a plain attribute, so a test can rewrite it as SB3 does.


def _fold_l2(params, grads, weight_decay):
    return [g + weight_decay * p for p, g in zip(params, grads)]


class NpAdaLoss:
    """b^2 <- b^2 + alpha |f - c| (from b0^2), then p <- p - lr / b * g."""

    def __init__(self, lr=1.0, b0=1.0, alpha=1.0, c=0.0, weight_decay=0.0):
        self.lr, self.alpha, self.c, self.wd = lr, alpha, c, weight_decay
        self.b_sq = b0**2
        self.lr_t = lr / b0

    def step(self, params, grads, loss):
        grads = _fold_l2(params, grads, self.wd)
        self.b_sq += self.alpha * abs(loss - self.c)
        self.lr_t = self.lr / np.sqrt(self.b_sq)
        return [p - self.lr_t * g for p, g in zip(params, grads)]


class NpAdaGradNorm:
    """b^2 <- b^2 + sum_p ||g_p||^2 over the group (from b0^2), then p <- p - lr / b * g."""

    def __init__(self, lr=1.0, b0=1.0, weight_decay=0.0):
        self.lr, self.wd = lr, weight_decay
        self.b_sq = b0**2
        self.lr_t = lr / b0

    def step(self, params, grads, loss):
        grads = _fold_l2(params, grads, self.wd)
        self.b_sq += sum(float(np.sum(g * g)) for g in grads)
        self.lr_t = self.lr / np.sqrt(self.b_sq)
        return [p - self.lr_t * g for p, g in zip(params, grads)]


class NpSGDConstant:
    def __init__(self, lr=1.0, b0=1.0):
        self.lr, self.b0 = lr, b0
        self.lr_t = lr / b0

    def step(self, params, grads, loss):
        self.lr_t = self.lr / self.b0
        return [p - self.lr_t * g for p, g in zip(params, grads)]


class NpSGDDecaySqrt:
    def __init__(self, lr=1.0, b0=1.0):
        self.lr, self.b0, self.t = lr, b0, 0
        self.lr_t = lr / b0

    def step(self, params, grads, loss):
        self.t += 1
        self.lr_t = self.lr / np.sqrt(self.b0**2 + self.t)
        return [p - self.lr_t * g for p, g in zip(params, grads)]


class _NpAdam:
    """Bias-corrected Adam with step size ``lr_t``; eps is added to sqrt(v_hat); L2 folded into the gradient."""

    def __init__(self, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0):
        self.beta1, self.beta2 = betas
        self.eps, self.wd = eps, weight_decay
        self.m = self.v = None
        self.t = 0

    def _adam(self, params, grads, lr_t):
        grads = _fold_l2(params, grads, self.wd)
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        self.m = [self.beta1 * m + (1 - self.beta1) * g for m, g in zip(self.m, grads)]
        self.v = [self.beta2 * v + (1 - self.beta2) * g * g for v, g in zip(self.v, grads)]
        m_hat = [m / (1 - self.beta1**self.t) for m in self.m]
        v_hat = [v / (1 - self.beta2**self.t) for v in self.v]
        return [p - lr_t * mh / (np.sqrt(vh) + self.eps) for p, mh, vh in zip(params, m_hat, v_hat)]


class NpAdamLoss(_NpAdam):
    """b <- b + alpha |f - c| (from b0, unsquared), then an Adam step at lr / sqrt(b)."""

    def __init__(self, lr=1.0, b0=1.0, alpha=1.0, c=0.0, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0):
        super().__init__(betas, eps, weight_decay)
        self.lr, self.alpha, self.c = lr, alpha, c
        self.b = b0
        self.lr_t = lr / np.sqrt(b0)

    def step(self, params, grads, loss):
        self.b += self.alpha * abs(loss - self.c)
        self.lr_t = self.lr / np.sqrt(self.b)
        return self._adam(params, grads, self.lr_t)


class NpAdamSqrt(_NpAdam):
    """An Adam step at lr / sqrt(b0 + t), t = 1 at the first step."""

    def __init__(self, lr=1.0, b0=1.0, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0):
        super().__init__(betas, eps, weight_decay)
        self.lr, self.b0 = lr, b0
        self.lr_t = lr / np.sqrt(b0)

    def step(self, params, grads, loss):
        self.lr_t = self.lr / np.sqrt(self.b0 + self.t + 1)
        return self._adam(params, grads, self.lr_t)


NUMPY_RULE = {
    AdaLoss: NpAdaLoss,
    AdaGradNorm: NpAdaGradNorm,
    AdamLoss: NpAdamLoss,
    AdamSqrt: NpAdamSqrt,
    SGDConstant: NpSGDConstant,
    SGDDecaySqrt: NpSGDDecaySqrt,
}

# (id, class, kwargs): kwargs go to both our class and the numpy rule. c > 0 makes the loss cross c mid-run, so
# the |f - c| matters; eps=0.05 makes where eps enters visible at the tolerance.
CASES = [
    ("adaloss", AdaLoss, dict(lr=0.5, b0=1.0, alpha=2.0, c=0.05)),
    ("adaloss-wd", AdaLoss, dict(lr=0.8, b0=0.7, alpha=1.0, c=0.0, weight_decay=0.05)),
    ("adagradnorm", AdaGradNorm, dict(lr=0.8, b0=0.5)),
    ("adagradnorm-wd", AdaGradNorm, dict(lr=0.8, b0=0.5, weight_decay=0.05)),
    ("adamloss", AdamLoss, dict(lr=0.2, b0=2.0, alpha=1.0, c=0.05)),
    ("adamloss-wd-eps", AdamLoss, dict(lr=0.2, b0=1.0, alpha=0.5, eps=0.05, weight_decay=0.05)),
    ("adamsqrt", AdamSqrt, dict(lr=0.3, b0=1.0)),
    ("adamsqrt-wd", AdamSqrt, dict(lr=0.3, b0=2.0, betas=(0.8, 0.95), weight_decay=0.05)),
    ("sgd", SGDConstant, dict(lr=0.3, b0=1.5)),
    ("sgd_decaysqrt", SGDDecaySqrt, dict(lr=1.0, b0=1.5)),
]
CASE_IDS = [case[0] for case in CASES]
ALL_CLASSES = [AdaLoss, AdaGradNorm, AdamLoss, AdamSqrt, SGDConstant, SGDDecaySqrt]
LOSS_DRIVEN = [AdaLoss, AdamLoss]

# The group key that holds the accumulator, where there is one.
ACCUMULATOR_KEY = {AdaLoss: "b_squared", AdaGradNorm: "b_squared", AdamLoss: "b"}


# -- the regression problem -------------------------------------------------------------------------------------


class Regression:
    """y = X w* + b*, exactly solvable; loss = 0.5 * mean of squared residuals over a random minibatch."""

    def __init__(self, seed: int = 0, steps: int = STEPS):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((N_SAMPLES, DIM))
        self.y = self.X @ rng.standard_normal(DIM) + 0.5
        self.batches = [rng.choice(N_SAMPLES, BATCH, replace=False) for _ in range(steps)]
        self.init = [rng.standard_normal(DIM) * 0.1, np.zeros(1)]
        self.Xt, self.yt = torch.from_numpy(self.X), torch.from_numpy(self.y)

    def numpy_loss_grad(self, params, idx):
        w, bias = params
        r = self.X[idx] @ w + bias[0] - self.y[idx]
        return 0.5 * float(np.mean(r * r)), [self.X[idx].T @ r / len(idx), np.array([r.mean()])]

    def torch_params(self):
        return [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in self.init]

    def closure(self, opt, params, idx):
        idx = torch.from_numpy(idx)

        def closure():
            opt.zero_grad()
            r = self.Xt[idx] @ params[0] + params[1] - self.yt[idx]
            loss = 0.5 * (r * r).mean()
            loss.backward()
            return loss

        return closure


def rel_err(params, ref) -> float:
    got = np.concatenate([p.detach().numpy().ravel() for p in params])
    want = np.concatenate([r.ravel() for r in ref])
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def take_step(opt, closure, mode):
    """One step, feeding the loss the way ``mode`` says; returns what ``step`` returned and what it was given."""
    if mode == "closure":
        returned = opt.step(closure)
        return returned, returned
    loss = closure()
    given = loss.item() if mode == "float" else loss.detach()
    assert mode in ("float", "tensor")
    return opt.step(loss=given), given


@pytest.fixture(params=["host", "device"])
def path(request, monkeypatch):
    """Run on the host-scalar path (the CPU default) or on the device path, forced on the CPU."""
    if request.param == "device":
        monkeypatch.setattr(ScheduledOptimizer, "_host_scalars", staticmethod(lambda device: False))
    return request.param


def assert_on_path(opt, path):
    """The accumulator's type tells which path ran: a float on the host, a 0-dim tensor on the device path."""
    key = ACCUMULATOR_KEY.get(type(opt))
    if key is not None:
        value = opt.param_groups[0][key]
        if path == "host":
            assert isinstance(value, float), f"host path should keep {key} as a float, got {type(value)}"
        else:
            assert isinstance(value, torch.Tensor) and value.dim() == 0, f"device path should keep {key} as a tensor"


def run_against_numpy(cls, kwargs, mode, path, lr_at=None, seed=0):
    """Step ``cls`` and its numpy rule side by side; check parameters and step size after every step.

    ``lr_at`` maps a step index to a new base lr, written into the param group before that step (as SB3 does).
    """
    problem = Regression(seed)
    params = problem.torch_params()
    opt = cls(params, **kwargs)
    ref = NUMPY_RULE[cls](**kwargs)
    ref_params = [p.copy() for p in problem.init]
    ref_losses = []
    assert opt.effective_lr[0] == pytest.approx(ref.lr_t, rel=1e-12)
    for t, idx in enumerate(problem.batches):
        if lr_at and t in lr_at:
            opt.param_groups[0]["lr"] = lr_at[t]
            ref.lr = lr_at[t]
        f_ref, g_ref = problem.numpy_loss_grad(ref_params, idx)
        ref_losses.append(f_ref)
        ref_params = ref.step(ref_params, g_ref, f_ref)
        returned, loss = take_step(opt, problem.closure(opt, params, idx), mode)
        assert returned is loss, "step() returns the loss"
        assert float(loss.detach() if isinstance(loss, torch.Tensor) else loss) == pytest.approx(f_ref, rel=REL_TOL)
        err = rel_err(params, ref_params)
        assert err <= REL_TOL, f"step {t + 1}: relative error {err:.3g} against the numpy rule"
        assert opt.effective_lr[0] == pytest.approx(ref.lr_t, rel=REL_TOL), f"step {t + 1}: step size"
    assert_on_path(opt, path)
    # The run is not trivial: the parameters travelled, and the loss fell.
    assert rel_err(params, problem.init) > 0.1
    assert np.mean(ref_losses[-5:]) < 0.5 * np.mean(ref_losses[:5])
    return opt, ref, ref_losses


# -- 1. every rule against its numpy transcription ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["float", "tensor", "closure"])
@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_matches_numpy_rule(name, cls, kwargs, mode, path):
    opt, ref, losses = run_against_numpy(cls, kwargs, mode, path)
    if kwargs.get("c", 0) > 0:
        # The loss went below c, so the |f - c| in the accumulator was exercised on both sides.
        assert min(losses) < kwargs["c"] < max(losses)
    if cls is AdaLoss or cls is AdaGradNorm:
        assert opt.b[0] == pytest.approx(math.sqrt(ref.b_sq), rel=REL_TOL)
    if cls is AdamLoss:
        assert opt.b[0] == pytest.approx(ref.b, rel=REL_TOL)


def test_adagradnorm_accumulates_per_group():
    """Each group has its own b^2, fed by the norm of that group's gradients only."""
    a = torch.zeros(3, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    opt = AdaGradNorm([{"params": [a]}, {"params": [b], "b0": 2.0}], lr=1.0, b0=1.0)
    a.grad = torch.tensor([1.0, 2.0, 2.0])  # ||g||^2 = 9
    b.grad = torch.tensor([3.0, 4.0])  # ||g||^2 = 25
    opt.step()
    assert opt.b == pytest.approx([math.sqrt(1 + 9), math.sqrt(4 + 25)])
    torch.testing.assert_close(a, -a.grad / math.sqrt(10))
    torch.testing.assert_close(b, -b.grad / math.sqrt(29))


# -- 2. AdamLoss with alpha = 0 is torch's fused Adam, bit for bit -------------------------------------------------


def _mlp_params(seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(64, 5), (64,), (64, 64), (64,), (1, 64), (1,), (1,)]
    return [torch.randn(s, generator=gen).requires_grad_() for s in shapes]


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("adamloss_lr, b0, adam_lr", [(3e-4, 1.0, 3e-4), (2e-3, 4.0, 1e-3)])
def test_adamloss_alpha0_is_fused_adam_bitwise(adamloss_lr, b0, adam_lr, weight_decay):
    ours, theirs = _mlp_params(1), _mlp_params(1)
    opt = AdamLoss(ours, lr=adamloss_lr, b0=b0, alpha=0.0, weight_decay=weight_decay)
    adam = torch.optim.Adam(theirs, lr=adam_lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay, fused=True)
    gen = torch.Generator().manual_seed(2)
    for _ in range(25):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step(loss=float(torch.rand((), generator=gen)) * 10)
        adam.step()
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt.state[p][key], adam.state[q][key]), key
    assert not torch.equal(ours[0], _mlp_params(1)[0])  # they moved


# -- 3. the accumulator takes the current loss before the parameters move ------------------------------------------


def test_first_step_uses_updated_accumulator(path):
    lr, b0, alpha, c, f0 = 0.3, 1.5, 2.0, 1.0, 3.0
    g = torch.tensor([0.5, -0.25, 2.0], dtype=torch.float64)
    p0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    p = p0.clone().requires_grad_()
    opt = AdaLoss([p], lr=lr, b0=b0, alpha=alpha, c=c)
    p.grad = g.clone()
    opt.step(loss=f0)
    b1 = math.sqrt(b0**2 + alpha * abs(f0 - c))  # 2.5, not b0 = 1.5
    torch.testing.assert_close(p.detach(), p0 - lr / b1 * g, rtol=1e-6, atol=0)
    assert opt.effective_lr[0] == pytest.approx(lr / b1, rel=1e-6)
    assert opt.b[0] == pytest.approx(b1, rel=1e-6)

    p = p0.clone().requires_grad_()
    opt = AdamLoss([p], lr=lr, b0=b0, alpha=alpha, c=c)
    p.grad = g.clone()
    opt.step(loss=f0)
    b1 = b0 + alpha * abs(f0 - c)  # 5.5
    # Adam's first bias-corrected step is g / (|g| + eps).
    torch.testing.assert_close(p.detach(), p0 - lr / math.sqrt(b1) * g / (g.abs() + 1e-8), rtol=1e-6, atol=0)
    assert opt.effective_lr[0] == pytest.approx(lr / math.sqrt(b1), rel=1e-6)
    assert opt.b[0] == pytest.approx(b1, rel=1e-6)
    assert_on_path(opt, path)


# -- 4. state_dict ------------------------------------------------------------------------------------------------


def _drive(opt, params, problem, steps):
    for idx in steps:
        closure = problem.closure(opt, params, idx)
        loss = closure()
        opt.step(loss=loss.item())


def _group_scalars(opt):
    return [{k: float(v) for k, v in g.items() if k != "params" and not isinstance(v, (tuple, list))}
            for g in opt.param_groups]


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_state_dict_round_trip(name, cls, kwargs, path):
    problem = Regression(seed=3)
    k = 7
    params = problem.torch_params()
    opt = cls(params, **kwargs)
    _drive(opt, params, problem, problem.batches[:k])

    saved = opt.state_dict()
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=True)

    # Two fresh optimizers from the same in-memory dict (they must not share state with it or each other), one from
    # the serialized copy.
    runs = [(opt, params)]
    for state in (saved, saved, reloaded):
        copies = [p.detach().clone().requires_grad_() for p in params]
        fresh = cls(copies, **{**kwargs, "lr": 123.0})  # the loaded lr must win
        fresh.load_state_dict(state)
        assert fresh.effective_lr == opt.effective_lr
        runs.append((fresh, copies))

    for t in range(k, STEPS):
        for o, ps in runs:
            _drive(o, ps, problem, [problem.batches[t]])
        for o, ps in runs[1:]:
            for p, q in zip(params, ps):
                assert torch.equal(p, q), f"step {t + 1}"
            assert o.effective_lr == opt.effective_lr
            assert _group_scalars(o) == _group_scalars(opt)
    assert_on_path(runs[-1][0], path)


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_state_dict_is_a_snapshot(name, cls, kwargs, path):
    problem = Regression(seed=4)
    params = problem.torch_params()
    opt = cls(params, **kwargs)
    _drive(opt, params, problem, problem.batches[:5])
    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    _drive(opt, params, problem, problem.batches[5:10])
    live = opt.state_dict()
    if cls is not SGDConstant:  # it has no state; every other rule's state moved on
        assert live["param_groups"] != frozen["param_groups"] or any(
            not torch.equal(live["state"][k][n], v) for k, s in frozen["state"].items() for n, v in s.items()
        )
    assert saved["param_groups"] == frozen["param_groups"]
    assert saved["state"].keys() == frozen["state"].keys()
    for key, per_param in frozen["state"].items():
        assert saved["state"][key].keys() == per_param.keys()
        for name_, value in per_param.items():
            assert torch.equal(saved["state"][key][name_], value), f"state[{key}][{name_!r}] changed"


# -- 5. a missing loss --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LOSS_DRIVEN)
def test_loss_driven_rules_need_a_loss(cls, path):
    p = torch.ones(3, requires_grad=True)
    opt = cls([p], lr=0.1)
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"loss=.*closure"):
        opt.step()
    assert torch.equal(p, torch.ones(3))
    assert not opt.state
    assert opt.effective_lr == [0.1]


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if c not in LOSS_DRIVEN])
def test_other_rules_step_without_a_loss(cls, path):
    p = torch.ones(3, requires_grad=True)
    opt = cls([p], lr=0.1)
    p.grad = torch.ones(3)
    assert opt.step() is None
    assert torch.all(p < 1.0)


def test_step_rejects_closure_and_loss_together_and_non_scalar_losses():
    p = torch.ones(3, requires_grad=True)
    opt = AdaLoss([p], lr=0.1)
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="either a closure or loss="):
        opt.step(lambda: torch.tensor(1.0), loss=1.0)
    with pytest.raises(ValueError, match="scalar"):
        opt.step(loss=torch.ones(2))
    with pytest.raises(TypeError, match="float or a tensor"):
        opt.step(loss="1.0")
    assert torch.equal(p, torch.ones(3))


# -- 6. a non-finite loss skips the step --------------------------------------------------------------------------


BAD_LOSSES = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "tensor-nan": torch.tensor(float("nan"), dtype=torch.float64),
    "tensor-inf": torch.tensor(float("inf")),
}


def _snapshot(opt, params):
    return (
        [p.detach().clone() for p in params],
        copy.deepcopy({i: dict(opt.state[p]) for i, p in enumerate(params)}),
        copy.deepcopy(_group_scalars(opt)),
    )


@pytest.mark.parametrize("nan_grads", [False, True], ids=["finite-grads", "nan-grads"])
@pytest.mark.parametrize("bad", list(BAD_LOSSES), ids=list(BAD_LOSSES))
@pytest.mark.parametrize("cls, kwargs", [(AdaLoss, dict(lr=0.5, weight_decay=0.01)),
                                         (AdamLoss, dict(lr=0.1, weight_decay=0.01))], ids=["adaloss", "adamloss"])
def test_non_finite_loss_skips_the_step(cls, kwargs, bad, nan_grads, path):
    problem = Regression(seed=5)
    params, twin_params = problem.torch_params(), problem.torch_params()
    opt, twin = cls(params, **kwargs), cls(twin_params, **kwargs)
    _drive(opt, params, problem, problem.batches[:3])
    _drive(twin, twin_params, problem, problem.batches[:3])

    before = _snapshot(opt, params)
    problem.closure(opt, params, problem.batches[3])()
    if nan_grads:
        for p in params:
            p.grad.fill_(float("nan"))
    assert opt.step(loss=BAD_LOSSES[bad]) is BAD_LOSSES[bad]
    after = _snapshot(opt, params)

    for p, q in zip(before[0], after[0]):
        assert torch.equal(p, q), "parameters moved"
    for i in before[1]:
        for key in before[1][i]:
            assert torch.equal(before[1][i][key], after[1][i][key]), f"state {key!r} changed"
    assert before[2] == after[2], "the accumulator changed"
    assert opt.skipped_steps == 1
    assert twin.skipped_steps == 0

    # Afterwards it carries on exactly as if the bad step had never been taken.
    _drive(opt, params, problem, problem.batches[3:8])
    _drive(twin, twin_params, problem, problem.batches[3:8])
    for p, q in zip(params, twin_params):
        assert torch.equal(p, q)
    assert opt.effective_lr == twin.effective_lr
    assert opt.skipped_steps == 1
    assert_on_path(opt, path)


def test_skipped_steps_counts_every_skip(path):
    p = torch.ones(2, requires_grad=True)
    opt = AdamLoss([p], lr=0.1)
    p.grad = torch.ones(2)
    for loss in [1.0, float("nan"), torch.tensor(2.0), torch.tensor(float("inf")), float("-inf"), 0.5]:
        opt.step(loss=loss)
    assert opt.skipped_steps == 3
    assert int(opt.state[p]["step"]) == 3


# -- 7. argument validation ---------------------------------------------------------------------------------------

NAN = float("nan")
INVALID = [
    *[(cls, "b0", v) for cls in ALL_CLASSES for v in (0.0, -1.0, NAN, math.inf)],
    *[(cls, "lr", v) for cls in ALL_CLASSES for v in (-1e-3, NAN, math.inf)],
    *[(cls, "alpha", v) for cls in LOSS_DRIVEN for v in (-0.1, NAN)],
    *[(cls, "c", v) for cls in LOSS_DRIVEN for v in (NAN, math.inf)],
    *[(cls, "eps", v) for cls in (AdamLoss, AdamSqrt) for v in (-1e-8, NAN)],
    *[(cls, "weight_decay", v) for cls in (AdaLoss, AdaGradNorm, AdamLoss, AdamSqrt) for v in (-0.1, NAN)],
    *[(cls, "betas", v) for cls in (AdamLoss, AdamSqrt)
      for v in ((1.0, 0.99), (0.9, 1.0), (-0.1, 0.99), (0.9, -0.5), (NAN, 0.99), (0.9, NAN), (0.9,), 0.9)],
]


@pytest.mark.parametrize("cls, arg, value", INVALID, ids=[f"{c.__name__}-{a}={v!r}" for c, a, v in INVALID])
def test_invalid_arguments_raise(cls, arg, value):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=rf"{cls.__name__}.*\b{arg}\b"):
        cls([p], **{arg: value})


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_valid_edge_arguments_are_accepted(cls):
    p = torch.zeros(2, requires_grad=True)
    kwargs = dict(lr=0.0, b0=1e-12)
    if cls in LOSS_DRIVEN:
        kwargs.update(alpha=0.0, c=-3.0)
    if cls in (AdamLoss, AdamSqrt):
        kwargs.update(betas=(0.0, 0.0), eps=0.0)
    cls([p], **kwargs)


# -- 8. effective_lr, and SB3 rewriting lr ------------------------------------------------------------------------

INITIAL_LR = {  # lr = 0.3, b0 = 4: the step size before any step, from b0
    AdaLoss: 0.3 / 4,
    AdaGradNorm: 0.3 / 4,
    AdamLoss: 0.3 / 2,
    AdamSqrt: 0.3 / 2,
    SGDConstant: 0.3 / 4,
    SGDDecaySqrt: 0.3 / 4,
}


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_effective_lr_before_first_step(cls):
    opt = cls([torch.zeros(2, requires_grad=True)], lr=0.3, b0=4.0)
    assert opt.effective_lr == [pytest.approx(INITIAL_LR[cls], rel=1e-15)]


@pytest.mark.parametrize("name, cls, kwargs", CASES, ids=CASE_IDS)
def test_rewriting_lr_keeps_the_accumulator(name, cls, kwargs, path):
    """SB3 writes group['lr'] before every update: the schedule's state (b, step count) must carry on."""
    lr = kwargs["lr"]
    new_lr = {10: 0.5 * lr, 20: 0.25 * lr}
    # run_against_numpy checks every step against a rule whose accumulator is never reset.
    opt, ref, _ = run_against_numpy(cls, kwargs, "float", path, lr_at=new_lr)
    # And right after a rewrite the step size is the new lr over the same accumulator.
    before = _group_scalars(opt)[0]
    opt.param_groups[0]["lr"] = 2.0 * lr
    after = _group_scalars(opt)[0]
    assert {k: v for k, v in before.items() if k != "lr"} == {k: v for k, v in after.items() if k != "lr"}
    assert opt.effective_lr[0] == pytest.approx(ref.lr_t * 2.0 / 0.25, rel=REL_TOL)


# -- 9. the registry ----------------------------------------------------------------------------------------------


def test_registry_names():
    assert OPTIMIZERS == {
        "adam": torch.optim.Adam,
        "adamloss": AdamLoss,
        "adamsqrt": AdamSqrt,
        "adaloss": AdaLoss,
        "adagradnorm": AdaGradNorm,
        "sgd": SGDConstant,
        "sgd_decaysqrt": SGDDecaySqrt,
    }
    for name, cls in OPTIMIZERS.items():
        assert issubclass(cls, torch.optim.Optimizer), name
        if cls is not torch.optim.Adam:
            assert issubclass(cls, ScheduledOptimizer), name
            assert cls.needs_loss == (cls in LOSS_DRIVEN), name


@pytest.mark.parametrize("cls", [AdamLoss, AdaLoss])
def test_small_losses_still_grow_a_large_accumulator_on_both_paths(cls, path):
    """At b0 = 1e7 (the Pendulum configs) float32's spacing is 1: the device path keeps its accumulator in float64,
    as the host path's Python floats, so losses of 0.01 add up there too, and both paths agree."""
    param = torch.nn.Parameter(torch.ones(3))
    b0 = 1e7 if cls is AdamLoss else math.sqrt(1e7)  # AdaLoss squares b0: both start from an accumulator of 1e7
    opt = cls([param], lr=1.0, b0=b0, alpha=1.0)
    for _ in range(100):
        param.grad = torch.full_like(param, 0.5)
        opt.step(loss=torch.tensor(0.01))
    assert_on_path(opt, path)
    key = ACCUMULATOR_KEY[cls]
    assert float(opt.param_groups[0][key]) == pytest.approx(1e7 + 100 * 0.01, abs=1e-6)
