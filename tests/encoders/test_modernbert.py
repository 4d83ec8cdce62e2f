"""encoders.modernbert against transformers' ModernBertModel (attn_implementation="sdpa").

Same random weights (ours loads the transformers model's state dict); compared at non-pad positions.
"""

import pytest
import torch
from transformers import ModernBertConfig as HFConfig
from transformers import ModernBertModel

from encoders.modernbert import CPU_CHUNK_BYTES, ModernBert, ModernBertConfig, apply_rope, rope_cos_sin, sequence_chunks
from encoders.padding import position_ids_from_cu_seqlens


def make_pair(cfg=None, seed=0, dtype=torch.float32):
    cfg = cfg or ModernBertConfig.tiny()
    torch.manual_seed(seed)
    hf = ModernBertModel._from_config(cfg.to_hf(), attn_implementation="sdpa").eval().to(dtype)
    ours = ModernBert(cfg).eval().to(dtype)
    ours.load_state_dict(hf.state_dict())
    return hf, ours


def make_batch(lens, vocab=512, pad_id=0, seed=0):
    torch.manual_seed(seed)
    T = max(lens)
    mask = (torch.arange(T)[None, :] < torch.tensor(lens)[:, None]).long()  # (B, T) right padding
    ids = torch.randint(5, vocab, (len(lens), T)).masked_fill(mask == 0, pad_id)
    return ids, mask


BATCHES = {
    "mixed": [300, 17, 600, 128, 129, 1],  # longer than the 128 window, so local layers are local
    "heavy_padding": [512, 3, 2, 5, 1],
    "no_padding": [200, 200, 200],
}


# ----------------------------------------------------------------------------- config and weights


def test_presets():
    base, large = ModernBertConfig.base(), ModernBertConfig.large()
    assert (base.num_hidden_layers, base.hidden_size, base.intermediate_size, base.num_attention_heads) == (22, 768, 1152, 12)
    assert (large.num_hidden_layers, large.hidden_size, large.intermediate_size, large.num_attention_heads) == (28, 1024, 2624, 16)
    assert (base.vocab_size, base.local_attention, base.global_attn_every_n_layers) == (50368, 128, 3)
    assert (base.global_rope_theta, base.local_rope_theta, base.max_position_embeddings) == (160_000.0, 10_000.0, 8192)
    assert [base.is_global(i) for i in range(7)] == [True, False, False, True, False, False, True]


def test_hf_config_round_trip():
    cfg = ModernBertConfig.base()
    hf = cfg.to_hf()
    assert hf.layer_types == HFConfig().layer_types  # transformers' defaults describe ModernBERT-base
    assert hf.sliding_window == 64
    assert ModernBertConfig.from_hf(hf) == cfg
    assert ModernBertConfig.from_hf(HFConfig()) == cfg


def test_state_dict_keys_match_transformers():
    hf, ours = make_pair()
    assert list(ours.state_dict()) == list(hf.state_dict())
    assert "layers.0.attn_norm.weight" not in ours.state_dict()  # layer 0: Identity
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in hf.state_dict().items()}


def test_bias_flags_respected():
    cfg = ModernBertConfig(**{**ModernBertConfig.tiny().__dict__, "attention_bias": True, "mlp_bias": True, "norm_bias": True})
    hf, ours = make_pair(cfg)
    assert "layers.1.attn.Wqkv.bias" in ours.state_dict() and "final_norm.bias" in ours.state_dict()
    assert list(ours.state_dict()) == list(hf.state_dict())


def test_save_load_round_trip_with_transformers(tmp_path):
    hf, ours = make_pair()
    ids, mask = make_batch([40, 7])
    hf.save_pretrained(tmp_path / "hf")
    loaded = ModernBert.from_pretrained(tmp_path / "hf").eval()
    ours.save_pretrained(tmp_path / "ours")
    back = ModernBertModel.from_pretrained(tmp_path / "ours", attn_implementation="sdpa").eval()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(loaded(ids, mask).last_hidden_state[mask.bool()], ref[mask.bool()])
        torch.testing.assert_close(back(input_ids=ids, attention_mask=mask).last_hidden_state, ref)


# ----------------------------------------------------------------------------- RoPE (hand-made)


def test_rope_hand_made():
    cos, sin = rope_cos_sin(torch.tensor([0, 1]), head_dim=2, theta=10_000.0)  # inv_freq = [1.0]
    torch.testing.assert_close(cos, torch.tensor([[1.0, 1.0], [torch.cos(torch.tensor(1.0)).item()] * 2]))
    x = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])  # (N=2, nh=1, hd=2)
    out = apply_rope(x, cos, sin)
    c, s = torch.cos(torch.tensor(1.0)), torch.sin(torch.tensor(1.0))
    torch.testing.assert_close(out, torch.stack([torch.tensor([[1.0, 0.0]]), torch.stack([c, s])[None]]))


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("name", list(BATCHES))
def test_forward_matches_transformers_fp32(name):
    hf, ours = make_pair()
    ids, mask = make_batch(BATCHES[name])
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape == ref.shape
    m = mask.bool()
    assert (out[m] - ref[m]).abs().max().item() <= 1e-4
    assert out[~m].abs().max().item() == 0.0 if (~m).any() else True
    assert ours.last_backend == "sdpa_blocked"


