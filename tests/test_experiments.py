"""Tests for rl_adaloss.experiments: the math (H_inf, gradients, recorded step sizes), the quick runs' claims, and
the command-line contract (files written, exit code 2 with one line for bad input)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rl_adaloss.experiments import CONFIG_DIR, linreg, make_optimizer, two_layer

# -- math --------------------------------------------------------------------------------------------------------


def test_h_infinity_matches_monte_carlo_expectation():
    """Definition 1's closed form equals E_w[x_i^T x_j 1{w^T x_i >= 0, w^T x_j >= 0}], w ~ N(0, I)."""
    rng = np.random.default_rng(0)
    X = two_layer.unit_rows(rng.standard_normal((6, 4)))
    X[1] = two_layer.unit_rows(X[:1] + 0.3 * X[1:2])[0]  # a strongly correlated pair
    X[2] = -X[0]  # an antiparallel pair: never both active, so H = 0
    H = two_layer.h_infinity(X)
    w = rng.standard_normal((400_000, 4))
    active = (w @ X.T >= 0).astype(float)
    monte_carlo = (X @ X.T) * (active.T @ active) / len(w)
    # Each entry is |x_i^T x_j| <= 1 times a frequency with standard error <= 0.5/sqrt(N) ~ 8e-4.
    assert np.abs(H - monte_carlo).max() < 4e-3
    np.testing.assert_allclose(np.diag(H), 0.5)
    assert H[0, 2] == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.eigvalsh(H)[0] > 0


def test_two_layer_gradient_matches_autograd():
    Xn, yn = two_layer.make_data(7, 5, seed=1)
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)
    W0, a = two_layer.init_network(5, 13, seed=2)
    loss, sq, grad = two_layer.loss_and_grad(X, y, W0, a, scale=1.7)
    W = W0.clone().requires_grad_(True)
    u = torch.relu(X @ W) @ a / math.sqrt(13)
    auto = 1.7 * 0.5 * ((y - u) ** 2).sum()
    auto.backward()
    assert loss == pytest.approx(float(auto.detach()), rel=1e-12)
    assert sq == pytest.approx(2 * loss, rel=1e-12)
    torch.testing.assert_close(grad, W.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", linreg.METHODS)
def test_linreg_recorded_step_sizes_are_the_optimizers_own(method):
    """The recorded effective step sizes are effective_lr, and agree with each rule recomputed from the record."""
    X, y, _ = linreg.make_problem(60, 5, 0.5, seed=0)
    eta, b0, alpha, c = 0.8, 0.5, 0.7, 0.05
    run = linreg.run_stochastic(X, y, method, b0, iters=40, batch_size=2, eta=eta, alpha=alpha, c=c, seed=3,
                                blowup=1e6)
    opt = run["optimizer"]
    assert run["diverged"] is None
    assert run["eff_lr"][-1] == opt.effective_lr[0]
    t = np.arange(1, 41)
    expected = {
        "adaloss": eta / np.sqrt(b0 ** 2 + alpha * np.cumsum(np.abs(run["step_loss"] - c))),
        "adagradnorm": eta / np.sqrt(b0 ** 2 + np.cumsum(run["grad_sq"])),
        "sgd": np.full(40, eta / b0),
        "sgd_decaysqrt": eta / np.sqrt(b0 ** 2 + t),
    }[method]
    np.testing.assert_allclose(run["eff_lr"], expected, rtol=1e-12)
    if hasattr(opt, "b"):
        assert opt.b[0] == pytest.approx(eta / run["eff_lr"][-1], rel=1e-12)


def test_two_layer_adaloss_accumulates_sqrt_n_times_squared_residual():
    """Theorem 3's rule b_{k+1}^2 = b_k^2 + alpha sqrt(n) ||y - u(k)||^2, read back from AdaLoss itself."""
    Xn, yn = two_layer.make_data(9, 12, seed=0)
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)
    W0, a = two_layer.init_network(12, 64, seed=0)
    eta, b0, alpha = 2.0, 0.3, 0.05
    run = two_layer.train_gd(X, y, W0, a, "adaloss", eta=eta, b0=b0, alpha=alpha, iters=25, blowup=1e8)
    opt = run["optimizer"]
    assert run["eff_lr"][-1] == opt.effective_lr[0]
    expected_b = np.sqrt(b0 ** 2 + alpha * math.sqrt(9) * np.cumsum(2 * run["loss"][:-1]))
    np.testing.assert_allclose(run["b"][1:], expected_b, rtol=1e-12)
    assert opt.b[0] == pytest.approx(expected_b[-1], rel=1e-12)


