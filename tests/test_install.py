"""The installed tool, next to Hugging Face's ``evaluate``: the command works, and ``import evaluate`` is still theirs (slow).

A fresh venv gets the locked dependencies (``requirements.lock``, from pip's cache here), this checkout installed
*not* editable (a wheel: no ``evaluate.py`` or ``train.py`` at the top level), then Hugging Face's ``evaluate``.
Every command runs outside the checkout, so nothing is imported from its files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run(cmd, cwd, timeout=1200, env=None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, (cmd, p.stdout[-3000:], p.stderr[-3000:])
    return p


def test_installed_command_next_to_hugging_faces_evaluate(tmp_path, data_dir):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)
    py, pip, tool = venv / "bin" / "python", [venv / "bin" / "python", "-m", "pip"], venv / "bin" / "modernretrieval"
    run([*pip, "install", "-q", "-r", ROOT / "requirements.lock"], tmp_path)
    run([*pip, "install", "-q", "--no-deps", ROOT], tmp_path)  # not editable
    run([*pip, "install", "-q", "evaluate"], tmp_path)  # Hugging Face's, with the same import name our old py-modules claimed
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}

    site = run([py, "-c", "import evaluate, sys; print(evaluate.__file__); print(hasattr(evaluate, 'load'))"], tmp_path, env=env).stdout.split()
    assert site[0].endswith(os.path.join("site-packages", "evaluate", "__init__.py")) and site[1] == "True"
    installed = Path(run([py, "-c", "import modernretrieval; print(modernretrieval.__file__)"], tmp_path, env=env).stdout.strip())
    assert "site-packages" in installed.parts and not (installed.parent.parent / "train.py").exists()

    assert "evaluate" in run([tool, "--help"], tmp_path, env=env).stdout
    assert "--baseline" in run([tool, "evaluate", "--help"], tmp_path, env=env).stdout
    assert "scifact" in run([tool, "list", "datasets", "--data-dir", data_dir], tmp_path, env=env).stdout
    out = run([tool, "evaluate", "--datasets", "scifact", "--models", "bm25", "--data-dir", data_dir, "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache", "-q"],
              tmp_path, env=env).stdout
    assert "| BM25 | bm25 | 0.6863 |" in out
    matrix = run([tool, "reproduce", "bm25-scifact-local", "--data-dir", data_dir, "--output", tmp_path / "rep", "--cache-dir", tmp_path / "cache", "-q"], tmp_path, env=env).stdout
    assert "| bm25-scifact-local | ndcg@10 | 0.6863 ± 0.0005 | 0.6863 |" in matrix  # the entries ship inside the package
