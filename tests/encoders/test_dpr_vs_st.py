"""DenseEncoder against SentenceTransformer.encode: the checkpoint's own settings apply (issue 17, #12; acceptance 4b).

Settings a sentence-transformers folder carries and that change embeddings: prompts
(``config_sentence_transformers.json``: "prompts", "default_prompt_name"), the Transformer module's
``do_lower_case`` and ``max_seq_length`` (``sentence_bert_config.json``), and trailing modules such as
Normalize (``modules.json``). DenseEncoder must give ST's embeddings to 1e-5 for queries and documents.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from encoders import dpr
from encoders.dpr import DenseEncoder, DenseEncoderConfig
from encoders.loading import load_sentence_transformer, resolve_model

TEXTS = [
    "What is a Cell?",
    "  Leading and trailing spaces  ",
    "PROTEIN folding in Escherichia coli under HEAT shock",
    ("Vitamin D supplementation and BONE mineral density in post-menopausal women: a randomised controlled trial "
     "of 2,000 participants followed for five years, with fracture incidence as the secondary outcome."),
    "x",
    "The Effect of Aspirin on heart disease",
]
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="module")
def tiny_st(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT as a sentence-transformers folder with prompts, ``do_lower_case=True``, max 16 tokens, Normalize.

    Its tokenizer is made case-sensitive (MiniLM's is uncased), so ``do_lower_case`` really changes the ids.
    """
    from sentence_transformers import SentenceTransformer, models

    cased = tmp_path_factory.mktemp("tiny-cased") / "hf"
    shutil.copytree(tiny_bert, cased)
    tok_json = json.loads((cased / "tokenizer.json").read_text())
    tok_json["normalizer"]["lowercase"] = False
    (cased / "tokenizer.json").write_text(json.dumps(tok_json))
    tok_cfg = json.loads((cased / "tokenizer_config.json").read_text())
    tok_cfg["do_lower_case"] = False
    (cased / "tokenizer_config.json").write_text(json.dumps(tok_cfg))

    transformer = models.Transformer(str(cased), max_seq_length=16, do_lower_case=True)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], prompts=PROMPTS, device="cpu")
    out = tmp_path_factory.mktemp("tiny-st") / "st"
    st.save(str(out))
    return out


def _reference(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


def _ours(path: Path, cfg: DenseEncoderConfig) -> DenseEncoder:
    return DenseEncoder(load_sentence_transformer(resolve_model(str(path))), cfg)


def test_tiny_checkpoint_really_sets_prompts_lower_case_and_length(tiny_st):
    ref = _reference(tiny_st)
    assert ref.prompts["query"] == "query: " and ref.prompts["document"] == "passage: "
    assert ref[0].do_lower_case and ref.max_seq_length == 16
    tok = ref.tokenizer
    assert tok("Protein")["input_ids"] != tok("protein")["input_ids"]  # the tokenizer alone keeps case
    assert dpr.model_prompts(ref) == ("query: ", "passage: ")


@pytest.mark.parametrize("similarity, batch_size", [("dot", 64), ("cos", 2)])
def test_dense_encoder_equals_sentence_transformers_on_tiny_checkpoint(tiny_st, similarity, batch_size):
    ref = _reference(tiny_st)
    enc = _ours(tiny_st, DenseEncoderConfig(similarity=similarity, batch_size=batch_size))
    norm = similarity == "cos"
    q_ref = ref.encode_query(TEXTS, convert_to_numpy=True, normalize_embeddings=norm)  # prompt "query: "
    d_ref = ref.encode_document(TEXTS, convert_to_numpy=True, normalize_embeddings=norm)  # prompt "passage: "
    assert np.abs(q_ref - d_ref).max() > 1e-3  # the prompts matter for this model
    q, d = enc.encode_queries(TEXTS), enc.encode_documents(TEXTS)
    assert q.shape == d.shape == (len(TEXTS), 32) and q.dtype == np.float32
    assert np.abs(q - q_ref).max() <= 1e-5
    assert np.abs(d - d_ref).max() <= 1e-5


def test_dense_encoder_equals_sentence_transformers_on_minilm(minilm_path):
    texts = TEXTS + [" ".join(["a long abstract about cell biology and protein folding"] * 40)]  # > 256 tokens: cut
    ref = _reference(minilm_path)
    enc = _ours(minilm_path, DenseEncoderConfig(similarity="cos", batch_size=3))
    assert np.abs(enc.encode_queries(texts) - ref.encode_query(texts, convert_to_numpy=True, normalize_embeddings=True)).max() <= 1e-5
    assert np.abs(enc.encode_documents(texts) - ref.encode_document(texts, convert_to_numpy=True, normalize_embeddings=True)).max() <= 1e-5


def test_an_explicit_prefix_replaces_the_model_prompt_and_says_so(tiny_st, caplog):
    ref = _reference(tiny_st)
    with caplog.at_level(logging.WARNING, logger="encoders.dpr"):
        enc = _ours(tiny_st, DenseEncoderConfig(similarity="dot", query_prefix="search: "))
    assert "'search: '" in caplog.text and "'query: '" in caplog.text
    assert (enc.query_prompt, enc.doc_prompt) == ("search: ", "passage: ")
    assert np.abs(enc.encode_queries(TEXTS) - ref.encode(TEXTS, prompt="search: ", convert_to_numpy=True)).max() <= 1e-5


def test_default_prompt_name_applies_when_there_is_no_role_prompt():
    class Model:  # the two attributes model_prompts reads, as SentenceTransformer has them
        prompts = {"retrieval": "Represent this: "}
        default_prompt_name = "retrieval"

    assert dpr.model_prompts(Model()) == ("Represent this: ", "Represent this: ")
    Model.prompts = {"query": "", "document": "", "retrieval": "Represent this: "}  # ST's defaults win over the default name
    assert dpr.model_prompts(Model()) == ("", "")
    Model.prompts, Model.default_prompt_name = {"query": "q: ", "passage": "p: "}, None
    assert dpr.model_prompts(Model()) == ("q: ", "p: ")
