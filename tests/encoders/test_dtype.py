"""--dtype auto: every branch of the choice forced, the probe's cache, and the resolved dtype in retriever keys and results."""

from __future__ import annotations

import json

import pytest
import torch

from encoders import dtype as dt


def fake_probe(ratio: float, isa: str = "test ISA"):
    def probe(cache=None):
        return {"n": 8, "fp32_gflops": 10.0, "bf16_gflops": 10.0 * ratio, "ratio": ratio, "isa": isa, "identity": {"threads": 1}, "cached": False}

    return probe


# ---------------------------------------------------------------- the decision


def test_cpu_branch_threshold():
    assert dt.choose_cpu(1.3, "AMX-BF16").dtype == "bf16"  # the threshold itself counts as clearly faster
    assert dt.choose_cpu(1.29, "AVX512-BF16").dtype == "fp32"
    assert dt.choose_cpu(2.3, "AVX512-BF16") == dt.DtypeChoice("auto", "bf16", "cpu: bf16 GEMM 2.30x fp32 (AVX512-BF16) -> bf16")


def test_cuda_branch():
    assert dt.choose_cuda("NVIDIA H200", (9, 0)).dtype == "bf16"
    assert dt.choose_cuda("NVIDIA A100", (8, 0)).dtype == "bf16"
    assert dt.choose_cuda("Tesla V100", (7, 0)).dtype == "fp32"


@pytest.mark.parametrize("ratio, want", [(2.3, "bf16"), (0.05, "fp32")])
def test_auto_on_cpu_follows_the_probe(monkeypatch, ratio, want):
    monkeypatch.setattr(dt, "cpu_probe", fake_probe(ratio, "X"))
    choice = dt.resolve_dtype("auto", "cpu")
    assert (choice.requested, choice.dtype) == ("auto", want) and f"{ratio:.2f}x fp32 (X) -> {want}" in choice.reason


def test_auto_on_cuda_reads_the_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "GPU-A")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (8, 6))
    assert dt.resolve_dtype("auto", "cuda").dtype == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (7, 5))
    assert dt.resolve_dtype("auto", "cuda:0") == dt.DtypeChoice("auto", "fp32", "cuda: GPU-A (compute capability 7.5) has no native bf16 -> fp32")


def test_other_devices_and_explicit_dtypes(monkeypatch):
    monkeypatch.setattr(dt, "cpu_probe", lambda cache=None: pytest.fail("an explicit dtype must not probe"))
    assert dt.resolve_dtype("auto", "mps").dtype == "fp32"
    for name in ("fp32", "bf16", "fp16"):
        assert dt.resolve_dtype(name, "cpu") == dt.DtypeChoice(name, name, "set by --dtype")


def test_choice_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(dt, "cpu_probe", fake_probe(0.2, "AVX2, no AVX512-BF16"))
    with caplog.at_level("INFO", logger="encoders.dtype"):
        dt.resolve_dtype("auto", "cpu")
    assert "--dtype auto -> fp32 (cpu: bf16 GEMM 0.20x fp32 (AVX2, no AVX512-BF16) -> fp32)" in caplog.text


def test_isa_from_flags():
    assert dt.describe_isa({"avx2", "avx512f"}) == "AVX512, no AVX512-BF16"
    assert dt.describe_isa({"fp", "asimd", "bf16"}) == "ARM BF16"
    assert dt.describe_isa(set()) == "no bf16 instructions"


# ---------------------------------------------------------------- the probe and its cache


def test_gemm_speed_measures_both_dtypes():
    out = dt.gemm_speed(n=32)
    assert out["n"] == 32 and out["fp32_gflops"] > 0 and out["bf16_gflops"] > 0
    assert out["ratio"] == pytest.approx(out["bf16_gflops"] / out["fp32_gflops"], rel=0.02)


