"""A resumable on-disk store of per-token embeddings, written shard by shard, read by offset.

Layout of a :class:`TokenStore` folder:

    ids.json                 the document order
    codec.faiss, codec.json  a compressed form's trained codec (:mod:`retrieval.token_codec`); none for fp16
    lengths-00000.npy        (n_s,) int32   tokens per document of shard s (documents [s*S, (s+1)*S))
    error-00000.npy          (1,) float32   a compressed shard's largest |token - decoded token| (none for fp16)
    tokens-00000.npy         (T_s, dim) float16, or (T_s, code_size) uint8 codes: the shard's documents' tokens back to back
    meta.json                written last: {"n", "dim", "tokens", "dtype", "form", "complete"}

A shard counts as done when its ``tokens`` file exists (it is written after ``lengths``, both
atomically), so a killed encoder resumes at the first missing shard.

Reading never holds the corpus: token files are read by offset (``os.pread``), not memory-mapped
(a mapping's touched pages count in the process' resident memory, so a full scan would grow it to
the corpus). :meth:`TokenStore.chunks` holds one shard at a time, :meth:`TokenStore.gather` reads
just the documents asked for. A compressed store decodes what it reads, so every reader sees
float vectors whatever the form.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from retrieval.io import atomic_save_npy, atomic_write, atomic_write_json
from retrieval.store import building, encode_missing, prepare_store
from retrieval.token_codec import FP16, Codec, factory_for, sample_order, train_size

OPEN_FILES = 64  # shard files kept open between reads


class _Npy:
    """Where a ``.npy`` file's rows start, their dtype and width: rows are read with ``pread``, the file is never mapped."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(f)
            if fortran:
                raise ValueError(f"{path}: Fortran-ordered array")
            self.start = f.tell()
        self.path, self.rows, self.width, self.dtype = path, int(shape[0]), int(shape[1]), np.dtype(dtype)
        self.row_bytes = self.width * self.dtype.itemsize


