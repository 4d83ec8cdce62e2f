"""Learning-rate and batch-size schedules as pure functions of the step (or of samples seen).

Warmup-stable-decay ("trapezoidal") learning rate with 1-sqrt decay, as in ModernBERT's
pretraining (arXiv 2412.13663, sec. 2.2.2; 1-sqrt decay from Hägele et al. 2024,
"Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"):

    lr
    peak |    ________________
         |   /                \\_
         |  /                    \\_
       0 | /                        \\
         +--W--------------------S--total--> step      W = floor(warmup_frac*total)
                                                        S = total - floor(decay_frac*total)

Batch-size warmup (ModernBERT pretraining, sec. 2.2.2): the batch grows linearly from
``start`` to ``end`` over the first ``warmup_samples`` samples.
"""

from __future__ import annotations

import math


def wsd_lr(step: int, total: int, peak: float, warmup_frac: float, decay_frac: float) -> float:
    """The learning rate for optimiser step ``step`` (0-based) of ``total`` steps.

    - warmup, ``step < W``: ``peak * (step + 1) / W`` (the first step already learns; step W-1 is at peak)
    - stable, ``W <= step < S``: ``peak``
    - decay, ``S <= step < total``: ``peak * (1 - sqrt((step - S) / D))`` with ``D = total - S``
    - ``step >= total``: 0

    >>> [round(wsd_lr(s, 10, 1.0, 0.2, 0.4), 4) for s in range(11)]
    [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.2929, 0.134, 0.0]
    """
    if total <= 0 or step >= total:
        return 0.0
    if not (0.0 <= warmup_frac <= 1.0 and 0.0 <= decay_frac <= 1.0 and warmup_frac + decay_frac <= 1.0):
        raise ValueError(f"need 0 <= warmup_frac, decay_frac and warmup_frac + decay_frac <= 1; got {warmup_frac}, {decay_frac}")
    warmup = int(warmup_frac * total)
    decay = int(decay_frac * total)
    decay_start = total - decay
    if step < warmup:
        return peak * (step + 1) / warmup
    if step < decay_start:
        return peak
    return peak * (1.0 - math.sqrt((step - decay_start) / decay))


def wsd_factor(total: int, warmup_frac: float, decay_frac: float):
    """``step -> wsd_lr(step, total, 1.0, …)``: the multiplier for ``torch.optim.lr_scheduler.LambdaLR``."""
    wsd_lr(0, total, 1.0, warmup_frac, decay_frac)  # validate the fractions now, not at step 0

    def factor(step: int) -> float:
        return wsd_lr(step, total, 1.0, warmup_frac, decay_frac)

    return factor


def warmup_batch_size(samples_seen: int, start: int, end: int, warmup_samples: int) -> int:
    """The batch size once ``samples_seen`` samples have been trained on.

    Grows linearly from ``start`` to ``end`` over the first ``warmup_samples`` samples
    (rounded down to a whole sample), then stays at ``end``. ``warmup_samples = 0`` disables it.

    >>> [warmup_batch_size(s, 4, 16, 100) for s in (0, 25, 50, 99, 100, 1000)]
    [4, 7, 10, 15, 16, 16]
    """
    if not 1 <= start <= end:
        raise ValueError(f"need 1 <= start <= end, got start={start}, end={end}")
    if warmup_samples <= 0 or samples_seen >= warmup_samples:
        return end
    return start + (end - start) * samples_seen // warmup_samples


def batch_plan(n_samples: int, start: int, end: int, warmup_samples: int) -> list[int]:
    """The batch sizes that cover ``n_samples`` under batch-size warmup; the last batch may be short.

    >>> batch_plan(30, 2, 8, 12)
    [2, 3, 4, 6, 8, 7]
    """
    sizes: list[int] = []
    seen = 0
    while seen < n_samples:
        b = min(warmup_batch_size(seen, start, end, warmup_samples), n_samples - seen)
        sizes.append(b)
        seen += b
    return sizes
