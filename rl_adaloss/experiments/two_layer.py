"""A two-layer ReLU network in the setting of Du et al. (2019), as used in Section 4 of Wu et al. (2022).

``f(W, a, x) = (1/sqrt(m)) sum_r a_r ReLU(w_r^T x)`` with ``||x_i|| = 1``, ``w_r(0) ~ N(0, I)``,
``a_r ~ U{-1, +1}``; the output layer is fixed and the first layer ``W`` is trained on ``L(W) = 1/2 ||y - u||^2``
(``u_i = f(W, a, x_i)``, labels ``y_i ~ U{-1, +1}``). Inputs are uniform on the sphere in ``R^d`` with ``d >= n``, so
they are nearly orthogonal. Gradients are computed in closed form (the test suite checks them against autograd);
every update is made by an optimizer class of :mod:`rl_adaloss.optim`, in float64.

* **Definition 1:** ``H_inf[i, j] = x_i^T x_j (pi - arccos(x_i^T x_j)) / (2 pi)``, ``lambda_0 = lambda_min(H_inf)``.
* **Figure 5:** ``||H_inf||`` against ``n`` for nearly orthogonal inputs (``d = fig5_d``) and, for contrast, for
  inputs with pairwise correlation about ``fig5_rho``.
* **Theorem 2:** GD (``SGDConstant`` with ``lr = eta``, ``b0 = 1``) with ``eta = factor / ||H_inf||``; the linear
  rate is fitted and compared with ``max_i (1 - eta * lambda_i(H_inf))^2``, and against the ``lambda_0 / n^2`` step
  of Du et al.
* **Theorem 3:** GD with AdaLoss ``b_{k+1}^2 = b_k^2 + alpha sqrt(n) ||y - u(k)||^2``: we pass
  ``loss = sqrt(n) * ||y - u(k)||^2`` to ``AdaLoss.step`` (``c = 0``) and keep ``alpha`` as the class's ``alpha``;
  the gradient is that of ``1/2 ||y - u||^2``. The paper writes the increment ``alpha^2 sqrt(n) ||y - u(k)||^2``,
  so our ``alpha`` is the paper's ``alpha`` squared (docs/REPRODUCTION.md, "The alpha mapping"). Cases: ``b0``
  below (b) and above (a) the critical value ``eta (lambda_0 + ||H_inf||) / 2`` (the paper's ``C`` taken as 1).
  AdaGrad-Norm runs alongside for reference.
* **Figure 6:** minibatch SGD with AdaLoss vs AdaGrad-Norm. A minibatch ``B`` stands in for the full data through
  the unbiased estimate ``L_B = (n/|B|) 1/2 ||y_B - u_B||^2``: its gradient drives both methods, and AdaLoss
  accumulates ``alpha sqrt(n) (n/|B|) ||y_B - u_B||^2``, the same estimate of its GD increment.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from rl_adaloss import experiments
from rl_adaloss.errors import UsageError
from rl_adaloss.io import save_figure, write_atomic
from rl_adaloss.schema import Positive

NAME = "two_layer"
LABELS = {"adaloss": "AdaLoss", "adagradnorm": "AdaGrad-Norm", "gd": "GD (constant step)"}


class Settings(experiments.ExperimentSettings):
    """The full run's settings; ``rl_adaloss/configs/two_layer.yaml`` holds the ``quick`` overlay."""

    n: int = Field(40, ge=2, description="training points (unit inputs in R^d, labels +-1)")
    d: int = Field(80, ge=2, description="input dimension (d >= n gives nearly orthogonal inputs)")
    data_seed: int = Field(0, ge=0, description="seed for the inputs and labels")
    seeds: int = Field(3, ge=1, description="network initializations per setting (seeds 0..seeds-1)")
    blowup: float = Field(1e8, gt=1, description="a run stops (diverged) once its loss > blowup x its initial loss")
    near_zero: float = Field(1e-10, gt=0, description="'near-zero training loss': loss <= near_zero x initial loss")
    # Figure 5: ||H_inf|| vs n
    fig5_ns: list[Annotated[int, Field(ge=2)]] = Field([10, 20, 50, 100, 200, 500, 1000], min_length=1,
                                                       description="Figure 5: numbers of points n")
    fig5_d: int = Field(1000, ge=2, description="Figure 5: input dimension of the nearly orthogonal family")
    fig5_rho: float = Field(0.5, ge=0, le=0.99, description="Figure 5: pairwise correlation of the correlated family")
    fig5_seeds: int = Field(3, ge=1, description="Figure 5: data draws averaged per n")
    # Theorem 2: GD with eta = factor / ||H_inf||, plus Du et al.'s lambda_0 / n^2
    thm2_widths: list[Annotated[int, Field(ge=1)]] = Field([128, 1024], min_length=1,
                                                           description="Theorem 2: hidden widths m")
    thm2_factors: list[Positive] = Field([0.5, 1.0, 1.5, 1.9, 2.5, 4.0], min_length=1,
                                         description="Theorem 2: step sizes eta = factor / ||H_inf||")
    thm2_iters: int = Field(300, ge=1, description="Theorem 2: GD iterations")
    # Theorem 3: GD with AdaLoss, b^2 += alpha sqrt(n) ||y - u||^2
    thm3_width: int = Field(512, ge=1, description="Theorem 3: hidden width m")
    thm3_eta: float = Field(10.0, gt=0, description="Theorem 3: base step size eta")
    thm3_alphas: list[Positive] = Field([1.0, 0.1, 0.01, 0.001], min_length=1,
                                        description="Theorem 3: AdaLoss alpha values (ours = the paper's alpha^2)")
    thm3_b0s: list[Positive] = Field([0.01, 100.0], min_length=1, description="Theorem 3: initial b0 values (below "
                                     "and above eta(lambda_0+||H_inf||)/2)")
    thm3_iters: int = Field(600, ge=1, description="Theorem 3: GD iterations")
    # Figure 6: minibatch SGD, AdaLoss vs AdaGrad-Norm
    fig6_width: int = Field(512, ge=1, description="Figure 6: hidden width m")
    fig6_eta: float = Field(10.0, gt=0, description="Figure 6: base step size eta")
    fig6_alphas: list[Positive] = Field([1.0, 0.1, 0.01], min_length=1,
                                        description="Figure 6: AdaLoss alpha values (ours = the paper's alpha^2)")
    fig6_b0_grid: list[Positive] = Field([0.01, 0.1, 1.0, 10.0, 100.0], min_length=1,
                                         description="Figure 6: initial b0 values")
    fig6_batch: int = Field(8, ge=1, description="Figure 6: minibatch size")
    fig6_epochs: int = Field(60, ge=1, description="Figure 6: epochs (passes over a reshuffled data set)")

    def check(self) -> None:
        if self.fig6_batch > self.n:
            raise UsageError(f"fig6_batch ({self.fig6_batch}) exceeds n ({self.n})")


