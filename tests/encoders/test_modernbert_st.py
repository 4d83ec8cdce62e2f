"""encoders.modernbert_st + encoders.tiny_modernbert: the swap inside sentence-transformers, end to end."""

import hashlib

import pytest
import torch
from sentence_transformers import SentenceTransformer

from encoders.modernbert_st import STModernBert, use_unpadded_modernbert
from encoders.tiny_modernbert import make_tiny_checkpoint

TEXTS = [
    "the model reads long documents quickly.",
    "a retriever ranks relevant results " * 60,  # ~360 tokens: longer than the local window
    "zebra!",
    "each document stores dense vectors in many languages. " * 3,
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


def test_tiny_checkpoint_is_deterministic(tiny_dir, tmp_path):
    other = make_tiny_checkpoint(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert hashlib.sha256((tiny_dir / name).read_bytes()).digest() == hashlib.sha256((other / name).read_bytes()).digest(), name
    different = make_tiny_checkpoint(tmp_path / "seed1", seed=1)
    assert (different / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()


def test_tokenizer_ids_match_config(tiny_dir):
    st = SentenceTransformer(str(tiny_dir), device="cpu")
    tok, cfg = st.tokenizer, st[0].auto_model.config
    assert (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id) == (cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id)
    assert len(tok) <= cfg.vocab_size
    features = st.tokenize(["hello world"])
    assert set(features) == {"input_ids", "attention_mask"}
    assert features["input_ids"][0, 0].item() == tok.cls_token_id and features["input_ids"][0, -1].item() == tok.sep_token_id


def test_swap_gives_same_embeddings(tiny_dir):
    st = SentenceTransformer(str(tiny_dir), device="cpu")
    ref = st.encode(TEXTS, convert_to_tensor=True, batch_size=4)
    hf = st[0].auto_model
    assert use_unpadded_modernbert(st) == "sdpa_blocked"
    ours = st[0].auto_model
    assert isinstance(ours, STModernBert)
    for (name, p), (name2, p2) in zip(hf.named_parameters(), ours.named_parameters()):
        assert name == name2 and p is p2  # the same tensors, not copies
    out = st.encode(TEXTS, convert_to_tensor=True, batch_size=4)
    assert ours.last_backend == "sdpa_blocked"
    assert (out - ref).abs().max().item() <= 1e-5
    assert use_unpadded_modernbert(st, backend="sdpa_loop") == "sdpa_loop"  # idempotent, backend switch
    out_loop = st.encode(TEXTS, convert_to_tensor=True, batch_size=2)
    assert (out_loop - ref).abs().max().item() <= 1e-5


def test_swapped_model_saves_a_transformers_checkpoint(tiny_dir, tmp_path):
    st = SentenceTransformer(str(tiny_dir), device="cpu")
    use_unpadded_modernbert(st)
    with torch.no_grad():
        for p in st.parameters():  # change the weights through the ST handle: ours must see it
            p.mul_(1.5)
    out = st.encode(TEXTS, convert_to_tensor=True)
    st.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")  # plain transformers model again
    assert type(reloaded[0].auto_model).__name__ == "ModernBertModel"
    assert (reloaded.encode(TEXTS, convert_to_tensor=True) - out).abs().max().item() <= 1e-5


def test_non_modernbert_is_left_alone(tiny_dir, tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "bert")
    SentenceTransformer(str(tiny_dir))[0].tokenizer.save_pretrained(tmp_path / "bert")
    st = SentenceTransformer(str(tmp_path / "bert"), device="cpu")
    before = st[0].auto_model
    assert use_unpadded_modernbert(st) is None
    assert st[0].auto_model is before


def test_pylate_colbert_swap(tiny_dir):
    from pylate import models

    colbert = models.ColBERT(model_name_or_path=str(tiny_dir), device="cpu")
    ref = colbert.encode(TEXTS, is_query=False, convert_to_tensor=False)
    assert use_unpadded_modernbert(colbert) == "sdpa_blocked"
    out = colbert.encode(TEXTS, is_query=False, convert_to_tensor=False)
    assert [r.shape for r in ref] == [o.shape for o in out]
    for r, o in zip(ref, out):
        assert abs(torch.as_tensor(r) - torch.as_tensor(o)).max().item() <= 1e-5
