"""encoders/loading.py: a model's content identity covers every file that can change its embeddings (issue 17, #4)."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path

import pytest

from encoders import loading
from encoders.loading import resolve_model


@pytest.fixture(scope="module")
def model_copy(minilm_path, tmp_path_factory) -> Path:
    """A private copy of MiniLM's sentence-transformers folder: the tests edit its files in place."""
    return Path(shutil.copytree(minilm_path, tmp_path_factory.mktemp("minilm-copy") / "m"))


def _edit_json(path: Path, key: str, value) -> None:
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data, indent=2))


# Each edit changes what SentenceTransformer.encode returns (or could): the revision must change.
OUTPUT_CHANGING_EDITS = {
    "tokenizer_config.json": lambda p: _edit_json(p, "do_lower_case", False),
    "tokenizer.json": lambda p: _edit_json(p, "truncation", {"max_length": 8, "strategy": "longest_first", "stride": 0, "direction": "right"}),
    "vocab.txt": lambda p: p.write_text(p.read_text().replace("[unused0]", "[unused0x]", 1)),
    "special_tokens_map.json": lambda p: _edit_json(p, "mask_token", "[MASK2]"),
    "config.json": lambda p: _edit_json(p, "layer_norm_eps", 1e-6),
    "modules.json": lambda p: p.write_text(json.dumps(json.loads(p.read_text())[:2], indent=2)),  # drops the Normalize module
    "sentence_bert_config.json": lambda p: _edit_json(p, "max_seq_length", 128),
    "1_Pooling/config.json": lambda p: _edit_json(p, "pooling_mode_cls_token", True),
    "config_sentence_transformers.json": lambda p: _edit_json(p, "prompts", {"query": "query: ", "document": ""}),
}


@pytest.mark.parametrize("name", list(OUTPUT_CHANGING_EDITS))
def test_editing_a_model_file_in_place_changes_the_revision(model_copy, name):
    before = resolve_model(str(model_copy)).revision
    OUTPUT_CHANGING_EDITS[name](model_copy / name)
    after = resolve_model(str(model_copy)).revision
    assert before.startswith("sha256:") and after != before, f"editing {name} left the revision at {before}"


def test_irrelevant_files_do_not_change_the_revision(model_copy):
    before = resolve_model(str(model_copy)).revision
    (model_copy / "README.md").write_text("# edited model card\n")
    ckpt = model_copy / "checkpoints" / "checkpoint-10"  # a training run's resumable state under the final model
    ckpt.mkdir(parents=True)
    (ckpt / "optimizer.pt").write_bytes(b"state")
    (ckpt / "model.safetensors").write_bytes(b"older weights")
    (model_copy / "train_result.json").write_text('{"time": 1}')
    (model_copy / "eval").mkdir()
    (model_copy / "eval" / "result.json").write_text("{}")
    (model_copy / ".git").mkdir()
    (model_copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert resolve_model(str(model_copy)).revision == before


def test_file_moved_between_folders_changes_the_revision(tmp_path, minilm_path):
    """The hash covers relative paths, not bare names: 1_Pooling/config.json is not config.json."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        (root / "model.safetensors").write_bytes(b"w")
    (a / "x").mkdir()
    (a / "x" / "config.json").write_text("{}")
    (b / "y").mkdir()
    (b / "y" / "config.json").write_text("{}")
    assert resolve_model(str(a)).revision != resolve_model(str(b)).revision


def test_maths_versions_names_the_libraries_that_compute_embeddings():
    v = loading.maths_versions()
    assert {"torch", "transformers", "sentence-transformers", "pylate"} <= set(v)
    assert v["torch"] == metadata.version("torch") and v["sentence-transformers"] == metadata.version("sentence-transformers")
