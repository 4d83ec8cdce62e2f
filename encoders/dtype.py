"""``--dtype auto``: bf16 where the device runs it natively, else fp32, with the reason in words.

    choice = resolve_dtype("auto", "cpu")     # DtypeChoice(requested="auto", dtype="fp32", reason="cpu: ...")

The rule, per device type:

    cuda    bf16 when the GPU has native bf16 (compute capability >= 8.0: Ampere and later), else fp32
    cpu     bf16 when a measured bf16 GEMM runs at >= ``SPEEDUP`` x the fp32 GEMM's speed, else fp32.
            Such CPUs have AVX512-BF16 or AMX (e.g. one here: 2.3x); AVX2-only CPUs (Zen 3) run bf16
            5-9x *slower* than fp32, because torch falls back to converting each tile.
    other   fp32 (no probe: mps, xpu ... until someone measures them)

The CPU probe (:func:`gemm_speed`) times a square ``PROBE_N`` matmul in each dtype: one warm-up,
then the best of up to ``REPEATS`` runs (best, not mean: other processes only ever slow a run
down), stopping early once a dtype has used ``BUDGET_S``; the whole probe takes well under a
second even where bf16 is slow. Its result is cached as JSON (atomic write) under
``$RETRIEVAL_CACHE/dtype-probe/`` keyed by what decides it: the CPU model and flags, the torch
version, the device and the thread count (:func:`probe_identity`), so a run re-probes only on
another machine, torch or thread count. Only fp32 and bf16 are ever chosen: fp16 on a CPU is
slower still, and on a GPU it needs loss scaling in training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from retrieval.io import atomic_write_json, cache_key
from retrieval.sources import cache_dir as default_cache_dir

log = logging.getLogger(__name__)

SPEEDUP = 1.3  # bf16 must be clearly faster: below this, rounding is not worth a few percent
PROBE_N = 384  # (N, N) @ (N, N): big enough that AMX / AVX512-BF16 show their speed, small enough that a slow bf16 costs ~0.1 s
REPEATS = 5
BUDGET_S = 0.25  # per dtype, after the warm-up and at least two timed runs
CUDA_NATIVE_BF16 = (8, 0)  # Ampere: bf16 tensor cores


@dataclass(frozen=True)
class DtypeChoice:
    """What ``--dtype`` asked for, what runs, and why (recorded in provenance and train_result.json)."""

    requested: str  # fp32 | bf16 | fp16 | auto
    dtype: str  # fp32 | bf16 | fp16: what the model runs in
    reason: str

    def record(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the decision (pure)


def choose_cpu(ratio: float, isa: str, threshold: float = SPEEDUP) -> DtypeChoice:
    """bf16 when the bf16 GEMM runs at ``>= threshold`` x fp32's speed (``ratio`` = fp32 time / bf16 time).

    >>> choose_cpu(0.21, "AVX2, no AVX512-BF16").reason
    'cpu: bf16 GEMM 0.21x fp32 (AVX2, no AVX512-BF16) -> fp32'
    >>> choose_cpu(2.3, "AMX-BF16").dtype
    'bf16'
    """
    dtype = "bf16" if ratio >= threshold else "fp32"
    return DtypeChoice("auto", dtype, f"cpu: bf16 GEMM {ratio:.2f}x fp32 ({isa}) -> {dtype}")


def choose_cuda(name: str, capability: tuple[int, int]) -> DtypeChoice:
    """bf16 on a GPU with native bf16 (compute capability >= 8.0), else fp32.

    >>> choose_cuda("Tesla T4", (7, 5)).reason
    'cuda: Tesla T4 (compute capability 7.5) has no native bf16 -> fp32'
    """
    cap = f"{capability[0]}.{capability[1]}"
    if tuple(capability) >= CUDA_NATIVE_BF16:
        return DtypeChoice("auto", "bf16", f"cuda: {name} (compute capability {cap}) runs bf16 natively -> bf16")
    return DtypeChoice("auto", "fp32", f"cuda: {name} (compute capability {cap}) has no native bf16 -> fp32")


def describe_isa(flags: set[str]) -> str:
    """The CPU's bf16 support in words, from ``/proc/cpuinfo`` flags (x86 ``flags``, ARM ``Features``).

    >>> describe_isa({"avx2", "fma"}), describe_isa({"avx512f", "avx512_bf16"}), describe_isa({"amx_bf16", "avx512_bf16"})
    ('AVX2, no AVX512-BF16', 'AVX512-BF16', 'AMX-BF16')
    """
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "bf16" in flags:  # aarch64 BFMMLA / BFDOT
        return "ARM BF16"
    if "avx512f" in flags:
        return "AVX512, no AVX512-BF16"
    if "avx2" in flags:
        return "AVX2, no AVX512-BF16"
    return "no bf16 instructions"


# ---------------------------------------------------------------- the CPU probe


def cpu_info() -> tuple[str, set[str]]:
    """``(model name, flags)`` from ``/proc/cpuinfo``; ``(platform.processor(), set())`` where there is none."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not flags:
                    name = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, flags


