"""Linear regression with AdaLoss, AdaGrad-Norm, SGD-Constant and SGD-DecaySqrt (Section 3 of Wu et al., 2022).

Two experiments, both with the optimizer classes of :mod:`rl_adaloss.optim`, in float64:

**Stochastic (Figure 1).** ``min_w F(w) = (1/2n) ||Xw - y||^2`` with ``y = X w*`` (overdetermined, ``n > d``, so the
optimum has zero loss and no gradient noise at it). Each step draws ``batch_size`` random rows, computes the
minibatch loss ``f = (1/2B) sum_i (x_i^T w - y_i)^2`` and its gradient, and calls ``opt.step(loss=f)``. AdaLoss
therefore accumulates ``b^2 += alpha * |f - c|``: with ``B = 1`` and ``alpha = 2`` this is exactly the paper's
``R_t = (x^T w - y)^2`` of eq. (10); the default ``alpha = 1`` adds half of it. Rows of ``X`` are Gaussian with
column scales log-spaced from 1 to ``col_scale_min`` (so ``X^T X`` has condition number about
``col_scale_min**-2``). For every method and ``b0`` we record the full loss ``F(w_t)`` and the step size
``opt.effective_lr`` after each step ``t = 1..iters``, and average both over the iteration windows of Figure 1.
A run whose loss exceeds ``blowup`` times its initial loss (or is not finite) is stopped and counted as diverged.

**Deterministic (Theorem 1, Lemma 1, Corollary 1).** Full-batch gradient descent on ``F(w) = 1/2 ||Xw - y||^2`` (the
paper's eq. (3): no ``1/n``) with ``w_{t+1} = w_t - (eta / b_{t+1}) X^T (X w_t - y)``. Convention: ``lambda_1`` is the
largest eigenvalue of ``X^T X`` (the paper's "largest singular value" of the PSD matrix ``X^T X``); gradient descent
with step ``eta / b`` is stable iff ``eta / b < 2 / lambda_1``, i.e. ``b > eta * lambda_1 / 2``, the critical value.
Starting from ``b0`` below it, we count the steps until ``b_t`` first exceeds the critical value, the steps until
``||w_t - w*||^2 <= eps`` for several ``eps``, and fit the linear rate of ``||w_t - w*||^2`` once it is between
``1e-24`` and ``1e-16`` (past the transient, above round-off); the rate is
compared with ``max_i (1 - eta * lambda_i / b_final)^2``, the per-step contraction of GD at the final step size.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field

from rl_adaloss import experiments
from rl_adaloss.errors import UsageError
from rl_adaloss.io import save_figure, write_atomic
from rl_adaloss.schema import Positive

NAME = "linreg"
Method = Literal["adaloss", "adagradnorm", "sgd", "sgd_decaysqrt"]
METHODS = get_args(Method)
LABELS = {"adaloss": "AdaLoss", "adagradnorm": "AdaGrad-Norm", "sgd": "SGD-Constant", "sgd_decaysqrt": "SGD-DecaySqrt"}
#: ||w_t - w*||^2 range over which the GD rate is fitted: past the transient, above float64 round-off.
FIT_RANGE = (1e-24, 1e-16)
COLORS = {"adaloss": "C3", "adagradnorm": "C0", "sgd": "C2", "sgd_decaysqrt": "C1"}


def parse_windows(value: Any) -> Any:
    """Iteration windows from ``"101-200,991-1000"`` (a flag) or ``[[101, 200], ...]`` (YAML) as ``(first, last)``
    tuples, before pydantic checks their types."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        for part in parts:
            if not re.fullmatch(r"[0-9]+-[0-9]+", part):
                raise ValueError(f"window {part!r} is not FIRST-LAST")
        return [tuple(map(int, part.split("-"))) for part in parts]
    return [tuple(pair) if isinstance(pair, list) else pair for pair in value] if isinstance(value, list) else value