class TokenStore:
    """Token embeddings of an ordered list of documents, ``shard_size`` documents per shard, in form ``form`` (fp16 or a codec)."""

    def __init__(self, folder: Path, *, shard_size: int = 1024, lock_timeout: float | None = None, form: str = FP16, seed: int = 0):
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.lock_timeout = lock_timeout  # seconds a second writer waits for the first (None: as long as it takes)
        self.form, self.seed = form, seed
        self.codec: Codec | None = None
        self.encoded_shards = 0
        self._files: list[_Npy] = []
        self._fds: OrderedDict[int, int] = OrderedDict()
        self.offsets = np.zeros(1, dtype=np.int64)  # (n + 1,) global token offsets, filled by open()

    # --- writing ---------------------------------------------------------------------------
    def _path(self, kind: str, i: int) -> Path:
        return self.folder / f"{kind}-{i:05d}.npy"

    def num_shards(self, n: int) -> int:
        return (n + self.shard_size - 1) // self.shard_size

    def missing_shards(self, n: int) -> list[int]:
        return [i for i in range(self.num_shards(n)) if not self._path("tokens", i).is_file()]

    @property
    def complete(self) -> bool:
        meta = self.folder / "meta.json"
        return meta.is_file() and json.loads(meta.read_text()).get("complete", False)

    def build(self, ids: Sequence[str], texts: Sequence[str], encode: Callable[[list[str]], list[np.ndarray]], *, desc: str = "encode",
              rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None, contents: Sequence[str] | None = None) -> "TokenStore | None":
        """Encode the missing shards (``encode``: texts -> one ``(L_i, dim)`` array each), then :meth:`open`.

        A compressed form first trains its codec on a sample of documents chosen by content
        (:meth:`_train_codec`, rank 0 under torchrun), then stores codes: the float16 tokens are
        never written, so the store's disk is the codes alone. With ``world > 1`` (torchrun), rank
        ``r`` encodes the missing shards ``i`` with ``i % world == r``, everyone meets at
        ``barrier()``, and only rank 0 opens the store and returns it (the others return None). A
        second writer of the same store waits for the first (``lock_timeout``), then encodes only
        what is still missing. ``contents``: the documents' texts when ``texts`` are not (keys that
        ``encode`` looks tokens up by): the codec's training sample is chosen by content.
        """
        with building(self.folder, rank=rank, timeout=self.lock_timeout):
            prepare_store(self.folder, ids, rank=rank, barrier=barrier if world > 1 else None)
            missing = self.missing_shards(len(ids))
            self.encoded_shards = len(missing)  # shards this call had to encode, all ranks together (0 on a full cache hit)
            if self.form != FP16:
                if missing and rank == 0 and not (self.folder / "codec.json").is_file():
                    self._train_codec(texts, encode, texts if contents is None else contents)
                if world > 1:
                    barrier()
                self._load_codec(self.form)

            def write(i: int, embs) -> None:
                lengths = np.array([len(e) for e in embs], dtype=np.int32)
                tokens = np.concatenate([np.asarray(e, dtype=np.float16) for e in embs], axis=0)  # (T_s, dim)
                atomic_save_npy(self._path("lengths", i), lengths)
                if self.codec is None:
                    atomic_save_npy(self._path("tokens", i), tokens)  # last: marks the shard done
                    return
                x = tokens.astype(np.float32)
                codes = self.codec.encode(x)
                err = float(np.linalg.norm(self.codec.decode(codes) - x, axis=1).max()) if len(x) else 0.0
                atomic_save_npy(self._path("error", i), np.array([err], dtype=np.float32))  # the shard's largest |token - decoded|
                atomic_save_npy(self._path("tokens", i), codes)  # last: marks the shard done

            if not encode_missing(self.folder, ids, texts, self.shard_size, missing, encode, write, desc=desc, unit="doc", rank=rank, world=world, barrier=barrier):
                return None
            self.open()
            if not self.complete:
                atomic_write_json(self.folder / "meta.json", {"n": len(ids), "dim": self.dim, "tokens": self.num_tokens, "dtype": "float16" if self.codec is None else "uint8",
                                                              "form": self.form, "bytes_per_token": self.bytes_per_token(), "max_error": self.max_error, "complete": True})
            return self

    def _train_codec(self, texts: Sequence[str], encode: Callable[[list[str]], list[np.ndarray]], contents: Sequence[str], batch: int = 256) -> None:
        """Train the compressed form's codec on the tokens of documents taken in :func:`sample_order` until there are enough.

        The corpus' token count is estimated from the documents encoded so far, which sets the
        number of coarse centroids and so the sample size (:func:`retrieval.token_codec.train_size`).
        The tokens are rounded to float16 first, as every stored token is, so the codec and the
        codes are the same whether the tokens come from the encoder or from a float16 copy.
        """
        order, parts, n_tok = sample_order(contents), [], 0
        for lo in range(0, len(order), batch):
            rows = order[lo : lo + batch]
            embs = encode([texts[int(i)] for i in rows])
            parts.extend(np.asarray(e, dtype=np.float16) for e in embs)
            n_tok += sum(len(e) for e in embs)
            est = n_tok * len(order) / (lo + len(rows))
            if n_tok >= train_size(int(est)):
                break
        sample = np.concatenate(parts).astype(np.float32)[: train_size(int(est))]
        factory = factory_for(self.form, int(est), sample.shape[1])
        codec = Codec.train(factory, sample, seed=self.seed)
        buf = codec.to_bytes()
        atomic_write(self.folder / "codec.faiss", lambda f: f.write(buf))
        atomic_write_json(self.folder / "codec.json", {"form": self.form, "factory": factory, "trained_on_tokens": len(sample),
                                                       "estimated_corpus_tokens": int(est), "seed": self.seed, "code_size": codec.code_size})

    def _load_codec(self, form: str | None = None) -> None:
        """Load the trained codec and take its form; ``form``: the one the caller asked for (another is refused)."""
        meta = json.loads((self.folder / "codec.json").read_text())
        if form is not None and meta["form"] != form:
            raise RuntimeError(f"{self.folder / 'codec.json'}: a codec for form {meta['form']!r}, not {form!r}; delete {self.folder} or use --no-cache")
        self.form, self.codec = meta["form"], Codec.from_bytes(meta["factory"], (self.folder / "codec.faiss").read_bytes())

    # --- reading ---------------------------------------------------------------------------
    def open(self) -> "TokenStore":
        """Read the shards' headers and lengths and compute global offsets (no token is read)."""
        self.close()
        self.ids: list[str] = json.loads((self.folder / "ids.json").read_text())
        if self.codec is None and (self.folder / "codec.json").is_file():  # build() has loaded it already
            self._load_codec()
        n_shards = self.num_shards(len(self.ids))
        self._files = [_Npy(self._path("tokens", i)) for i in range(n_shards)]
        self.lengths = np.concatenate([np.load(self._path("lengths", i)) for i in range(n_shards)]).astype(np.int64) if n_shards else np.zeros(0, np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        # the largest distance between a stored token and what a read returns: 0 for fp16 (reads return what was stored);
        # a float perturbation of the input can flip a code, moving a decoded token by up to twice this
        self.max_error = max((float(np.load(self._path("error", i))[0]) for i in range(n_shards)), default=0.0) if self.codec is not None else 0.0
        widths = {f.width for f in self._files if f.rows}
        self.dim = (self.codec.index.d if self.codec is not None else widths.pop()) if widths else 0
        return self

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_shards_open(self) -> int:
        return len(self._files)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def nbytes(self) -> int:
        """Bytes on disk: token files, lengths and the codec."""
        return sum(p.stat().st_size for p in self.folder.glob("*.npy")) + sum(p.stat().st_size for p in self.folder.glob("codec.faiss"))

    def bytes_per_token(self) -> float:
        """Bytes of one stored token: 2 x dim for fp16, the code size for a compressed form."""
        return float(self.codec.code_size if self.codec is not None else 2 * self.dim)

    def _fd(self, s: int) -> int:
        fd = self._fds.pop(s, None)
        if fd is None:
            fd = os.open(self._files[s].path, os.O_RDONLY)
            if len(self._fds) >= OPEN_FILES:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[s] = fd
        return fd

    def _read(self, s: int, a: int, b: int) -> np.ndarray:
        """Rows ``[a, b)`` of shard ``s`` as stored (float16 tokens or uint8 codes)."""
        f = self._files[s]
        n = (b - a) * f.row_bytes
        buf = os.pread(self._fd(s), n, f.start + a * f.row_bytes) if n else b""
        if len(buf) != n:
            raise OSError(f"{f.path}: short read ({len(buf)} of {n} bytes); the store is damaged, delete {self.folder}")
        return np.frombuffer(buf, dtype=f.dtype).reshape(b - a, f.width)

    @property
    def float_dtype(self):
        """What reads return by default: float16 as stored, or float32 as a codec decodes."""
        return np.float16 if self.codec is None else np.float32

    def _decode(self, rows: np.ndarray, dtype=None) -> np.ndarray:
        return np.asarray(rows if self.codec is None else self.codec.decode(rows), dtype=dtype or self.float_dtype)

    def shard_tokens(self, i: int, dtype=None) -> np.ndarray:
        """Shard ``i``'s tokens ``(T_s, dim)`` in ``dtype`` (default :attr:`float_dtype`), read into memory (one shard)."""
        return self._decode(self._read(i, 0, self._files[i].rows), dtype)

    def chunks(self, max_tokens: int = 1 << 16, dtype=None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(first_doc, tokens (T_c, dim), lengths (D_c,))``: whole documents, about ``max_tokens`` tokens a chunk, one shard in memory at a time."""
        for s in range(len(self._files)):
            d_lo, d_hi = s * self.shard_size, min((s + 1) * self.shard_size, len(self))
            base = self.offsets[d_lo]
            shard = self.shard_tokens(s, dtype)
            a = d_lo
            while a < d_hi:
                # largest b with tokens(a..b) <= max_tokens, at least one document
                b = int(np.searchsorted(self.offsets, self.offsets[a] + max_tokens, side="right")) - 1
                b = min(max(b, a + 1), d_hi)
                yield a, shard[self.offsets[a] - base : self.offsets[b] - base], self.lengths[a:b]
                a = b
            del shard

    def doc(self, i: int, dtype=None) -> np.ndarray:
        """Document ``i``'s tokens ``(L_i, dim)``."""
        s = i // self.shard_size
        base = self.offsets[s * self.shard_size]
        return self._decode(self._read(s, int(self.offsets[i] - base), int(self.offsets[i + 1] - base)), dtype)

    def gather(self, docs: np.ndarray, dtype=None) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of ``docs`` back to back ``(sum L, dim)`` in ``dtype`` and their lengths ``(len(docs),)``.

        Each document is read (and decoded, and cast) once, straight into the output.
        """
        docs = np.asarray(docs, dtype=np.int64)
        lengths = self.lengths[docs]
        out = np.empty((int(lengths.sum()), self.dim), dtype=dtype or self.float_dtype)
        pos = 0
        for i, n in zip(docs.tolist(), lengths.tolist()):
            out[pos : pos + n] = self.doc(i, dtype)
            pos += n
        return out, lengths

    def tokens_of(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Stored tokens of documents by id, one ``(L_i, dim)`` array each: an ``encode`` for building another form of this store."""
        if not hasattr(self, "_row"):
            self._row = {d: i for i, d in enumerate(self.ids)}
        return [self.doc(self._row[d]) for d in ids]

    def token_to_doc(self, token_ids: np.ndarray) -> np.ndarray:
        """Global token numbers -> document numbers (same shape)."""
        return np.searchsorted(self.offsets, token_ids, side="right") - 1