DESCRIPTION = __doc__.split("\n\n")[0] + """

Writes two_layer_fig5.png (||H_inf|| vs n), two_layer_thm2.png (GD loss for step sizes c/||H_inf||),
two_layer_thm3.png (GD with AdaLoss from small and large b0: loss and b_t), two_layer_fig6.png (SGD: AdaLoss vs
AdaGrad-Norm over b0), two_layer.csv (all rows, one 'part' column) and two_layer.md; prints a summary.
"""


# -- data, H_inf, the network ------------------------------------------------------------------------------------


def unit_rows(Z: np.ndarray) -> np.ndarray:
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def make_data(n: int, d: int, seed: int, rho: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit inputs in ``R^d`` (pairwise correlation about ``rho``) and labels ``y ~ U{-1, +1}``."""
    rng = np.random.default_rng(seed)
    Z = unit_rows(rng.standard_normal((n, d)))
    if rho > 0:
        Z = unit_rows(math.sqrt(rho) * unit_rows(rng.standard_normal((1, d))) + math.sqrt(1 - rho) * Z)
    return Z, rng.choice([-1.0, 1.0], size=n)


def h_infinity(X: np.ndarray) -> np.ndarray:
    """Definition 1: ``H_inf[i, j] = x_i^T x_j (pi - arccos(x_i^T x_j)) / (2 pi)`` for unit rows ``x_i``."""
    G = np.clip(X @ X.T, -1.0, 1.0)
    return G * (math.pi - np.arccos(G)) / (2 * math.pi)


def h_empirical(X: torch.Tensor, W: torch.Tensor) -> np.ndarray:
    """The Gram matrix ``H(W)[i, j] = (1/m) sum_r x_i^T x_j 1{w_r^T x_i >= 0, w_r^T x_j >= 0}``."""
    S = (X @ W >= 0).to(X.dtype)
    return ((X @ X.T) * (S @ S.T) / W.shape[1]).numpy()


def init_network(d: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``W(0)`` (``d x m``, columns ``w_r ~ N(0, I)``) and ``a ~ U{-1, +1}^m``, float64."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, m, generator=g, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=g).to(torch.float64) * 2 - 1
    return W, a


def loss_and_grad(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, a: torch.Tensor,
                  scale: float = 1.0) -> tuple[float, float, torch.Tensor]:
    """``scale * 1/2 ||y - u||^2``, ``scale * ||y - u||^2`` and the gradient of the first with respect to ``W``:
    ``dL/dw_r = scale * (1/sqrt(m)) a_r sum_i (u_i - y_i) 1{w_r^T x_i > 0} x_i``."""
    Z = X @ W  # pre-activations; the outputs are u = ReLU(Z) a / sqrt(m)
    r = torch.relu(Z) @ a / math.sqrt(W.shape[1]) - y
    sq = float(r @ r)
    grad = X.T @ ((Z > 0).to(X.dtype) * (r[:, None] * a[None, :])) * (scale / math.sqrt(W.shape[1]))
    return 0.5 * scale * sq, scale * sq, grad


def train_gd(X, y, W0, a, method: str, *, eta: float, b0: float = 1.0, alpha: float = 1.0, iters: int,
             blowup: float) -> dict[str, Any]:
    """Full-batch GD. ``loss[k] = L(W(k))`` for ``k = 0..K``; ``b[k]`` is ``b_k`` (``b_0 = b0``; 1 for plain GD);
    ``eff_lr[k-1]`` is ``opt.effective_lr`` after step ``k``. Stops early if the loss blows up."""
    W, opt = experiments.trainable(W0, method, eta, b0, alpha)
    losses, bs, eff = [], [b0 if method != "gd" else 1.0], []
    for k in range(iters + 1):
        loss, sq, grad = loss_and_grad(X, y, W, a)
        losses.append(loss)
        ok = math.isfinite(loss) and loss <= blowup * losses[0]
        if not ok or k == iters:
            diverged = None if ok else k
            break
        W.grad.copy_(grad)
        # Theorem 3: AdaLoss adds alpha * sqrt(n) * ||y - u(k)||^2; the other rules ignore the loss.
        opt.step(loss=math.sqrt(len(y)) * sq)
        eff.append(opt.effective_lr[0])
        bs.append(eta / eff[-1] if method != "gd" else 1.0)
    return dict(loss=np.array(losses), b=np.array(bs), eff_lr=np.array(eff), diverged=diverged, W=W.detach(),
                optimizer=opt)


def train_sgd(X, y, W0, a, method: str, *, eta: float, b0: float, alpha: float, batch: int, epochs: int,
              seed: int, blowup: float) -> dict[str, Any]:
    """Minibatch SGD over reshuffled epochs; ``loss[e]`` is the full training loss after ``e`` epochs."""
    n = len(y)
    W, opt = experiments.trainable(W0, method, eta, b0, alpha)
    g = torch.Generator().manual_seed(10_000 + seed)
    losses = [loss_and_grad(X, y, W, a)[0]]
    diverged = None
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            _, sq, grad = loss_and_grad(X[idx], y[idx], W, a, scale=n / len(idx))
            W.grad.copy_(grad)
            opt.step(loss=math.sqrt(n) * sq)
        losses.append(loss_and_grad(X, y, W, a)[0])
        if not math.isfinite(losses[-1]) or losses[-1] > blowup * losses[0]:
            diverged = epoch + 1
            break
    return dict(loss=np.array(losses), diverged=diverged, b=eta / opt.effective_lr[0])


# -- the parts -----------------------------------------------------------------------------------------------------


def figure5(s, log) -> list[dict[str, Any]]:
    rows = []
    d = s.fig5_d
    for family, rho in ((f"nearly orthogonal (d={d})", 0.0), (f"correlated (rho={s.fig5_rho:g}, d={d})", s.fig5_rho)):
        for n in s.fig5_ns:
            draws = [make_data(n, d, s.data_seed + 100 + k, rho)[0] for k in range(s.fig5_seeds)]
            eigs = [np.linalg.eigvalsh(h_infinity(X)) for X in draws]
            norms, lam0s = [float(e[-1]) for e in eigs], [float(e[0]) for e in eigs]
            rows.append(dict(part="fig5", family=family, n=n, d=d, H_norm=float(np.mean(norms)),
                             H_norm_max=float(np.max(norms)), lambda_0=float(np.mean(lam0s)),
                             step_ours=1 / float(np.mean(norms)), step_du=float(np.mean(lam0s)) / n ** 2))
            log(f"  fig5 {family:<32} n={n:<5} ||H_inf||={rows[-1]['H_norm']:.3f} lambda_0={rows[-1]['lambda_0']:.3g}")
    return rows


def theorem2(s, X, y, eig, log) -> tuple[list[dict[str, Any]], dict]:
    H_norm, lam0 = float(eig[-1]), float(eig[0])
    rows, curves = [], {}
    steps = [("du", lam0 / len(y) ** 2)] + [(f"{f:g}/||H||", f / H_norm) for f in s.thm2_factors]
    for m, (name, eta) in itertools.product(s.thm2_widths, steps):
        finals, rates, hits, flips, moves, divs = [], [], [], [], [], 0
        for seed in range(s.seeds):
            W0, a = init_network(X.shape[1], m, seed)
            run = train_gd(X, y, W0, a, "gd", eta=eta, iters=s.thm2_iters, blowup=s.blowup)
            curves[(m, name, seed)] = run["loss"]
            divs += run["diverged"] is not None
            finals.append(run["loss"][-1] / run["loss"][0] if run["diverged"] is None else float("inf"))
            rel = run["loss"] / run["loss"][0]  # the rate is fitted from 1e-3 down to 1e-24 of the start
            rates.append(experiments.fitted_rate(run["loss"], (rel <= 1e-3) & (rel >= 1e-24))
                         if run["diverged"] is None else float("nan"))
            hits.append(experiments.settled_index(run["loss"] <= s.near_zero * run["loss"][0]))
            flips.append(float(((X @ run["W"] >= 0) != (X @ W0 >= 0)).double().mean()))
            moves.append(float((run["W"] - W0).norm() / W0.norm()))
        predicted = float(np.max((1 - eta * eig) ** 2))
        rows.append(dict(part="thm2", m=m, step=name, eta=eta, final_loss_rel=float(np.mean(finals)),
                         iters_to_near_zero=max(hits) if None not in hits else None,
                         rate_fitted=float(np.nanmean(rates)) if not all(map(math.isnan, rates)) else float("nan"),
                         rate_predicted=predicted,
                         iters_predicted=(math.log(1 / s.near_zero) / -math.log(predicted)
                                          if 0 < predicted < 1 else float("inf")),
                         pattern_flips=float(np.mean(flips)), W_move_rel=float(np.mean(moves)), diverged=divs))
        r = rows[-1]
        log(f"  thm2 m={m:<5} eta={name:<10} ({eta:.3g}) final/initial {r['final_loss_rel']:.3g} "
            f"rate {r['rate_fitted']:.4g} (pred {predicted:.4g}) iters to near-zero {r['iters_to_near_zero']}")
    return rows, curves


def theorem3(s, X, y, eig, log) -> tuple[list[dict[str, Any]], dict]:
    H_norm, lam0 = float(eig[-1]), float(eig[0])
    eta = s.thm3_eta
    critical = eta * (lam0 + H_norm) / 2
    rows, curves = [], {}
    settings = [("adaloss", alpha) for alpha in s.thm3_alphas] + [("adagradnorm", None)]
    for (method, alpha), b0, seed in itertools.product(settings, s.thm3_b0s, range(s.seeds)):
        W0, a = init_network(X.shape[1], s.thm3_width, seed)
        run = train_gd(X, y, W0, a, method, eta=eta, b0=b0, alpha=alpha or 1.0, iters=s.thm3_iters, blowup=s.blowup)
        curves[(method, alpha, b0, seed)] = run
        b = run["b"]
        rows.append(dict(
            part="thm3", method=method, alpha=alpha, b0=b0, case="a" if b0 > critical else "b", seed=seed,
            loss0=float(run["loss"][0]), max_loss_rel=float(run["loss"].max() / run["loss"][0]),
            final_loss=float(run["loss"][-1]), final_loss_rel=float(run["loss"][-1] / run["loss"][0]),
            iters_to_near_zero=experiments.settled_index(run["loss"] <= s.near_zero * run["loss"][0]),
            b_final=float(b[-1]), b_change_last_20pct=float((b[-1] - b[int(0.8 * (len(b) - 1))]) / b[-1]),
            critical=critical, critical_end=eta * float(np.linalg.eigvalsh(h_empirical(X, run["W"]))[-1]) / 2,
            W_move_rel=float((run["W"] - W0).norm() / W0.norm()), diverged=run["diverged"] is not None))
        r = rows[-1]
        log(f"  thm3 {LABELS[method]:<12} alpha={alpha} b0={b0:<6g} case {r['case']} final/initial "
            f"{r['final_loss_rel']:.3g} max/initial {r['max_loss_rel']:.3g} b_final {r['b_final']:.4g} "
            f"(critical {critical:.3g}, at end {r['critical_end']:.3g})")
    return rows, curves


def fig6_methods(s) -> list[tuple[str, float | None]]:
    return [("adagradnorm", None)] + [("adaloss", alpha) for alpha in s.fig6_alphas]


def method_label(method: str, alpha: float | None) -> str:
    return LABELS[method] + ("" if alpha is None else f" a={alpha:g}")


def method_color(method: str, alpha: float | None, alphas: list[float]) -> Any:
    """AdaGrad-Norm's color, or AdaLoss's for ``alpha`` (one of ``alphas``) on the autumn colormap."""
    from matplotlib import colormaps

    return "C0" if method == "adagradnorm" else colormaps["autumn"](alphas.index(alpha) / max(1, len(alphas)))


def figure6(s, X, y, log) -> tuple[list[dict[str, Any]], dict]:
    """SGD over the b0 grid: AdaGrad-Norm and AdaLoss for each alpha. ``holds`` marks AdaLoss "about the same or
    better": if AdaGrad-Norm reaches near-zero loss, AdaLoss does too within 1.25x its epochs (+1); otherwise
    AdaLoss's final loss is at most 10x AdaGrad-Norm's."""
    rows, curves = [], {}
    for b0 in s.fig6_b0_grid:
        finals = {}
        for method, alpha in fig6_methods(s):
            per_seed, hits, bs, divs = [], [], [], 0
            for seed in range(s.seeds):
                W0, a = init_network(X.shape[1], s.fig6_width, seed)
                run = train_sgd(X, y, W0, a, method, eta=s.fig6_eta, b0=b0, alpha=alpha or 1.0,
                                batch=s.fig6_batch, epochs=s.fig6_epochs, seed=seed, blowup=s.blowup)
                curves[(method, alpha, b0, seed)] = run["loss"]
                divs += run["diverged"] is not None
                per_seed.append(run["loss"][-1] / run["loss"][0] if run["diverged"] is None else float("inf"))
                hits.append(experiments.settled_index(run["loss"] <= s.near_zero * run["loss"][0]))
                bs.append(run["b"])
            # Geometric mean over seeds (losses span many decades), floored at 1e-30 relative.
            gm = float(np.exp(np.mean(np.log(np.maximum(per_seed, 1e-30)))))
            # Epochs until the loss is near zero: the slowest seed (None if a seed never got there).
            epochs = max(hits) if None not in hits else None
            finals[(method, alpha)] = (epochs, gm)
            rows.append(dict(part="fig6", method=method, alpha=alpha, b0=b0, epochs_to_near_zero=epochs,
                             final_loss_rel_gmean=gm, final_loss_rel_max=float(np.max(per_seed)),
                             b_final_mean=float(np.mean(bs)), diverged=divs))
        base_epochs, base = finals[("adagradnorm", None)]
        for r in rows[-len(finals):]:
            if r["method"] == "adaloss":
                mine_epochs, mine = r["epochs_to_near_zero"], r["final_loss_rel_gmean"]
                r["adaloss_over_adagradnorm"] = mine / base if base > 0 else float("nan")
                r["holds"] = (mine_epochs is not None and mine_epochs <= 1.25 * base_epochs + 1
                              if base_epochs is not None else bool(mine <= 10 * base))
        log(f"  fig6 b0={b0:<6g} epochs to near-zero, final/initial loss: " + ", ".join(
            f"{method_label(*k)} {v[0]} {v[1]:.3g}" for k, v in finals.items()))
    return rows, curves


# -- figures ------------------------------------------------------------------------------------------------------


def plot_fig5(rows, path: Path) -> None:
    fig, axes = experiments.subplots(1, 2, figsize=(8.5, 3.2))
    for family in dict.fromkeys(r["family"] for r in rows):
        sel = [r for r in rows if r["family"] == family]
        for ax, key in zip(axes, ("H_norm", "lambda_0")):
            ax.plot([r["n"] for r in sel], [r[key] for r in sel], "o-", label=family, ms=4)
    axes[0].set(xscale="log", yscale="log", xlabel="n", ylabel="‖H∞‖", title="‖H∞‖ vs n")
    axes[1].set(xscale="log", yscale="log", xlabel="n", ylabel="λ₀", title="λ₀ = λ_min(H∞) vs n")
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


def plot_thm2(curves, rows, s, path: Path) -> None:
    from matplotlib import colormaps

    widths = s.thm2_widths
    fig, axes = experiments.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.3), squeeze=False, sharey=True)
    names = list(dict.fromkeys(r["step"] for r in rows))
    for j, m in enumerate(widths):
        ax = axes[0, j]
        for k, name in enumerate(names):
            loss = curves[(m, name, 0)]
            color = "k" if name == "du" else colormaps["plasma"](k / max(1, len(names)))
            label = "Du et al. λ₀/n²" if name == "du" else f"η={name}"
            ax.plot(np.arange(len(loss)), loss / loss[0], color=color, label=label, ls="--" if name == "du" else "-")
        ax.set(yscale="log", xlabel="iteration k", title=f"GD, width m={m}", ylim=(1e-30, 1e3))
    axes[0, 0].set_ylabel("L(W(k)) / L(W(0))")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def plot_thm3(curves, rows, s, path: Path) -> None:
    rows_of_legend = math.ceil((len(s.thm3_alphas) + 1) * len(s.thm3_b0s) / 4)
    fig, axes = experiments.subplots(1, 2, figsize=(9, 3.4 + 0.22 * rows_of_legend))
    styles = ["-", "--", ":", "-."]
    for (method, alpha, b0, seed), run in curves.items():
        if seed:
            continue
        color = method_color(method, alpha, s.thm3_alphas)
        ls = styles[s.thm3_b0s.index(b0) % len(styles)]
        axes[0].plot(run["loss"] / run["loss"][0], color=color, ls=ls, label=f"{method_label(method, alpha)} b0={b0:g}")
        axes[1].plot(run["b"], color=color, ls=ls)
    axes[1].axhline(rows[0]["critical"], color="k", lw=1, ls="--", label="η(λ₀+‖H∞‖)/2")
    axes[0].set(yscale="log", xlabel="iteration k", ylabel="L / L(0)", title="GD with AdaLoss: loss", ylim=(1e-30, 1e4))
    axes[1].set(yscale="log", xlabel="iteration k", ylabel="b_k", title="b_k")
    axes[1].set_xscale("symlog", linthresh=10)
    axes[1].set_xlim(left=0)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7)
    fig.suptitle(f"Two-layer net, GD with AdaLoss / AdaGrad-Norm, eta={s.thm3_eta:g}, m={s.thm3_width} "
                 "(solid: small b0, dashed: large b0)", fontsize=9)
    save_figure(fig, path, rect=(0, 0.06 * rows_of_legend + 0.02, 1, 1))


def plot_fig6(curves, rows, s, path: Path) -> None:
    grid = s.fig6_b0_grid
    methods = fig6_methods(s)
    colors = {m: method_color(*m, s.fig6_alphas) for m in methods}
    fig, axes = experiments.subplots(1, len(grid) + 1, figsize=(2.6 * (len(grid) + 1), 3.0), squeeze=False)
    for j, b0 in enumerate(grid):
        ax = axes[0, j]
        for method, alpha in methods:
            for seed in range(s.seeds):
                loss = curves[(method, alpha, b0, seed)]
                ax.plot(loss / loss[0], color=colors[(method, alpha)], alpha=0.8, lw=1,
                        label=method_label(method, alpha) if seed == 0 else None)
        ax.set(yscale="log", xlabel="epoch", title=f"b₀={b0:g}", ylim=(1e-32, 1e3))
    axes[0, 0].set_ylabel("L / L(0) (SGD)")
    axes[0, 0].legend(fontsize=6)
    ax = axes[0, -1]
    for method, alpha in methods:
        sel = [r for r in rows if r["method"] == method and r["alpha"] == alpha]
        ax.plot([r["b0"] for r in sel], [max(r["final_loss_rel_gmean"], 1e-30) for r in sel], "o-",
                color=colors[(method, alpha)], ms=4)
    ax.set(xscale="log", yscale="log", xlabel="b₀", title=f"after {s.fig6_epochs} epochs")
    fig.suptitle(f"Two-layer net, SGD with batch {s.fig6_batch}, eta={s.fig6_eta:g}, m={s.fig6_width}", fontsize=9)
    save_figure(fig, path)


# -- main -----------------------------------------------------------------------------------------------------------


def run(s: Settings, out: Path, quick: bool, log: Callable[[str], None]) -> list[str]:
    Xn, yn = make_data(s.n, s.d, s.data_seed)
    eig = np.linalg.eigvalsh(h_infinity(Xn))
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)
    fig5_rows = figure5(s, log)
    thm2_rows, thm2_curves = theorem2(s, X, y, eig, log)
    thm3_rows, thm3_curves = theorem3(s, X, y, eig, log)
    fig6_rows, fig6_curves = figure6(s, X, y, log)
    plot_fig5(fig5_rows, out / "two_layer_fig5.png")
    plot_thm2(thm2_curves, thm2_rows, s, out / "two_layer_thm2.png")
    plot_thm3(thm3_curves, thm3_rows, s, out / "two_layer_thm3.png")
    plot_fig6(fig6_curves, fig6_rows, s, out / "two_layer_fig6.png")

    # One CSV for all parts: the union of the columns, blank where a part has none.
    write_atomic(out / "two_layer.csv", experiments.csv_text(fig5_rows + thm2_rows + thm3_rows + fig6_rows))

    H_norm, lam0 = float(eig[-1]), float(eig[0])
    header = (f"Data: n={s.n} unit inputs in R^{s.d}, labels +-1. H_inf: lambda_0 = {lam0:.4g}, ||H_inf|| = "
              f"{H_norm:.4g}; Du et al.'s step lambda_0/n^2 = {lam0 / s.n ** 2:.3g} vs 1/||H_inf|| = {1 / H_norm:.3g}.")
    thm2_cols = ["m", "step", "eta", "final_loss_rel", "iters_to_near_zero", "iters_predicted", "rate_fitted",
                 "rate_predicted", "pattern_flips", "W_move_rel", "diverged"]
    thm3_cols = ["method", "alpha", "b0", "case", "seed", "max_loss_rel", "final_loss_rel", "iters_to_near_zero",
                 "b_final", "b_change_last_20pct", "critical_end", "W_move_rel"]
    fig6_cols = ["method", "alpha", "b0", "epochs_to_near_zero", "final_loss_rel_gmean", "final_loss_rel_max",
                 "b_final_mean", "adaloss_over_adagradnorm", "holds", "diverged"]
    fig5_cols = ["family", "n", "d", "H_norm", "lambda_0", "step_ours", "step_du"]
    md = [experiments.markdown_header("Two-layer ReLU network (Du et al. 2019 setting)", NAME, quick, s),
          f"\n{header}\n", "Losses are relative to the initial loss. `near-zero` = loss <= near_zero x initial loss; "
          "`iters_to_near_zero` / `epochs_to_near_zero` count until the loss stays there.\n",
          "\n## Figure 5: ||H_inf|| vs n\n\n", experiments.markdown_table(fig5_rows, fig5_cols),
          "\n## Theorem 2: GD with eta = factor/||H_inf|| (and Du et al.'s lambda_0/n^2)\n\n",
          "`rate_predicted` = max_i (1 - eta lambda_i(H_inf))^2 per step; `pattern_flips`: fraction of ReLU "
          "activation patterns that changed; `W_move_rel` = ||W(T) - W(0)||_F / ||W(0)||_F.\n\n",
          experiments.markdown_table(thm2_rows, thm2_cols),
          f"\n## Theorem 3: GD with AdaLoss (critical value eta(lambda_0+||H_inf||)/2 = "
          f"{thm3_rows[0]['critical']:.4g})\n\n",
          "`critical_end` = eta lambda_max(H(W(T)))/2 with the empirical Gram matrix at the end of training; "
          "`b_change_last_20pct` = (b_T - b_{0.8T})/b_T.\n\n", experiments.markdown_table(thm3_rows, thm3_cols),
          "\n## Figure 6: SGD (minibatches), AdaLoss vs AdaGrad-Norm\n\n",
          "`epochs_to_near_zero`: slowest seed. `holds`: where AdaGrad-Norm reaches near-zero loss, AdaLoss does "
          "too within 1.25x its epochs (+1); elsewhere AdaLoss's final loss (geometric mean over seeds) is at most "
          "10x AdaGrad-Norm's.\n\n", experiments.markdown_table(fig6_rows, fig6_cols)]
    write_atomic(out / "two_layer.md", "".join(md))

    print(header)
    print("\nFigure 5: ||H_inf|| and lambda_0 vs n (mean over data draws)")
    print(experiments.text_table(fig5_rows, ["family", "n", "H_norm", "lambda_0"]))
    print("Theorem 2: GD, loss after the run relative to the start, fitted vs predicted per-step rate")
    print(experiments.text_table(thm2_rows, ["m", "step", "eta", "final_loss_rel", "iters_to_near_zero", "rate_fitted",
                                 "rate_predicted"]))
    print("Theorem 3: GD with AdaLoss (and AdaGrad-Norm) from small (case b) and large (case a) b0, seed 0")
    print(experiments.text_table([r for r in thm3_rows if r["seed"] == 0],
                     ["method", "alpha", "b0", "case", "max_loss_rel", "final_loss_rel", "iters_to_near_zero",
                      "b_final", "b_change_last_20pct"]))
    print("Figure 6: SGD, epochs to near-zero loss (slowest seed) and final loss relative to the start "
          "(geometric mean over seeds)")
    print(experiments.text_table(fig6_rows, ["method", "alpha", "b0", "epochs_to_near_zero", "final_loss_rel_gmean",
                                 "adaloss_over_adagradnorm", "holds"]))
    return ["two_layer_fig5.png", "two_layer_thm2.png", "two_layer_thm3.png", "two_layer_fig6.png", "two_layer.csv",
            "two_layer.md"]


def main(argv: Sequence[str] | None = None) -> int:
    return experiments.cli(Settings, NAME, DESCRIPTION, run, argv)


if __name__ == "__main__":
    sys.exit(main())