def check_windows(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    for first, last in windows:
        if not 1 <= first <= last:
            raise ValueError(f"window {first}-{last} needs 1 <= first <= last")
    return windows


Windows = Annotated[list[tuple[int, int]], BeforeValidator(parse_windows), AfterValidator(check_windows)]


class Settings(experiments.ExperimentSettings):
    """The full run's settings; ``rl_adaloss/configs/linreg.yaml`` holds the ``quick`` overlay."""

    # stochastic (Figure 1): F(w) = ||Xw - y||^2 / (2n), y = X w*
    n: int = Field(1000, ge=2, description="rows of X (data points); the problem is overdetermined, so n > d")
    d: int = Field(20, ge=1, description="columns of X (parameters)")
    col_scale_min: float = Field(0.1, gt=0, le=1, description="column scales of X are log-spaced from 1 down to this")
    data_seed: int = Field(0, ge=0, description="seed for X and w*")
    seeds: int = Field(5, ge=1, description="number of runs per (method, b0), seeds 0..seeds-1 (they draw the rows)")
    iters: int = Field(5000, ge=1, description="stochastic steps per run")
    batch_size: int = Field(1, ge=1, description="rows per stochastic step")
    eta: float = Field(1.0, gt=0, description="base step size eta (step size eta/b)")
    alpha: float = Field(1.0, ge=0, description="AdaLoss: b^2 += alpha*|f - c| with f the minibatch loss")
    c: float = Field(0.0, description="AdaLoss: the constant c (estimate of the optimal loss, 0 here)")
    b0_grid: list[Positive] = Field([0.01, 0.1, 1.0, 10.0, 100.0], min_length=1, description="initial b values")
    methods: list[Method] = Field(list(METHODS), min_length=1, description="methods to compare")
    windows: Windows = Field([(101, 200), (991, 1000), (4901, 5000)], min_length=1,
                             description="iteration windows FIRST-LAST (1-based, inclusive) to average over")
    blowup: float = Field(1e6, gt=1, description="a run diverged once its loss exceeds blowup x its initial loss")
    small_loss: float = Field(1e-2, gt=0, description="'small loss': last-window loss <= small_loss x initial loss")
    # deterministic (Theorem 1 / Lemma 1): F(w) = ||Xw - y||^2 / 2 with X scaled by 1/sqrt(n)
    gd_n: int = Field(200, ge=2, description="GD: rows of X")
    gd_d: int = Field(20, ge=1, description="GD: columns of X")
    gd_col_scale_min: float = Field(0.3, gt=0, le=1, description="GD: smallest column scale (then X / sqrt(n))")
    gd_eta: float = Field(10.0, gt=0, description="GD: base step size eta")
    gd_alpha: float = Field(1.0, ge=0, description="GD: AdaLoss alpha (b^2 += alpha*F, F = 1/2||Xw-y||^2; alpha=2 "
                            "is Lemma 1 and Corollary 1's ||Xw-y||^2)")
    gd_b0_fracs: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [1e-4, 1e-2, 0.5, 0.9], min_length=1, description="GD: b0 as fractions (< 1) of the critical eta*lambda_1/2")
    gd_init_dists: list[Positive] = Field([1.0, 1e-3], min_length=1, description="GD: ||w0 - w*|| for the runs "
                                          "(w0 = w* - dist * random unit vector)")
    gd_eps: list[Positive] = Field([1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12], min_length=1,
                                   description="GD: targets eps for ||w_t - w*||^2 <= eps")
    gd_max_iters: int = Field(3000, ge=1, description="GD: iteration cap")
    gd_methods: list[Literal["adaloss", "adagradnorm"]] = Field(["adaloss", "adagradnorm"], min_length=1,
                                                                description="GD: methods (adaloss, adagradnorm)")

    def check(self) -> None:
        if self.n <= self.d:
            raise UsageError(f"n must exceed d (overdetermined regression), got n={self.n}, d={self.d}")
        if self.gd_n <= self.gd_d:
            raise UsageError(f"gd_n must exceed gd_d, got gd_n={self.gd_n}, gd_d={self.gd_d}")
        for first, last in self.windows:
            if last > self.iters:
                raise UsageError(f"window {first}-{last} ends after iters={self.iters}")


DESCRIPTION = __doc__.split("\n\n")[0] + """

Writes linreg.png (Figure 1 style: loss and effective step size vs b0 over three iteration windows),
linreg_gd.png (GD from a small b0: b_t against the critical value eta*lambda_1/2, and the loss),
linreg.csv, linreg_gd.csv and linreg.md; prints a summary table.
"""


# -- data ------------------------------------------------------------------------------------------------------


