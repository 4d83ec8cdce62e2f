"""Single-vector (DPR) encoding with a sentence-transformers model.

Every forward is ``SentenceTransformer.encode``, so the checkpoint's own settings apply exactly
as there: its prompts (``config_sentence_transformers.json``; queries get the "query" prompt,
documents the "document" / "passage" / "corpus" one, else ``default_prompt_name``'s, as
``encode_query`` / ``encode_document`` choose), the Transformer module's ``do_lower_case`` and
``max_seq_length``, and every module after pooling (Dense, Normalize). A non-empty
``query_prefix`` / ``doc_prefix`` replaces the model's prompt, with a warning when the model has one.

What we add is the batching: texts are tokenized once for their true token length (not character
length), sorted longest first, and batched so each batch pads to at most its own longest text;
rows come back in input order. On CPU a batch also holds at most `cpu_token_budget` padded tokens.
Embeddings are float32 ``(n, dim)``; with ``similarity="cos"`` they are L2-normalised so
inner product is cosine (as BEIR's ``cos_sim`` and MTEB do).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from encoders.loading import effective_max_length
from encoders.modernbert import CPU_CHUNK_BYTES
from retrieval import progress

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DOC_PROMPT_NAMES = ("document", "passage", "corpus")  # the names SentenceTransformer.encode_document tries, in its order


@dataclass(frozen=True)
class DenseEncoderConfig:
    similarity: str = "cos"  # cos | dot
    query_prefix: str = ""  # "" keeps the model's own query prompt; a string replaces it
    doc_prefix: str = ""  # "" keeps the model's own document prompt; a string replaces it
    batch_size: int = 64
    dtype: str = "fp32"


def model_prompts(model) -> tuple[str, str]:
    """``(query prompt, document prompt)`` that ``SentenceTransformer.encode_query`` / ``encode_document`` prepend.

    A role's own prompt wins (ST always defines "query" and "document", as "" unless the checkpoint
    sets them); without one, the prompt of ``default_prompt_name``; else "".
    """
    prompts = model.prompts or {}
    default = prompts.get(model.default_prompt_name, "") if model.default_prompt_name else ""
    query = prompts["query"] if "query" in prompts else default
    doc = next((prompts[n] for n in DOC_PROMPT_NAMES if n in prompts), default)
    return query or "", doc or ""


def _chosen_prompt(own: str, given: str, role: str) -> str:
    """The user's prefix when given (warning when it replaces a different prompt of the model), else the model's."""
    if not given:
        return own
    if own and own != given:
        log.warning("%s prefix %r replaces the model's own %s prompt %r", role, given, role, own)
    return given


class DenseEncoder:
    """Wraps a ``SentenceTransformer``: ``encode_queries`` / ``encode_documents`` -> ``(n, dim)`` float32.

    ``query_prompt`` / ``doc_prompt`` are the prefixes really applied (model's or given); ``max_length``
    the tokens texts are cut to (the model's ``max_seq_length``, capped by its tokenizer and position table).
    """

    def __init__(self, model, cfg: DenseEncoderConfig = DenseEncoderConfig()):
        if cfg.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {cfg.dtype!r}; choose from {', '.join(DTYPES)}")
        if cfg.similarity not in ("cos", "dot"):
            raise ValueError(f"unknown similarity {cfg.similarity!r}; choose cos or dot")
        self.model = model.to(DTYPES[cfg.dtype]).eval()
        self.cfg = cfg
        self.max_length = effective_max_length(model)
        if model.max_seq_length and model.max_seq_length > self.max_length:
            log.warning("max_seq_length %d exceeds what the tokenizer / position table allow; texts are cut at %d tokens", model.max_seq_length, self.max_length)
            model.max_seq_length = self.max_length  # encode() cuts at max_seq_length: make it the length that really works
        own_query, own_doc = model_prompts(model)
        self.query_prompt = _chosen_prompt(own_query, cfg.query_prefix, "query")
        self.doc_prompt = _chosen_prompt(own_doc, cfg.doc_prefix, "document")
        self.lower_case = bool(getattr(model[0], "do_lower_case", False))  # ST lower-cases before tokenizing

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), prompt=self.query_prompt, task="query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), prompt=self.doc_prompt, task="document")

    def _token_lengths(self, texts: list[str], prompt: str) -> list[int]:
        """Tokens per text as ``encode`` will cut it (prompt, strip, lower-case, max length): for batching only."""
        prepared = [(prompt + t).strip() for t in texts]
        if self.lower_case:
            prepared = [t.lower() for t in prepared]
        ids = self.model.tokenizer(prepared, truncation=True, max_length=self.max_length, add_special_tokens=True)["input_ids"]
        return [len(x) for x in ids]

    @torch.inference_mode()
    def _encode(self, texts: list[str], *, prompt: str, task: str) -> np.ndarray:
        lengths = self._token_lengths(texts, prompt)
        order = np.argsort([-n for n in lengths], kind="stable")  # longest first: padding only within similar lengths
        out: np.ndarray | None = None
        budget = cpu_token_budget(self.model) if self.model.device.type == "cpu" else None
        with progress.bar(total=len(order), desc={"query": "queries"}.get(task, task + "s"), unit="text", leave=False, disable=len(order) <= self.cfg.batch_size) as bar:
            for idx in batches_by_tokens(order, lengths, self.cfg.batch_size, budget):
                # ST's own forward: prompt (and its length, for include_prompt=False pooling), lower-casing, all modules.
                emb = self.model.encode([texts[i] for i in idx], prompt=prompt, task=task, batch_size=len(idx), convert_to_tensor=True, show_progress_bar=False)
                emb = emb.float()  # (b, dim)
                if self.cfg.similarity == "cos":
                    emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
                if out is None:
                    out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
                out[idx] = emb.cpu().numpy()
                bar.update(len(idx))  # after the batch: the bar counts texts encoded, not texts started
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def cpu_token_budget(model) -> int:
    """Padded tokens per forward on CPU so the (tokens, intermediate) float32 activation fits
    CPU_CHUNK_BYTES, the cap ModernBert's CPU runs use, for the same reason: glibc serves larger
    blocks with fresh mmaps whose pages fault on first touch, in every layer. MiniLM-L6, 64 x 256
    tokens, 2-core EPYC, three rounds: 5,294-5,541 tok/s in forwards of 64 texts, 6,282-6,553 in
    forwards of 8 (2,048 tokens). Results do not depend on it beyond float rounding."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    inter = getattr(config, "intermediate_size", None) or 4 * getattr(config, "hidden_size", 1024)
    return max(1, CPU_CHUNK_BYTES // (inter * 4))


def batches_by_tokens(order, lengths, batch_size: int, budget: int | None) -> Iterator[list[int]]:
    """Consecutive runs of `order` of at most `batch_size` texts and, when a budget is given, at most
    `budget` padded tokens (rows x the run's longest length); a text longer than the budget is a
    batch of its own. Longest-first order pads least; any order works (the throughput benchmark
    also batches documents in their generated order)."""
    batch: list[int] = []
    longest = 0  # of the texts in `batch`
    for i in order:
        full = len(batch) == batch_size or (budget is not None and (len(batch) + 1) * max(longest, lengths[i]) > budget)
        if batch and full:
            yield batch
            batch, longest = [], 0
        batch.append(int(i))
        longest = max(longest, lengths[i])
    if batch:
        yield batch
