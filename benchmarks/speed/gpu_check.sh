#!/usr/bin/env bash
# The GPU check of issue #3 as one script, for a session lent an H100/H200 by the device tool
# (15 minutes a session, machine start included; this takes about 5 on an H100):
#   1. equivalence of every attention backend that runs there with transformers' ModernBertModel;
#   2. throughput (ours vs transformers, same run) on the four efficiency sets, bf16 with the
#      torch varlen kernel and with sdpa_blocked, and fp32 with sdpa_blocked.
# Everything lands in $OUT (the device tool brings back at most 8 files): log.txt, equivalence.json and
# one throughput_<backend>_<dtype>.json per row set. Every step runs even when an earlier one fails; the script
# then exits non-zero if any did (an equivalence row that FAILs counts). Dry run on a CPU:
#   DEV=cpu SIZE=tiny DOCS=4 LONG=1 BUDGET=4096 OUT=/tmp/gpu_check bash benchmarks/speed/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}  # the checkout's venv when it has one
DEV=${DEV:-cuda}
SIZE=${SIZE:-base}
DOCS=${DOCS:-2048}    # fixed512 / var256 documents
LONG=${LONG:-64}      # fixed8192 / var4096 documents
BUDGET=${BUDGET:-65536}  # padded tokens per batch

LOG="$OUT/log.txt"
{ nvidia-smi || echo "no nvidia-smi"; } 2>&1 | tee "$LOG"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
failed=()
timeout 180 $PY -m benchmarks.speed.gpu_equivalence --device "$DEV" --size "$SIZE" --out "$OUT/equivalence.json" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || failed+=("gpu_equivalence (rc $rc)")
for spec in torch_varlen:bf16 sdpa_blocked:bf16 sdpa_blocked:fp32; do
  backend=${spec%%:*} dtype=${spec##*:}
  if [ "$backend" = torch_varlen ] && [[ "$DEV" != cuda* ]]; then
    echo "throughput $backend $dtype: skipped on $DEV (CUDA-only kernel)" | tee -a "$LOG"; continue
  fi
  timeout 200 $PY -m benchmarks.speed.throughput --device "$DEV" --size "$SIZE" --dtype "$dtype" --backend "$backend" \
    --docs "$DOCS" --long-docs "$LONG" --token-budget "$BUDGET" --no-memory \
    --out "$OUT/throughput_${backend}_${dtype}.json" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || failed+=("throughput $backend $dtype (rc $rc)")
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" | tee -a "$LOG"
  exit 1
fi
echo "gpu_check: every step passed" | tee -a "$LOG"
