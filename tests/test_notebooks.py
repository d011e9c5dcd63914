"""Every notebook (jupytext py:percent) runs top to bottom in quick mode (STYLE 2.12)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path):
    env = dict(os.environ, JAXLAB_QUICK="1", MPLBACKEND="Agg", JAX_PLATFORMS="cpu")
    env["JAXLAB_NOTEBOOK_OUT"] = str(tmp_path)  # where notebooks put run directories
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_there_are_notebooks():
    assert any(p.stem == "00_quickstart" for p in NOTEBOOKS)
