"""ColBERT: a multi-vector encoder over a resumable float16 token store, and one multi-vector index.

``--index`` picks the backend (:mod:`retrieval.multivector`):

    flat | exact          brute-force MaxSim (ground truth)
    faiss | ivfpq         ColBERTv1 end to end through a FAISS IVF-PQ token index, exact rerank
    plaid                 PyLate's PLAID (fast-plaid)
    <factory string>      faiss backend with that FAISS factory, e.g. "IVF1024,PQ16x8" or "HNSW32"

``--token-store`` picks the form the document tokens are kept in (:mod:`retrieval.token_codec`):
fp16 (exact), or a compressed code (residual-4bit, residual-8bit, residual-pq, a FAISS codec) that
every backend decodes when it reads tokens, for candidates and re-ranking alike. The query tokens
are always kept in float16.
"""

from __future__ import annotations

import time
from importlib.metadata import version

from encoders.colbert import ColbertConfig, ColbertEncoder, is_pylate_folder, load_colbert
from encoders.dtype import DtypeChoice, resolve_dtype
from encoders.loading import maths_versions, memory_source, model_dtype, resolve_model
from encoders.retrievers.backbone import default_device, swap_backbone, variant_suffix
from encoders.retrievers.config import EncodingConfig, IndexConfig, ModelConfig
from encoders.retrievers.dense import refuse_changes, resolved_dtype, texts_key
from encoders.retrievers.protocol import Corpus, IndexContext, Queries, Run
from retrieval import dense
from retrieval.beir import LazyTexts
from retrieval.io import cache_key
from retrieval.multivector import FaissTokenIndex, MultiVectorIndex, make_index, search_settings
from retrieval.token_codec import FP16, check_form
from retrieval.token_store import TokenStore

FAISS_PREFIXES = ("IVF", "HNSW", "PQ", "OPQ", "Flat", "SQ", "LSH", "NSG", "PCA", "RR")
DEFAULT_LENGTHS = (32, 300)


def backend_for(spec: str) -> tuple[str, dict]:
    """``--index`` value -> (backend name, options). Errors list the valid values."""
    if spec in ("flat", "exact"):
        return "exact", {}
    if spec in ("faiss", "ivfpq"):
        return "faiss", {}
    if spec == "plaid":
        return "plaid", {}
    if "," in spec or spec.startswith(FAISS_PREFIXES):
        return "faiss", {"factory": spec}
    raise ValueError(f"unknown --index {spec!r} for --encoder colbert; use exact (or flat), faiss (or ivfpq), plaid, or a FAISS factory string such as 'IVF1024,PQ32x8'")


def store_folder(form: str) -> str:
    """The token store's folder in a retriever's cache: ``corpus`` (float16) or ``corpus-<hash of the form>``."""
    return "corpus" if form == FP16 else f"corpus-{cache_key(token_store=form)}"


