"""A resumable on-disk store of per-token embeddings (float16), written shard by shard.

Layout of a :class:`TokenStore` folder:

    ids.json                 the document order
    lengths-00000.npy        (n_s,) int32   tokens per document of shard s (documents [s*S, (s+1)*S))
    tokens-00000.npy         (T_s, dim) float16, the shard's documents' tokens back to back
    meta.json                written last: {"n", "dim", "tokens", "dtype", "complete"}

A shard counts as done when its ``tokens`` file exists (it is written after ``lengths``, both
atomically), so a killed encoder resumes at the first missing shard. Token files are opened
memory-mapped: reading the store never holds the corpus in memory, let alone in float32.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from retrieval.io import atomic_save_npy, atomic_write_json
from retrieval.store import building, encode_missing, prepare_store


class TokenStore:
    """Token embeddings of an ordered list of documents, ``shard_size`` documents per shard."""

    def __init__(self, folder: Path, *, shard_size: int = 1024, lock_timeout: float | None = None):
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.lock_timeout = lock_timeout  # seconds a second writer waits for the first (None: as long as it takes)
        self.encoded_shards = 0
        self._tokens: list[np.ndarray] = []
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
              rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None) -> "TokenStore | None":
        """Encode the missing shards (``encode``: texts -> one ``(L_i, dim)`` array each), then :meth:`open`.

        With ``world > 1`` (torchrun), rank ``r`` encodes the missing shards ``i`` with
        ``i % world == r``, everyone meets at ``barrier()``, and only rank 0 opens the store and
        returns it (the others return None). A second writer of the same store waits for the first
        (``lock_timeout``), then encodes only what is still missing.
        """
        with building(self.folder, rank=rank, timeout=self.lock_timeout):
            prepare_store(self.folder, ids, rank=rank, barrier=barrier if world > 1 else None)
            missing = self.missing_shards(len(ids))
            self.encoded_shards = len(missing)  # shards this call had to encode, all ranks together (0 on a full cache hit)

            def write(i: int, embs) -> None:
                lengths = np.array([len(e) for e in embs], dtype=np.int32)
                tokens = np.concatenate([np.asarray(e, dtype=np.float16) for e in embs], axis=0)  # (T_s, dim)
                atomic_save_npy(self._path("lengths", i), lengths)
                atomic_save_npy(self._path("tokens", i), tokens)  # last: marks the shard done

            if not encode_missing(self.folder, ids, texts, self.shard_size, missing, encode, write, desc=desc, unit="doc", rank=rank, world=world, barrier=barrier):
                return None
            self.open()
            if not self.complete:
                atomic_write_json(self.folder / "meta.json", {"n": len(ids), "dim": self.dim, "tokens": self.num_tokens, "dtype": "float16", "complete": True})
            return self

    # --- reading ---------------------------------------------------------------------------
    def open(self) -> "TokenStore":
        """Memory-map every shard and compute global offsets."""
        self.ids: list[str] = json.loads((self.folder / "ids.json").read_text())
        n_shards = self.num_shards(len(self.ids))
        self._tokens = [np.load(self._path("tokens", i), mmap_mode="r") for i in range(n_shards)]
        self.lengths = np.concatenate([np.load(self._path("lengths", i)) for i in range(n_shards)]).astype(np.int64) if n_shards else np.zeros(0, np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self._shard_first_token = np.concatenate([[0], np.cumsum([len(t) for t in self._tokens])])
        self.dim = int(self._tokens[0].shape[1]) if self._tokens else 0
        return self

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.npy"))

    def shard_tokens(self, i: int) -> np.ndarray:
        """Shard ``i``'s tokens ``(T_s, dim)`` float16 (memory-mapped)."""
        return self._tokens[i]

    def chunks(self, max_tokens: int = 1 << 16) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(first_doc, tokens (T_c, dim) float16, lengths (D_c,))``: whole documents, about ``max_tokens`` tokens a chunk."""
        for s in range(len(self._tokens)):
            d_lo, d_hi = s * self.shard_size, min((s + 1) * self.shard_size, len(self))
            base = self.offsets[d_lo]
            a = d_lo
            while a < d_hi:
                # largest b with tokens(a..b) <= max_tokens, at least one document
                b = int(np.searchsorted(self.offsets, self.offsets[a] + max_tokens, side="right")) - 1
                b = min(max(b, a + 1), d_hi)
                yield a, self._tokens[s][self.offsets[a] - base : self.offsets[b] - base], self.lengths[a:b]
                a = b

    def doc(self, i: int) -> np.ndarray:
        """Document ``i``'s tokens ``(L_i, dim)`` float16."""
        s = i // self.shard_size
        base = self.offsets[s * self.shard_size]
        return self._tokens[s][self.offsets[i] - base : self.offsets[i + 1] - base]

    def gather(self, docs: np.ndarray, dtype=np.float16) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of ``docs`` back to back ``(sum L, dim)`` in ``dtype`` and their lengths ``(len(docs),)``.

        Each document is copied (and cast) once, straight into the output: no float16 concatenation
        followed by a second pass to float32.
        """
        docs = np.asarray(docs, dtype=np.int64)
        lengths = self.lengths[docs]
        out = np.empty((int(lengths.sum()), self.dim), dtype=dtype)
        pos = 0
        for i, n in zip(docs.tolist(), lengths.tolist()):
            out[pos : pos + n] = self.doc(i)
            pos += n
        return out, lengths

    def token_to_doc(self, token_ids: np.ndarray) -> np.ndarray:
        """Global token numbers -> document numbers (same shape)."""
        return np.searchsorted(self.offsets, token_ids, side="right") - 1
