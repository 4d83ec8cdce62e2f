"""ModernBERT encoder that runs on packed (unpadded) tokens end to end.

Warner et al., "Smarter, Better, Faster, Longer: A Modern Bidirectional Encoder for Fast,
Memory Efficient, and Long Context Finetuning and Inference", arXiv 2412.13663 (2024).

The architecture is transformers' `ModernBertModel` (same parameter names, same state dict, same
config.json), but padding is removed once, after the token ids are read, and every layer
(embedding norm, Wqkv, RoPE, attention, Wo, GeGLU MLP, norms) runs on (total_nnz, H) packed tokens
(paper section 2.1.3). Attention is variable-length (`encoders.attention`): global in every third
layer, a 128-token sliding window (|i - j| <= 64) elsewhere.

Shapes used throughout:
    B, T       batch size and padded length (only at the padded entry point `forward`)
    N          total_nnz, the number of real tokens in the batch
    H          hidden size; nh heads of hd = H / nh; I intermediate size

Example:
    >>> cfg = ModernBertConfig.tiny()
    >>> model = ModernBert(cfg).eval()
    >>> ids = torch.randint(0, cfg.vocab_size, (2, 10)); mask = torch.ones(2, 10, dtype=torch.long)
    >>> model(input_ids=ids, attention_mask=mask).last_hidden_state.shape
    torch.Size([2, 10, 64])
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import BaseModelOutput

from encoders.attention import select_backend, varlen_attention
from encoders.modernbert_config import ModernBertConfig
from encoders.padding import pad, position_ids_from_cu_seqlens, unpad

# ----------------------------------------------------------------------------- RoPE (pure functions)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables (Su et al., 2021) for the given positions, in float32.

    Args:
        positions: (N,) integer position of each token within its sequence.
    Returns:
        cos, sin: (N, hd), frequencies theta^(-2i/hd) repeated for both halves (the
        `rotate_half` layout of transformers / GPT-NeoX).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (N, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (N, hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (N, ..., hd) by position (cos, sin: (N, hd)); float32 maths, returned in x's dtype.

    x * cos + rotate_half(x) * sin, written as one multiply and two in-place `addcmul_` on the
    halves (no `cat`, no negated copy); the middle dims broadcast, so q and k rotate in one call.
    """
    h = x.shape[-1] // 2
    bshape = (x.shape[0],) + (1,) * (x.dim() - 2) + (-1,)
    cos, sin_h = cos.view(bshape), sin[:, :h].view(bshape)  # both halves of sin are equal
    xf = x.float()
    out = xf * cos
    out[..., :h].addcmul_(xf[..., h:], sin_h, value=-1.0)  # first half:  x1 cos - x2 sin
    out[..., h:].addcmul_(xf[..., :h], sin_h)  # second half: x2 cos + x1 sin
    return out.to(x.dtype)


def sequence_chunks(cu_seqlens: torch.Tensor, max_tokens: int | None) -> list[tuple[int, int]]:
    """Split B packed sequences into runs of whole sequences of at most `max_tokens` tokens each
    (a longer sequence is a run of its own; None: one run). Returns [(first, last + 1)] indices.
    """
    if max_tokens is None:  # no .tolist(): on CUDA that would wait for the device
        return [(0, cu_seqlens.numel() - 1)]
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    if sum(lengths) <= max_tokens:
        return [(0, len(lengths))]
    chunks, lo, used = [], 0, 0
    for i, n in enumerate(lengths):
        if used and used + n > max_tokens:
            chunks.append((lo, i))
            lo, used = i, 0
        used += n
    chunks.append((lo, len(lengths)))
    return chunks


# On CPU, ModernBert.forward_packed encodes big batches in runs of whole sequences whose largest
# activation, the (n, 2 * intermediate) MLP input, stays under this size. Exact (every op is per
# token or per sequence) and faster: glibc serves blocks above its mmap threshold (32 MiB at most)
# with fresh mmaps whose pages fault on first touch, every layer. Base, fp32, 64 x 256 tokens,
# 2-core EPYC: 481-539 tok/s in one run vs 567-658 tok/s in runs of 1,024-8,192 tokens.
CPU_CHUNK_BYTES = 16 * 2**20  # also the DPR encoder's CPU cap (encoders.dpr.cpu_token_budget)


# ----------------------------------------------------------------------------- modules

ACTIVATIONS = {
    "gelu": F.gelu,  # transformers' "gelu" = exact erf GELU
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "relu": F.relu,
}


