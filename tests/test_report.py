"""The HTML report: one self-contained file with the tables and at least four embedded images."""

from __future__ import annotations

import re
import warnings

import pytest

import bayescale as bs
from bayescale.cli import main
from bayescale.errors import FitError
from bayescale.report import default_budgets, render_report, sci_html, write_report
from conftest import SAMPLER, simulate_chinchilla


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    N, D, loss, _ = simulate_chinchilla(n_side=5, seed=4)
    data = bs.ScalingData.from_arrays(N=N, D=D, loss=loss, name="sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fit = bs.fit(data, "chinchilla", **SAMPLER, seed=2, progress=False)
    return fit.save(tmp_path_factory.mktemp("fit") / "fit.nc")


def _check_page(text: str, fit) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', text)) >= 4
    # self-contained: every src and href is inline data, nothing to fetch
    assert re.findall(r'(?:src|href)="(?!data:)', text) == []
    for name in fit.param_names:
        assert f"<code>{name}</code>" in text
    assert "Compute-optimal allocation" in text and "R-hat" in text
    assert "Residuals on log loss" in text and "Posterior predictive check" in text


def test_write_report(fit_file, tmp_path):
    fit = bs.load_fit(fit_file)
    out = write_report(fit, tmp_path / "sub" / "report.html", budgets=[1e23, 1e24], level=0.8)
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["report.html"]
    text = out.read_text()
    _check_page(text, fit)
    assert "10<sup>23</sup>" in text and "80% lo" in text
    assert "central 80% credible interval (from the 10% to the 90% quantile" in text
    assert "central 95% credible" in render_report(fit, budgets=[1e23])  # the CLI's default
    assert ("NOT converged" in text) == (not fit.diagnostics["converged"])


def test_report_rejects_bad_budgets(fit_file):
    with pytest.raises(FitError, match="positive"):
        render_report(bs.load_fit(fit_file), budgets=[-1.0])


def test_default_budgets_are_powers_of_ten_beyond_the_runs(fit_file):
    fit = bs.load_fit(fit_file)
    budgets = default_budgets(fit)
    # the first power of ten above the largest run, then 10x and 100x it: within 1000x
    assert fit.data.C.max() < budgets[0] <= 10 * fit.data.C.max()
    assert [b / budgets[0] for b in budgets] == pytest.approx([1, 10, 100])


def test_sci_html():
    assert sci_html(5.76e23) == "5.76&times;10<sup>23</sup>"
    assert sci_html(1e24) == "10<sup>24</sup>"
    assert sci_html(9.999e5) == "10<sup>6</sup>"


def test_cli_report(fit_file, tmp_path, capsys):
    out = tmp_path / "report.html"
    code = main(["report", str(fit_file), "--out", str(out), "--compute", "1e23", "--level", "0.9"])
    assert code == 0
    _check_page(out.read_text(), bs.load_fit(fit_file))
    assert "wrote" in capsys.readouterr().err


def test_cli_report_missing_fit(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "nope.nc"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and not out.exists()


def test_cli_report_of_a_by_group_folder(fit_file, tmp_path, capsys):
    from bayescale.many import FitGroup

    fit = bs.load_fit(fit_file)
    folder = tmp_path / "fits"
    FitGroup({"c4 / small": fit, "pile": fit}).save(folder)
    out = tmp_path / "groups.html"
    code = main(["report", str(folder), "--out", str(out), "--compute", "1e23"])
    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<a href="#group-0">c4 / small</a>' in text and '<a href="#group-1">pile</a>' in text
    assert text.count("<h3>Posterior</h3>") == 2 and text.count("<title>") == 1
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 8