def test_linreg_alpha_2_is_the_papers_stochastic_update():
    """docs/REPRODUCTION.md's alpha mapping: with batch 1 and alpha = 2, our AdaLoss run is the paper's stochastic
    update (Sec. 3), w_{t+1} = w_t - (eta/b_{t+1}) (x^T w_t - y) x with b_{t+1}^2 = b_t^2 + (x^T w_t - y)^2,
    replayed here in plain numpy on the same rows."""
    X, y, _ = linreg.make_problem(50, 4, 0.5, seed=2)
    eta, b0, iters, seed = 0.7, 0.05, 30, 4
    run = linreg.run_stochastic(X, y, "adaloss", b0, iters=iters, batch_size=1, eta=eta, alpha=2.0, c=0.0,
                                seed=seed, blowup=1e6)
    rows = np.random.default_rng(seed).integers(len(y), size=(iters, 1))[:, 0]
    w, b_sq, eff, loss = np.zeros(4), b0 ** 2, [], []
    for i in rows:
        r = X[i] @ w - y[i]
        b_sq += r ** 2  # the paper's R_t for AdaLoss: no alpha, no 1/2
        w = w - eta / math.sqrt(b_sq) * r * X[i]
        eff.append(eta / math.sqrt(b_sq))
        loss.append(0.5 * float((X @ w - y) @ (X @ w - y)) / len(y))
    np.testing.assert_allclose(run["eff_lr"], eff, rtol=1e-12)
    np.testing.assert_allclose(run["loss"], loss, rtol=1e-10)


def test_gd_from_small_b0_crosses_the_critical_value_then_converges_linearly():
    """Lemma 1 / Theorem 1 in miniature: b_t passes eta*lambda_1/2 within a few steps, then the error contracts at
    the rate of GD with step eta/b_final."""
    X, y, w_star = linreg.make_problem(80, 6, 0.4, seed=5, normalize=True)
    eigs = np.linalg.eigvalsh(X.T @ X)
    eta = 10.0
    critical = eta * eigs[-1] / 2
    for method in ("adaloss", "adagradnorm"):
        run = linreg.run_gd(X, y, w_star, method, 1e-3 * critical, np.zeros(6), eta=eta, alpha=1.0, max_iters=2000,
                            stop_err=1e-24)
        crossed = np.flatnonzero(run["b"] > critical)
        assert crossed.size and crossed[0] <= 10
        assert run["err"][-1] <= 1e-24
        tail = run["err"][(run["err"] < 1e-12) & (run["err"] > 1e-22)]
        measured = np.exp(np.mean(np.log(tail[1:] / tail[:-1])))
        predicted = np.max((1 - eta * eigs / run["b"][-1]) ** 2)
        assert measured == pytest.approx(predicted, rel=0.02)


