"""DPR: a single-vector encoder and a FAISS index, with resumable embedding shards.

``index(corpus, ctx)`` encodes the corpus into an :class:`~retrieval.store.EmbeddingStore` under
``ctx.cache`` (a killed run resumes from its last shard; under torchrun each rank encodes its
share) and builds or loads the FAISS index for ``--index``. ``search`` encodes the queries
(cached too) and returns a BEIR run. With ``doc_handling="maxp"`` documents are cut into
max-length windows and a document scores its best window (Dai & Callan 2019).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from encoders.dpr import DenseEncoder, DenseEncoderConfig
from encoders.dtype import DtypeChoice, resolve_dtype
from encoders.loading import load_sentence_transformer, maths_versions, memory_source, model_dtype, resolve_model
from encoders.retrievers.backbone import default_device, swap_backbone, variant_suffix
from encoders.retrievers.config import EncodingConfig, IndexConfig, ModelConfig
from encoders.retrievers.protocol import Corpus, IndexContext, Queries, Run
from retrieval import dense
from retrieval.beir import LazyTexts
from retrieval.io import cache_key
from retrieval.maxp import chunk_text, max_over_chunks
from retrieval.store import EmbeddingStore

log = logging.getLogger(__name__)


def resolved_dtype(choice) -> dict:
    """``{"dtype_resolved": ...}`` when ``--dtype auto`` (an identity entry), else ``{}``.

    The spec keys the requested dtype (``encoding.dtype``); what ``auto`` became is keyed here. An
    explicit dtype adds nothing, so the keys of fp32 and bf16 runs are what they were before auto.
    """
    return {"dtype_resolved": choice.dtype} if choice.requested == "auto" else {}


def refuse_changes(model: ModelConfig, encoding: EncodingConfig, loaded) -> None:
    """A model held in memory is the caller's object: settings that would change it (pooling, max length, precision) are errors."""
    asked = [f"--{n}" for n, v in (("pooling", model.pooling), ("max-length", encoding.max_length)) if v is not None]
    if encoding.dtype not in ("fp32", model_dtype(loaded)):
        asked.append(f"--dtype {encoding.dtype}")
    if asked:
        raise ValueError(f"{', '.join(asked)} would change the model passed in memory ({model_dtype(loaded)}): set it on the model itself (model.to(...), model.max_seq_length = ...)")


