"""Check (not a test: CI has no GPU): our unpadded ModernBERT with every attention backend that runs
on this device, against transformers' ModernBertModel (sdpa) on the same random weights.

One mixed-length batch (sequences shorter and longer than the 128-token window, heavy padding).
For each backend and dtype it prints, at non-pad positions of `last_hidden_state`:

    rel_vs_fp32   ||ours - hf_fp32|| / ||hf_fp32||   (hf in fp32 is the reference)
    rel_vs_same   ||ours - hf_dtype|| / ||hf_dtype|| (hf in the same dtype)
    max_abs       max |ours - hf_fp32|

and whether it passes the bounds of tests/encoders/test_modernbert.py: fp32 max_abs <= 1e-4, half
precision rel_vs_fp32 <= 2e-2 (hf's own half-precision error is printed beside it). A backend
that cannot run here (flash-attn not installed, fp32 on a half-only kernel) is reported as skipped
with the reason. Exits 1 when any row FAILs its bound or raises (ERROR), so a script or CI step
that runs it fails with it. Runs on CPU too (`--device cpu --size tiny`), which is how CI-less machines
check the script itself.

    python -m benchmarks.speed.gpu_equivalence --device cuda --size base --out equivalence.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import ModernBertModel

from encoders.attention import BACKENDS, _has_flash_attn, _has_torch_varlen
from encoders.dpr import DTYPES
from encoders.modernbert import ModernBert, ModernBertConfig
from encoders.modernbert_st import share_parameters
from retrieval.io import atomic_write_json

LENGTHS = [300, 17, 600, 128, 129, 1, 2048]


def runnable(backend: str, device: str, dtype: torch.dtype) -> str | None:
    """None if `backend` can run on device/dtype, else why not."""
    if backend in ("flash_attn", "torch_varlen"):
        if not device.startswith("cuda"):
            return "CUDA only"
        if dtype == torch.float32:
            return "fp16/bf16 only"
        if backend == "flash_attn" and not _has_flash_attn():
            return "flash-attn not installed"
        if backend == "torch_varlen" and not _has_torch_varlen():
            return "this torch has no torch.nn.attention.varlen"
    return None


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def check(size: str, device: str, dtypes: list[str], lengths: list[int], seed: int = 0) -> list[dict]:
    arch = getattr(ModernBertConfig, size)()
    torch.manual_seed(seed)
    hf = ModernBertModel._from_config(arch.to_hf(), attn_implementation="sdpa").eval().to(device)
    with torch.device("meta"):
        ours = ModernBert(arch).eval()
    share_parameters(hf, ours)  # ours runs on the very same weights
    T = max(lengths)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long().to(device)  # (B, T)
    ids = torch.randint(5, arch.vocab_size, (len(lengths), T), device=device) * mask
    keep = mask.bool()
    rows = []
    with torch.inference_mode():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state[keep].float()  # fp32 reference
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            hf.to(dtype)
            same = hf(input_ids=ids, attention_mask=mask).last_hidden_state[keep].float()
            hf_err = _rel(same, ref)
            for backend in BACKENDS:
                row = {"dtype": dtype_name, "backend": backend, "hf_rel_vs_fp32": hf_err}
                if reason := runnable(backend, device, dtype):
                    rows.append({**row, "skipped": reason})
                    continue
                ours.attn_backend = backend
                try:
                    out = ours(input_ids=ids, attention_mask=mask).last_hidden_state[keep].float()
                except Exception as e:  # report and go on: one broken kernel must not hide the others
                    rows.append({**row, "error": f"{type(e).__name__}: {e}"})
                    continue
                row.update(rel_vs_fp32=_rel(out, ref), rel_vs_same=_rel(out, same), max_abs=(out - ref).abs().max().item(),
                           ran=ours.last_backend)
                row["ok"] = row["max_abs"] <= 1e-4 if dtype == torch.float32 else row["rel_vs_fp32"] <= 2e-2
                rows.append(row)
            hf.to(torch.float32)
    return rows


def failures(rows: list[dict]) -> list[dict]:
    """The rows that ran and missed their bound (``ok`` False) or raised (``error``); skipped rows are not failures."""
    return [r for r in rows if "error" in r or ("skipped" not in r and not r["ok"])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", default="base", help="ModernBertConfig preset: tiny | base | large")
    p.add_argument("--dtypes", default="fp32,bf16,fp16")
    p.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="comma-separated sequence lengths of the batch")
    p.add_argument("--out", default="", help="optional JSON file with every row")
    args = p.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"# {name}; torch {torch.__version__}; {args.size}; lengths {lengths}", flush=True)
    rows = check(args.size, args.device, args.dtypes.split(","), lengths)
    for r in rows:
        if "skipped" in r or "error" in r:
            print(f"{r['dtype']:5s} {r['backend']:13s} {'skipped: ' + r['skipped'] if 'skipped' in r else 'ERROR ' + r['error']}")
        else:
            print(f"{r['dtype']:5s} {r['backend']:13s} rel_vs_fp32 {r['rel_vs_fp32']:.2e} (hf {r['hf_rel_vs_fp32']:.2e})  "
                  f"rel_vs_same {r['rel_vs_same']:.2e}  max_abs {r['max_abs']:.2e}  {'ok' if r['ok'] else 'FAIL'}")
    if args.out:
        atomic_write_json(Path(args.out), {"device": name, "torch": torch.__version__, "size": args.size, "lengths": lengths, "rows": rows})
    if bad := failures(rows):
        names = ", ".join(f"{r['dtype']} {r['backend']}" for r in bad)
        print(f"{len(bad)} of {len(rows)} rows FAIL or ERROR: {names}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
