"""Atomic training checkpoints and final model (issue 17, #9).

A checkpoint counts only once complete: HF's trainer writes it into a staging folder, the marker
(``checkpoint_complete.json``, holding the run's config) is written last, then the folder is renamed
to ``checkpoint-N``. ``--resume`` skips folders without the marker and refuses a changed config. The
final model is written to a temp folder and moved in, ``train_result.json`` last.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from encoders.training import trainer as trainer_mod
from encoders.training.trainer import train
from conftest import BM25, tiny_train_cfg
from test_training import weights

MARKER = "checkpoint_complete.json"


@pytest.fixture(scope="module")
def run(train_slice, tiny_bert, tmp_path_factory):
    """A 4-step tiny DPR run checkpointing at steps 2 and 4."""
    cfg = tiny_train_cfg(train_slice, tiny_bert, tmp_path_factory.mktemp("ckpt") / "run", lr=1e-3)
    return cfg, train(cfg, BM25)


def test_a_run_leaves_only_complete_checkpoints_and_the_final_model(run):
    cfg, _ = run
    out = Path(cfg.output)
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-4"]  # no staging folder left behind
    for step in (2, 4):
        marker = json.loads((ckpts / f"checkpoint-{step}" / MARKER).read_text())
        assert marker["step"] == step and marker["config"]["lr"] == 1e-3 and marker["mining"]["method"] == "bm25"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp folder of the final model
    assert (out / "model.safetensors").is_file() and (out / "modules.json").is_file() and (out / "train_result.json").is_file()
    assert trainer_mod.last_checkpoint(cfg.output) == str(ckpts / "checkpoint-4")


def test_resume_skips_a_partial_checkpoint_and_continues_from_the_last_complete_one(run, tmp_path):
    cfg, _ = run
    out = tmp_path / "killed"
    src = Path(cfg.output) / "checkpoints"
    shutil.copytree(src / "checkpoint-2", out / "checkpoints" / "checkpoint-2")
    partial = out / "checkpoints" / "checkpoint-4"  # what a kill in the middle of HF's in-place save left
    shutil.copytree(src / "checkpoint-4", partial)
    (partial / MARKER).unlink(missing_ok=True)
    (partial / "optimizer.pt").unlink()
    assert trainer_mod.last_checkpoint(str(out)) == str(out / "checkpoints" / "checkpoint-2")
    resumed = train(dataclasses.replace(cfg, output=str(out), resume=True), BM25)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps"] == 4
    a, b = weights(cfg.output), weights(out)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert (out / "checkpoints" / "checkpoint-4" / MARKER).is_file()  # the partial one was replaced by a complete one


def test_resume_refuses_a_changed_config_naming_the_fields(run, tmp_path):
    cfg, _ = run
    out = tmp_path / "changed"
    shutil.copytree(Path(cfg.output) / "checkpoints" / "checkpoint-2", out / "checkpoints" / "checkpoint-2")
    changed = dataclasses.replace(cfg, output=str(out), resume=True, lr=5e-4, batch_size=2)
    with pytest.raises(ValueError, match=r"checkpoint-2.*batch_size: 4 -> 2.*lr: 0.001 -> 0.0005"):
        train(changed, BM25)
    with pytest.raises(ValueError, match=r"mining.count: 1 -> 2"):
        train(dataclasses.replace(cfg, output=str(out), resume=True), dataclasses.replace(BM25, count=2))
    assert not (out / "model.safetensors").exists()


def test_config_differences_ignore_fields_that_do_not_change_the_weights():
    saved = {"config": {"lr": 1e-3, "output": "a", "resume": False, "logging_steps": 1}, "mining": {"count": 1}, "data_checksum": "x"}
    same = {"config": {"lr": 1e-3, "output": "b", "resume": True, "logging_steps": 5}, "mining": {"count": 1}, "data_checksum": "x"}
    assert trainer_mod.config_differences(saved, same) == []
    other = {"config": {"lr": 2e-3, "output": "b", "resume": True, "logging_steps": 1}, "mining": {"count": 1}, "data_checksum": "y"}
    assert trainer_mod.config_differences(saved, other) == ["data_checksum: 'x' -> 'y'", "lr: 0.001 -> 0.002"]


def test_a_kill_during_a_checkpoint_save_leaves_no_checkpoint(train_slice, tiny_bert, tmp_path, monkeypatch):
    from transformers import Trainer

    def killed(self, output_dir):
        raise KeyboardInterrupt("killed while saving")  # after the weights and optimizer, before the RNG state

    monkeypatch.setattr(Trainer, "_save_rng_state", killed)
    cfg = tiny_train_cfg(train_slice, tiny_bert, tmp_path / "run", max_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, BM25)
    ckpts = tmp_path / "run" / "checkpoints"
    assert not (ckpts / "checkpoint-2").exists() and trainer_mod.last_checkpoint(cfg.output) is None
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_final_model_is_written_aside_then_moved_in(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (out / "model.safetensors").write_text("old")
    (out / "train_result.json").write_text("{}")

    def crash(folder):
        Path(folder, "model.safetensors").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        trainer_mod.save_final(crash, out)
    assert (out / "model.safetensors").read_text() == "old" and (out / "train_result.json").is_file()

    def save(folder):
        Path(folder, "model.safetensors").write_text("new")
        Path(folder, "1_Pooling").mkdir()
        Path(folder, "1_Pooling", "config.json").write_text("{}")

    trainer_mod.save_final(save, out)
    assert (out / "model.safetensors").read_text() == "new" and (out / "1_Pooling" / "config.json").is_file()
    assert not (out / "train_result.json").exists()  # the old run's record goes first; train() writes the new one last
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["1_Pooling", "checkpoints", "model.safetensors"]