def texts_key(ids: list[str], texts: list[str]) -> str:
    """A content hash of an ordered (id, text) list: keys the query-embedding cache."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts):
        h.update(f"{i}\t{t}\n".encode())
    return h.hexdigest()[:16]


class DenseRetriever:
    kind = "dpr"
    distributed = True

    def __init__(self, spec: str, model: ModelConfig, encoding: EncodingConfig, index: IndexConfig, *, loaded=None, display: str | None = None):
        """``loaded``: a SentenceTransformer held in memory (the Python API, a Trainer's evaluator), keyed by the hash of its
        weights and configuration; it is used as it is (its precision, device, max length and backbone), never changed."""
        if loaded is None:
            self.src = resolve_model(spec, trust_remote_code=model.trust_remote_code)
            device = default_device(encoding.device)
            self.dtype = resolve_dtype(encoding.dtype, device)  # auto -> fp32 or bf16 for this device, with the reason
            st = load_sentence_transformer(self.src, pooling=model.pooling, max_length=encoding.max_length, device=device, trust_remote_code=model.trust_remote_code)
        else:
            refuse_changes(model, encoding, loaded)
            self.src, st = memory_source(loaded, display), loaded
            self.dtype = DtypeChoice(model_dtype(loaded), model_dtype(loaded), "the model's own (held in memory)")
        self.encoder = DenseEncoder(st, DenseEncoderConfig(similarity=model.similarity, query_prefix=model.query_prefix, doc_prefix=model.doc_prefix, batch_size=encoding.batch_size, dtype=self.dtype.dtype))
        log.info("%s: effective max length %d tokens", self.src.name, self.encoder.max_length)
        self.backbone = swap_backbone(st, model) if loaded is None else "as held in memory"
        self.model_cfg, self.encoding, self.index_cfg = model, encoding, index
        self.name = self.src.name + variant_suffix(model, encoding, index)
        self.spec = spec
        self.index_info: dict = {}
        self.timings: dict = {}

    def identity(self) -> dict:
        enc = self.encoder
        return dict(path=str(self.src.path), revision=self.src.revision, max_length=enc.max_length, query_prompt=enc.query_prompt, doc_prompt=enc.doc_prompt, versions=maths_versions(),
                    **resolved_dtype(self.dtype))

    def provenance(self) -> dict:
        m = self.model_cfg
        return dict(model_spec=self.spec, model_path=str(self.src.path), model_revision=self.src.revision, max_length=self.encoder.max_length, pooling=m.pooling or "model default",
                    similarity=m.similarity, dtype=self.dtype.dtype, dtype_choice=self.dtype.record(), query_prefix=self.encoder.query_prompt, doc_prefix=self.encoder.doc_prompt, device=str(self.encoder.model.device), backbone=self.backbone, timings=self.timings, **self.index_info)

    # --- index ---------------------------------------------------------------------------
    def _chunks(self, doc_ids: list[str], texts) -> tuple[list[str], list[str], np.ndarray]:
        """MaxP: every document's max-length windows -> (chunk ids, chunk texts, (n_chunks,) document index)."""
        tok = self.encoder.model.tokenizer
        window = self.encoder.max_length - tok.num_special_tokens_to_add() - len(tok(self.encoder.doc_prompt, add_special_tokens=False)["input_ids"])
        chunks = [chunk_text(t, tok, window, self.encoding.chunk_stride) for t in texts[:]]
        chunk_doc = np.repeat(np.arange(len(doc_ids)), [len(c) for c in chunks])
        ids = [f"{doc_ids[d]}#{j}" for d, c in enumerate(chunks) for j in range(len(c))]
        return ids, [piece for c in chunks for piece in c], chunk_doc

    def index(self, corpus: Corpus, ctx: IndexContext) -> None:
        self.ctx, self.timings = ctx, {}
        self.doc_ids = list(corpus)
        t = time.perf_counter()
        ids, texts, self.chunk_doc = self.doc_ids, LazyTexts(corpus, self.doc_ids), None  # texts read per shard
        if self.encoding.doc_handling == "maxp":
            ids, texts, self.chunk_doc = self._chunks(self.doc_ids, texts)
            self.timings["chunks"] = len(texts)
        store = EmbeddingStore(ctx.cache / "corpus", shard_size=self.encoding.shard_size)
        d = ctx.dist
        emb = store.build(ids, texts, self.encoder.encode_documents, desc=f"encode {ctx.desc} corpus", rank=d.rank, world=d.world, barrier=d.barrier, load=not self.index_cfg.stream)
        if not d.is_main:
            return
        self.timings.update(encode_corpus_s=time.perf_counter() - t, corpus_shards_encoded=store.encoded_shards)
        t = time.perf_counter()
        self.faiss = self._open_index(store, emb, len(ids), ctx.cache)
        self.timings["index_s"] = time.perf_counter() - t

    def _open_index(self, store: EmbeddingStore, emb: np.ndarray | None, n: int, cache: Path):
        dim = int(json.loads((store.folder / "meta.json").read_text())["dim"])
        factory = dense.factory_string(self.index_cfg.index, n, dim)
        self.index_info = {"index": self.index_cfg.index, "faiss_factory": factory, "embedding_dim": dim, "doc_handling": self.encoding.doc_handling}

        def build():
            if emb is not None:
                return dense.build_index(emb, factory)
            return dense.build_index_from_shards(lambda: store.iter_shards(n), n, dim, factory)

        if factory == "Flat":  # exact search: building is a copy, caching would only duplicate the embeddings
            return build()
        path = cache / f"index-{cache_key(factory=factory, stream=self.index_cfg.stream)}.faiss"
        if path.is_file():
            return dense.load_index(path)
        index = build()
        dense.save_index(index, path)
        return index

    # --- search --------------------------------------------------------------------------
    def search(self, queries: Queries, k: int) -> Run:
        qids = list(queries)
        texts = [queries[q] for q in qids]
        t = time.perf_counter()
        q_store = EmbeddingStore(self.ctx.cache / f"queries-{texts_key(qids, texts)}", shard_size=self.encoding.shard_size)
        q_emb = q_store.build(qids, texts, self.encoder.encode_queries, desc=f"encode {self.ctx.desc} queries")
        self.timings["encode_queries_s"] = time.perf_counter() - t
        t = time.perf_counter()
        k = min(k, len(self.doc_ids))
        if self.chunk_doc is None:
            D, I = dense.search(self.faiss, q_emb, k, desc=f"search {self.ctx.desc}")
        else:
            D, I = self._maxp_search(q_emb, k)
        run = dense.to_run(D, I, qids, self.doc_ids, k=k)
        self.timings["search_s"] = time.perf_counter() - t
        return run

    def _maxp_search(self, q_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """MaxP: the top chunks, merged to documents by their best chunk; queries left with fewer than k documents
        (many of their top chunks from few documents) are searched again with twice the chunks, until k or every chunk."""
        n_chunks = len(self.chunk_doc)
        kc = min(n_chunks, 4 * (k + 1) * max(1, round(n_chunks / len(self.doc_ids))))  # enough in all but pathological cases
        D, I = max_over_chunks(*dense.search(self.faiss, q_emb, kc, desc=f"search {self.ctx.desc}"), self.chunk_doc, k)
        short = np.nonzero((I < 0).any(axis=1))[0]
        while len(short) and kc < n_chunks:
            kc = min(n_chunks, 2 * kc)
            D[short], I[short] = max_over_chunks(*dense.search(self.faiss, q_emb[short], kc, desc=f"search {self.ctx.desc} (deeper)"), self.chunk_doc, k)
            self.timings["maxp_deepened_queries"] = self.timings.get("maxp_deepened_queries", 0) + len(short)
            short = short[(I[short] < 0).any(axis=1)]
        return D, I
