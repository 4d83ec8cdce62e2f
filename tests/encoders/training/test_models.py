"""encoders/training/models.py: the student follows --seed; the unpadded swap never falls back silently (issue 17, #14)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from encoders.colbert import ColbertConfig, load_colbert
from encoders.training import models
from encoders.training.config import TrainConfig


def test_colbert_student_projection_follows_the_training_seed(tiny_bert):
    cfg = TrainConfig(encoder="colbert", model=str(tiny_bert), seed=3, query_length=16, doc_length=32, device="cpu")
    student, _ = models.load_student(cfg)
    seeded = load_colbert(tiny_bert, ColbertConfig(query_length=16, doc_length=32, projection_seed=3))
    other, _ = models.load_student(dataclasses.replace(cfg, seed=4))
    assert torch.equal(student[-1].linear.weight, seeded[-1].linear.weight)
    assert not torch.equal(student[-1].linear.weight, other[-1].linear.weight)


def test_an_import_error_in_the_unpadded_swap_propagates(monkeypatch):
    """Training must not quietly train padded transformers when our own module fails to import or run."""

    def broken(model):
        raise ImportError("cannot import name 'ModernBert' from 'encoders.modernbert'")

    monkeypatch.setattr(models, "use_unpadded_modernbert", broken)
    with pytest.raises(ImportError, match="ModernBert"):
        models.maybe_unpad(object(), TrainConfig())
    assert models.maybe_unpad(object(), TrainConfig(padded=True)) is None  # --padded: the swap is never tried


def test_training_code_has_no_import_fallback():
    """No ``except ImportError`` (or a bare/broad except around an import) in the training engine or the ST swap."""
    files = sorted((ROOT / "encoders" / "training").glob("*.py")) + [ROOT / "encoders" / "modernbert_st.py"]
    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try) and any(isinstance(n, (ast.Import, ast.ImportFrom)) for b in node.body for n in ast.walk(b)):
                names = [ast.unparse(h.type) if h.type is not None else "bare" for h in node.handlers]
                offenders.append(f"{Path(path).name}:{node.lineno} except {names}")
    assert not offenders, offenders
