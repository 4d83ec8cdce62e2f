"""Run sentence-transformers / PyLate models on the unpadded ModernBERT (`encoders.modernbert`).

    st = SentenceTransformer("answerdotai/ModernBERT-base")   # or pylate.models.ColBERT(...)
    use_unpadded_modernbert(st)                               # -> "sdpa_blocked" on CPU
    st.encode(["..."])                                        # now runs packed, no padding FLOPs

(Not a doctest: it downloads ModernBERT-base; tests/test_modernbert_st.py runs the same on a tiny checkpoint.)

The first module's `auto_model` (a transformers `ModernBertModel`) is replaced by a `ModernBert`
whose parameters ARE the same tensors (no copy): training, `st.to(...)`, `st.half()` and saving act
on one set of weights, and `st.save(...)` still writes a transformers-format checkpoint.
Paper: ModernBERT, arXiv 2412.13663 (unpadding, section 2.1.3).
"""

from __future__ import annotations

import torch
from torch import nn

from encoders.attention import select_backend
from encoders.modernbert import ModernBert, ModernBertConfig


class STModernBert(ModernBert):
    """`ModernBert` as sentence-transformers' `Transformer` module expects its `auto_model`.

    Keeps the original transformers config as `.config` (ST reads `config.output_hidden_states`,
    `get_text_config().hidden_size`, and saves it), and saves through that config.
    """

    def __init__(self, hf_config, *, attn_backend: str = "auto"):
        super().__init__(ModernBertConfig.from_hf(hf_config), attn_backend=attn_backend)
        self.config = hf_config

    def hf_config(self):
        return self.config


def share_parameters(src: nn.Module, dst: nn.Module) -> None:
    """Make every parameter of `dst` the very same `nn.Parameter` object as in `src`.

    Names must match one to one (ModernBert mirrors ModernBertModel's names); raises otherwise.
    """
    src_params, dst_names = dict(src.named_parameters()), {n for n, _ in dst.named_parameters()}
    if set(src_params) != dst_names:
        raise ValueError(f"parameter names differ: {sorted(set(src_params) ^ dst_names)[:10]}")
    for name, param in src_params.items():
        owner_name, _, leaf = name.rpartition(".")
        setattr(dst.get_submodule(owner_name), leaf, param)


def use_unpadded_modernbert(st_model, *, backend: str = "auto", compile: bool = False) -> str | None:
    """Swap the ModernBERT inside a SentenceTransformer (or PyLate ColBERT) for the unpadded one.

    Args:
        st_model: a loaded `SentenceTransformer`; its first module must be a
            `sentence_transformers.models.Transformer`.
        backend:  "auto" or a key of `encoders.attention.BACKENDS`.
        compile:  wrap each layer's GeGLU MLP in `torch.compile(dynamic=True)`.
    Returns:
        the attention backend that will run for the model's current device and dtype, or None
        (model untouched) when the first module is not a transformers ModernBERT.
    """
    from sentence_transformers.models import Transformer  # lazy: sentence-transformers is slow to import; only swapping an ST model needs it

    first = st_model[0] if len(st_model) else None
    if not isinstance(first, Transformer):
        return None
    hf = first.auto_model
    if isinstance(hf, STModernBert):  # already swapped: only the backend choice may change
        hf.attn_backend = backend
        return select_backend(hf.device, hf.dtype, backend)
    if getattr(getattr(hf, "config", None), "model_type", None) != "modernbert":
        return None

    with torch.device("meta"):  # allocate nothing: every parameter is replaced by hf's just below
        ours = STModernBert(hf.config, attn_backend=backend)
    share_parameters(hf, ours)
    ours.train(hf.training)
    if compile:
        ours.compile_mlps()
    first.auto_model = ours
    return select_backend(ours.device, ours.dtype, backend)