def test_probe_is_cached_per_machine_and_thread_count(tmp_path, monkeypatch):
    calls = []

    def measure():
        calls.append(1)
        return {"n": 8, "fp32_gflops": 1.0, "bf16_gflops": 3.0, "ratio": 3.0}

    first = dt.cpu_probe(tmp_path, measure=measure)
    second = dt.cpu_probe(tmp_path, measure=measure)
    assert len(calls) == 1 and (first["cached"], second["cached"]) == (False, True) and second["ratio"] == 3.0
    (path,) = (tmp_path / "dtype-probe").glob("*.json")
    assert json.loads(path.read_text())["identity"] == dt.probe_identity()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 977)  # another thread count: another key, measured again
    assert dt.cpu_probe(tmp_path, measure=measure)["cached"] is False and len(calls) == 2
    path.write_text("{not json")  # a corrupt file is measured again, never trusted
    monkeypatch.undo()
    assert dt.cpu_probe(tmp_path, measure=measure)["cached"] is False and len(calls) == 3


def test_probe_cache_goes_under_retrieval_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVAL_CACHE", str(tmp_path))
    dt.cpu_probe(measure=lambda: {"n": 8, "fp32_gflops": 1.0, "bf16_gflops": 1.0, "ratio": 1.0})
    assert len(list((tmp_path / "dtype-probe").glob("*.json"))) == 1


# ---------------------------------------------------------------- the resolved dtype keys results


class Job:
    def identity(self):
        return {"dataset": "abc", "split": "test"}


@pytest.mark.parametrize("encoder", ["dpr", "colbert"])
def test_result_keys_follow_the_resolved_dtype(monkeypatch, tiny_bert, encoder):
    """auto->bf16 and auto->fp32 differ; neither shares a key with an explicit dtype ("auto" is in settings); fp32's key has no dtype entry."""
    from benchmarks import models
    from benchmarks.pipeline import result_key
    from benchmarks.spec import make_spec

    def key(dtype, ratio=None):
        if ratio is not None:
            monkeypatch.setattr(dt, "cpu_probe", fake_probe(ratio))
        spec = make_spec(encoder=encoder, dtype=dtype, device="cpu", index="flat")
        r = models.build(str(tiny_bert), spec)
        return result_key(Job(), r, spec), r

    (k32, r32), (k16, _) = key("fp32"), key("bf16")
    (ka32, ra32), (ka16, ra16) = key("auto", 0.1), key("auto", 5.0)
    assert len({k32, k16, ka32, ka16}) == 4
    assert "dtype_resolved" not in r32.identity()  # explicit dtypes keep the keys they had before auto existed
    assert ra32.identity()["dtype_resolved"] == "fp32" and ra16.identity()["dtype_resolved"] == "bf16"
    assert ra16.encoder.model.dtype == torch.bfloat16 if encoder == "dpr" else next(ra16.encoder.model.parameters()).dtype == torch.bfloat16
    prov = ra32.provenance()
    assert prov["dtype"] == "fp32" and prov["dtype_choice"]["requested"] == "auto" and "-> fp32" in prov["dtype_choice"]["reason"]
    assert "dtype_resolved" not in prov and r32.provenance()["dtype_choice"] == {"requested": "fp32", "dtype": "fp32", "reason": "set by --dtype"}


def test_auto_reaches_the_result_json(tmp_path, monkeypatch, scifact_slice, tiny_bert):
    import evaluate
    from benchmarks.results import load_results

    monkeypatch.setattr(dt, "cpu_probe", fake_probe(0.2, "AVX2, no AVX512-BF16"))
    out = tmp_path / "out"
    assert evaluate.main(["--datasets", str(scifact_slice), "--models", str(tiny_bert), "--dtype", "auto", "--device", "cpu", "--output", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
    (res,) = load_results(out)
    assert res.provenance["dtype"] == "fp32" and res.provenance["settings"]["encoding.dtype"] == "auto"
    assert res.provenance["dtype_choice"]["reason"] == "cpu: bf16 GEMM 0.20x fp32 (AVX2, no AVX512-BF16) -> fp32"
