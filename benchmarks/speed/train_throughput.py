"""Training throughput of a ModernBERT retriever: our unpadded backbone vs transformers' padded one.

One training step = sentence-transformers forward of (query, document) batches + MNRL loss
+ backward + StableAdamW step: the same path ``train.py --encoder dpr`` runs. Both models start
from the same random checkpoint and see the same batches (texts of random lengths, so padding
is a real cost); tokens/s counts real (non-pad) tokens.

    python -m benchmarks.speed.train_throughput                       # CPU, small random ModernBERT
    python -m benchmarks.speed.train_throughput --hidden 768 --layers 22 --heads 12 --intermediate 1152 --device cuda

Writes ``OUTPUT/train_throughput.json`` (typed rows + provenance), then prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from sentence_transformers.losses import MultipleNegativesRankingLoss

from encoders.loading import load_sentence_transformer, resolve_model
from encoders.modernbert import ModernBertConfig
from encoders.modernbert_st import use_unpadded_modernbert
from encoders.tiny_modernbert import VOCAB_SIZE, make_tiny_checkpoint
from encoders.training.config import TrainConfig
from encoders.training.losses import make_optimizer
from retrieval.flags import add_flags, from_args
from retrieval.flags import flag_field as _f
from retrieval.io import atomic_write_json
from retrieval.provenance import git_commit, library_versions, machine


@dataclass(frozen=True)
class TrainThroughputConfig:
    hidden: int = _f(256, "hidden size of the random ModernBERT")
    layers: int = _f(6, "layers (every 3rd global attention, as ModernBERT)")
    heads: int = _f(4, "attention heads")
    intermediate: int = _f(384, "GeGLU intermediate size")
    batch_size: int = _f(16, "(query, document) pairs per step")
    query_len: int = _f(24, "max query tokens (lengths drawn uniformly from 4..query_len)")
    doc_len: int = _f(256, "max document tokens (lengths drawn uniformly from 16..doc_len)")
    steps: int = _f(6, "timed steps per backbone")
    warmup_steps: int = _f(2, "untimed steps first")
    device: str = _f("cpu", "torch device")
    seed: int = _f(0, "seeds the checkpoint and the batches")
    output: str = _f("results/train_throughput", "folder for the JSON result")


@dataclass(frozen=True)
class Row:
    backbone: str  # transformers-padded | unpadded (<attention backend>)
    real_tokens_per_s: float  # non-pad tokens processed per second of training step (median step)
    padded_tokens_per_s: float  # tokens incl. padding, i.e. what a padded model computes on
    step_s_median: float
    first_loss: float  # loss of the first step (same weights, same batch: should match across backbones)


def make_batches(cfg: TrainThroughputConfig, vocab: int, specials: tuple[int, int, int]) -> list[tuple[dict, dict]]:
    """``warmup_steps + steps`` pairs of padded feature dicts ``{input_ids, attention_mask}: (B, L)``."""
    pad, cls, sep = specials
    g = torch.Generator().manual_seed(cfg.seed)

    def feats(lo: int, hi: int) -> dict:
        lengths = torch.randint(lo, hi + 1, (cfg.batch_size,), generator=g)  # (B,)
        L = int(lengths.max())
        ids = torch.full((cfg.batch_size, L), pad)
        mask = torch.zeros((cfg.batch_size, L), dtype=torch.long)
        for i, n in enumerate(lengths.tolist()):
            ids[i, :n] = torch.randint(5, vocab, (n,), generator=g)
            ids[i, 0], ids[i, n - 1] = cls, sep
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}

    return [(feats(4, cfg.query_len), feats(16, cfg.doc_len)) for _ in range(cfg.warmup_steps + cfg.steps)]


def time_training(model, batches, cfg: TrainThroughputConfig, name: str) -> Row:
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model)
    opt = make_optimizer(list(model.named_parameters()), TrainConfig(lr=1e-4), set())
    times, first = [], None
    real = padded = 0
    for i, (q, d) in enumerate(batches):
        q = {k: v.to(cfg.device) for k, v in q.items()}
        d = {k: v.to(cfg.device) for k, v in d.items()}
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = loss_fn([q, d], None)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        first = float(loss) if first is None else first
        if i >= cfg.warmup_steps:
            times.append(dt)
            real += int(q["attention_mask"].sum() + d["attention_mask"].sum())
            padded += q["input_ids"].numel() + d["input_ids"].numel()
    med = statistics.median(times)
    total = sum(times)
    return Row(name, round(real / total, 1), round(padded / total, 1), round(med, 4), round(first, 6))


def run(cfg: TrainThroughputConfig) -> list[Row]:
    arch = dataclasses.replace(ModernBertConfig.tiny(vocab_size=VOCAB_SIZE), hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                               num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny_checkpoint(Path(tmp) / "mb", seed=cfg.seed, cfg=arch)
        batches = make_batches(cfg, arch.vocab_size, (arch.pad_token_id, arch.cls_token_id, arch.sep_token_id))
        for unpadded in (False, True):
            torch.manual_seed(cfg.seed)
            st = load_sentence_transformer(resolve_model(str(path)), device=cfg.device)
            name = "transformers ModernBERT (padded)"
            if unpadded:
                name = f"unpadded ({use_unpadded_modernbert(st)})"
            rows.append(time_training(st, batches, cfg, name))
    return rows


def render(rows: list[Row], cfg: TrainThroughputConfig) -> str:
    base = rows[0].real_tokens_per_s
    lines = [f"training step: H={cfg.hidden} x {cfg.layers} layers, batch {cfg.batch_size} pairs, docs 16..{cfg.doc_len} tokens, {cfg.device}", "",
             "| backbone | real tokens/s | padded tokens/s | median step (s) | speed-up | first loss |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.backbone} | {r.real_tokens_per_s:,.0f} | {r.padded_tokens_per_s:,.0f} | {r.step_s_median:.3f} | {r.real_tokens_per_s / base:.2f}x | {r.first_loss:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, TrainThroughputConfig)
    cfg = from_args(parser.parse_args(argv), TrainThroughputConfig)
    torch.manual_seed(cfg.seed)
    rows = run(cfg)
    out = Path(cfg.output) / "train_throughput.json"
    atomic_write_json(out, {"config": dataclasses.asdict(cfg), "rows": [dataclasses.asdict(r) for r in rows], "git_commit": git_commit(),
                            "libraries": library_versions(), "machine": machine(), "torch_threads": torch.get_num_threads()})
    print(render(rows, cfg))
    print(f"\nresult: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
