"""Encoder throughput: unpadded ModernBERT (ours) vs transformers' padded ModernBertModel (sdpa).

ModernBERT (arXiv 2412.13663, section 4 "Efficiency") reports tokens/s on four document sets;
we use the same four, with random token ids and random base-size weights (22 layers, H=768):

    fixed512    every document 512 tokens
    var256      lengths ~ Normal(256, 64) clamped to [16, 512]
    fixed8192   every document 8192 tokens
    var4096     lengths ~ Normal(4096, 1024) clamped to [16, 8192]

Both models get the same documents in the same batches, filled greedily up to `--token-budget`
padded tokens (B * T). `--order sorted` (default) sorts the documents by length first, longest
first, as our evaluator does, so transformers pads little; `--order random` keeps the documents in
their generated order, as a plain DataLoader would. Ours removes the padding; transformers computes
it. Each model shares one set of weights (ours points at the transformers parameters).

Reported per set and dtype: tokens/s (real tokens only), peak memory, and MFU = useful FLOPs /
time / peak, where useful FLOPs count real tokens only and the attention each token actually needs
(its sequence on global layers, its <= 129-token window on local layers), and peak is the best
GEMM rate in the same dtype on this machine (`matmul_peak`, measured before and after the rows).
`ratio` = ours tokens/s / transformers tokens/s.

Timing and memory are measured apart. Timing runs in this process with the allocator untouched;
each batch is encoded `--repeats` times by each model, interleaved (ours, hf, ours, hf), and the
fastest pass per (model, batch) counts, so a slow spell of this shared machine is not charged to
whichever model happened to run during it.
Peak memory on CPU is measured in a child process per (set, dtype, model), on the batch with the
most padded tokens, with glibc told to mmap every block >= 64 KiB so that process RSS follows live
tensor memory (that setting slows every allocation, by 35% end to end here, so it never runs during
timing). On CUDA, peak memory is max_memory_allocated during the timed pass.

    python -m benchmarks.speed.throughput --docs 16 --long-docs 1 --dtype fp32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
import transformers
from transformers import ModernBertModel

from encoders.dpr import DTYPES, batches_by_tokens
from encoders.modernbert import ModernBert, ModernBertConfig
from encoders.modernbert_st import share_parameters
from retrieval.flags import add_flags, from_args
from retrieval.flags import flag_field as _f
from retrieval.io import atomic_write_json


@dataclass(frozen=True)
class ThroughputConfig:
    docs: int = _f(32, "documents per short set (fixed512, var256)")
    long_docs: int = _f(1, "documents per long set (fixed8192, var4096): minutes per document on a CPU")
    sets: str = _f("fixed512,var256,fixed8192,var4096", "comma-separated: fixed512, var256 (Normal(256, 64) in 16-512), fixed8192, var4096 (Normal(4096, 1024) in 16-8192)")
    dtype: str = _f("fp32,bf16", "comma-separated: fp32, bf16, fp16")
    token_budget: int = _f(16384, "padded tokens (B * T) per batch")
    order: str = _f("sorted", "sorted (longest first) | random (generated order) documents before batching")
    memory: bool = _f(True, "measure peak memory (CPU: one extra forward per row, in a child process)")
    models: str = _f("ours,hf", "any of ours, ours_compiled (torch.compile'd MLPs), hf")
    repeats: int = _f(2, "timed passes of each model on each batch, interleaved per batch (ours, hf, ours, hf, ...); the fastest pass per batch counts")
    backend: str = _f("auto", "attention backend of ours (encoders.attention.BACKENDS)")
    size: str = _f("base", "ModernBertConfig preset")
    device: str = _f("cpu", "cpu | cuda | cuda:N")
    seed: int = _f(0, "seed of the document lengths, token ids and weights")
    out: str = _f("", "optional path of a JSON file with every row")


# ----------------------------------------------------------------------------- documents and batches


def doc_lengths(name: str, n: int, seed: int) -> list[int]:
    """Token counts of the n documents of set `name` (see module docstring)."""
    g = torch.Generator().manual_seed(seed)
    if name == "fixed512":
        return [512] * n
    if name == "fixed8192":
        return [8192] * n
    if name == "var256":
        return torch.normal(256.0, 64.0, (n,), generator=g).round().clamp(16, 512).long().tolist()
    if name == "var4096":
        return torch.normal(4096.0, 1024.0, (n,), generator=g).round().clamp(16, 8192).long().tolist()
    raise ValueError(f"unknown set {name!r}; valid: fixed512, var256, fixed8192, var4096")


def make_batches(lengths: list[int], budget: int, order: str = "sorted") -> list[list[int]]:
    """Group document indices greedily so that each batch's B * max_len <= budget (at least one doc),
    with the evaluator's own grouping (`encoders.dpr.batches_by_tokens`, no row cap).

    order="sorted": longest first; "random": the documents' own (random) order.
    """
    if order not in ("sorted", "random"):
        raise ValueError(f"unknown order {order!r}; valid: sorted, random")
    idx = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if order == "sorted" else list(range(len(lengths)))
    return list(batches_by_tokens(idx, lengths, max(1, len(lengths)), budget))


def padded_batch(lengths: list[int], vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (B, T) right-padded with 0 and the (B, T) attention mask."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = torch.randint(5, vocab, (len(lengths), T), generator=g) * mask
    return ids, mask


# ----------------------------------------------------------------------------- FLOPs, peak, memory


def useful_flops(cfg: ModernBertConfig, lengths: list[int]) -> float:
    """Forward FLOPs on real tokens: 2 per weight per token, plus 4 * H per (query, visible key)."""
    H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2 * (4 * H * H + 3 * H * I) * L  # Wqkv + Wo + Wi (2I) + Wo (I)
    window = cfg.local_attention + 1  # 64 + self + 64
    n_global = sum(cfg.is_global(i) for i in range(L))
    attn = 0.0
    for n in lengths:
        pos = torch.arange(n)
        local_keys = ((pos + window // 2).clamp(max=n - 1) - (pos - window // 2).clamp(min=0) + 1).sum().item()
        attn += 4 * H * (n_global * n * n + (L - n_global) * local_keys)
    return per_token * sum(lengths) + attn


def matmul_peak(dtype: torch.dtype, device: str, cfg: ModernBertConfig | None = None, m: int = 2048, reps: int = 2) -> float:
    """Best GEMM FLOP/s in `dtype` on `device`: the MFU denominator.

    Shapes: 1024 x 1024 x 1024 and, given the architecture, the model's own GEMMs with m tokens
    (Wqkv: H -> 3H, Wi: H -> 2I, Wo: I -> H); each as F.linear (x @ W^T, W stored (out, in) as
    nn.Linear keeps it) and as x @ B with B row-major. The best rate over shapes, layouts and
    repeats is the peak, so MFU is never flattered by a slow layout. (On this CPU, AVX2 without
    AVX512-BF16, torch 2.11's bf16 x @ B runs at ~1 GFLOP/s and bf16 F.linear ~10x faster; in fp32
    x @ B is the faster one.)
    """
    shapes = [(1024, 1024, 1024)]
    if cfg is not None:
        H, I = cfg.hidden_size, cfg.intermediate_size
        shapes += [(m, H, 3 * H), (m, H, 2 * I), (m, I, H)]
    best = 0.0
    for (rows, inner, cols) in shapes:
        x = torch.randn(rows, inner, device=device).to(dtype)
        w = torch.randn(cols, inner, device=device).to(dtype)
        b = w.t().contiguous()  # (inner, cols) row-major
        for gemm in (lambda: F.linear(x, w), lambda: x @ b):
            gemm()  # warm-up
            for _ in range(reps):
                _sync(device)
                t = time.perf_counter()
                gemm()
                _sync(device)
                best = max(best, 2 * rows * inner * cols / (time.perf_counter() - t))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakRSS:
    """Peak process RSS above the baseline at entry, sampled every `interval_s` by a thread."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.peak_bytes = interval_s, 0

    def __enter__(self):
        self.proc, self.stop = psutil.Process(), threading.Event()
        self.base = self.max_rss = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.max_rss = max(self.max_rss, self.proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak_bytes = max(self.max_rss, self.proc.memory_info().rss) - self.base


# ----------------------------------------------------------------------------- run


@dataclass
class Row:
    set: str
    dtype: str
    model: str
    docs: int
    tokens: int
    padded_tokens: int
    seconds: float
    tokens_per_s: float
    peak_mem_mib: float
    mfu: float
    backend: str = ""
    warmup_s: float = 0.0  # first call on a short slice (includes torch.compile for ours_compiled)
    extra: dict = field(default_factory=dict)


def warm_up(model, batch, device) -> float:
    """Seconds of one first call on a short slice of `batch` (includes torch.compile for ours_compiled)."""
    ids, mask = batch
    with torch.inference_mode():
        t = time.perf_counter()
        model(input_ids=ids[:1, :128].to(device), attention_mask=mask[:1, :128].to(device))
        _sync(device)
    return time.perf_counter() - t


def time_batch(model, batch, device) -> tuple[float, int]:
    """Seconds of one forward over `batch` and, on CUDA, its peak memory in bytes above what was
    allocated before (0 on CPU: see `memory_in_child`)."""
    ids, mask = batch
    cuda = device.startswith("cuda")
    with torch.inference_mode():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        _sync(device)
        t = time.perf_counter()
        model(input_ids=ids.to(device), attention_mask=mask.to(device))
        _sync(device)
        seconds = time.perf_counter() - t
    return seconds, (torch.cuda.max_memory_allocated() - base) if cuda else 0


def time_models(models: dict, names: list[str], batches, device, repeats: int) -> dict[str, tuple[float, int]]:
    """{name: (seconds, peak bytes)} to encode every batch.

    Interleaved at the batch level: for each batch, `repeats` rounds of (every model once), and the
    fastest pass of each model on that batch counts; seconds is the sum over batches. A slow spell
    of this shared machine (seconds to minutes long) then hits both models' passes on the same batch
    and is discarded by the min, instead of landing on whichever model ran during it.
    """
    seconds = {name: 0.0 for name in names}
    peak = {name: 0 for name in names}
    for batch in batches:
        passes = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:
                passes[name].append(time_batch(models[name], batch, device))
        for name in names:
            seconds[name] += min(t for t, _ in passes[name])
            peak[name] = max(peak[name], *(m for _, m in passes[name]))
    return {name: (seconds[name], peak[name]) for name in names}


def build_model(name: str, arch: ModernBertConfig, dtype: torch.dtype, backend: str, device: str, seed: int):
    """Random-weight `ours` (unpadded), `ours_compiled` (its MLPs compiled) or `hf`
    (transformers ModernBertModel, sdpa) in `dtype`."""
    torch.manual_seed(seed)
    if name == "hf":
        return ModernBertModel._from_config(arch.to_hf(), attn_implementation="sdpa").eval().to(device, dtype)
    if name in ("ours", "ours_compiled"):
        model = ModernBert(arch, attn_backend=backend).eval().to(device, dtype)
        if name == "ours_compiled":
            model.compile_mlps()
        return model
    raise ValueError(f"unknown model {name!r}; valid: ours, ours_compiled, hf")


def memory_probe(spec: dict) -> int:
    """Peak RSS growth (bytes) of one forward over `spec["lengths"]`; run in a fresh process.

    spec: size, dtype, model, backend, lengths, seed. Warms up on a short slice first, so
    one-time allocations (thread pools, kernels) are in the baseline.
    """
    _rss_tracks_live_memory()
    arch = getattr(ModernBertConfig, spec["size"])()
    model = build_model(spec["model"], arch, DTYPES[spec["dtype"]], spec["backend"], "cpu", spec["seed"])
    ids, mask = padded_batch(spec["lengths"], arch.vocab_size, spec["seed"])
    with torch.inference_mode():
        model(input_ids=ids[:1, :128], attention_mask=mask[:1, :128])
        with PeakRSS() as mem:
            model(input_ids=ids, attention_mask=mask)
    return mem.peak_bytes


def memory_in_child(spec: dict) -> int:
    """`memory_probe(spec)` in a child process (its allocator setting must not touch our timings)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed.throughput", "--probe", json.dumps(spec)],
        check=True, capture_output=True, text=True,
    ).stdout
    return int(out.strip().splitlines()[-1])


def run(cfg: ThroughputConfig) -> list[Row]:
    arch = getattr(ModernBertConfig, cfg.size)()
    names = cfg.models.split(",")
    if unknown := set(names) - {"ours", "ours_compiled", "hf"}:
        raise ValueError(f"unknown models {sorted(unknown)}; valid: ours, ours_compiled, hf")
    hf = build_model("hf", arch, torch.float32, cfg.backend, cfg.device, cfg.seed)
    models = {"hf": hf}
    for name in set(names) - {"hf"}:
        with torch.device("meta"):
            models[name] = ModernBert(arch, attn_backend=cfg.backend).eval()
        share_parameters(hf, models[name])  # same Parameter objects: one set of weights for all
        if name == "ours_compiled":
            models[name].compile_mlps()

    rows = []
    for dtype_name in cfg.dtype.split(","):
        dtype = DTYPES[dtype_name]
        hf.to(dtype)  # ours shares these parameters
        peak = matmul_peak(dtype, cfg.device, arch)
        print(f"# {dtype_name}: matmul peak {peak / 1e9:.1f} GFLOP/s on {cfg.device}", flush=True)
        first_row = len(rows)
        for set_name in cfg.sets.split(","):
            n = cfg.long_docs if "8192" in set_name or "4096" in set_name else cfg.docs
            lengths = doc_lengths(set_name, n, cfg.seed)
            groups = make_batches(lengths, cfg.token_budget, cfg.order)
            batches = [padded_batch([lengths[i] for i in g], arch.vocab_size, cfg.seed + j) for j, g in enumerate(groups)]
            flops = useful_flops(arch, lengths)
            padded = sum(ids.numel() for ids, _ in batches)
            biggest = max(groups, key=lambda g: len(g) * max(lengths[i] for i in g))
            warmups = {name: warm_up(models[name], batches[-1], cfg.device) for name in names}
            timed = time_models(models, names, batches, cfg.device, cfg.repeats)
            for model_name in names:
                (seconds, mem), warmup = timed[model_name], warmups[model_name]
                if cfg.memory and not cfg.device.startswith("cuda"):
                    mem = memory_in_child({"size": cfg.size, "dtype": dtype_name, "model": model_name,
                                           "backend": cfg.backend, "lengths": [lengths[i] for i in biggest], "seed": cfg.seed})
                row = Row(
                    set=set_name, dtype=dtype_name, model=model_name, docs=n, tokens=sum(lengths),
                    padded_tokens=padded, seconds=seconds, tokens_per_s=sum(lengths) / seconds,
                    peak_mem_mib=mem / 2**20, mfu=flops / seconds / peak,
                    backend=models[model_name].last_backend if model_name != "hf" else "sdpa (padded)", warmup_s=warmup,
                )
                rows.append(row)
                print(f"  {set_name:10s} {dtype_name} {model_name:4s} {row.tokens_per_s:9.1f} tok/s  "
                      f"{row.peak_mem_mib:8.1f} MiB  MFU {row.mfu:6.1%}  ({row.seconds:.1f} s; warm-up {row.warmup_s:.1f} s)", flush=True)
        # the machine's speed drifts (shared host): measure the peak again after the runs, keep the best
        end_peak = matmul_peak(dtype, cfg.device, arch)
        print(f"# {dtype_name}: matmul peak at the end {end_peak / 1e9:.1f} GFLOP/s", flush=True)
        if end_peak > peak:
            for row in rows[first_row:]:
                row.mfu *= peak / end_peak
    return rows


def render(rows: list[Row]) -> str:
    """Markdown table, one line per (set, dtype): tokens/s, memory and MFU of each model, and
    each unpadded model's speed ratio over transformers (hf)."""
    models = list(dict.fromkeys(r.model for r in rows))
    ours = [m for m in models if m != "hf"]
    by_key = {(r.set, r.dtype, r.model): r for r in rows}
    head = ["set", "dtype", "docs", "tokens", "padded / real"]
    head += [f"{m} tok/s" for m in models]
    head += [f"{m} / hf" for m in ours] if "hf" in models else []
    head += [f"{m} MiB" for m in models] + [f"{m} MFU" for m in models] + ["backend"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (s, d) in dict.fromkeys((r.set, r.dtype) for r in rows):
        got = {m: by_key.get((s, d, m)) for m in models}
        ref = next(r for r in got.values() if r)
        cells = [s, d, str(ref.docs), str(ref.tokens), f"{ref.padded_tokens / ref.tokens:.2f}"]
        cells += [f"{r.tokens_per_s:.1f}" if r else "-" for r in got.values()]
        if "hf" in models:
            h = got["hf"]
            cells += [f"{got[m].tokens_per_s / h.tokens_per_s:.2f}x" if got[m] and h else "-" for m in ours]
        cells += [f"{r.peak_mem_mib:.0f}" if r else "-" for r in got.values()]
        cells += [f"{r.mfu:.1%}" if r else "-" for r in got.values()]
        cells.append(next((got[m].backend for m in ours if got[m]), "-"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance() -> dict:
    return {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
    }


def parse_args(argv=None) -> ThroughputConfig:
    """CLI flags built from ThroughputConfig's fields (--token-budget for token_budget, --no-memory, ...)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_flags(p, ThroughputConfig)
    return from_args(p.parse_args(argv), ThroughputConfig)


def _rss_tracks_live_memory() -> None:
    """Make glibc mmap every allocation >= 64 KiB (and unmap it on free), so that process RSS
    follows live tensor memory; otherwise freed tensors stay resident and later peaks are hidden."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):
        print("# mallopt unavailable: CPU peak memory may be underestimated")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:  # child process of memory_in_child
        print(memory_probe(json.loads(argv[1])))
        return
    cfg = parse_args(argv)
    print(f"# {cfg}\n# {provenance()}", flush=True)
    rows = run(cfg)
    if cfg.out:
        atomic_write_json(Path(cfg.out), {"config": dataclasses.asdict(cfg), "provenance": provenance(),
                                          "rows": [dataclasses.asdict(r) for r in rows]})
    print(render(rows))


if __name__ == "__main__":
    main()
