"""A tiny random ModernBERT checkpoint (model + tokenizer) built offline, for tests.

`make_tiny_checkpoint(dir)` writes a folder that `transformers.AutoModel`, `AutoTokenizer` and
`sentence_transformers.SentenceTransformer(dir)` load like a real ModernBERT checkpoint:

    config.json, model.safetensors            transformers.ModernBertModel.save_pretrained
    tokenizer.json, tokenizer_config.json     a `tokenizers` WordPiece tokenizer whose 512-entry
                                              vocabulary is counted from generated English text

Deterministic (same seed -> same bytes of model.safetensors and tokenizer.json) and fast (< 1 s).
ModernBERT itself: arXiv 2412.13663.

Example:
    >>> import tempfile
    >>> from sentence_transformers import SentenceTransformer
    >>> path = make_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny")
    >>> SentenceTransformer(str(path), device="cpu").encode(["hello world"]).shape
    (1, 64)
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from pathlib import Path

import torch

from encoders.modernbert import ModernBertConfig

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4, as ModernBertConfig.tiny()
VOCAB_SIZE = 512

_SUBJECTS = "the model|a retriever|the index|our encoder|the query|each document|a user|the corpus|this paper|the ranker".split("|")
_VERBS = "reads|encodes|retrieves|ranks|scores|returns|stores|compares|searches|finds|answers|summarizes".split("|")
_OBJECTS = (
    "long documents|short passages|relevant results|dense vectors|token embeddings|the best answer|"
    "scientific claims|code snippets|news articles|medical questions|financial reports|legal contracts"
).split("|")
_TAILS = (
    "quickly|with attention|in a few milliseconds|on the graphics card|for every question|"
    "without padding|using rotary positions|at eight thousand tokens|in many languages|after fine tuning"
).split("|")


def english_lines(n: int = 400, *, seed: int = 0) -> list[str]:
    """n generated English sentences (subject verb object tail.), deterministic in seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
        for _ in range(n)
    ]


def build_vocab(lines: list[str], size: int = VOCAB_SIZE) -> dict[str, int]:
    """WordPiece vocabulary: special tokens, every printable ASCII character alone and as a
    "##" continuation (so any English text tokenizes without [UNK]), then the corpus words by
    descending frequency (ties alphabetical), up to `size` entries.

    Counted here rather than with `tokenizers.trainers.WordPieceTrainer`, whose result varies from
    run to run when pair counts tie (we saw 4 different vocabularies in 4 runs on the same text).
    """
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    tokens = SPECIAL_TOKENS + chars + ["##" + c for c in chars]
    counts = Counter(w for line in lines for w in re.findall(r"\w+", line.lower()))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in tokens]
    tokens += words[: max(0, size - len(tokens))]
    return {t: i for i, t in enumerate(tokens)}


def make_tokenizer(lines: list[str]):
    """A lower-casing WordPiece tokenizer (the `tokenizers` library), wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # lazy: only building a tiny checkpoint (tests, speed scripts) needs it
    from transformers import PreTrainedTokenizerFast  # lazy: only building a tiny checkpoint (tests, speed scripts) needs it

    tok = Tokenizer(models.WordPiece(build_vocab(lines), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],  # ModernBERT has no token types
        model_max_length=8192,
    )


def make_tiny_checkpoint(dir: str | Path, *, seed: int = 0, cfg: ModernBertConfig | None = None) -> Path:
    """Write a tiny random ModernBERT (transformers format) plus its tokenizer to `dir`.

    Args:
        dir:  output folder (created).
        seed: seeds both the generated text and the weights.
        cfg:  architecture; default `ModernBertConfig.tiny()` (4 layers, H=64, vocab 512). Its
              special token ids must match the tokenizer's ([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3).
    Returns:
        the folder, as a Path.
    """
    from transformers import ModernBertModel  # lazy: loads transformers' ModernBERT model code; only building a tiny checkpoint needs it

    path = Path(dir)
    path.mkdir(parents=True, exist_ok=True)
    cfg = cfg or ModernBertConfig.tiny(vocab_size=VOCAB_SIZE)
    tokenizer = make_tokenizer(english_lines(seed=seed))
    if len(tokenizer) > cfg.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens > vocab_size {cfg.vocab_size}")
    tokenizer.save_pretrained(path)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ModernBertModel._from_config(cfg.to_hf(), attn_implementation="sdpa")
    model.save_pretrained(path, safe_serialization=True)
    return path