def make_problem(n: int, d: int, col_scale_min: float, seed: int, normalize: bool = False):
    """``(X, y, w_star)`` as float64 numpy arrays with ``y = X w_star`` exactly representable up to rounding."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.logspace(0.0, math.log10(col_scale_min), d)
    if normalize:
        X = X / math.sqrt(n)
    w_star = rng.standard_normal(d)
    return X, X @ w_star, w_star


# -- stochastic runs ---------------------------------------------------------------------------------------------


def run_stochastic(X: np.ndarray, y: np.ndarray, method: str, b0: float, *, iters: int, batch_size: int,
                   eta: float, alpha: float, c: float, seed: int, blowup: float) -> dict[str, Any]:
    """One stochastic run from ``w = 0``. Returns per-step arrays (index ``t-1`` is after step ``t``):

    ``loss`` (full loss ``F(w_t)``), ``eff_lr`` (``opt.effective_lr[0]`` after step ``t``), ``step_loss`` (the
    minibatch loss passed to ``opt.step``), ``grad_sq`` (its squared gradient norm); plus ``loss0``, ``diverged``
    (the step at which the run was stopped, or None) and the ``optimizer``. After a stop the loss is ``inf`` and
    the step size stays the optimizer's last one.
    """
    n, d = X.shape
    w, opt = experiments.trainable(np.zeros(d), method, eta, b0, alpha, c)
    w_np, g_np = w.numpy(), w.grad.numpy()  # share memory with the tensors the optimizer updates
    rows = np.random.default_rng(seed).integers(n, size=(iters, batch_size))

    def full_loss() -> float:
        r = X @ w_np - y
        return 0.5 * float(r @ r) / n

    loss0 = full_loss()
    loss = np.full(iters, np.inf)
    eff = np.empty(iters)
    step_loss, grad_sq = np.full((2, iters), np.nan)
    diverged = None
    for t in range(iters):
        if diverged is None:
            Xb = X[rows[t]]
            r = Xb @ w_np - y[rows[t]]
            f = 0.5 * float(r @ r) / batch_size
            g_np[:] = Xb.T @ r / batch_size
            opt.step(loss=f)
            step_loss[t], grad_sq[t] = f, float(g_np @ g_np)
            value = full_loss()
            if math.isfinite(value) and value <= blowup * loss0:
                loss[t] = value
            else:
                diverged = t + 1
        eff[t] = opt.effective_lr[0]
    return dict(loss=loss, eff_lr=eff, step_loss=step_loss, grad_sq=grad_sq, loss0=loss0, diverged=diverged,
                optimizer=opt)


def stochastic_experiment(s: Settings, log=print) -> list[dict[str, Any]]:
    """All (method, b0, seed) runs; returns the CSV rows (one per method, b0, window)."""
    X, y, _ = make_problem(s.n, s.d, s.col_scale_min, s.data_seed)
    rows = []
    for method, b0 in itertools.product(s.methods, s.b0_grid):
        runs = [run_stochastic(X, y, method, b0, iters=s.iters, batch_size=s.batch_size, eta=s.eta, alpha=s.alpha,
                               c=s.c, seed=seed, blowup=s.blowup) for seed in range(s.seeds)]
        n_div = sum(r["diverged"] is not None for r in runs)
        for first, last in s.windows:
            per_seed = [float(np.mean(r["loss"][first - 1:last])) for r in runs]
            eff = [float(np.mean(r["eff_lr"][first - 1:last])) for r in runs]
            rows.append(dict(
                method=method, b0=float(b0), window=f"{first}-{last}", loss_mean=float(np.mean(per_seed)),
                loss_min=float(np.min(per_seed)), loss_max=float(np.max(per_seed)),
                rel_loss_mean=float(np.mean([p / r["loss0"] for p, r in zip(per_seed, runs)])),
                eff_lr_mean=float(np.mean(eff)), diverged_seeds=n_div, seeds=len(runs)))
        log(f"  {LABELS[method]:<14} b0={b0:<8g} last-window loss {rows[-1]['loss_mean']:.3g}"
            f"  eff lr {rows[-1]['eff_lr_mean']:.3g}  diverged {n_div}/{len(runs)}")
    return rows


# -- deterministic runs ------------------------------------------------------------------------------------------


def run_gd(X: np.ndarray, y: np.ndarray, w_star: np.ndarray, method: str, b0: float, w0: np.ndarray, *,
           eta: float, alpha: float, max_iters: int, stop_err: float) -> dict[str, np.ndarray]:
    """Full-batch GD on ``1/2 ||Xw - y||^2``. Arrays over ``t = 0..T``: ``b`` (``b_t``, ``b_0 = b0``), ``loss``
    (``F(w_t)``) and ``err`` (``||w_t - w*||^2``). Stops once ``err <= stop_err``."""
    w, opt = experiments.trainable(w0, method, eta, b0, alpha)
    w_np, g_np = w.numpy(), w.grad.numpy()
    bs, losses, errs = [b0], [], []
    for _ in range(max_iters + 1):
        r = X @ w_np - y
        losses.append(0.5 * float(r @ r))
        e = w_np - w_star
        errs.append(float(e @ e))
        if errs[-1] <= stop_err or len(bs) > max_iters or not math.isfinite(losses[-1]):
            break
        g_np[:] = X.T @ r
        opt.step(loss=losses[-1])
        bs.append(opt.b[0])
    return dict(b=np.array(bs[:len(losses)]), loss=np.array(losses), err=np.array(errs))


def gd_experiment(s: Settings, log=print) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """Lemma 1 / Theorem 1: rows (one per method, b0, init distance), curves, and the problem's constants."""
    X, y, w_star = make_problem(s.gd_n, s.gd_d, s.gd_col_scale_min, s.data_seed + 1, normalize=True)
    eigs = np.linalg.eigvalsh(X.T @ X)
    lam1, lam_min = float(eigs[-1]), float(eigs[0])
    eta = s.gd_eta
    critical = eta * lam1 / 2
    eps_list = sorted(s.gd_eps, reverse=True)
    u = np.random.default_rng(s.data_seed + 2).standard_normal(len(w_star))
    u /= np.linalg.norm(u)
    rows, curves = [], {}
    for method, frac, dist in itertools.product(s.gd_methods, s.gd_b0_fracs, s.gd_init_dists):
        b0 = frac * critical
        run = run_gd(X, y, w_star, method, b0, w_star - dist * u, eta=eta, alpha=s.gd_alpha,
                     max_iters=s.gd_max_iters, stop_err=min(min(eps_list), FIT_RANGE[0]) / 10)
        curves[(method, frac, dist)] = run
        crossed = np.flatnonzero(run["b"] > critical)
        n_cross = int(crossed[0]) if crossed.size else None
        b_final = float(run["b"][-1])
        # Fit the asymptotic rate, after the crossing, well past the transient and above round-off.
        fit = (run["err"] <= FIT_RANGE[1]) & (run["err"] >= FIT_RANGE[0])
        fit[:n_cross or 0] = False
        rate = experiments.fitted_rate(run["err"], fit)
        predicted = float(np.max((1 - eta * eigs / b_final) ** 2))
        row = dict(method=method, b0_frac=float(frac), b0=b0, init_dist=float(dist), steps_to_critical=n_cross,
                   b_final=b_final, b_final_over_critical=b_final / critical,
                   max_loss_over_initial=float(run["loss"].max() / run["loss"][0]),
                   **{f"T(eps={eps:g})": experiments.settled_index(run["err"] <= eps) for eps in eps_list},
                   rate_fitted=rate, rate_predicted=predicted,
                   old_estimate_steps_to_critical=((eta * lam1) ** 2 - 4 * b0 ** 2) / eps_list[-1])
        rows.append(row)
        log(f"  GD {LABELS[method]:<13} b0={b0:<9.3g} dist={dist:<6g} steps to critical {n_cross}, "
            f"T(eps={eps_list[-1]:g}) {row[f'T(eps={eps_list[-1]:g})']}, rate {rate:.4f} (predicted {predicted:.4f})")
    return rows, curves, dict(lambda_1=lam1, lambda_min=lam_min, eta=eta, critical=critical)