class Embeddings(nn.Module):
    """Token embedding -> LayerNorm -> dropout (no position embeddings: RoPE is in attention)."""

    def __init__(self, cfg: ModernBertConfig):
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        self.drop = nn.Dropout(cfg.embedding_dropout)

    def forward(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (N, H)
        return self.drop(self.norm(x))


class Attention(nn.Module):
    """Fused Wqkv -> RoPE -> varlen attention (global or 64-each-side window) -> Wo."""

    def __init__(self, cfg: ModernBertConfig, layer: int):
        super().__init__()
        self.nh, self.hd = cfg.num_attention_heads, cfg.head_dim
        self.window = None if cfg.is_global(layer) else cfg.local_attention // 2
        self.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.Wo = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.attention_bias)
        self.out_drop = nn.Dropout(cfg.attention_dropout)

    def forward(self, x, cos, sin, cu_seqlens, max_len, backend, cache=None):
        N, H = x.shape
        qkv = self.Wqkv(x).view(N, 3, self.nh, self.hd)  # (N, 3, nh, hd)
        q, k = apply_rope(qkv[:, :2], cos, sin).unbind(dim=1)  # each (N, nh, hd); rotated together
        v = qkv[:, 2]
        y = varlen_attention(q, k, v, cu_seqlens, max_len, window=self.window, backend=backend, cache=cache)
        return self.out_drop(self.Wo(y.reshape(N, H)))


class MLP(nn.Module):
    """GeGLU (Shazeer, 2020): Wi -> (input, gate) -> act(input) * gate -> Wo."""

    def __init__(self, cfg: ModernBertConfig):
        super().__init__()
        self.Wi = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=cfg.mlp_bias)
        self.act = ACTIVATIONS[cfg.hidden_activation]
        self.drop = nn.Dropout(cfg.mlp_dropout)
        self.Wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x):
        inp, gate = self.Wi(x).chunk(2, dim=-1)  # (N, I) each
        h = self.act(inp)
        h = h.mul_(gate) if not torch.is_grad_enabled() else h * gate  # in place when nothing is saved for backward
        return self.Wo(self.drop(h))  # (N, H)


class Layer(nn.Module):
    """Pre-norm block; layer 0 has no attention norm (the embeddings were just normalised)."""

    def __init__(self, cfg: ModernBertConfig, layer: int):
        super().__init__()
        self.attn_norm = nn.Identity() if layer == 0 else nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cu_seqlens, max_len, backend, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cu_seqlens, max_len, backend, cache)
        return x + self.mlp(self.mlp_norm(x))


