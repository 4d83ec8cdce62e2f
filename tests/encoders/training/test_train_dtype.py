"""--dtype for training: bf16 autocast really runs, auto resolves through the probe, the resolved dtype is recorded and guards --resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import BM25, tiny_train_cfg
from encoders import dtype as dt
from encoders.training import trainer as trainer_mod
from encoders.training.config import TrainConfig
from encoders.training.trainer import MARKER, config_differences, train

def tiny_cfg(root: Path, model: Path, out: Path, **kw):
    """``tiny_train_cfg`` with 2 steps at lr 1e-3, so bf16 and fp32 weights visibly part."""
    return tiny_train_cfg(root, model, out, **{"max_steps": 2, "lr": 1e-3, **kw})


def fake_probe(ratio: float):
    return lambda cache=None: {"n": 8, "fp32_gflops": 1.0, "bf16_gflops": ratio, "ratio": ratio, "isa": "test", "identity": {"threads": 1}, "cached": False}


def record_linear_dtypes(monkeypatch) -> list[torch.dtype]:
    """Patch the student loader: the output dtype of the model's first Linear, per training forward."""
    seen: list[torch.dtype] = []
    load = trainer_mod.load_student

    def loading(cfg):
        model, src = load(cfg)
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
        return model, src

    monkeypatch.setattr(trainer_mod, "load_student", loading)
    return seen


@pytest.fixture(scope="module")
def bf16_auto_run(train_slice, tiny_bert, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(dt, "cpu_probe", fake_probe(2.5))  # a CPU that runs bf16 natively
    seen = record_linear_dtypes(mp)
    try:
        cfg = tiny_cfg(train_slice, tiny_bert, tmp_path_factory.mktemp("bf16") / "run", dtype="auto")
        rec = train(cfg, BM25)
    finally:
        mp.undo()
    return cfg, rec, seen


def test_auto_resolving_to_bf16_trains_under_autocast_and_is_recorded(bf16_auto_run):
    from safetensors.torch import load_file

    cfg, rec, seen = bf16_auto_run
    assert seen and set(seen) == {torch.bfloat16}  # the Linear ran in bf16: autocast was on
    assert rec["dtype"] == {"requested": "auto", "dtype": "bf16", "reason": "cpu: bf16 GEMM 2.50x fp32 (test) -> bf16"}
    saved = json.loads((Path(cfg.output) / "train_result.json").read_text())
    assert saved["dtype"]["dtype"] == "bf16"
    assert json.loads((Path(cfg.output) / "checkpoints" / "checkpoint-2" / MARKER).read_text())["dtype"] == "bf16"
    weights = load_file(str(Path(cfg.output) / "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float32}  # fp32 master weights, saved as such


def test_fp32_default_trains_without_autocast(train_slice, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(dt, "cpu_probe", lambda cache=None: pytest.fail("fp32 must not probe"))
    seen = record_linear_dtypes(monkeypatch)
    rec = train(tiny_cfg(train_slice, tiny_bert, tmp_path / "run", max_steps=1, save_steps=100), BM25)
    assert set(seen) == {torch.float32} and rec["dtype"] == {"requested": "fp32", "dtype": "fp32", "reason": "set by --dtype"}


def test_resume_compares_the_resolved_dtype(bf16_auto_run, tmp_path, monkeypatch):
    cfg, _, _ = bf16_auto_run
    out = tmp_path / "resume"
    shutil.copytree(Path(cfg.output) / "checkpoints" / "checkpoint-2", out / "checkpoints" / "checkpoint-2")
    monkeypatch.setattr(dt, "cpu_probe", fake_probe(0.2))  # the same --dtype auto on an AVX2 machine: fp32, other weights
    with pytest.raises(ValueError, match=r"checkpoint-2.*dtype: 'bf16' -> 'fp32'"):
        train(dataclasses.replace(cfg, output=str(out), resume=True), BM25)
    # an explicit bf16 is the same precision: resumes (config.dtype itself may differ)
    rec = train(dataclasses.replace(cfg, output=str(out), resume=True, dtype="bf16"), BM25)
    assert rec["resumed_from"].endswith("checkpoint-2") and rec["steps"] == 2 and rec["dtype"]["dtype"] == "bf16"


def test_a_marker_without_dtype_was_fp32():
    old = {"config": {"lr": 1e-3}, "mining": {}, "data_checksum": "x"}
    assert config_differences(old, {"config": {"lr": 1e-3, "dtype": "auto"}, "mining": {}, "data_checksum": "x", "dtype": "fp32"}) == []
    assert config_differences(old, {"config": {"lr": 1e-3}, "mining": {}, "data_checksum": "x", "dtype": "bf16"}) == ["dtype: 'fp32' -> 'bf16'"]


def test_dtype_flag_choices():
    import train as train_cli

    cfg, _, _ = train_cli.parse(["--dtype", "auto"])
    assert cfg.dtype == "auto" and TrainConfig().dtype == "fp32"
    with pytest.raises(SystemExit):
        train_cli.parse(["--dtype", "fp16"])