# -- figures and tables ------------------------------------------------------------------------------------------


def plot_stochastic(rows, s, path: Path) -> None:
    windows = [f"{a}-{b}" for a, b in s.windows]
    finite = [r["loss_mean"] for r in rows if math.isfinite(r["loss_mean"]) and r["loss_mean"] > 0]
    ceiling = 10 * max(finite) if finite else 1.0
    fig, axes = experiments.subplots(2, len(windows), figsize=(3.6 * len(windows), 5.6), squeeze=False)
    for j, window in enumerate(windows):
        top, bottom = axes[0, j], axes[1, j]
        for method in s.methods:
            sel = [r for r in rows if r["method"] == method and r["window"] == window]
            b0s, losses = np.array([r["b0"] for r in sel]), np.array([r["loss_mean"] for r in sel])
            ok = np.isfinite(losses)
            top.plot(b0s[ok], losses[ok], "o-", color=COLORS[method], label=LABELS[method], ms=4)
            if not ok.all():
                top.plot(b0s[~ok], np.full((~ok).sum(), ceiling), "x", color=COLORS[method], ms=8, mew=2)
            bottom.plot(b0s, [r["eff_lr_mean"] for r in sel], "o-", color=COLORS[method], ms=4)
        top.set(xscale="log", yscale="log", title=f"loss, iterations [{window.replace('-', ', ')}]")
        bottom.set(xscale="log", yscale="log", xlabel="b₀", title="effective step size η/b_t")
    axes[0, 0].set_ylabel("average loss F(w_t)")
    axes[1, 0].set_ylabel("average step size")
    axes[0, 0].legend(fontsize=7, title="x = diverged", title_fontsize=7)
    fig.suptitle(f"Stochastic linear regression (n={s.n}, d={s.d}, batch {s.batch_size}, "
                 f"eta={s.eta:g}, {s.seeds} seeds)", fontsize=10)
    save_figure(fig, path)