class ModernBert(nn.Module):
    """ModernBERT backbone on packed tokens; state dict identical to transformers' ModernBertModel.

    `forward` takes a padded batch (what tokenizers and sentence-transformers produce) and returns
    a padded `last_hidden_state`; `forward_packed` is the core on already-packed tokens.
    `attn_backend` is a key of `encoders.attention.BACKENDS` or "auto"; `last_backend` records
    which backend the latest forward used.
    """

    def __init__(self, cfg: ModernBertConfig, *, attn_backend: str = "auto"):
        super().__init__()
        if cfg.attention_dropout > 0:
            warnings.warn("attention_dropout > 0: dropout is applied after Wo only, not on attention probabilities")
        self.cfg = cfg
        self.attn_backend = attn_backend
        self.last_backend: str | None = None
        self.chunk_tokens: int | None = None  # tokens per run on CPU; None: from CPU_CHUNK_BYTES; 0: never split
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList([Layer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)

    @property
    def device(self) -> torch.device:
        return self.final_norm.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.final_norm.weight.dtype

    def forward_packed(
        self,
        input_ids: torch.Tensor | None,
        cu_seqlens: torch.Tensor,
        max_len: int,
        *,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode packed sequences.

        Args:
            input_ids:     (N,) token ids of all sequences concatenated (or None with inputs_embeds).
            cu_seqlens:    (B + 1,) int32 cumulative lengths; RoPE positions restart at each start.
            max_len:       longest sequence (<= max_position_embeddings).
            inputs_embeds: (N, H) instead of input_ids, fed to the embedding norm.
        Returns:
            (N, H) final hidden states.
        """
        x = self.embeddings(input_ids, inputs_embeds)  # (N, H)
        N = x.shape[0]
        backend = select_backend(x.device, x.dtype, self.attn_backend)
        self.last_backend = backend
        positions = position_ids_from_cu_seqlens(cu_seqlens, N)  # (N,)
        rope = {
            True: rope_cos_sin(positions, self.cfg.head_dim, self.cfg.global_rope_theta),
            False: rope_cos_sin(positions, self.cfg.head_dim, self.cfg.local_rope_theta),
        }  # is_global -> (cos, sin), each (N, hd)
        chunks = sequence_chunks(cu_seqlens, self._chunk_tokens(x))
        if len(chunks) == 1:
            return self._layers(x, rope, cu_seqlens, max_len, backend)
        outs = []
        for lo, hi in chunks:  # whole sequences, so every token sees exactly what it would unchunked
            s, e = int(cu_seqlens[lo]), int(cu_seqlens[hi])
            cu = cu_seqlens[lo : hi + 1] - s
            sub = {g: (c[s:e], si[s:e]) for g, (c, si) in rope.items()}
            outs.append(self._layers(x[s:e], sub, cu, int((cu[1:] - cu[:-1]).max()), backend))
        return torch.cat(outs)  # (N, H)

    def _chunk_tokens(self, x: torch.Tensor) -> int | None:
        if x.device.type != "cpu" or self.chunk_tokens == 0:
            return None  # CUDA's caching allocator reuses blocks: nothing to gain
        if self.chunk_tokens is not None:
            return self.chunk_tokens
        return max(1, CPU_CHUNK_BYTES // (2 * self.cfg.intermediate_size * x.element_size()))

    def _layers(self, x, rope, cu_seqlens, max_len, backend) -> torch.Tensor:
        """Every layer and the final norm on packed x (N, H) -> (N, H)."""
        cache: dict = {}  # what the attention backend derives from the lengths, shared by all layers
        for i, layer in enumerate(self.layers):
            cos, sin = rope[self.cfg.is_global(i)]
            x = layer(x, cos, sin, cu_seqlens, max_len, backend, cache)
        return self.final_norm(x)  # (N, H)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted for tokenizers that emit it; unused
        return_dict: bool = True,  # sentence-transformers passes it; the output is always a BaseModelOutput
    ) -> BaseModelOutput:
        """Padded entry point: (B, T) ids + mask -> BaseModelOutput(last_hidden_state=(B, T, H)).

        Pad positions of the output are zeros (transformers leaves arbitrary values there).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids, inputs_embeds")
        ref = input_ids if input_ids is not None else inputs_embeds
        B, T = ref.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.long, device=ref.device)
        packed, indices, cu_seqlens, max_len = unpad(ref, attention_mask)  # (N,) ids or (N, H) embeds
        if input_ids is not None:
            h = self.forward_packed(packed, cu_seqlens, max_len)
        else:
            h = self.forward_packed(None, cu_seqlens, max_len, inputs_embeds=packed)
        return BaseModelOutput(last_hidden_state=pad(h, indices, B, T))  # (B, T, H)

    def compile_mlps(self) -> None:
        """torch.compile(dynamic=True) each layer's GeGLU MLP: act(input) * gate fuses into one
        kernel instead of two (N, I) temporaries. Compiles on the first forward (seconds on CPU);
        measured in benchmarks/speed/throughput.py (`--models ours,ours_compiled,hf`)."""
        for layer in self.layers:
            layer.mlp.compile(dynamic=True)

    # -- checkpoints: the same files as transformers' ModernBertModel.save_pretrained ------------

    @classmethod
    def from_pretrained(cls, path: str | Path, *, attn_backend: str = "auto") -> ModernBert:
        """Load a folder with config.json + model.safetensors (ModernBertModel or ...ForMaskedLM)."""
        from transformers import ModernBertConfig as HFConfig  # lazy: loads transformers' ModernBERT module; only HF config interop needs it

        path = Path(path)
        model = cls(ModernBertConfig.from_hf(HFConfig.from_pretrained(path)), attn_backend=attn_backend)
        state = load_file(path / "model.safetensors")
        if any(k.startswith("model.") for k in state):  # a ForMaskedLM checkpoint: keep the backbone
            state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        model.load_state_dict(state, strict=True)
        return model

    def save_pretrained(self, path: str | Path, **_ignored) -> None:
        """Write config.json + model.safetensors that `transformers.ModernBertModel` loads.

        Extra keyword arguments (e.g. `safe_serialization` from sentence-transformers) are ignored:
        we always write safetensors.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.hf_config().save_pretrained(path)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, path / "model.safetensors", metadata={"format": "pt"})

    def hf_config(self):
        return self.cfg.to_hf()


__all__ = ["ModernBertConfig", "ModernBert", "rope_cos_sin", "apply_rope"]
