"""Memory of a training run: the GradCache mini-batch sized to a budget (``--memory-budget-gb``), and the peak RSS.

Activations of one text of ``seq`` tokens through a transformer in training (fp32, eager
attention), after Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models", arXiv 2205.05198, sec. 4.1: ``34*h + 5*a*s`` bytes per layer and token at 2 bytes an element):

    text_bytes(seq) = SAFETY * layers * seq * (68 * hidden + 10 * heads * seq)

``SAFETY = 1.5``: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads) training at 256 tokens on CPU
measured 128 MB per text against 87 MB counted (GELU and dropout buffers the count leaves out).
An unpadded ModernBERT or bf16 autocast needs less: the estimate stays on the safe side.

The fixed part: ``RUNTIME_GB`` (torch, sentence-transformers, tokenizer, data, the trainer's buffers)
+ 16 bytes per parameter (fp32 weights, gradients, two Adam moments). Calibrated on
``train.py --model minilm --train-data scifact:train`` (CPU, fp32, mini-batch 20 at 256 tokens):
4.53 GB peak RSS = 20 x 0.13 GB activations + 0.36 GB optimiser state + ~1.6 GB the rest.

:func:`plan_memory`: the whole batch (``batch * texts_per_example`` texts) in one forward and
backward when it fits in ``budget - fixed``; else GradCache with as many texts per mini-batch as
fit (at least 1). ``--mini-batch-size`` given explicitly wins over the budget.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass

SAFETY = 1.5  # measured / counted activation bytes, MiniLM at 256 tokens (see the module docstring)
RUNTIME_GB = 1.6  # the rest of the process (see the module docstring: measured with MiniLM on SciFact)
OPTIMIZER_BYTES_PER_PARAM = 16  # fp32 weight + gradient + AdamW's two moments
GB = 1e9


def text_bytes(*, layers: int, hidden: int, heads: int, seq: int) -> int:
    """Estimated activation bytes kept for backward by one text of ``seq`` tokens.

    >>> round(text_bytes(layers=6, hidden=384, heads=12, seq=256) / 1e6)  # all-MiniLM-L6-v2; measured 128
    131
    """
    return int(SAFETY * layers * seq * (68 * hidden + 10 * heads * seq))


@dataclass(frozen=True)
class MemoryPlan:
    """How a batch goes through the model: whole, or in GradCache mini-batches of ``mini_batch_size`` texts per column."""

    budget_gb: float
    fixed_gb: float  # runtime + parameters and optimiser state
    text_gb: float  # activations of one text at full length (+ its share of the score matrix)
    whole_batch_gb: float  # activations of the whole batch in one forward
    mini_batch_size: int
    cached: bool
    source: str  # "--mini-batch-size" | "--memory-budget-gb"

    def describe(self) -> str:
        how = f"GradCache, mini-batch {self.mini_batch_size} (~{self.fixed_gb + self.mini_batch_size * self.text_gb:.1f} GB peak)" if self.cached else "one forward per batch"
        return (f"memory: budget {self.budget_gb:g} GB, fixed ~{self.fixed_gb:.1f} GB, ~{self.text_gb * 1e3:.0f} MB per text, "
                f"whole batch ~{self.whole_batch_gb:.1f} GB -> {how} [{self.source}]")

    def record(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def plan_memory(*, budget_gb: float, batch_size: int, texts_per_example: int, text_bytes_: int, params: int,
                mini_batch_size: int | None = None, score_bytes_per_query: int = 0) -> MemoryPlan:
    """The mini-batch for ``budget_gb``; an explicit ``mini_batch_size`` wins (cached when < ``batch_size``).

    ``score_bytes_per_query``: the loss's score tensors per query row (ColBERT's token-level MaxSim), chunked like the texts.

    >>> p = plan_memory(budget_gb=4, batch_size=32, texts_per_example=6, text_bytes_=131_000_000, params=22_700_000)
    >>> p.cached, p.mini_batch_size
    (True, 15)
    >>> plan_memory(budget_gb=4, batch_size=4, texts_per_example=3, text_bytes_=131_000_000, params=22_700_000).cached
    False
    >>> plan_memory(budget_gb=4, batch_size=32, texts_per_example=6, text_bytes_=131_000_000, params=22_700_000, mini_batch_size=8).mini_batch_size
    8
    """
    fixed = RUNTIME_GB + OPTIMIZER_BYTES_PER_PARAM * params / GB
    per_text = (text_bytes_ + score_bytes_per_query) / GB
    whole = batch_size * texts_per_example * text_bytes_ / GB + batch_size * score_bytes_per_query / GB
    if mini_batch_size is not None:
        if mini_batch_size < 1:
            raise ValueError(f"--mini-batch-size must be >= 1, got {mini_batch_size}")
        return MemoryPlan(budget_gb, fixed, per_text, whole, min(mini_batch_size, batch_size), mini_batch_size < batch_size, "--mini-batch-size")
    if not budget_gb > 0:
        raise ValueError(f"--memory-budget-gb must be > 0, got {budget_gb}")
    room = budget_gb - fixed
    if whole <= room:
        return MemoryPlan(budget_gb, fixed, per_text, whole, batch_size, False, "--memory-budget-gb")
    return MemoryPlan(budget_gb, fixed, per_text, whole, max(1, min(batch_size, int(room / per_text))), True, "--memory-budget-gb")


def model_shape(model) -> dict:
    """``layers``, ``hidden``, ``heads`` of the (first) transformer inside ``model``, and its parameter count."""
    cfg = next((m.config for m in model.modules() if hasattr(getattr(m, "config", None), "num_hidden_layers")), None)
    if cfg is None:
        raise ValueError(f"cannot size the mini-batch: no transformer config inside {type(model).__name__}; pass --mini-batch-size")
    params = sum(p.numel() for p in model.parameters())
    return {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "heads": cfg.num_attention_heads, "params": params}


def peak_rss_gb() -> dict:
    """Peak resident memory so far (``getrusage``): this process, its largest finished child, and ``peak_rss_gb`` = their sum (an upper bound).

    >>> sorted(peak_rss_gb())
    ['children_gb', 'peak_rss_gb', 'self_gb']
    """
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / GB
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit / GB
    return {"self_gb": round(me, 3), "children_gb": round(kids, 3), "peak_rss_gb": round(me + kids, 3)}
