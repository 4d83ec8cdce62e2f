"""A batch sampler for batch-size warmup that never puts the same text twice in one batch."""

from __future__ import annotations

from collections.abc import Collection

import torch

from encoders.training.schedule import batch_plan, warmup_batch_size


class WarmupNoDuplicatesBatchSampler:
    """Batches whose size follows :func:`encoders.training.schedule.batch_plan`, with no text twice in a batch.

    Same policy as sentence-transformers' ``NoDuplicatesBatchSampler`` (a sample clashing with
    the batch waits for a later batch), seeded by ``seed + epoch``. Columns in ``exclude`` (the
    collator's label columns, e.g. the false-negative mask's ids) are not texts and are not compared.
    """

    def __init__(self, dataset, *, start: int, end: int, warmup_samples: int, seed: int, exclude: Collection[str] = ()):
        skip = {"dataset_name", *exclude}
        self.values = [{str(v) for k, v in row.items() if k not in skip} for row in dataset]
        self.start, self.end, self.warmup_samples, self.seed = start, end, warmup_samples, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(batch_plan(len(self.values), self.start, self.end, self.warmup_samples))

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        remaining = torch.randperm(len(self.values), generator=g).tolist()
        seen = 0
        while remaining:
            size = warmup_batch_size(seen, self.start, self.end, self.warmup_samples)
            batch, used, rest = [], set(), []
            for i in remaining:
                if len(batch) < size and self.values[i].isdisjoint(used):
                    batch.append(i)
                    used |= self.values[i]
                else:
                    rest.append(i)
            remaining = rest
            seen += len(batch)
            yield batch
