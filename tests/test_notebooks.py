"""Every evaluator notebook runs top to bottom against a freshly built demo knowledge base."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, demo_build, monkeypatch):
    monkeypatch.setenv("TYOKYKY_DATA", str(demo_build["data"]))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots were drawn


def test_there_are_three_notebooks():
    assert {p.stem for p in NOTEBOOKS} == {"evaluator_quickstart", "impact", "pathways"}