def test_forward_matches_with_loop_backend():
    hf, ours = make_pair()
    ours.attn_backend = "sdpa_loop"
    ids, mask = make_batch(BATCHES["mixed"])
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (out[mask.bool()] - ref[mask.bool()]).abs().max().item() <= 1e-4
    assert ours.last_backend == "sdpa_loop"


def test_sequence_output_independent_of_batch():
    _, ours = make_pair()
    ids, mask = make_batch([300, 50, 130])
    with torch.no_grad():
        batched = ours(ids, mask).last_hidden_state[1, :50]
        alone = ours(ids[1:2, :50], mask[1:2, :50]).last_hidden_state[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_sequence_chunks_hand_made():
    cu = torch.tensor([0, 300, 317, 917, 1045, 1174, 1175])  # lengths 300, 17, 600, 128, 129, 1
    assert sequence_chunks(cu, 400) == [(0, 2), (2, 3), (3, 6)]  # 317 | 600 (alone: > 400) | 258
    assert sequence_chunks(cu, None) == [(0, 6)]
    assert sequence_chunks(cu, 1175) == [(0, 6)]
    assert sequence_chunks(cu, 1) == [(i, i + 1) for i in range(6)]


def test_chunked_forward_is_exact_and_keeps_gradients():
    hf, ours = make_pair()
    cfg = ours.cfg
    x = torch.zeros(1, 1)
    assert ours._chunk_tokens(x) == CPU_CHUNK_BYTES // (2 * cfg.intermediate_size * 4)  # default, fp32 on CPU
    ids, mask = make_batch(BATCHES["mixed"])
    m = mask.bool()
    outs = {}
    for chunk in (0, 400, 1):  # never split; runs of <= 400 tokens; one sequence per run
        ours.chunk_tokens = chunk
        ours.zero_grad()
        out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        out[m].square().sum().backward()
        outs[chunk] = (out.detach(), ours.layers[1].mlp.Wi.weight.grad.clone())
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    for chunk in (400, 1):
        assert (outs[chunk][0][m] - ref[m]).abs().max().item() <= 1e-4
        torch.testing.assert_close(outs[chunk][0], outs[0][0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(outs[chunk][1], outs[0][1], atol=1e-5, rtol=1e-5)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_gradients_match_transformers():
    hf, ours = make_pair()
    ids, mask = make_batch(BATCHES["mixed"][:4])
    m = mask.bool()
    torch.manual_seed(3)
    w = torch.randn(*ids.shape, 64)
    embeds = hf.embeddings.tok_embeddings(ids).detach()  # (B, T, H), the input of the embedding norm

    grads = {}
    for name, model in (("hf", hf), ("ours", ours)):
        x = embeds.clone().requires_grad_(True)
        model.zero_grad()
        out = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        (out * w)[m].sum().backward()
        grads[name] = {"inputs_embeds": x.grad[m]} | {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert set(grads["hf"]) == set(grads["ours"])
    # every weight but the (bypassed) token embedding got a gradient, plus inputs_embeds
    assert len(grads["ours"]) == len(list(ours.parameters())) - 1 + 1
    for k in grads["hf"]:
        assert _rel(grads["ours"][k], grads["hf"][k]) <= 1e-4, k


def test_bf16_matches_transformers():
    hf, ours = make_pair(dtype=torch.bfloat16)
    ids, mask = make_batch(BATCHES["mixed"])
    m = mask.bool()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.dtype == torch.bfloat16
    assert _rel(out.float()[m], ref[m]) <= 2e-2


def test_8192_tokens_one_sequence():
    hf, ours = make_pair()
    ids, mask = make_batch([8192], seed=4)
    cu = torch.tensor([0, 8192], dtype=torch.int32)
    assert position_ids_from_cu_seqlens(cu, 8192)[-1].item() == 8191
    with torch.no_grad():
        out = ours(ids, mask).last_hidden_state
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape == (1, 8192, 64) and torch.isfinite(out).all()
    assert (out - ref).abs().max().item() <= 1e-4


def test_gpu_equivalence_script_runs_every_backend_this_device_has():
    from benchmarks.speed.gpu_equivalence import check, runnable

    assert runnable("flash_attn", "cuda", torch.float32) == "fp16/bf16 only"
    assert runnable("torch_varlen", "cpu", torch.bfloat16) == "CUDA only"
    assert runnable("sdpa_blocked", "cpu", torch.float32) is None
    rows = {(r["dtype"], r["backend"]): r for r in check("tiny", "cpu", ["fp32", "bf16"], [300, 17, 130, 1])}
    assert rows[("fp32", "torch_varlen")]["skipped"] == "CUDA only"
    for dtype in ("fp32", "bf16"):
        for backend in ("sdpa_blocked", "sdpa_loop"):
            r = rows[(dtype, backend)]
            assert r["ran"] == backend and r["ok"], r
    assert rows[("fp32", "sdpa_blocked")]["max_abs"] <= 1e-4
