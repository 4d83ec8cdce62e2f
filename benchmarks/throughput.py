"""Encoder throughput: unpadded ModernBERT (ours) vs transformers' padded ModernBertModel (sdpa).

ModernBERT (arXiv 2412.13663, section 4 "Efficiency") reports tokens/s on four document sets;
we use the same four, with random token ids and random base-size weights (22 layers, H=768):

    fixed512    every document 512 tokens
    var256      lengths ~ Normal(256, 64) clamped to [16, 512]
    fixed8192   every document 8192 tokens
    var4096     lengths ~ Normal(4096, 1024) clamped to [16, 8192]

Both models get the same documents in the same batches: sorted by length (longest first), filled
greedily up to `--token-budget` padded tokens (B * T). Ours removes the padding; transformers
computes it. Each model shares one set of weights (ours points at the transformers parameters).

Reported per set and dtype: tokens/s (real tokens only), peak memory above the pre-run baseline
(CPU: sampled process RSS; CUDA: max_memory_allocated), MFU = useful FLOPs / time / peak, where
useful FLOPs count real tokens only and the attention each token actually needs (its sequence on
global layers, its <= 129-token window on local layers), and peak is a large torch.matmul in the
same dtype timed on this machine. `ratio` = ours tokens/s / transformers tokens/s.

    python -m benchmarks.throughput --docs 16 --long-docs 1 --dtype fp32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import threading
import time
from dataclasses import dataclass, field

import psutil
import torch

from encoders.modernbert import ModernBert, ModernBertConfig
from encoders.modernbert_st import share_parameters

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ThroughputConfig:
    docs: int = 32  # documents per short set (fixed512, var256)
    long_docs: int = 1  # documents per long set (fixed8192, var4096): minutes per document on a CPU
    sets: str = "fixed512,var256,fixed8192,var4096"
    dtype: str = "fp32,bf16"
    token_budget: int = 16384  # padded tokens (B * T) per batch
    models: str = "ours,hf"
    backend: str = "auto"  # attention backend of ours (encoders.attention.BACKENDS)
    compile: bool = False  # torch.compile each GeGLU MLP of ours
    size: str = "base"  # ModernBertConfig preset
    device: str = "cpu"
    seed: int = 0
    out: str = ""  # optional path of a JSON file with every row


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


def make_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Group document indices: longest first, each batch's B * max_len <= budget (at least one doc)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * lengths[cur[0]] > budget:
            batches.append(cur)
            cur = []
        cur.append(i)
    return batches + [cur] if cur else batches


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


def matmul_peak(dtype: torch.dtype, device: str, n: int = 2048, reps: int = 3) -> float:
    """Best FLOP/s of an n x n x n torch.matmul in `dtype` on `device` (the MFU denominator)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory above the baseline at entry: CUDA allocator stats, or sampled process RSS."""

    def __init__(self, device: str, interval_s: float = 0.005):
        self.device, self.interval_s, self.peak_bytes = device, interval_s, 0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
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
        if self.device.startswith("cuda"):
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.base
        else:
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
    extra: dict = field(default_factory=dict)


def time_model(model, batches, device) -> tuple[float, float]:
    """Seconds to encode every batch (after one warm-up batch) and peak memory in bytes."""
    with torch.inference_mode():
        ids, mask = batches[-1]  # warm-up: one short slice of the smallest batch
        model(input_ids=ids[:1, :128].to(device), attention_mask=mask[:1, :128].to(device))
        with PeakMemory(device) as mem:
            _sync(device)
            t = time.perf_counter()
            for ids, mask in batches:
                model(input_ids=ids.to(device), attention_mask=mask.to(device))
            _sync(device)
            seconds = time.perf_counter() - t
    return seconds, mem.peak_bytes


def run(cfg: ThroughputConfig) -> list[Row]:
    from transformers import ModernBertModel

    arch = getattr(ModernBertConfig, cfg.size)()
    torch.manual_seed(cfg.seed)
    hf = ModernBertModel._from_config(arch.to_hf(), attn_implementation="sdpa").eval().to(cfg.device)
    with torch.device("meta"):
        ours = ModernBert(arch, attn_backend=cfg.backend).eval()
    share_parameters(hf, ours)
    if cfg.compile:
        for layer in ours.layers:
            layer.mlp.compile(dynamic=True)
    models = {"ours": ours, "hf": hf}

    rows = []
    for dtype_name in cfg.dtype.split(","):
        dtype = DTYPES[dtype_name]
        hf.to(dtype)  # ours shares these parameters
        peak = matmul_peak(dtype, cfg.device)
        print(f"# {dtype_name}: matmul peak {peak / 1e9:.1f} GFLOP/s on {cfg.device}", flush=True)
        for set_name in cfg.sets.split(","):
            n = cfg.long_docs if "8192" in set_name or "4096" in set_name else cfg.docs
            lengths = doc_lengths(set_name, n, cfg.seed)
            groups = make_batches(lengths, cfg.token_budget)
            batches = [padded_batch([lengths[i] for i in g], arch.vocab_size, cfg.seed + j) for j, g in enumerate(groups)]
            flops = useful_flops(arch, lengths)
            padded = sum(ids.numel() for ids, _ in batches)
            for model_name in cfg.models.split(","):
                seconds, mem = time_model(models[model_name], batches, cfg.device)
                row = Row(
                    set=set_name, dtype=dtype_name, model=model_name, docs=n, tokens=sum(lengths),
                    padded_tokens=padded, seconds=seconds, tokens_per_s=sum(lengths) / seconds,
                    peak_mem_mib=mem / 2**20, mfu=flops / seconds / peak,
                    backend=ours.last_backend if model_name == "ours" else "sdpa (padded)",
                )
                rows.append(row)
                print(f"  {set_name:10s} {dtype_name} {model_name:4s} {row.tokens_per_s:9.1f} tok/s  "
                      f"{row.peak_mem_mib:8.1f} MiB  MFU {row.mfu:6.1%}  ({row.seconds:.1f} s)", flush=True)
    return rows


def render(rows: list[Row]) -> str:
    """Markdown table, one line per (set, dtype): both models and the ratio ours / hf."""
    by_key = {(r.set, r.dtype, r.model): r for r in rows}
    lines = [
        "| set | dtype | docs | tokens | ours tok/s | hf tok/s | ratio | ours MiB | hf MiB | ours MFU | hf MFU | backend |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (s, d) in dict.fromkeys((r.set, r.dtype) for r in rows):
        o, h = by_key.get((s, d, "ours")), by_key.get((s, d, "hf"))
        ref = o or h
        fmt = lambda r, a, spec: format(getattr(r, a), spec) if r else "-"  # noqa: E731
        ratio = f"{o.tokens_per_s / h.tokens_per_s:.2f}x" if o and h else "-"
        lines.append(
            f"| {s} | {d} | {ref.docs} | {ref.tokens} | {fmt(o, 'tokens_per_s', '.1f')} | {fmt(h, 'tokens_per_s', '.1f')} | "
            f"{ratio} | {fmt(o, 'peak_mem_mib', '.0f')} | {fmt(h, 'peak_mem_mib', '.0f')} | {fmt(o, 'mfu', '.1%')} | "
            f"{fmt(h, 'mfu', '.1%')} | {o.backend if o else '-'} |"
        )
    return "\n".join(lines)


def provenance() -> dict:
    import transformers

    return {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
    }


def parse_args(argv=None) -> ThroughputConfig:
    """CLI flags built from ThroughputConfig's fields (--token-budget for token_budget, ...)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(ThroughputConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=f.default)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    return ThroughputConfig(**vars(p.parse_args(argv)))


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
    cfg = parse_args(argv)
    if cfg.device == "cpu":
        _rss_tracks_live_memory()
    print(f"# {cfg}\n# {provenance()}", flush=True)
    rows = run(cfg)
    if cfg.out:
        with open(cfg.out, "w") as f:
            json.dump({"config": dataclasses.asdict(cfg), "provenance": provenance(),
                       "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=2)
    print(render(rows))


if __name__ == "__main__":
    main()
