"""GradCache (Gao et al. 2021, arXiv 2101.06983): a loss over a large batch at a mini-batch's activation memory.

A :class:`GradCacheLoss` subclass gives ``embed`` (one column's features -> embeddings) and
``loss_from_embeddings`` (the loss of every column's embeddings). When ``mini_batch_size`` is
below a column's rows, :meth:`GradCacheLoss.forward`:

1. embeds each column in mini-batches without a graph, keeping each mini-batch's RNG state;
2. computes the loss and its gradient w.r.t. the embeddings (``loss_from_embeddings(..., backward=True)``
   calls backward itself, so it may do so in chunks);
3. in the loss's backward hook, re-embeds each mini-batch with the same RNG state (dropout) and
   autocast, and backpropagates the cached gradient ``dot(emb, grad)``.

Same loss and gradients as the whole batch (tests/encoders/training/test_contrastive.py), with the
activations of ``mini_batch_size`` texts at a time.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import get_device_states, set_device_states


class _RngState:
    """The RNG state before a forward pass, replayed when GradCache recomputes it (same dropout masks)."""

    def __init__(self, *tensors: Tensor):
        self.cpu = torch.get_rng_state()
        self.devices, self.states = get_device_states(*tensors)

    @contextmanager
    def replay(self):
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            set_device_states(self.devices, self.states)
            yield


class GradCacheLoss(nn.Module):
    """A loss of embedded text columns, whole-batch or GradCache (module docstring).

    ``mini_batch_size``: texts per forward; None, or at least every column's rows: one forward and backward.
    """

    def __init__(self, model, *, mini_batch_size: int | None = None):
        super().__init__()
        self.model = model
        self.mini_batch_size = mini_batch_size

    # --- what a subclass defines
    def embed(self, features: dict) -> Tensor:
        raise NotImplementedError

    def loss_from_embeddings(self, reps: list[Tensor], features: list[dict], labels, *, backward: bool = False) -> Tensor:
        """The loss of ``reps`` (one tensor per column); ``backward``: call backward (accumulating ``.grad``), return it detached."""
        raise NotImplementedError

    def check_columns(self, features: list[dict]) -> None:
        """Raise on a batch whose columns do not fit the loss."""

    # --- shared
    def forward(self, sentence_features, labels=None) -> Tensor:
        features = list(sentence_features)
        self.check_columns(features)
        rows = max(f["input_ids"].shape[0] for f in features)
        if self.mini_batch_size is None or self.mini_batch_size >= rows:
            return self.loss_from_embeddings([self.embed(f) for f in features], features, labels)
        return self._cached_forward(features, labels)

    def _cached_forward(self, features: list[dict], labels) -> Tensor:
        """GradCache steps 1-2 (embed without a graph, loss and embedding gradients); step 3 runs in the backward hook."""
        reps, states = [], []
        with torch.no_grad():
            for f in features:
                chunks, rng = [], []
                for part in self._mini_batches(f):
                    rng.append(_RngState(*part.values()))
                    chunks.append(self.embed(part))
                reps.append(torch.cat(chunks).detach().requires_grad_())
                states.append(rng)
        if not torch.is_grad_enabled():
            return self.loss_from_embeddings(reps, features, labels)
        with torch.enable_grad():
            loss = self.loss_from_embeddings(reps, features, labels, backward=True)
        grads = [r.grad for r in reps]
        loss = loss.detach().requires_grad_()
        device = reps[0].device.type
        autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        loss.register_hook(partial(self._replay, features=features, grads=grads, states=states, device=device, autocast=autocast))
        return loss

    def _mini_batches(self, f: dict):
        n = f["input_ids"].shape[0]
        for b in range(0, n, self.mini_batch_size):
            yield {k: v[b : b + self.mini_batch_size] if isinstance(v, Tensor) else v for k, v in f.items()}

    def _replay(self, grad_output: Tensor, *, features, grads, states, device, autocast) -> None:
        """GradCache step 3: re-embed each mini-batch with its RNG state and autocast, backpropagate the cached gradient."""
        enabled, dtype = autocast
        ctx = torch.autocast(device, dtype=dtype) if enabled else nullcontext()
        with torch.enable_grad(), ctx:
            for f, grad, rng in zip(features, grads, states):
                begin = 0
                for part, state in zip(self._mini_batches(f), rng):
                    with state.replay():
                        emb = self.embed(part)
                    g = grad[begin : begin + len(emb)]
                    begin += len(emb)
                    (torch.dot(emb.flatten().float(), g.flatten().float()) * grad_output).backward()