# -- the quick command-line runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Run both --quick commands once through their command-line entry points (in this process, which has torch
    imported already: a fresh interpreter would pay that again)."""
    out = tmp_path_factory.mktemp("quick")
    results = {}
    for module in (linreg, two_layer):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = module.main(["--quick", "--out", str(out / module.NAME)])
        results[module.NAME] = (rc, stdout.getvalue(), stderr.getvalue(), out / module.NAME)
    return results


def test_linreg_quick_cli_writes_its_files(quick_runs):
    rc, stdout, stderr, out = quick_runs["linreg"]
    assert rc == 0, stderr
    for name in ("linreg.png", "linreg_gd.png", "linreg.csv", "linreg_gd.csv", "linreg.md"):
        assert (out / name).stat().st_size > 0, name
    assert "AdaLoss" in stdout and "SGD-Constant" in stdout and "div" in stdout
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_linreg_quick_run_matches_figure_1_claims(quick_runs):
    """AdaLoss and AdaGrad-Norm reach a small loss at every b0; SGD-Constant diverges at the smallest b0."""
    rc, _, stderr, out = quick_runs["linreg"]
    assert rc == 0, stderr
    config = yaml.safe_load((CONFIG_DIR / "linreg.yaml").read_text())
    s = linreg.Settings.model_validate(config["quick"]).model_dump()
    last = f"{s['windows'][-1][0]}-{s['windows'][-1][1]}"
    with open(out / "linreg.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["window"] == last]
    by = {(r["method"], float(r["b0"])): r for r in rows}
    for b0 in s["b0_grid"]:
        for method in ("adaloss", "adagradnorm"):
            row = by[(method, b0)]
            assert int(row["diverged_seeds"]) == 0
            assert float(row["rel_loss_mean"]) <= s["small_loss"], (method, b0, row["rel_loss_mean"])
    smallest = min(s["b0_grid"])
    # At the smallest b0 the constant step eta/b0 is past the stability limit of SGD (and even of full GD).
    X, _, _ = linreg.make_problem(s["n"], s["d"], s["col_scale_min"], s["data_seed"])
    step = s["eta"] / smallest
    assert step * np.mean(np.sum(X ** 2, axis=1)) > 2
    assert step > 2 * s["n"] / np.linalg.eigvalsh(X.T @ X)[-1]
    sgd = by[("sgd", smallest)]
    assert int(sgd["diverged_seeds"]) == int(sgd["seeds"])
    assert math.isinf(float(sgd["loss_mean"]))


def test_two_layer_quick_cli_writes_its_files(quick_runs):
    rc, stdout, stderr, out = quick_runs["two_layer"]
    assert rc == 0, stderr
    for name in ("two_layer_fig5.png", "two_layer_thm2.png", "two_layer_thm3.png", "two_layer_fig6.png",
                 "two_layer.csv", "two_layer.md"):
        assert (out / name).stat().st_size > 0, name
    assert "lambda_0" in stdout and "Theorem 3" in stdout
    with open(out / "two_layer.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["part"] for r in rows} == {"fig5", "thm2", "thm3", "fig6"}
    # Theorem 3, case (b): from a small b0, GD with AdaLoss reaches near-zero loss.
    case_b = [r for r in rows if r["part"] == "thm3" and r["method"] == "adaloss" and r["case"] == "b"]
    assert case_b and all(r["iters_to_near_zero"] for r in case_b)


# -- bad input: one line on stderr, exit code 2 --------------------------------------------------------------------


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("module", [linreg, two_layer])
def test_unknown_config_key_exits_2_with_one_line(module, tmp_path, capsys):
    name = module.NAME
    config = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    config["no_such_key"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert module.main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "no_such_key" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--config", "/nonexistent/linreg.yaml"], "not found"),
    (["--iters", "-3"], "--iters"),
    (["--b0-grid", "0.1,abc"], "--b0-grid"),
    (["--methods", "adaloss,adam"], "--methods"),
    (["--iters", "50"], "window"),  # the default windows end after iteration 50
    (["--no-such-flag"], "no-such-flag"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, tmp_path, capsys):
    assert linreg.main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert needle in _one_line_error(capsys)


def test_bad_yaml_value_exits_2(tmp_path, capsys):
    config = yaml.safe_load((CONFIG_DIR / "two_layer.yaml").read_text())
    config["quick"]["n"] = "many"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert two_layer.main(["--config", str(path), "--quick"]) == 2
    assert "quick.n" in _one_line_error(capsys)


@pytest.mark.parametrize("module", [linreg, two_layer])
def test_help_documents_every_option(module, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for key in module.Settings.model_fields:
        assert "--" + key.replace("_", "-") in text, key
    for flag in ("--config", "--quick", "--out"):
        assert flag in text


# -- the typed settings: --print-config, KEY=VALUE, the packaged configs --------------------------------------------


def test_configs_ship_inside_the_package():
    import rl_adaloss

    assert CONFIG_DIR == Path(rl_adaloss.__file__).resolve().parent / "configs"
    for module in (linreg, two_layer):
        assert (CONFIG_DIR / f"{module.NAME}.yaml").is_file()


@pytest.mark.parametrize("module", [linreg, two_layer])
def test_print_config_shows_every_key_with_its_description_and_writes_nothing(module, tmp_path, capsys):
    out = tmp_path / "out"
    assert module.main(["--quick", "--print-config", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line for line in text.splitlines()}
    for key, field in module.Settings.model_fields.items():
        assert field.description and lines[key].endswith(f"  # {field.description}"), key
    assert not out.exists()
    # The printed settings are a config file that gives the same settings back.
    printed = tmp_path / "printed.yaml"
    printed.write_text(text)
    assert module.main(["--config", str(printed), "--print-config"]) == 0
    assert capsys.readouterr().out == text
    assert yaml.safe_load(text)["seeds"] == module.Settings.model_validate(
        yaml.safe_load((CONFIG_DIR / f"{module.NAME}.yaml").read_text())["quick"]).seeds


def test_key_value_overrides_and_flags_are_applied_in_order(capsys):
    assert linreg.main(["--quick", "iters=700", "b0_grid=[0.5, 2]", "windows=651-700", "--print-config",
                        "seeds=3", "--seeds", "4", "--gd-eps", "1e-3,1e-9"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["iters"] == 700 and printed["b0_grid"] == [0.5, 2.0] and printed["windows"] == [[651, 700]]
    assert printed["seeds"] == 4  # the flag wins over KEY=VALUE
    assert printed["gd_eps"] == [1e-3, 1e-9]
    assert printed["d"] == 10  # from the quick section


@pytest.mark.parametrize("argv, needles", [
    (["no_such_key=1"], ["unknown key", "no_such_key"]),
    (["iters=many"], ["iters", "integer", "many"]),
    (["eta=-1"], ["eta", "greater than 0"]),
    (["methods=[adaloss, adam]"], ["methods[1]", "adam"]),
    (["windows=[[5, 3]]"], ["windows", "1 <= first <= last"]),
    (["--windows", "5-3"], ["--windows", "1 <= first <= last"]),
    (["--eta", "true"], ["--eta", "number"]),
])
def test_bad_override_exits_2_with_one_line_naming_the_key(argv, needles, tmp_path, capsys):
    assert linreg.main(argv + ["--out", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "out").exists()


def test_config_file_errors_name_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("seeds: 0\n")
    assert two_layer.main(["--config", str(path), "--print-config"]) == 2
    line = _one_line_error(capsys)
    assert str(path) in line and "seeds: expected greater than or equal to 1" in line


def test_one_optimizer_factory():
    """Both experiments build their optimizers in one place; ``gd`` is plain GD: a constant step eta."""
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    assert linreg.experiments.trainable is two_layer.experiments.trainable  # which builds them with make_optimizer
    assert make_optimizer("gd", [w], 0.3, b0=7.0).effective_lr[0] == pytest.approx(0.3)
    assert make_optimizer("sgd", [w], 0.3, b0=3.0).effective_lr[0] == pytest.approx(0.1)
