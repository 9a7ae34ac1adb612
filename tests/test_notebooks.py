"""The notebooks run top to bottom, and the committed copies carry full-sampling outputs.

Each notebook is executed with nbclient in a temporary copy, with ``BAYESCALE_QUICK=1`` (every
``bs.fit`` then samples 2 chains of 300 + 300) and ``MPLBACKEND=Agg`` in the kernel's environment,
so the committed notebooks are never modified. The kernel is ``python3``, which jupyter_client
starts with the interpreter running the tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: Plots each notebook draws (an image output each); a notebook that silently stops drawing fails.
MIN_IMAGES = {
    "01_quickstart_credible_intervals.ipynb": 6,
    "02_compute_optimal_and_risk_aware_budgets.ipynb": 5,
    "03_bayes_vs_least_squares.ipynb": 3,
    "04_your_own_runs.ipynb": 3,
    "05_many_configurations_fit_many.ipynb": 2,
    "06_downstream_tasks.ipynb": 4,
}
QUICK_BANNER = "quick mode (BAYESCALE_QUICK=1): {}"


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def _images(outputs) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(MIN_IMAGES)


@pytest.mark.parametrize("name", sorted(MIN_IMAGES))
def test_committed_notebook_has_full_outputs(name):
    """Committed with outputs (they read well on GitHub) from full sampling, without errors."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    outputs = _outputs(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "notebook not executed"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run out of order"
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert QUICK_BANNER.format(False) in _text(outputs), "executed in quick mode"
    assert _images(outputs) >= MIN_IMAGES[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIN_IMAGES))
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = NOTEBOOKS / name
    committed = source.read_bytes()
    copy = Path(shutil.copy(source, tmp_path / name))
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert QUICK_BANNER.format(True) in _text(outputs), "the kernel did not see BAYESCALE_QUICK"
    assert _images(outputs) >= MIN_IMAGES[name]
    assert source.read_bytes() == committed