def plot_gd(curves, constants, s, path: Path) -> None:
    from matplotlib import colormaps

    dist = s.gd_init_dists[0]
    fig, axes = experiments.subplots(len(s.gd_methods), 2, figsize=(8.5, 2.9 * len(s.gd_methods)), squeeze=False)
    for i, method in enumerate(s.gd_methods):
        for k, frac in enumerate(s.gd_b0_fracs):
            run = curves[(method, frac, dist)]
            t = np.arange(len(run["b"]))
            color = colormaps["viridis"](k / max(1, len(s.gd_b0_fracs) - 1))
            axes[i, 0].plot(t, run["b"], color=color, label=f"b₀={frac:g}·crit")
            axes[i, 1].plot(t, run["loss"], color=color)
        axes[i, 0].axhline(constants["critical"], color="k", ls="--", lw=1, label="ηλ₁/2")
        axes[i, 0].set(yscale="log", ylabel="b_t", title=f"GD with {LABELS[method]}: b_t (x axis log past 1)")
        axes[i, 0].set_xscale("symlog", linthresh=1)
        axes[i, 0].set_xlim(left=0)
        axes[i, 1].set(yscale="log", xscale="linear", ylabel="F(w_t)", title=f"GD with {LABELS[method]}: loss")
        axes[i, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("iteration t")
    fig.suptitle(f"Deterministic linear regression, ||w0-w*||={dist:g}, eta={constants['eta']:g}, "
                 f"lambda_1={constants['lambda_1']:.3g}", fontsize=10)
    save_figure(fig, path)


def matrix_rows(rows, s, window: str, key: str) -> list[dict[str, Any]]:
    """A method x b0 table of ``key`` for one window (``div`` where any seed diverged)."""
    out = []
    for method in s.methods:
        cells = {f"b0={r['b0']:g}": "div" if r["diverged_seeds"] and key.startswith(("loss", "rel")) else r[key]
                 for r in rows if r["method"] == method and r["window"] == window}
        out.append({"method": LABELS[method], **cells})
    return out


def summarize(rows, s) -> dict[str, Any]:
    """The headline checks of Figure 1 in the last window."""
    last = f"{s.windows[-1][0]}-{s.windows[-1][1]}"
    sel = {(r["method"], r["b0"]): r for r in rows if r["window"] == last}
    out: dict[str, Any] = {"window": last}
    for method in s.methods:
        out[f"{method}_small_at"] = [b0 for b0 in s.b0_grid if sel[(method, b0)]["diverged_seeds"] == 0
                                     and sel[(method, b0)]["rel_loss_mean"] <= s.small_loss]
        out[f"{method}_diverged_at"] = [b0 for b0 in s.b0_grid if sel[(method, b0)]["diverged_seeds"]]
    if "adaloss" in s.methods and "adagradnorm" in s.methods:
        out["adaloss_better_at"] = [b0 for b0 in s.b0_grid
                                    if sel[("adaloss", b0)]["loss_mean"] <= sel[("adagradnorm", b0)]["loss_mean"]]
    return out


def run(s: Settings, out: Path, quick: bool, log: Callable[[str], None]) -> list[str]:
    rows = stochastic_experiment(s, log=log)
    gd_rows, gd_curves, constants = gd_experiment(s, log=log)
    plot_stochastic(rows, s, out / "linreg.png")
    plot_gd(gd_curves, constants, s, out / "linreg_gd.png")
    write_atomic(out / "linreg.csv", experiments.csv_text(rows))
    write_atomic(out / "linreg_gd.csv", experiments.csv_text(gd_rows))

    windows = [f"{a}-{b}" for a, b in s.windows]
    md = [experiments.markdown_header("Linear regression: AdaLoss vs AdaGrad-Norm vs SGD", NAME, quick, s),
          "\n## Stochastic setting (Figure 1)\n",
          "Loss is the full average loss F(w_t) = ||Xw_t - y||^2/(2n), averaged over the window and then over seeds "
          "(`div`: at least one seed diverged). Step size is `effective_lr` (eta/b_t), averaged likewise.\n"]
    for window in windows:
        md += [f"\n### Window {window}: loss\n", experiments.markdown_table(matrix_rows(rows, s, window, "loss_mean")),
               f"\n### Window {window}: effective step size\n",
               experiments.markdown_table(matrix_rows(rows, s, window, "eff_lr_mean"))]
    md += ["\n### Summary (last window)\n", "\n".join(f"- `{k}`: {v}" for k, v in summarize(rows, s).items()) + "\n",
           "\n## Deterministic setting (Lemma 1, Theorem 1)\n",
           f"F(w) = ||Xw - y||^2/2, lambda_1 = {constants['lambda_1']:.6g} (largest eigenvalue of X^T X), lambda_min "
           f"= {constants['lambda_min']:.6g}, eta = {constants['eta']:g}, critical value eta*lambda_1/2 = "
           f"{constants['critical']:.6g}. `steps_to_critical`: first t with b_t > eta*lambda_1/2; `T(eps=...)`: first "
           "t from which ||w_t - w*||^2 <= eps holds for good; `rate_fitted`: per-step factor of ||w_t - w*||^2 "
           "fitted after the crossing, where 1e-16 >= ||w_t - w*||^2 >= 1e-24; `rate_predicted`: max_i (1 - "
           "eta*lambda_i/b_final)^2; `old_estimate_steps_to_critical`: ((eta*lambda_1)^2 - 4 b0^2)/eps for the "
           "smallest eps, the count the pre-Theorem-1 analysis allows.\n\n", experiments.markdown_table(gd_rows)]
    write_atomic(out / "linreg.md", "".join(md))

    # The terminal summary: the last window as a method x b0 table, then the GD counts.
    last = windows[-1]
    print(f"Stochastic linear regression (n={s.n}, d={s.d}, {s.iters} steps, {s.seeds} seeds): "
          f"average loss over iterations {last} ('div' = diverged)")
    print(experiments.text_table(matrix_rows(rows, s, last, "loss_mean")))
    print(f"Average effective step size eta/b_t over iterations {last}")
    print(experiments.text_table(matrix_rows(rows, s, last, "eff_lr_mean")))
    print(f"Deterministic GD from b0 < eta*lambda_1/2 = {constants['critical']:.4g}: steps until b_t crosses it, "
          "steps to ||w-w*||^2 <= eps, fitted vs predicted rate")
    cols = ["method", "b0", "init_dist", "steps_to_critical", f"T(eps={max(s.gd_eps):g})", f"T(eps={min(s.gd_eps):g})",
            "rate_fitted", "rate_predicted"]
    print(experiments.text_table(gd_rows, cols))
    return ["linreg.png", "linreg_gd.png", "linreg.csv", "linreg_gd.csv", "linreg.md"]


def main(argv: Sequence[str] | None = None) -> int:
    return experiments.cli(Settings, NAME, DESCRIPTION, run, argv)


if __name__ == "__main__":
    sys.exit(main())