def _best_time(a: torch.Tensor, b: torch.Tensor) -> float:
    a @ b  # warm-up: first call allocates and picks a kernel
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < REPEATS and (len(times) < 2 or time.perf_counter() - start < BUDGET_S):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return min(times)


def gemm_speed(n: int = PROBE_N) -> dict:
    """Time ``(n, n) @ (n, n)`` on the CPU in fp32 and bf16: ``{"n", "fp32_gflops", "bf16_gflops", "ratio"}``.

    ``ratio`` = fp32 time / bf16 time (> 1: bf16 is faster). Best of a few runs after a warm-up.
    """
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    with torch.inference_mode():
        t32 = _best_time(a, b)
        t16 = _best_time(a.bfloat16(), b.bfloat16())
    flop = 2 * n**3
    sig = lambda x: float(f"{x:.4g}")  # significant digits: a tiny or slowed-down probe never rounds to 0
    return {"n": n, "fp32_gflops": sig(flop / t32 / 1e9), "bf16_gflops": sig(flop / t16 / 1e9), "ratio": sig(t32 / t16)}


def probe_identity() -> dict:
    """What decides the probe's answer, hence its cache key: CPU model and flags, torch, device, threads."""
    name, flags = cpu_info()
    return {"cpu": name, "flags": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16], "torch": torch.__version__, "device": "cpu",
            "threads": torch.get_num_threads(), "n": PROBE_N}


def cpu_probe(cache: Path | None = None, measure=gemm_speed) -> dict:
    """The CPU probe's result (``gemm_speed`` fields + ``isa`` + ``identity``), from the cache when this machine has one.

    ``cache``: the cache root (default ``$RETRIEVAL_CACHE`` or ``~/.cache/modernretrieval``); the file is
    ``<cache>/dtype-probe/<key>.json``, written atomically. An unreadable cache file is re-measured.
    """
    ident = probe_identity()
    path = Path(cache or default_cache_dir()) / "dtype-probe" / f"{cache_key(**ident)}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            if cached.get("identity") == ident and isinstance(cached.get("ratio"), (int, float)):
                return {**cached, "cached": True}
        except (OSError, ValueError):
            pass
        log.warning("dtype probe cache %s is unreadable or stale; measuring again", path)
    result = {**measure(), "isa": describe_isa(cpu_info()[1]), "identity": ident}
    atomic_write_json(path, result)
    return {**result, "cached": False}


# ---------------------------------------------------------------- the entry point


def auto_dtype(device: str, cache: Path | None = None) -> DtypeChoice:
    """What ``auto`` means on ``device`` (see the module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return choose_cuda(torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index))
    if dev.type == "cpu":
        probe = cpu_probe(cache)
        choice = choose_cpu(probe["ratio"], probe["isa"])
        log.debug("dtype probe: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s at n=%d on %d threads%s", probe["fp32_gflops"], probe["bf16_gflops"], probe["n"], probe["identity"]["threads"], " (cached)" if probe["cached"] else "")
        return choice
    return DtypeChoice("auto", "fp32", f"{dev.type}: no bf16 probe for this device type -> fp32")


def resolve_dtype(requested: str, device: str, cache: Path | None = None) -> DtypeChoice:
    """``requested`` as is (fp32, bf16, fp16), or what ``auto`` picks on ``device``, logged at INFO with its reason.

    >>> resolve_dtype("fp32", "cpu")
    DtypeChoice(requested='fp32', dtype='fp32', reason='set by --dtype')
    """
    if requested != "auto":
        return DtypeChoice(requested, requested, "set by --dtype")
    choice = auto_dtype(device, cache)
    log.info("--dtype auto -> %s (%s)", choice.dtype, choice.reason)
    return choice
