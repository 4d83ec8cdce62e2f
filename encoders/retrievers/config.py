"""The retriever settings of a run: one flat, frozen config per concern (model, encoding, index).

These are sections of the run spec (``benchmarks.spec.RunSpec``) and the CLI flags are built from
their fields (:mod:`retrieval.flags`). Each field says which retriever kinds it changes the
scores of (``kinds``); the pipeline keys caches and results by exactly those fields, so a
setting that changes a number can never be missing from a key. ``kinds=ALL`` applies to every
kind, including kinds defined outside this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from retrieval.flags import flag_field

ALL = ("*",)  # applies to every retriever kind
NEURAL = ("dpr", "colbert")

EncoderKind = Literal["dpr", "colbert"]
Pooling = Literal["mean", "cls", "max"]
Similarity = Literal["cos", "dot"]
DType = Literal["fp32", "bf16", "fp16", "auto"]  # auto: encoders.dtype picks bf16 or fp32 for the device
DocHandling = Literal["truncate", "maxp"]
AttnBackend = Literal["auto", "sdpa_blocked", "sdpa_loop", "flash_attn", "torch_varlen"]
FusionMethod = Literal["rrf", "combsum", "combmnz", "wsum"]  # the keys of retrieval.fusion.METHODS
FusionNorm = Literal["minmax", "zscore", "max", "none"]  # the keys of retrieval.fusion.NORMS


def _f(default, help: str, kinds: tuple[str, ...], **meta):
    return flag_field(default, help, kinds=kinds, **meta)


@dataclass(frozen=True)
class ModelConfig:
    models: tuple[str, ...] = _f(("bm25", "minilm"), "comma-separated: bm25, an alias (minilm), a local folder or a Hugging Face hub id", kinds=(), list=True)
    encoder: EncoderKind = _f("dpr", "how a neural model retrieves: dpr (single vector) or colbert (multi-vector, late interaction)", kinds=NEURAL)
    pooling: Pooling | None = _f(None, "plain Hugging Face encoders (sentence-transformers folders keep their own unless set)", kinds=("dpr",))
    similarity: Similarity = _f("cos", "cos (normalised inner product) or dot", kinds=("dpr",))
    query_prefix: str = _f("", "text prepended to every query (e.g. 'search_query: ')", kinds=NEURAL)
    doc_prefix: str = _f("", "text prepended to every document (e.g. 'search_document: ')", kinds=NEURAL)
    trust_remote_code: bool = _f(False, "allow model code from the checkpoint (and non-safetensors weights)", kinds=NEURAL, group="advanced")
    unpadded: bool = _f(True, "run ModernBERT checkpoints on our unpadded backbone (--no-unpadded: transformers' padded ModernBertModel)", kinds=NEURAL, group="advanced")
    attn_backend: AttnBackend = _f("auto", "ModernBERT attention backend (unpadded backbone)", kinds=NEURAL, group="advanced")
    compile: bool = _f(False, "torch.compile the unpadded ModernBERT's MLPs", kinds=NEURAL, group="advanced")


@dataclass(frozen=True)
class EncodingConfig:
    max_length: int | None = _f(None, "dpr: max tokens per text (default: the model's own max_seq_length)", kinds=("dpr",))
    batch_size: int = _f(64, "texts per encoding batch", kinds=NEURAL)
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu)", kinds=NEURAL, group="advanced")
    # auto is keyed as "auto" here and the retriever keys what it resolved to in its identity(): an auto run
    # never shares a result with a run that resolved otherwise (nor, being "auto", with an explicit --dtype run).
    dtype: DType = _f("fp32", "encoding precision (fp32 reproduces published numbers); auto: bf16 where the device runs it natively (a bf16 GPU, or a CPU whose measured bf16 GEMM beats fp32 by 1.3x), else fp32", kinds=NEURAL)
    query_length: int = _f(32, "colbert: query tokens, padded with [MASK] (query expansion)", kinds=("colbert",))
    doc_length: int = _f(300, "colbert: max document tokens (up to 8192 for long documents)", kinds=("colbert",))
    doc_handling: DocHandling = _f("truncate", "dpr, long documents: truncate at --max-length, or maxp (max-length windows, score = best window)", kinds=("dpr",))
    chunk_stride: int | None = _f(None, "maxp: tokens between window starts (default: the window, no overlap)", kinds=("dpr",))
    shard_size: int = _f(4096, "dpr: texts per cached embedding shard (the resume and torchrun unit)", kinds=("dpr",), group="distributed")
    token_shard_size: int = _f(1024, "colbert: documents per cached token-embedding shard (the resume and torchrun unit)", kinds=("colbert",), group="distributed")


@dataclass(frozen=True)
class IndexConfig:
    index: str = _f("flat", "dpr: flat, hnsw, ivfpq or any FAISS factory string; colbert: exact (flat means exact), faiss (ivfpq), plaid or a FAISS factory string", kinds=NEURAL)
    top_k: int = _f(1000, "hits kept per query (recall@1000 needs 1000)", kinds=ALL)
    token_store: str = _f("fp16", "colbert: the form document tokens are stored and re-ranked in: fp16 (exact, 2 x dim bytes a token), residual-4bit (centroid + 4 bits a dimension, as PLAID's nbits=4), residual-8bit, residual-pq (centroid + dim/4 bytes), or a FAISS codec factory string such as 'IVF{nlist},SQ4'", kinds=("colbert",))
    stream: bool = _f(False, "dpr, large corpora: read documents from disk per shard and build the index shard by shard (memory = index + one shard)", kinds=("dpr",))
    bm25_pad: bool = _f(False, "bm25: fill each run to --top-k with documents that share no term with the query (score 0, bm25s' order), as MTEB's bm25s baseline does, to compare with its published figures; off: matching documents only, as Lucene and Pyserini", kinds=("bm25",))


@dataclass(frozen=True)
class FusionConfig:
    """How a ``--models a+b`` entry fuses its components (:mod:`encoders.retrievers.fusion`, :mod:`retrieval.fusion`).

    ``kinds=()``, yet they change scores: their defaults depend on the entry (``a*0.3+b*0.7`` is
    wsum, ``a+b`` rrf), so the fusion retriever resolves them per entry and keys the resolved
    values in its ``identity()`` (``--fusion rrf`` and the default are one result; ``--rrf-k``
    keys only rrf), as ``--models`` is keyed through each retriever's identity.
    """

    fusion: FusionMethod | None = _f(None, "how a --models a+b entry fuses its components' runs (default: rrf; wsum for a weighted entry a*0.3+b*0.7)", kinds=())
    norm: FusionNorm | None = _f(None, "per-query score normalisation before fusing (default: the method's own: none for rrf, which reads ranks; minmax for the others)", kinds=())
    rrf_k: int = _f(60, "rrf: k in 1 / (k + rank) (Cormack et al. 2009)", kinds=())


def applies(field, kind: str) -> bool:
    """Whether a config field changes the scores of retriever ``kind``."""
    kinds = field.metadata.get("kinds", ALL)
    return kinds == ALL or kind in kinds