class ColbertRetriever:
    kind = "colbert"
    distributed = True

    def __init__(self, spec: str, model: ModelConfig, encoding: EncodingConfig, index: IndexConfig, *, loaded=None, display: str | None = None):
        """``loaded``: a PyLate ColBERT held in memory, keyed by the hash of its weights and configuration and used as it is
        (its lengths, markers, precision and device), never changed."""
        self.backend, self.options = backend_for(index.index)  # fail fast, before loading
        check_form(index.token_store)
        self.token_store = index.token_store
        if loaded is None:
            self.src = resolve_model(spec, trust_remote_code=model.trust_remote_code)
            device = default_device(encoding.device)
            self.dtype = resolve_dtype(encoding.dtype, device)  # auto -> fp32 or bf16 for this device, with the reason
        else:
            refuse_changes(model, encoding, loaded)
            own = (loaded.query_length, loaded.document_length)
            if (encoding.query_length, encoding.doc_length) not in (DEFAULT_LENGTHS, own):
                raise ValueError(f"--query-length/--doc-length {encoding.query_length}/{encoding.doc_length}: a ColBERT passed in memory keeps its own lengths "
                                 f"{own[0]}/{own[1]}; set model.query_length and model.document_length on it")
            self.src, device = memory_source(loaded, display), str(loaded.device)
            self.dtype = DtypeChoice(model_dtype(loaded), model_dtype(loaded), "the model's own (held in memory)")
        ccfg = ColbertConfig(query_length=encoding.query_length, doc_length=encoding.doc_length, batch_size=encoding.batch_size, dtype=self.dtype.dtype, device=device,
                             query_prefix=model.query_prefix or None, doc_prefix=model.doc_prefix or None)
        pl = load_colbert(self.src.path, ccfg, trust_remote_code=model.trust_remote_code) if loaded is None else loaded
        self.encoder = ColbertEncoder(pl, ccfg)
        self.backbone = swap_backbone(pl, model) if loaded is None else "as held in memory"  # ModernBERT checkpoints run on our unpadded backbone (same weights)
        self.pylate_folder = is_pylate_folder(self.src.path) if loaded is None else True
        self.skiplist = sorted(pl.skiplist_words)
        self.expansion = (bool(pl.do_query_expansion), bool(pl.attend_to_expansion_tokens))
        enc = self.encoder
        extra = [f"q{enc.query_length}", f"d{enc.doc_length}"] if (enc.query_length, enc.doc_length) != DEFAULT_LENGTHS else []
        self.name = self.src.name + variant_suffix(model, encoding, index) + (f" [{', '.join(extra)}]" if extra else "")
        self.spec, self.device, self.encoding, self.index_spec = spec, ccfg.device, encoding, index.index
        self.projection_seed = ccfg.projection_seed
        self.info: dict = {}
        self.timings: dict = {}

    def identity(self) -> dict:
        enc = self.encoder
        return dict(path=str(self.src.path), revision=self.src.revision, pylate_folder=self.pylate_folder, projection_seed=None if self.pylate_folder else self.projection_seed,
                    dim=enc.dim, query_length=enc.query_length, doc_length=enc.doc_length, query_prefix=enc.query_prefix, doc_prefix=enc.doc_prefix,
                    query_expansion=self.expansion[0], attend_to_expansion_tokens=self.expansion[1], skiplist=self.skiplist,
                    versions={**maths_versions(), **({"fast-plaid": version("fast-plaid")} if self.backend == "plaid" else {})},
                    search=search_settings(self.backend),  # the backend's result-changing defaults: a new default is a new result
                    **resolved_dtype(self.dtype))

    def provenance(self) -> dict:
        ident = {k: v for k, v in self.identity().items() if k not in ("path", "revision", "skiplist", "search", "dtype_resolved")}
        return dict(model_spec=self.spec, model_path=str(self.src.path), model_revision=self.src.revision, kind="colbert", **ident, dtype=self.dtype.dtype, dtype_choice=self.dtype.record(), device=self.device, backbone=self.backbone, timings=self.timings, **self.info)

    def index(self, corpus: Corpus, ctx: IndexContext) -> None:
        self.ctx, self.doc_ids = ctx, list(corpus)
        d = ctx.dist
        t = time.perf_counter()
        texts = contents = LazyTexts(corpus, self.doc_ids)
        encode = self.encoder.encode_documents
        if self.token_store != FP16:
            # every form of one corpus lives in this folder (the form keys the result, not the folder): a compressed
            # store is made from the float16 tokens when a complete fp16 store is here, with the same codes as from
            # the encoder (the codec reads float16-rounded tokens either way), and is otherwise encoded directly
            fp16 = TokenStore(ctx.cache / "corpus", shard_size=self.encoding.token_shard_size)
            if fp16.complete and fp16.open().ids == self.doc_ids:
                texts, encode = self.doc_ids, fp16.tokens_of
        store = TokenStore(ctx.cache / store_folder(self.token_store), shard_size=self.encoding.token_shard_size, form=self.token_store)
        store.build(self.doc_ids, texts, encode, desc=f"encode {ctx.desc} corpus", rank=d.rank, world=d.world, barrier=d.barrier, contents=contents)
        if not d.is_main:
            return
        self.timings.update(encode_corpus_s=time.perf_counter() - t, corpus_shards_encoded=store.encoded_shards)
        t = time.perf_counter()
        self.mv_index = self._open_index(store)
        self.timings["index_s"] = time.perf_counter() - t
        self.info = {"index": self.index_spec, "colbert_backend": self.backend, "embedding_dim": store.dim, "corpus_tokens": store.num_tokens, "token_store_bytes": store.nbytes(),
                     "token_store": self.token_store, "token_store_bytes_per_token": store.bytes_per_token(), **({"token_codec": store.codec.factory, "token_max_error": store.max_error} if store.codec else {})}

    def _form_key(self) -> dict:
        """An index built over a compressed store's tokens is another index (fp16 keeps the keys it always had)."""
        return {} if self.token_store == FP16 else {"token_store": self.token_store}

    def _open_index(self, store: TokenStore) -> MultiVectorIndex:
        """Make the backend with its cache location (keyed by the index options) and build or load it."""
        if self.backend == "faiss":
            index = FaissTokenIndex(**self.options)
            key = cache_key(factory=index.factory, seed=index.seed, train_per_centroid=index.train_per_centroid, tokens=store.num_tokens, **self._form_key())
            index.cache_path = self.ctx.cache / f"index-faiss-{key}.faiss"
        elif self.backend == "plaid":
            index = make_index("plaid", **self.options)
            key = cache_key(nbits=index.nbits, kmeans_niters=index.kmeans_niters, n_samples_kmeans=index.n_samples_kmeans, seed=index.seed, fast_plaid=version("fast-plaid"), **self._form_key())
            index.folder = self.ctx.cache / f"index-plaid-{key}"
        else:
            index = make_index(self.backend, **self.options)
        index.build(store)
        return index

    def search(self, queries: Queries, k: int) -> Run:
        qids = list(queries)
        texts = [queries[q] for q in qids]
        t = time.perf_counter()
        q_store = TokenStore(self.ctx.cache / f"queries-{texts_key(qids, texts)}", shard_size=self.encoding.token_shard_size)
        q_store.build(qids, texts, self.encoder.encode_queries, desc=f"encode {self.ctx.desc} queries")
        self.timings["encode_queries_s"] = time.perf_counter() - t
        t = time.perf_counter()
        k = min(k, len(self.doc_ids))
        D, I = self.mv_index.search([q_store.doc(i) for i in range(len(q_store))], k)
        run = dense.to_run(D, I, qids, self.doc_ids, k=k)
        self.timings["search_s"] = time.perf_counter() - t
        idx = self.mv_index
        if self.backend == "faiss":
            self.info.update(faiss_factory=idx.factory_used, k_tokens=idx.k_tokens, n_rerank=idx.n_rerank, nprobe=idx.nprobe_used)
        if self.backend == "plaid":
            self.info.update(plaid=dict(nbits=idx.nbits, kmeans_niters=idx.kmeans_niters, n_ivf_probe=idx.n_ivf_probe, n_full_scores=idx.n_full_scores, rerank=idx.rerank, n_rerank=idx.n_rerank))
        if self.backend in ("faiss", "plaid"):  # queries with fewer candidates than k, searched exactly (retrieval.multivector.fill_short)
            self.info["exact_filled_queries"] = self.info.get("exact_filled_queries", 0) + idx.filled
        return run
