"""Everything that changes a number is in its key: library versions in every identity, every weight-changing setting in a trained model's folder."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks import entries, models, reproduce
from benchmarks.beir_job import BeirJob
from benchmarks.pipeline import without_versions
from encoders.training.config import RESUME_FREE, TrainConfig
from tests.invariants.conftest import configs

# The libraries whose code computes each kind's numbers: their versions must be in the identity that keys the result.
LIBRARIES = {
    "bm25": {"bm25s", "PyStemmer"},
    "dpr": {"torch", "transformers", "tokenizers", "sentence-transformers", "faiss-cpu"},
    "colbert": {"torch", "transformers", "tokenizers", "pylate", "faiss-cpu"},
}
JOB_LIBRARIES = {"pytrec-eval-terrier"}


def versions_in(identity) -> set[str]:
    out = set()
    if isinstance(identity, dict):
        for k, v in identity.items():
            out |= set(v) if k == "versions" and isinstance(v, dict) else versions_in(v)
    elif isinstance(identity, (list, tuple)):
        for v in identity:
            out |= versions_in(v)
    return out


@pytest.mark.parametrize("cfg_name", [c.name for c in configs("TINY")])
def test_the_libraries_that_compute_a_number_key_it(cfg_name, all_configs, synthetic, tmp_path):
    cfg = next(c for c in all_configs if c.name == cfg_name)
    retriever = models.build(cfg.fields["models"][0], cfg.spec(synthetic, tmp_path, tmp_path))
    kinds = [r.kind for r in (retriever, *getattr(retriever, "components", ()))]
    need = set().union(*(LIBRARIES.get(k, set()) for k in kinds))
    if "plaid" in str(cfg.fields.get("index", "")):
        need.add("fast-plaid")
    assert need <= versions_in(retriever.identity()), need - versions_in(retriever.identity())
    job = BeirJob("fruit", synthetic, split="test", task="beir", top_k=10)
    assert JOB_LIBRARIES <= versions_in(job.identity())
    assert "versions" not in str(without_versions(retriever.identity()))


def other_value(value, tp):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.01
    if value is None:
        return "x" if "str" in str(tp) else 7
    if isinstance(value, str):
        args = [a for a in getattr(tp, "__args__", ()) if isinstance(a, str)]
        return next((a for a in args if a != value), value + "-other")
    raise AssertionError(f"no other value for {value!r}")


def test_a_trained_models_folder_is_keyed_by_everything_that_changes_its_weights(tmp_path):
    """Every TrainConfig field a resume may not change, and what --dtype and --device resolve to (not what was asked)."""
    ctx = reproduce.Context(out=tmp_path, cache_dir=str(tmp_path / "cache"))
    entry = entries.Entry(name="t", path=tmp_path / "t.toml", description="d", expected=0.5, tolerance=0.01, source="s", cost="cheap", cpu_time="1 s",
                            run={"datasets": ("x",)}, train=entries.TrainStep({"model": "minilm", "train_data": "scifact", "dtype": "fp32"}))
    base = reproduce.train_folder(entry, ctx)

    def folder(**settings):
        return reproduce.train_folder(dataclasses.replace(entry, train=entries.TrainStep({**entry.train.settings, **settings})), ctx)

    hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        if f.name in RESUME_FREE or f.name in ("model", "train_data"):
            continue
        value = entry.train.settings.get(f.name, f.default)
        assert folder(**{f.name: other_value(value, hints[f.name])}) != base, f.name
    assert folder(dtype="bf16") != base  # the precision changes the weights
    assert folder(device="cpu") == base  # asked or defaulted, it resolves to this machine's cpu
    assert folder(device="cuda") != base  # a GPU rounds otherwise: another folder, even where no GPU is here to train it
    assert folder(output="elsewhere") == base  # where files go is not the weights
