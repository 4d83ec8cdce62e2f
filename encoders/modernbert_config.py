"""ModernBERT's architecture as a flat frozen config, convertible to and from transformers' ``ModernBertConfig``."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModernBertConfig:
    """The architecture; field names follow transformers' ModernBertConfig / config.json."""

    vocab_size: int = 50368  # 50,280 BPE tokens padded to a multiple of 64 (paper 2.1.2)
    hidden_size: int = 768
    intermediate_size: int = 1152  # GeGLU: Wi projects to 2 * 1152, half of it is the gate
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    hidden_activation: str = "gelu"  # "gelu" (erf) as in the released checkpoints; or "gelu_pytorch_tanh"
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    global_attn_every_n_layers: int = 3  # layers 0, 3, 6, ... are global, the rest local
    local_attention: int = 128  # total window: a token sees 64 tokens each side (inclusive)
    global_rope_theta: float = 160_000.0
    local_rope_theta: float = 10_000.0
    embedding_dropout: float = 0.0
    attention_dropout: float = 0.0  # applied after Wo, as transformers does; probability dropout unsupported
    mlp_dropout: float = 0.0
    initializer_range: float = 0.02
    pad_token_id: int = 50283
    bos_token_id: int = 50281
    eos_token_id: int = 50282
    cls_token_id: int = 50281
    sep_token_id: int = 50282

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def is_global(self, layer: int) -> bool:
        return layer % self.global_attn_every_n_layers == 0

    @classmethod
    def base(cls) -> ModernBertConfig:
        return cls()

    @classmethod
    def large(cls) -> ModernBertConfig:
        return cls(hidden_size=1024, intermediate_size=2624, num_hidden_layers=28, num_attention_heads=16)

    @classmethod
    def tiny(cls, vocab_size: int = 512) -> ModernBertConfig:
        """4 layers (global, local, local, global), H=64, 4 heads: unit tests in milliseconds.

        Special ids follow `encoders.tiny_modernbert`'s tokenizer: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3.
        """
        return cls(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
            num_attention_heads=4, pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3,
        )

    # -- transformers interop: config.json uses transformers' names -------------------------------

    def to_hf(self):
        """The equivalent `transformers.ModernBertConfig`."""
        from transformers import ModernBertConfig as HFConfig  # lazy: loads transformers' ModernBERT module; only HF config interop needs it

        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("global_rope_theta", "local_rope_theta", "global_attn_every_n_layers"):
            kw.pop(name)
        kw["layer_types"] = [
            "full_attention" if self.is_global(i) else "sliding_attention" for i in range(self.num_hidden_layers)
        ]
        kw["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": self.global_rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": self.local_rope_theta},
        }
        return HFConfig(**kw, global_attn_every_n_layers=self.global_attn_every_n_layers,
                        architectures=["ModernBertModel"])

    @classmethod
    def from_hf(cls, hf) -> ModernBertConfig:
        """From a `transformers.ModernBertConfig` (old or new config.json format)."""
        n = hf.global_attn_every_n_layers
        expected = ["full_attention" if i % n == 0 else "sliding_attention" for i in range(hf.num_hidden_layers)]
        if list(hf.layer_types) != expected:
            raise ValueError(f"layer_types {hf.layer_types} is not 'global every {n} layers'; unsupported")
        rope = hf.rope_parameters
        for kind in ("full_attention", "sliding_attention"):
            if rope[kind].get("rope_type", "default") != "default":
                raise ValueError(f"rope_type {rope[kind]['rope_type']!r} unsupported (only 'default')")
        kw = {f.name: getattr(hf, f.name) for f in fields(cls) if hasattr(hf, f.name)}
        kw["global_rope_theta"] = float(rope["full_attention"]["rope_theta"])
        kw["local_rope_theta"] = float(rope["sliding_attention"]["rope_theta"])
        kw["global_attn_every_n_layers"] = n
        return cls(**kw)
