"""The Colab notebook, executed headless in smoke mode (TFSTYLE_NOTEBOOK_SMOKE=1)."""

import os

import numpy as np
import PIL.Image
import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the 'test' extra")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the 'test' extra")

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "tfstyle_colab.ipynb")


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_readme_links_the_notebook_in_colab():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "colab.research.google.com/github/" in readme
    assert "notebooks/tfstyle_colab.ipynb" in readme


def test_smoke_run_produces_result_and_served_image(tmp_path, monkeypatch):
    monkeypatch.setenv("TFSTYLE_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TFSTYLE_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("TFSTYLE_REPO_DIR", ROOT)
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "smoke mode: True" in text and "served in" in text and "page served: 200" in text
    with (
        PIL.Image.open(tmp_path / "stylized.png") as a,
        PIL.Image.open(tmp_path / "served.png") as b,
    ):
        assert a.size == b.size == (32, 32)
        # Same options, seed and steps: the server ran the same optimisation as the API.
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(
        out.get("output_type") == "display_data"
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )  # the figures were drawn


@pytest.mark.parametrize("where", [".", "notebooks"])
def test_finds_the_repository_from_the_working_directory(where, monkeypatch, tmp_path):
    monkeypatch.delenv("TFSTYLE_REPO_DIR", raising=False)
    monkeypatch.setenv("TFSTYLE_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    setup = [c for c in nb.cells if c.cell_type == "code"][:2]  # settings, then REPO_DIR
    nb.cells = [*setup, nbformat.v4.new_code_cell("print('REPO_DIR=' + REPO_DIR)")]
    cwd = os.path.join(ROOT, where)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": cwd}}
    )
    client.execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert f"REPO_DIR={ROOT}" in printed
