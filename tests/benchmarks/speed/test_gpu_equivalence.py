"""benchmarks/speed/gpu_equivalence.py: its exit status follows its rows (a FAIL or an ERROR row exits 1).

The numerical check itself is tested in tests/encoders/test_modernbert.py; here ``check`` is replaced by
hand-made rows, plus one real run of the tiny preset on CPU.
"""

import json

import pytest

import benchmarks.speed.gpu_equivalence as ge

OK = {"dtype": "fp32", "backend": "sdpa_blocked", "hf_rel_vs_fp32": 0.0, "rel_vs_fp32": 1e-7, "rel_vs_same": 1e-7, "max_abs": 1e-6, "ran": "sdpa_blocked", "ok": True}
FAIL = {**OK, "dtype": "bf16", "backend": "sdpa_loop", "rel_vs_fp32": 0.5, "max_abs": 3.0, "ran": "sdpa_loop", "ok": False}
ERROR = {"dtype": "bf16", "backend": "flash_attn", "hf_rel_vs_fp32": 0.0, "error": "RuntimeError: no kernel"}
SKIPPED = {"dtype": "fp32", "backend": "torch_varlen", "hf_rel_vs_fp32": 0.0, "skipped": "CUDA only"}


def test_failures_are_fail_and_error_rows_only():
    assert ge.failures([OK, SKIPPED]) == []
    assert ge.failures([OK, FAIL, SKIPPED, ERROR]) == [FAIL, ERROR]


@pytest.mark.parametrize("rows, rc", [([OK, SKIPPED], 0), ([OK, FAIL], 1), ([OK, ERROR], 1), ([SKIPPED], 0)])
def test_main_exits_non_zero_when_a_row_fails(monkeypatch, capsys, tmp_path, rows, rc):
    monkeypatch.setattr(ge, "check", lambda size, device, dtypes, lengths, seed=0: rows)
    out = tmp_path / "eq.json"
    assert ge.main(["--device", "cpu", "--size", "tiny", "--out", str(out)]) == rc
    printed = capsys.readouterr().out
    assert ("FAIL or ERROR" in printed) == bool(rc)
    assert json.loads(out.read_text())["rows"] == rows  # the JSON is written before the verdict


def test_tiny_cpu_run_passes():
    assert ge.main(["--device", "cpu", "--size", "tiny", "--dtypes", "fp32", "--lengths", "130,17,1"]) == 0
